/**
 * Pre-flight checks (issue 15.6) with the real binary: `sluice check` prints one line per
 * connection and names the one broken connection among three pipelines sharing one connections
 * file (exit 2), times out a hanging one, never prints a secret; `run` does the cheap check
 * before touching any file (one error, exit 2; `--no-check` skips it); `watch` shows a pipeline
 * whose check fails as failed to start and tries again at its next due time.
 * The failing and hanging connections are a test sink (test/helpers/check-plugins.mjs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  killSluice,
  SLUICE_BIN,
  type SluiceProcess,
  startSluice,
  statusPort,
  until,
} from '../helpers/sluice-process.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

/** The local source checks itself: its folder listed (the local sink's is probed). */
const LOCAL_SOURCE = expect.stringMatching(
  /^ {2}✓ source local inbox@\.\/in — folder .*\/in listed \(1 entry\)$/,
);
const PLUGINS = join(import.meta.dirname, '..', 'helpers', 'check-plugins.mjs');
const SECRET = 'pw-never-printed-7Qz';

let ws: Workspace;
let proc: SluiceProcess | undefined;
afterEach(async () => {
  await killSluice(proc);
  proc = undefined;
  ws?.cleanup();
});

const sharedConnections = (bad: string) => `connections:
  archive:
    probe_sink: { path: ./archive/out }
  partner:
    probe_sink: { path: ./partner/out, host: sftp.partner.example, port: 2222, password: "\${PARTNER_PASSWORD}", check: ${bad} }
  inbox:
    local: { path: ./in }
`;

const pipeline = (name: string, sink: string, extra = '') =>
  `name: ${name}\nplugins: ["${PLUGINS}"]\n${extra}source:\n  local: { connection: inbox, after_success: delete }\nsink:\n  probe_sink: { connection: ${sink} }\n`;

function sluice(args: string[], env: Record<string, string> = {}) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [SLUICE_BIN, ...args], {
    cwd: ws.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PARTNER_PASSWORD: SECRET, ...env },
    encoding: 'utf8',
  });
  return { ...r, ms: Date.now() - started };
}

function threePipelines(bad: string) {
  ws = makeWorkspace('sluice-check-');
  ws.write('sluice.config.yaml', sharedConnections(bad));
  ws.write('in/a.csv', 'a\n');
  ws.pipeline(pipeline('one', 'archive'), 'one.yaml');
  ws.pipeline(pipeline('two', 'partner'), 'two.yaml');
  ws.pipeline(pipeline('three', 'archive'), 'three.yaml');
}

describe('sluice check', () => {
  it('names the one broken connection among three pipelines sharing one file', () => {
    threePipelines('fail');
    const r = sluice(['check', '.']);
    expect(r.status).toBe(2);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines).toEqual([
      expect.stringMatching(/one\.yaml \(one\)$/),
      LOCAL_SOURCE,
      '  ✓ sink probe_sink archive@./archive/out — folder ./archive/out listed (0 entries), probe written and removed',
      expect.stringMatching(/three\.yaml \(three\)$/),
      LOCAL_SOURCE,
      '  ✓ sink probe_sink archive@./archive/out — folder ./archive/out listed (0 entries), probe written and removed',
      expect.stringMatching(/two\.yaml \(two\)$/),
      LOCAL_SOURCE,
      '  ✗ sink probe_sink partner@sftp.partner.example:2222/partner/out — login refused for *** at sftp.partner.example — check the user and password of the connection',
    ]);
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
    // Nothing of the pipelines' files was touched; the probes were removed.
    expect(ws.files('in')).toEqual(['a.csv']);
    expect(ws.files('archive/out')).toEqual([]);
    expect(readFileSync(ws.path('archive/checks.log'), 'utf8')).toBe('full\nfull\n');
  });

  it('exits 0 when every connection passes (a plugin without a check does not fail)', () => {
    threePipelines('ok');
    ws.pipeline(
      `name: four\nplugins: ["${PLUGINS}"]\nsource:\n  local: { connection: inbox }\nsink:\n  probe_sink: { path: ./four, check: none }\n`,
      'four.yaml',
    );
    const r = sluice(['check', 'two.yaml', 'four.yaml']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('  ✓ sink probe_sink partner@sftp.partner.example:2222/partner/out — folder');
    expect(r.stdout).toContain('  - sink probe_sink ./four: no check (the plugin cannot check itself)\n');
  });

  it('checks the pass report sink too, and names it as the report', () => {
    threePipelines('ok');
    ws.pipeline(
      pipeline(
        'five',
        'archive',
        'report:\n  sink:\n    probe_sink: { connection: partner, check: fail }\n  to: "stats/{pipeline}.json"\n',
      ),
      'five.yaml',
    );
    const r = sluice(['check', 'five.yaml']);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('✓ sink probe_sink archive@./archive/out');
    expect(r.stdout).toMatch(
      /^✗ report probe_sink partner@sftp\.partner\.example:2222\/partner\/out — login refused/m,
    );
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
  });

  it('--json gives the same outcomes as one document', () => {
    threePipelines('fail');
    const r = sluice(['check', 'one.yaml', 'two.yaml', '--json']);
    expect(r.status).toBe(2);
    const doc = JSON.parse(r.stdout) as {
      ok: boolean;
      pipelines: Array<{ name: string; connections: Array<Record<string, unknown>> }>;
    };
    expect(doc.ok).toBe(false);
    expect(doc.pipelines.map((p) => p.name)).toEqual(['one', 'two']);
    expect(doc.pipelines[1].connections[1]).toMatchObject({
      role: 'sink',
      step: 'sink.probe_sink',
      plugin: 'probe_sink',
      connection: 'partner',
      target: 'partner@sftp.partner.example:2222/partner/out',
      outcome: 'failed',
      code: 'SLUICE_E_SINK',
      reason: 'login refused for *** at sftp.partner.example',
      hint: 'check the user and password of the connection',
    });
    expect(doc.pipelines[0].connections[1]).toMatchObject({ outcome: 'ok', connection: 'archive' });
    expect(r.stdout).not.toContain(SECRET);
  });

  it('a check that does not answer times out with a clear message', () => {
    threePipelines('hang');
    const r = sluice(['check', 'two.yaml', '--timeout', '1s']);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain(
      '✗ sink probe_sink partner@sftp.partner.example:2222/partner/out — no answer within 1 s (timed out) — is the server reachable from here?',
    );
    expect(r.ms).toBeLessThan(8_000);
  });

  it('a plugin still being made when its check times out is closed once it is made (no leaked connection)', async () => {
    ws = makeWorkspace('sluice-check-');
    ws.write('in/a.csv', 'a\n');
    ws.pipeline(
      `name: slow\nplugins: ["${PLUGINS}"]\nsource:\n  local: { path: ./in }\nsink:\n  probe_sink: { path: ./slow/out, create_ms: 1500 }\n`,
      'slow.yaml',
    );
    const r = sluice(['check', 'slow.yaml', '--timeout', '300ms']);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('timed out');
    // The command waited for the late instance to close before it exited.
    expect(
      existsSync(ws.path('slow/closes.log')) ? readFileSync(ws.path('slow/closes.log'), 'utf8') : '',
    ).toBe('closed\n');
  });

  it('an invalid pipeline checks nothing and exits 2', () => {
    threePipelines('ok');
    ws.pipeline(pipeline('bad', 'nowhere'), 'bad.yaml');
    const r = sluice(['check', '.']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown connection "nowhere"');
    expect(existsSync(ws.path('archive/checks.log'))).toBe(false);
  });
});

describe('the cheap check at the start of a run', () => {
  it('a failing connection is one error before any file is touched; --no-check skips it', () => {
    threePipelines('fail');
    const r = sluice(['run', 'two.yaml', '--log-format', 'json']);
    expect(r.status).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.includes('pre-flight'));
    expect(errors).toEqual([
      '[two sink.probe_sink] pre-flight check failed: sink probe_sink partner@sftp.partner.example:2222/partner/out — login refused for *** at sftp.partner.example — check the user and password of the connection',
    ]);
    expect(r.stderr).not.toContain(SECRET);
    expect(ws.files('in')).toEqual(['a.csv']);
    expect(existsSync(ws.path('partner/out'))).toBe(false);
    expect(readFileSync(ws.path('partner/checks.log'), 'utf8')).toBe('cheap\n');

    const skipped = sluice(['run', 'two.yaml', '--no-check', '--log-format', 'json']);
    expect(skipped.status).toBe(0);
    expect(ws.files('partner/out')).toEqual(['a.csv']);
    expect(readFileSync(ws.path('partner/checks.log'), 'utf8')).toBe('cheap\n');
  });

  it('a passing check lets the run go on', () => {
    threePipelines('ok');
    const r = sluice(['run', 'one.yaml', '--log-format', 'json']);
    expect(r.status).toBe(0);
    expect(ws.files('archive/out')).toEqual(['a.csv']);
    expect(readFileSync(ws.path('archive/checks.log'), 'utf8')).toBe('cheap\n');
  });
});

describe('the cheap check in watch', () => {
  it('a pipeline whose check fails is shown failed to start and tried again at its next due time', async () => {
    threePipelines('locked');
    rmSync(ws.path('one.yaml'));
    rmSync(ws.path('three.yaml'));
    writeFileSync(ws.path('two.yaml'), pipeline('two', 'partner', 'trigger:\n  every: 1s\n'));
    ws.write('partner/locked', '');
    proc = startSluice(['watch', '.', '--metrics-port', '0', '--log-format', 'json'], ws.dir, {
      PARTNER_PASSWORD: SECRET,
    });
    const port = await statusPort(proc);
    const refused = await proc.waitForLog(
      (l) => String(l.msg).startsWith('pipeline not started: a connection failed its check'),
      15_000,
      'the refused start',
    );
    expect(String(refused.err)).toContain('login refused for *** at sftp.partner.example');
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
      pipelines: Array<{ name: string; state: string; lastError: string }>;
    };
    expect(status.pipelines[0]).toMatchObject({ state: 'failed' });
    expect(status.pipelines[0].lastError).toContain('pre-flight check failed');
    expect(ws.files('in')).toEqual(['a.csv']);

    rmSync(ws.path('partner/locked'));
    await proc.waitForLog((l) => l.msg === 'pipeline started', 10_000, 'the start on the next due time');
    await until(
      () => ws.files('partner/out'),
      (f) => f.includes('a.csv'),
      10_000,
      'a.csv delivered',
    );
    expect(proc.stderr()).not.toContain(SECRET);
  });
});
