/**
 * Reliability corpus, part 3: invalid pipelines of every kind through `sluice run` as a user
 * runs it. Each one must exit 2 with one clear line per problem naming file:line:col (no stack
 * trace) and run nothing: no file written, no source touched. And a run whose items fail exits
 * 1, keeps the failed sources and still delivers the good ones. Listed in docs/reliability.md.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles, makeWorkspace } from '../helpers/workspace.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'sluice.js');
const sdk = join(root, 'dist', 'core', 'sdk.js');
const ws = makeWorkspace('sluice-bad-config-');
afterAll(() => ws.cleanup());

function sluice(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SRC = 'source:\n  local: { path: ./in, after_success: delete }\n';
const SINK = 'sink:\n  local: { path: ./out }\n';

/** name → [pipeline text, the one stderr line expected]. */
const INVALID: Array<[string, string, RegExp]> = [
  [
    'broken-yaml',
    `name: broken\nsource:\n  local: { path: ./in\n${SINK}`,
    /^broken-yaml\.yaml:4:1: YAML syntax: .*Flow map/,
  ],
  [
    'tab-indent',
    `name: tabs\nsource:\n\tlocal: { path: ./in }\n${SINK}`,
    /^tab-indent\.yaml:3:1: YAML syntax: Tabs are not allowed as indentation$/,
  ],
  [
    'duplicate-key',
    `name: a\nname: b\n${SRC}${SINK}`,
    /^duplicate-key\.yaml:2:1: YAML syntax: Map keys must be unique$/,
  ],
  [
    'empty-file',
    '',
    /^empty-file\.yaml:1:1: a pipeline file must be a map with name, source\(s\), steps and sink\(s\)$/,
  ],
  ['not-a-map', '- just\n- a list\n', /^not-a-map\.yaml:1:1: a pipeline file must be a map/],
  [
    'bad-name',
    `name: "has space/slash"\n${SRC}${SINK}`,
    /^bad-name\.yaml:1:7: \/name: "has space\/slash" does not have the expected form/,
  ],
  [
    'unknown-plugin',
    `name: x\n${SRC}steps:\n  - segragate: { to: "{name}" }\n${SINK}`,
    /^unknown-plugin\.yaml:5:5: \[steps\[0\]\.segragate\] \/steps\/0\/segragate: unknown step plugin "segragate" — did you mean "segregate"\?$/,
  ],
  [
    'unknown-key',
    `name: x\n${SRC}sink:\n  local: { path: ./out, if_exist: skip }\n`,
    /^unknown-key\.yaml:5:25: \[sink\.local\] \/sink\/local\/if_exist: unknown key "if_exist" — did you mean "if_exists"\?$/,
  ],
  [
    'missing-required-key',
    `name: x\nsource:\n  local: { recursive: true }\n${SINK}`,
    /^missing-required-key\.yaml:3:\d+: \[source\.local\] \/source\/local: missing required key "path"$/,
  ],
  [
    'wrong-type',
    `name: x\nsource:\n  local: { path: ./in, recursive: maybe }\n${SINK}`,
    /^wrong-type\.yaml:3:\d+: \[source\.local\] \/source\/local\/recursive: must be boolean, got string "maybe"$/,
  ],
  [
    'bad-enum',
    `name: x\n${SRC}sink:\n  local: { path: ./out, if_exists: clobber }\n`,
    /^bad-enum\.yaml:5:\d+: \[sink\.local\] \/sink\/local\/if_exists: "clobber" is not valid here: expected "overwrite" \| "skip" \| "fail" \| "rename"$/,
  ],
  [
    'missing-env',
    `name: x\nsource:\n  local: { path: "\${INBOX_DIR_NOT_SET}" }\n${SINK}`,
    /^missing-env\.yaml:3:\d+: environment variable INBOX_DIR_NOT_SET is not set and has no default/,
  ],
  [
    'bad-regex',
    `name: x\n${SRC}steps:\n  - filter: { regex: "(unclosed" }\n${SINK}`,
    /^bad-regex\.yaml:5:\d+: \[steps\[0\]\.filter\] \/steps\/0\/filter\/regex: .*(Unterminated group|invalid regular expression)/,
  ],
  [
    'bad-strftime',
    `name: x\n${SRC}steps:\n  - segregate:\n      date: { from: name, pattern: '(\\d{8})', format: '%Y%m%K' }\n      to: "{date:%Y}/{name}"\n${SINK}`,
    /^bad-strftime\.yaml:6:\d+: \[steps\[0\]\.segregate\] \/steps\/0\/segregate\/date\/format: .*unknown format token "%K"/,
  ],
  [
    'bad-template-token',
    `name: x\n${SRC}steps:\n  - rename: { to: "{date:%Q}/{name}" }\n${SINK}`,
    /^bad-template-token\.yaml:5:\d+: \[steps\[0\]\.rename\] \/steps\/0\/rename\/to: .*%Q/,
  ],
  [
    'unknown-placeholder',
    `name: x\n${SRC}steps:\n  - rename: { to: "{nme}" }\n${SINK}`,
    /^unknown-placeholder\.yaml:5:19: \[steps\[0\]\.rename\] \/steps\/0\/rename\/to: unknown placeholder "\{nme\}" .*did you mean "\{name\}"\?/,
  ],
  [
    'unclosed-brace',
    `name: x\n${SRC}steps:\n  - rename: { to: "{name" }\n${SINK}`,
    /^unclosed-brace\.yaml:5:19: .*unclosed "\{" at offset 0 in template "\{name"/,
  ],
  [
    'template-escapes-root',
    `name: x\n${SRC}steps:\n  - rename: { to: "../../etc/{name}" }\n${SINK}`,
    /^template-escapes-root\.yaml:5:19: \[steps\[0\]\.rename\] \/steps\/0\/rename\/to: template "\.\.\/\.\.\/etc\/\{name\}" escapes the sink root/,
  ],
  [
    'template-absolute',
    `name: x\n${SRC}steps:\n  - segregate: { to: "/etc/{name}" }\n${SINK}`,
    /^template-absolute\.yaml:5:\d+: \[steps\[0\]\.segregate\] \/steps\/0\/segregate\/to: template "\/etc\/\{name\}" makes an absolute path/,
  ],
  [
    'unknown-timezone',
    `name: x\n${SRC}steps:\n  - rename: { to: "{name}", timezone: Mars/Olympus }\n${SINK}`,
    /^unknown-timezone\.yaml:5:\d+: .*unknown timezone "Mars\/Olympus"/,
  ],
  [
    'source-and-sources',
    `name: x\n${SRC}sources:\n  - local: { path: ./in }\n${SINK}`,
    /^source-and-sources\.yaml:\d+:\d+: \/sources: give either `source:` or `sources:`, not both$/,
  ],
  ['no-sink', `name: x\n${SRC}`, /^no-sink\.yaml:1:1: \/: missing `sink:` \(or `sinks:` for several\)$/],
  [
    'no-source',
    `name: x\n${SINK}`,
    /^no-source\.yaml:1:1: \/: missing `source:` \(or `sources:` for several\)$/,
  ],
  // Regression: "expected a string | a number" for a string; the message now shows the expected form.
  [
    'bad-duration',
    `name: x\nsource:\n  local: { path: ./in, min_age: 5 parsecs }\n${SINK}`,
    /^bad-duration\.yaml:3:33: \[source\.local\] \/source\/local\/min_age: "5 parsecs" is not valid here: expected a string like 500ms, 30s, 15m \| a number$/,
  ],
  [
    'bad-size',
    `name: x\n${SRC}steps:\n  - compress: { min_size: 12 zorkbytes }\n${SINK}`,
    /^bad-size\.yaml:5:27: \[steps\[0\]\.compress\] \/steps\/0\/compress\/min_size: "12 zorkbytes" is not valid here: expected a string like 512KiB, 1MiB, 5GB \| a number$/,
  ],
  [
    'policy-out-of-range',
    `name: x\n${SRC}${SINK}policy:\n  retry: { max_attempts: 0 }\n`,
    /^policy-out-of-range\.yaml:7:\d+: \/policy\/retry\/max_attempts: must be >= 1$/,
  ],
  [
    'unknown-trigger-key',
    `name: x\n${SRC}${SINK}trigger:\n  evry: 5m\n`,
    /^unknown-trigger-key\.yaml:7:3: \/trigger\/evry: unknown key "evry" — did you mean "every"\?$/,
  ],
  [
    'trigger-every-and-cron',
    `name: x\n${SRC}${SINK}trigger:\n  every: 5m\n  cron: "* * * * *"\n`,
    /^trigger-every-and-cron\.yaml:\d+:\d+: \/trigger: give either `every` or `cron`, not both$/,
  ],
  // Regression: `validate` accepted these and `run` failed without naming the file.
  [
    'bad-cron',
    `name: x\n${SRC}${SINK}trigger:\n  cron: "61 * * * *"\n`,
    /^bad-cron\.yaml:7:9: \/trigger\/cron: trigger\.cron "61 \* \* \* \*" \(timezone UTC\) is invalid: .*0-59$/,
  ],
  [
    'zero-interval',
    `name: x\n${SRC}${SINK}trigger:\n  every: 0s\n`,
    /^zero-interval\.yaml:7:10: \/trigger\/every: trigger\.every must be longer than 0, got "0s"$/,
  ],
  [
    'plugin-module-missing',
    `name: x\nplugins: ["./no-such-plugin.mjs"]\n${SRC}${SINK}`,
    /^plugin-module-missing\.yaml:2:11: \/plugins\/0: cannot load plugin module "\.\/no-such-plugin\.mjs": Cannot find module/,
  ],
  [
    'plugin-not-a-plugin',
    `name: x\nplugins: ["./plugins/not-a-plugin.mjs"]\n${SRC}${SINK}`,
    /^plugin-not-a-plugin\.yaml:2:11: \/plugins\/0: module "\.\/plugins\/not-a-plugin\.mjs" exports no plugin \(use definePlugin from "sluice"\)$/,
  ],
  [
    'plugin-wrong-kind',
    `name: x\nplugins: ["./plugins/a-source.mjs"]\n${SRC}steps:\n  - only_a_source: {}\n${SINK}`,
    /^plugin-wrong-kind\.yaml:6:5: \[steps\[0\]\.only_a_source\] \/steps\/0\/only_a_source: unknown step plugin "only_a_source" — "only_a_source" is a source plugin, not a step$/,
  ],
  [
    'plugin-wrong-api',
    `name: x\nplugins: ["./plugins/future-api.mjs"]\n${SRC}${SINK}`,
    /^plugin-wrong-api\.yaml:2:11: .*targets plugin API v99; this Sluice provides v\d+/,
  ],
];

beforeAll(() => {
  ws.write('in/keep-me.txt', 'must not be touched by an invalid pipeline');
  ws.write('plugins/not-a-plugin.mjs', "export default { hello: 'world' };\n");
  ws.write(
    'plugins/a-source.mjs',
    `import { definePlugin, Type } from ${JSON.stringify(sdk)};\nexport default definePlugin({ name: 'only_a_source', kind: 'source', summary: 'a source', config: Type.Object({}), examples: [], create() { return { async *list() {} }; } });\n`,
  );
  ws.write(
    'plugins/future-api.mjs',
    "export default { apiVersion: 99, name: 'from_the_future', kind: 'step', summary: 'x', config: { type: 'object' }, examples: [], create() { return { process: (i) => i }; } };\n",
  );
});

describe('invalid pipelines: sluice run exits 2 with one clear line and runs nothing', () => {
  for (const [name, yaml, message] of INVALID) {
    it(name, () => {
      ws.pipeline(yaml, `${name}.yaml`);
      const r = sluice(['run', `${name}.yaml`, '--log-format', 'pretty']);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at |Error: /);
      expect(r.stdout).toBe('');
      expect(listFiles(ws.path('out'))).toEqual([]);
      expect(listFiles(ws.path('in'))).toEqual(['keep-me.txt']);
    });
  }

  it('sluice validate agrees with sluice run on every one of them', () => {
    const r = sluice(['validate', ...INVALID.map(([name]) => `${name}.yaml`)]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(INVALID.length);
    for (const [i, [, , message]] of INVALID.entries()) expect(lines[i]).toMatch(message);
  });
});

describe('failing items: exit 1', () => {
  it('a run where items fail exits 1, names them, keeps their sources and delivers the rest', () => {
    ws.write('items/in/good.csv', 'a,b\n');
    ws.write('items/in/bad.csv.gz', 'this is not gzip');
    ws.write('items/in/evil.zip', '');
    ws.pipeline(
      'name: items\nsource:\n  local: { path: ./in, after_success: delete }\nsteps:\n  - decompress: {}\nsink:\n  local: { path: ./out }\n',
      'items/pipeline.yaml',
    );
    const r = sluice([
      'run',
      'items/pipeline.yaml',
      '--log-format',
      'pretty',
      '--summary-json',
      'items/summary.json',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^items: 1 ok, 2 failed/);
    expect(r.stdout).toMatch(/FAILED local:bad\.csv\.gz \[SLUICE_E_BAD_DATA\]/);
    expect(r.stdout).toMatch(/FAILED local:evil\.zip \[SLUICE_E_BAD_DATA\]/);
    expect(listFiles(ws.path('items', 'out'))).toEqual(['good.csv']);
    expect(listFiles(ws.path('items', 'in'))).toEqual(['bad.csv.gz', 'evil.zip']);
    const summary = JSON.parse(ws.read('items/summary.json')) as {
      ok: number;
      failed: number;
      failures: Array<{ path: string; code: string }>;
    };
    expect(summary).toMatchObject({ ok: 1, failed: 2 });
    expect(summary.failures.map((f) => f.code)).toEqual(['SLUICE_E_BAD_DATA', 'SLUICE_E_BAD_DATA']);
  });
});
