/**
 * `sluice test` messages (issue 15 item 8): a bare path in `expect.files` (which the README
 * allows: "or just the path") is an expected file, not a crash; an input the source's
 * include / exclude (or its temporary names) leaves out is named with the filter that does it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runSluiceSync } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-test-messages-');
afterAll(() => ws.cleanup());

const sluice = (args: string[]) => runSluiceSync(args, ws.dir);

const PIPELINE = `name: tables
source:
  sftp: { host: sftp.invalid, username: nobody, password: never-used, path: /inbox, include: ["*.csv"], exclude: ["draft-*"] }
steps:
  - rename: { to: "tables/{name}" }
sink:
  local: { path: ./out }
`;

describe('sluice test', () => {
  it('takes a bare path in expect.files as a file that must land there', () => {
    ws.pipeline(PIPELINE, 'tables.yaml');
    ws.write(
      'tables.test.yaml',
      'tests:\n  - name: bare paths\n    inputs:\n      - { path: a.csv, content: "x" }\n    expect:\n      files:\n        - tables/a.csv\n',
    );
    const r = sluice(['test', 'tables.yaml']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('PASS tables.yaml › bare paths');
    expect(r.code).toBe(0);

    ws.write(
      'tables.test.yaml',
      'tests:\n  - name: a bare path that does not land\n    inputs:\n      - { path: a.csv, content: "x" }\n    expect:\n      files: [tables/b.csv]\n',
    );
    const missing = sluice(['test', 'tables.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('  - missing tables/b.csv');
    expect(missing.stdout).toContain('  - unexpected file tables/a.csv');
  });

  it('warns about an input the source leaves out, naming the file and the filter', () => {
    ws.pipeline(PIPELINE, 'tables.yaml');
    ws.write(
      'tables.test.yaml',
      [
        'tests:',
        '  - name: filtered inputs',
        '    inputs:',
        '      - { path: a.csv, content: "x" }',
        '      - { path: notes.txt, content: "y" }',
        '      - { path: draft-b.csv, content: "z" }',
        '      - { path: c.csv.part, content: "w" }',
        '    expect:',
        '      files: [tables/a.csv]',
        '',
      ].join('\n'),
    );
    const r = sluice(['test', 'tables.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      '  warning: input notes.txt never reaches the pipeline: source "sftp" leaves it out (include: [*.csv] (not matched))',
    );
    expect(r.stdout).toContain(
      '  warning: input draft-b.csv never reaches the pipeline: source "sftp" leaves it out (exclude: [draft-*])',
    );
    expect(r.stdout).toContain('input c.csv.part never reaches the pipeline');
    expect(r.stdout).not.toContain('input a.csv never');
  });
});
