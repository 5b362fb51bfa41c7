/**
 * A mixed drop through one pipeline (issue 14): `when` on pgp_decrypt and decompress lets the
 * encrypted archives through both steps and the plain files past them untouched; named groups
 * of a route's regex pick the folders; a filter with `action: fail` fails an item into on_error.
 */
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedFiles } from '../../core/generated.js';
import { loadPipelineFile, runPipelineFile } from '../../core/sdk.js';
import { runCli } from '../helpers/workflows.js';
import { makeWorkspace, sha256, sha256File } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-step-when-');
const home = ws.path('gnupg');
const gpg = (...args: string[]) => execFileSync('gpg', ['--homedir', home, '--batch', ...args]);

const salesCsv = 'id,amount\n'.repeat(2000);
const ordersCsv = 'order,qty\n1,2\n3,4\n';
const pdf = Buffer.from('%PDF-1.4\n% not really a pdf, but bytes that must not change\n');

const pipeline = (steps: string, name = 'mixed') =>
  [
    `name: ${name}`,
    'source:',
    '  local: { path: ./in }',
    'steps:',
    '  - pgp_decrypt: { when: { name: ["*.gpg", "*.pgp"] }, private_key_file: ./key.asc, engine: gpg }',
    '  - decompress: { when: { ext: gz } }',
    steps,
    'sink:',
    '  local: { path: ./out }',
    '',
  ].join('\n');

const routes = [
  '  - segregate:',
  '      routes:',
  "        - when: { regex: '^(?<provider>[a-z]+)_(?<kind>[a-z]+)_\\d{8}\\.csv$' }",
  '          to: "data/{match.kind}/{match.provider}/{name}"',
  '      default: "other/{name}"',
].join('\n');

beforeAll(() => {
  execFileSync('mkdir', ['-m', '700', home]);
  ws.write(
    'key.params',
    'Key-Type: RSA\nKey-Length: 2048\nName-Real: T\nName-Email: t@example.com\nExpire-Date: 0\n%no-protection\n%commit\n',
  );
  gpg('--gen-key', ws.path('key.params'));
  ws.write('key.asc', gpg('--armor', '--export-secret-keys', 't@example.com'));
  ws.write('acme_sales_20240301.csv.gz', gzipSync(salesCsv));
  ws.write('in/acme_sales_20240301.csv.gz.gpg', '');
  gpg(
    '--yes',
    '--trust-model',
    'always',
    '-r',
    't@example.com',
    '-o',
    ws.path('in', 'acme_sales_20240301.csv.gz.gpg'),
    '--encrypt',
    ws.path('acme_sales_20240301.csv.gz'),
  );
  ws.write('in/zeta_orders_20240302.csv', ordersCsv);
  ws.write('in/manual.pdf', pdf);
});

afterAll(() => {
  execFileSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  ws.cleanup();
});

describe('when on steps, captures in routes', () => {
  it('plan lists the steps each item went through', async () => {
    const summary = await runPipelineFile(ws.pipeline(pipeline(routes), 'plan.yaml'), { dryRun: true });
    expect(summary.failures).toEqual([]);
    const steps = Object.fromEntries(summary.plan.map((e) => [e.path, e.steps]));
    expect(steps).toEqual({
      'acme_sales_20240301.csv.gz.gpg': ['steps[0].pgp_decrypt', 'steps[1].decompress', 'steps[2].segregate'],
      'zeta_orders_20240302.csv': ['steps[2].segregate'],
      'manual.pdf': ['steps[2].segregate'],
    });
  });

  it('sluice plan prints the steps under each item', async () => {
    ws.pipeline(pipeline(routes, 'cli-plan'), 'cli-plan.yaml');
    const r = await runCli(['plan', 'cli-plan.yaml'], ws.dir, {});
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      'local:acme_sales_20240301.csv.gz.gpg → data/sales/acme/acme_sales_20240301.csv\n  steps: steps[0].pgp_decrypt, steps[1].decompress, steps[2].segregate\n',
    );
    expect(r.stdout).toContain('local:manual.pdf → other/manual.pdf\n  steps: steps[2].segregate\n');
  });

  it('decrypts and unpacks only what `when` selects, routes by named groups, leaves the rest untouched', async () => {
    const summary = await runPipelineFile(ws.pipeline(pipeline(routes)));
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(3);
    expect(ws.files('out')).toEqual([
      'data/orders/zeta/zeta_orders_20240302.csv',
      'data/sales/acme/acme_sales_20240301.csv',
      'other/manual.pdf',
    ]);
    expect(ws.read('out/data/sales/acme/acme_sales_20240301.csv')).toBe(salesCsv);
    expect(sha256(ws.read('out/data/orders/zeta/zeta_orders_20240302.csv'))).toBe(sha256(ordersCsv));
    expect(sha256File(ws.path('out/other/manual.pdf'))).toBe(sha256(pdf));
  });

  it('validate rejects {match.NAME} for a group the regex does not define, at file:line:col', async () => {
    const file = ws.pipeline(pipeline(routes.replace('{match.kind}', '{match.nope}')), 'bad.yaml');
    const err = await loadPipelineFile(file).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/bad\.yaml:10:15\b.*\{match\.nope\} names no group/s);
    expect(String((err as Error).message)).toContain('{match.kind}');
  });

  it('a step’s own `when` captures are {match.NAME} in its templates, checked at load', async () => {
    const rename = ws.pipeline(
      pipeline(
        "  - rename: { when: { regex: '^(?<who>[a-z]+)_orders_' }, to: 'by-provider/{match.who}.csv' }",
        'renamed',
      ),
      'rename.yaml',
    );
    const summary = await runPipelineFile(rename, { dryRun: true });
    expect(summary.failures).toEqual([]);
    const destinations = Object.fromEntries(summary.plan.map((e) => [e.path, e.destinations]));
    expect(destinations['zeta_orders_20240302.csv']).toEqual(['by-provider/zeta.csv']);
    expect(destinations['manual.pdf']).toEqual(['manual.pdf']);
    const wrong = ws.pipeline(
      pipeline("  - rename: { when: { name: '*_orders_*' }, to: 'by-provider/{match.who}.csv' }"),
      'rename-bad.yaml',
    );
    await expect(loadPipelineFile(wrong)).rejects.toThrow(
      /rename-bad\.yaml:7:49.*\{match\.who\} names no group/s,
    );
  });

  it('a filter with `action: fail` sends the item to on_error with the rule it broke', async () => {
    ws.write('small/tiny.csv', 'a\n');
    ws.write('small/big.csv', 'x'.repeat(200 * 1024));
    const file = ws.pipeline(
      'name: sizes\nsource:\n  local: { path: ./small }\nsteps:\n  - filter: { min_size: 100KiB, action: fail }\nsink:\n  local: { path: ./sized }\non_error:\n  local: { path: ./rejected }\n',
      'sizes.yaml',
    );
    const summary = await runPipelineFile(file);
    expect(summary.ok).toBe(1);
    expect(summary.failed).toBe(1);
    expect(ws.files('sized')).toEqual(['big.csv']);
    expect(ws.files('rejected')).toEqual(['local/tiny.csv', 'local/tiny.csv.error.json']);
    const reason = JSON.parse(ws.read('rejected/local/tiny.csv.error.json')) as { error: string };
    expect(reason.error).toMatch(/item "tiny.csv": fails the filter: min_size: 100KiB \(size 2 B\)$/);
  });

  it('the editor schema accepts `when` on every step, with the condition fields only', () => {
    const schema = JSON.parse(generatedFiles()['schemas/pipeline.schema.json']);
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    expect(validate(parse(pipeline(routes)))).toBe(true);
    const typo = pipeline(routes).replace('when: { ext: gz }', 'when: { extension: gz }');
    expect(validate(parse(typo))).toBe(false);
  });
});
