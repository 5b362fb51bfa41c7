/**
 * Config messages with the real binary (issue 15): an unquoted `${VAR}` in a `{ … }` map is one
 * error at the `${` saying to quote it (not a dozen YAML syntax errors), other YAML errors beside
 * it stay as they are, and a missing variable names the absolute `.env` that was looked for.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runSluiceSync } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-messages-config-');
afterAll(() => ws.cleanup());

/** `sluice validate <file>` from `cwd`: exit code and the lines on stderr. */
function validate(file: string, cwd = ws.dir, env: Record<string, string> = {}) {
  const r = runSluiceSync(['validate', file], cwd, env);
  return { code: r.code, lines: r.stderr.trim().split('\n'), stderr: r.stderr };
}

const SINK = 'sink:\n  local:\n    path: ./out\n';

describe('an unquoted ${VAR} in a flow collection', () => {
  it('is one error at the ${, saying to quote it in the { … } map', () => {
    ws.pipeline(`name: f\nsource:\n  local: { path: \${IN_DIR} }\n${SINK}`, 'flow.yaml');
    const r = validate('flow.yaml', ws.dir, { IN_DIR: ws.path('in') });
    expect(r.code).toBe(2);
    expect(r.lines).toEqual([
      'flow.yaml:3:18: ${IN_DIR} must be quoted inside a { … } map (YAML reads the { of ${ there as the start of a map) — write path: "${IN_DIR}"',
    ]);
    expect(r.stderr).not.toContain('YAML syntax');
  });

  it('names each variable, with the whole value quoted; a list says [ … ] list', () => {
    ws.pipeline(
      `name: f\nsource:\n  local: { path: \${IN_DIR}/sub, include: [ \${PATTERN}, "*.csv" ] }\nsink: { local: { path: "\${OUT:-./out}" } }\n`,
      'two.yaml',
    );
    const r = validate('two.yaml');
    expect(r.lines).toEqual([
      'two.yaml:3:18: ${IN_DIR} must be quoted inside a { … } map (YAML reads the { of ${ there as the start of a map) — write path: "${IN_DIR}/sub"',
      'two.yaml:3:44: ${PATTERN} must be quoted inside a [ … ] list (YAML reads the { of ${ there as the start of a map) — write "${PATTERN}"',
    ]);
  });

  it('keeps another YAML error of the same file as the parser words it', () => {
    ws.pipeline(`name: f\nsource:\n  local: { path: \${IN_DIR} }\n${SINK}  bad: [ x\n`, 'both.yaml');
    const r = validate('both.yaml');
    expect(r.lines).toHaveLength(2);
    expect(r.lines[0]).toMatch(/^both\.yaml:3:18: \$\{IN_DIR\} must be quoted inside a \{ … \} map/);
    expect(r.lines[1]).toMatch(/^both\.yaml:8:1: YAML syntax: Flow sequence in block collection/);
  });

  it('quoted, the same map validates', () => {
    ws.write('in/.keep', '');
    ws.write(
      'ok/quoted.yaml',
      `name: f\nsource:\n  local: { path: "\${IN_DIR}" }\nsink:\n  local:\n    path: ../out\n`,
    );
    const r = validate('ok/quoted.yaml', ws.dir, { IN_DIR: ws.path('in') });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('an unquoted glob still gets its hint (include: *.zip)', () => {
    ws.pipeline(`name: g\nsource:\n  local:\n    path: ./in\n    include: *.zip\n${SINK}`, 'glob.yaml');
    expect(validate('glob.yaml').lines).toEqual([
      'glob.yaml:5:14: *.zip is read as a YAML alias, not as text — quote the glob: "*.zip" (in YAML a value starting with * names an anchor)',
    ]);
  });
});

describe('a missing variable without default', () => {
  const yaml = `name: v\nsource:\n  local:\n    path: \${INBOX}\n${SINK}`;

  it('names the absolute .env beside the pipeline, that it does not exist, and how to pass it', () => {
    ws.write('vars/v.yaml', yaml);
    const dotEnv = ws.path('vars', '.env');
    // Run from the pipeline's own folder: the path is still absolute.
    const r = validate('v.yaml', ws.path('vars'));
    expect(r.code).toBe(2);
    expect(r.lines).toEqual([
      `v.yaml:4:11: environment variable INBOX is not set and has no default (not in the environment, and there is no ${dotEnv}) — pass --var INBOX=… or set INBOX in the environment, add INBOX=… to ${dotEnv}, or write \${INBOX:-default}`,
    ]);
  });

  it('says the .env was there without it', () => {
    const dotEnv = ws.write('vars/.env', 'OTHER=1\n');
    const r = validate('vars/v.yaml');
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toContain(`(not in the environment nor in ${dotEnv})`);
    expect(r.lines[0]).toContain('pass --var INBOX=… or set INBOX in the environment');
  });
});
