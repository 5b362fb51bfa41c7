/** `sluice test`: pipeline tests with local stand-ins, run on every pipeline in pipelines/ that has one. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const ws = makeWorkspace('sluice-ptest-');
afterAll(() => ws.cleanup());

function sluice(args: string[], cwd = ws.dir) {
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The real source and sink are remote: the test must never reach them.
const PIPELINE = `name: route
source:
  sftp: { host: sftp.invalid, username: nobody, password: never-used, path: /inbox, include: ["*.csv", "*.gz"] }
steps:
  - decompress: {}
  - segregate:
      routes:
        - when: { name: "*.csv" }
          to: "csv/{name}"
      default: "misc/{name}"
sink:
  s3: { bucket: never-used, region: us-east-1 }
`;

describe('sluice test', () => {
  it('passes when the outputs match, with the real source and sink never touched', () => {
    ws.pipeline(PIPELINE, 'route.yaml');
    ws.write(
      'route.test.yaml',
      `tests:
  - name: csv routed, other files to misc, notes.txt not included
    inputs:
      - { path: a.csv, content: "x,y\\n1,2\\n" }
      - { path: b.json.gz, base64: "${gzipSync('{"k":1}').toString('base64')}" }
      - { path: notes.txt, content: "ignored" }
    expect:
      files:
        - { path: csv/a.csv, content: "x,y\\n1,2\\n" }
        - { path: misc/b.json, content: '{"k":1}' }
`,
    );
    const r = sluice(['test', 'route.yaml']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      'PASS route.yaml › csv routed, other files to misc, notes.txt not included\n' +
        '  warning: input notes.txt never reaches the pipeline: source "sftp" leaves it out (include: [*.csv, *.gz] (not matched))\n' +
        'all pipeline tests passed\n',
    );
    expect(r.code).toBe(0);
  });

  it('reports each difference: missing, unexpected, content, expected and unexpected failures', () => {
    ws.pipeline(PIPELINE, 'wrong.yaml');
    ws.write(
      'wrong.test.yaml',
      `tests:
  - name: wrong expectations
    inputs:
      - { path: a.csv, content: "x,y\\n1,2\\n" }
      - { path: c.csv.gz, content: "not gzip at all" }
      - { path: d.csv, content: "d" }
    expect:
      files:
        - { path: csv/a.csv, content: "x,y\\n1,3\\n" }
        - { path: csv/missing.csv, content: "" }
      failures:
        - { path: d.csv }
`,
    );
    const r = sluice(['test', 'wrong.yaml']);
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      'FAIL wrong.yaml › wrong expectations',
      '  - expected d.csv to fail, but it did not',
      expect.stringMatching(
        /^ {2}- unexpected failure of c\.csv\.gz: \[SLUICE_E_BAD_DATA\] .*not a valid gzip file/,
      ),
      '  - csv/a.csv: content differs — line 2: expected "1,3", got "1,2"',
      '  - missing csv/missing.csv',
      '  - unexpected file csv/d.csv',
      '1 pipeline test failed',
      '',
    ]);
  });

  it('says where the test file should be when there is none', () => {
    ws.pipeline(PIPELINE, 'untested.yaml');
    const r = sluice(['test', 'untested.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no tests for untested\.yaml: expected untested\.test\.yaml/);
  });

  it('every pipeline in pipelines/ with a .test.yaml passes its tests', () => {
    const dir = join(root, 'pipelines');
    const tested = readdirSync(dir).filter(
      (f) =>
        /\.ya?ml$/.test(f) &&
        !f.includes('.test.') &&
        existsSync(join(dir, f.replace(/\.ya?ml$/, '.test.yaml'))),
    );
    expect(tested.length).toBeGreaterThan(0);
    for (const f of tested) {
      const r = sluice(['test', join('pipelines', f)], root);
      expect(r.stdout + r.stderr, f).toMatch(/all pipeline tests passed\n$/);
      expect(r.code, f).toBe(0);
    }
  });
});
