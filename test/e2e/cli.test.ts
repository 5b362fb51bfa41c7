/** The `sluice` binary as a user runs it: exit codes, one clear message per problem, the demo. */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'sluice.js');
const ws = makeWorkspace('sluice-cli-');
afterAll(() => ws.cleanup());

function sluice(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BAD: Array<{ name: string; yaml: string; message: RegExp }> = [
  {
    name: 'broken-yaml',
    yaml: 'name: broken\nsource:\n  local: { path: ./in\nsink:\n  local: { path: ./out }\n',
    message: /^broken-yaml\.yaml:4:1: YAML syntax: .*Flow map/,
  },
  {
    name: 'unknown-plugin',
    yaml: 'name: typo\nsource:\n  local: { path: ./in }\nsteps:\n  - segragate:\n      to: "x/{name}"\nsink:\n  local: { path: ./out }\n',
    message:
      /^unknown-plugin\.yaml:5:5: \[steps\[0\]\.segragate\] \/steps\/0\/segragate: unknown step plugin "segragate" — did you mean "segregate"\?$/,
  },
  {
    name: 'wrong-type',
    yaml: 'name: wt\nsource:\n  local:\n    path: ./in\n    recursive: maybe\nsink:\n  local: { path: ./out }\n',
    message:
      /^wrong-type\.yaml:5:16: \[source\.local\] \/source\/local\/recursive: must be boolean, got string "maybe"$/,
  },
  {
    name: 'unknown-key',
    yaml: 'name: uk\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out, if_exist: skip }\n',
    message:
      /^unknown-key\.yaml:5:25: \[sink\.local\] \/sink\/local\/if_exist: unknown key "if_exist" — did you mean "if_exists"\?$/,
  },
  {
    name: 'missing-env',
    yaml: 'name: env\nsource:\n  local:\n    path: ${INBOX_DIR}\nsink:\n  local: { path: ./out }\n',
    message:
      /^missing-env\.yaml:4:11: environment variable INBOX_DIR is not set and has no default \(not in the environment, and there is no \/.+\/\.env\) — pass --var INBOX_DIR=… or set INBOX_DIR in the environment/,
  },
  {
    name: 'bad-regex',
    yaml: 'name: re\nsource:\n  local: { path: ./in }\nsteps:\n  - segregate:\n      date:\n        from: name\n        pattern: \'(\\d{8}\'\n      to: "{date:%Y}/{name}"\nsink:\n  local: { path: ./out }\n',
    message:
      /^bad-regex\.yaml:8:18: \[steps\[0\]\.segregate\] \/steps\/0\/segregate\/date\/pattern: invalid regular expression: .*Unterminated group/,
  },
  {
    name: 'bad-format',
    yaml: "name: fmt\nsource:\n  local: { path: ./in }\nsteps:\n  - segregate:\n      date: { from: name, pattern: '(\\d{8})', format: '%Y%m%K' }\n      to: \"{date:%Y}/{name}\"\nsink:\n  local: { path: ./out }\n",
    message:
      /^bad-format\.yaml:6:55: \[steps\[0\]\.segregate\] \/steps\/0\/segregate\/date\/format: .*unknown format token "%K"/,
  },
  {
    name: 'escaping-destination',
    yaml: 'name: esc\nsource:\n  local: { path: ./in }\nsteps:\n  - rename:\n      to: "../../etc/{name}"\nsink:\n  local: { path: ./out }\n',
    message:
      /^escaping-destination\.yaml:6:11: \[steps\[0\]\.rename\] \/steps\/0\/rename\/to: template "\.\.\/\.\.\/etc\/\{name\}" escapes the sink root/,
  },
];

describe('sluice validate: one clear message with file:line:col', () => {
  for (const bad of BAD) {
    it(bad.name, () => {
      ws.pipeline(bad.yaml, `${bad.name}.yaml`);
      const r = sluice(['validate', `${bad.name}.yaml`]);
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(bad.message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }

  it('reports every problem of a file at once, in file order', () => {
    ws.pipeline(
      'name: many\nsource:\n  local:\n    path: ./in\n    recursive: maybe\nsink:\n  local: { path: ./out, if_exist: skip }\npolicy:\n  concurrency: lots\n',
      'many.yaml',
    );
    const r = sluice(['validate', 'many.yaml']);
    expect(r.code).toBe(2);
    expect(
      r.stderr
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0]),
    ).toEqual(['many.yaml:5:16:', 'many.yaml:7:25:', 'many.yaml:9:16:']);
  });
});

describe('sluice run', () => {
  it('runs the demo, then finds nothing new, then redoes everything with --force', () => {
    const demo = ws.path('demo-pipeline.yaml');
    copyFileSync(join(root, 'pipelines', 'local-demo.yaml'), demo);
    const made = spawnSync(
      process.execPath,
      [join(root, 'scripts', 'make-demo-inbox.mjs'), '--dir', ws.path('demo')],
      { encoding: 'utf8' },
    );
    expect(made.status).toBe(0);
    const first = sluice(['run', 'demo-pipeline.yaml', '--log-format', 'pretty']);
    // At info, one line per finished file and nothing else.
    const lines = first.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(9);
    for (const line of lines) expect(line).toMatch(/^\d\d:\d\d:\d\d INFO {2}done \S+ → .+ \(.+, \d/);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^local-demo: 9 ok, 0 failed, 0 skipped/);
    const out = listFiles(ws.path('demo', 'out'));
    expect(out).toContain('tables/2024/03/sales-2024-03-15.csv');
    expect(out).toContain('tables/2024/02/ledger-2024-02-29.csv'); // gunzipped
    expect(out).toContain('tables/2024/07/returns-2024-07-01.csv'); // from the tar.gz
    expect(out).toContain('documents/manual.pdf');
    expect(out).toContain('undated/notes.csv');
    const second = sluice(['run', 'demo-pipeline.yaml', '--log-format', 'pretty']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^local-demo: 0 ok, 0 failed, 9 skipped/);
    const forced = sluice(['run', 'demo-pipeline.yaml', '--force', '--log-format', 'pretty']);
    expect(forced.stdout).toMatch(/^local-demo: 9 ok, 0 failed, 0 skipped/);
    const history = sluice(['history', 'demo-pipeline.yaml', '--limit', '3']);
    expect(history.stdout.trim().split('\n')).toHaveLength(3);
    expect(history.stdout).toContain('finalized');
  });

  it('exits 1 when an item fails, and prints the failure', () => {
    ws.write('fail-in/ok.txt', 'fine');
    ws.write('fail-in/bad.gz', 'this is not gzip');
    ws.pipeline(
      'name: failing\nsource:\n  local: { path: ./fail-in }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./fail-out }\n',
      'failing.yaml',
    );
    const r = sluice(['run', 'failing.yaml', '--log-format', 'pretty']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/1 ok, 1 failed/);
    expect(r.stdout).toMatch(/FAILED local:bad\.gz \[SLUICE_E_BAD_DATA\]/);
    expect(listFiles(ws.path('fail-out'))).toEqual(['ok.txt']);
  });

  it('exits 2 on usage errors', () => {
    expect(sluice(['frobnicate']).code).toBe(2);
    expect(sluice(['run', 'no-such.yaml']).stderr).toMatch(/no such file or folder: no-such\.yaml/);
    expect(sluice(['run', 'x.yaml', '--var', 'novalue']).code).toBe(2);
    ws.write('logs-in/a.txt', 'a');
    ws.pipeline(
      'name: logs\nsource:\n  local: { path: ./logs-in }\nsink:\n  local: { path: ./logs-out }\n',
      'logs.yaml',
    );
    const noFolder = sluice(['run', 'logs.yaml', '--log-file', 'no-such-folder/sluice.log']);
    expect(noFolder.code).toBe(2);
    expect(noFolder.stderr.trim()).toBe(
      'cannot open the log file no-such-folder/sluice.log: ENOENT — its folder must exist and be writable',
    );
  });

  it('plans without side effects', () => {
    ws.write('plan-in/a-20240102.csv', 'x');
    ws.pipeline(
      'name: plan\nsource:\n  local: { path: ./plan-in, after_success: delete }\nsteps:\n  - segregate:\n      date: { from: name, pattern: "(\\\\d{8})" }\n      to: "{date:%Y/%m}/{name}"\nsink:\n  local: { path: ./plan-out }\n',
      'plan.yaml',
    );
    const r = sluice(['plan', 'plan.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('local:a-20240102.csv → 2024/01/a-20240102.csv');
    expect(listFiles(ws.path('plan-out'))).toEqual([]);
    expect(listFiles(ws.path('plan-in'))).toEqual(['a-20240102.csv']);
  });
});

describe('sluice.config.yaml defaults', () => {
  it('gives validate and run their vars and state_dir; flags win; a broken file exits 2 with file:line:col', () => {
    ws.write('conf/defaults.yaml', 'state_dir: ../cfg-state\nvars: { OUT: cfg-out }\n');
    ws.write('cfg-in/a.txt', 'a');
    ws.pipeline(
      'name: cfg\nsource:\n  local: { path: ./cfg-in }\nsink:\n  local: { path: "./${OUT}" }\n',
      'cfg.yaml',
    );
    expect(sluice(['validate', 'cfg.yaml']).stderr).toMatch(/environment variable OUT is not set/);
    expect(sluice(['validate', 'cfg.yaml', '--config', 'conf/defaults.yaml']).code).toBe(0);
    expect(sluice(['run', 'cfg.yaml', '--quiet'], { SLUICE_CONFIG: 'conf/defaults.yaml' }).code).toBe(0);
    expect(listFiles(ws.path('cfg-out'))).toEqual(['a.txt']);
    // state_dir is relative to the defaults file.
    expect(listFiles(ws.path('cfg-state'))).toContain('ledger.sqlite');
    expect(
      sluice([
        'run',
        'cfg.yaml',
        '--config',
        'conf/defaults.yaml',
        '--var',
        'OUT=flag-out',
        '--force',
        '--quiet',
      ]).code,
    ).toBe(0);
    expect(listFiles(ws.path('flag-out'))).toEqual(['a.txt']);

    ws.write('conf/bad.yaml', 'state_dir: x\nstat_dir: y\n');
    const bad = sluice(['run', 'cfg.yaml', '--config', 'conf/bad.yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(
      /^conf\/bad\.yaml:2:1: unknown setting "stat_dir" — known settings: cluster, state_dir, /,
    );
    expect(sluice(['run', 'cfg.yaml', '--config', 'conf/none.yaml']).stderr.trim()).toBe(
      'config file not found: conf/none.yaml',
    );
  });
});

describe('sluice plugins and schema', () => {
  it('lists plugins and documents one from its schema', () => {
    const list = sluice(['plugins']);
    expect(list.stdout).toMatch(/segregate/);
    const one = sluice(['plugins', 'segregate']);
    expect(one.stdout).toContain('| `unmatched` |');
    expect(sluice(['plugins', 'segragate']).stderr).toMatch(/did you mean "segregate"/);
  });

  it('prints the JSON Schema', () => {
    const r = sluice(['schema']);
    expect(JSON.parse(r.stdout).title).toBe('Sluice pipeline');
  });
});
