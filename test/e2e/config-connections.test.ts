/**
 * Connections declared once (issue 15.4): `connections:` in sluice.config.yaml (or a pipeline's
 * own), used as `{connection: name}` in any block; merged under the block's own keys, validated
 * against the plugin's schema, problems naming both places. YAML merge keys in pipeline files.
 * Through the loader as every command uses it, the editor schema with a standard validator,
 * and the real binary for three pipelines sharing one file.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ConfigErrors } from '../../core/config/load.js';
import { redact } from '../../core/observe/redact.js';
import { pipelineJsonSchema } from '../../core/schema-gen.js';
import { builtinRegistry, loadPipelineFile } from '../../core/sdk.js';
import { SLUICE_BIN } from '../helpers/sluice-process.js';
import { makeWorkspace } from '../helpers/workspace.js';

const ws = makeWorkspace('sluice-connections-');
afterAll(() => ws.cleanup());

const SHARED = `# shared
connections:
  drop:
    local:
      path: ./in
      include: ["*.csv"]
      after_success: delete
  archive:
    local:
      path: \${ARCHIVE_DIR:-./archive}
  cdr_store:
    s3:
      bucket: \${CDR_BUCKET}
      region: eu-west-1
  partner:
    sftp:
      host: sftp.partner.example
      username: feed
      password: \${PARTNER_PASSWORD}
`;

/** A folder with the shared file and `files`; returns the folder. */
function folder(name: string, files: Record<string, string>, shared = SHARED): string {
  const dir = ws.path(name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sluice.config.yaml'), shared);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

async function errorsOf(file: string, env: Record<string, string> = {}): Promise<string[]> {
  try {
    await loadPipelineFile(file, { env });
  } catch (err) {
    const e = err as ConfigErrors;
    return (e.errors ?? [e]).map((x) => x.toUserString().replaceAll(`${ws.dir}/`, ''));
  }
  throw new Error('expected the load to fail');
}

describe('connections declared once', () => {
  it('merges the named fields under the block’s own, which win', async () => {
    const dir = folder('merge', {
      'p.yaml':
        'name: m\nsource:\n  local:\n    connection: drop\n    include: ["*.txt"]\nsink:\n  local: {connection: archive}\n',
    });
    const def = await loadPipelineFile(join(dir, 'p.yaml'), { env: {} });
    expect(def.sources[0].config).toMatchObject({
      path: './in',
      include: ['*.txt'],
      after_success: 'delete',
    });
    expect(def.sources[0].config).not.toHaveProperty('connection');
    expect(def.sinks[0].config).toMatchObject({ path: './archive' });
    // ${VAR} in a definition takes the pipeline's variables
    const other = await loadPipelineFile(join(dir, 'p.yaml'), { env: {}, vars: { ARCHIVE_DIR: './a2' } });
    expect(other.sinks[0].config).toMatchObject({ path: './a2' });
  });

  it('a problem in a field the connection gave points at the definition and names the use', async () => {
    const shared = SHARED.replace('after_success: delete', 'after_success: burn');
    const dir = folder(
      'def-error',
      { 'p.yaml': 'name: d\nsource:\n  local: {connection: drop}\nsink:\n  local: {path: ./out}\n' },
      shared,
    );
    expect(await errorsOf(join(dir, 'p.yaml'))).toEqual([
      'def-error/sluice.config.yaml:7:22: [source.local] /source/local/after_success: "burn" is not valid here: expected "keep" | "delete" | {move_to} (from connection "drop", used at def-error/p.yaml:3:23)',
    ]);
  });

  it('a problem in the block’s own field points at it and names the definition', async () => {
    const dir = folder('own-error', {
      'p.yaml':
        'name: o\nsource:\n  local:\n    connection: drop\n    includ: "*.txt"\nsink:\n  local: {path: ./out}\n',
    });
    expect(await errorsOf(join(dir, 'p.yaml'))).toEqual([
      'own-error/p.yaml:5:5: [source.local] /source/local/includ: unknown key "includ" (with connection "drop" defined at own-error/sluice.config.yaml:3:3) — did you mean "include"?',
    ]);
  });

  it('a required key neither gives is reported at the use, naming the definition', async () => {
    const dir = folder('required', {
      'p.yaml':
        'name: r\nconnections:\n  half:\n    sftp: {username: feed}\nsource:\n  local: {path: ./in}\nsink:\n  sftp: {connection: half}\n',
    });
    expect(await errorsOf(join(dir, 'p.yaml'))).toEqual([
      'required/p.yaml:8:9: [sink.sftp] /sink/sftp: missing required key "host" (with connection "half" defined at required/p.yaml:3:3)',
    ]);
  });

  it('a connection of another plugin is refused, naming both places', async () => {
    const dir = folder('kind', {
      'p.yaml':
        'name: k\nsource:\n  local: {path: ./in}\nsink:\n  sftp:\n    connection: cdr_store\n    path: /in\n',
    });
    // CDR_BUCKET is not set: the kind is told first, the definition is not even interpolated.
    expect(await errorsOf(join(dir, 'p.yaml'))).toEqual([
      'kind/p.yaml:6:17: [sink.sftp] /sink/sftp/connection: connection "cdr_store" is for s3 (defined at kind/sluice.config.yaml:11:3), not for sftp — use it under `s3:`, or name a sftp connection',
    ]);
  });

  it('an unknown name lists the known ones', async () => {
    const dir = folder('unknown', {
      'p.yaml': 'name: u\nsource:\n  local: {connection: dorp}\nsink:\n  local: {connection: nowhere}\n',
    });
    const errors = await errorsOf(join(dir, 'p.yaml'));
    expect(errors[0]).toBe(
      'unknown/p.yaml:3:23: [source.local] /source/local/connection: unknown connection "dorp" — did you mean "drop"? known connections: archive, cdr_store, drop, partner (this file\'s `connections:` and unknown/sluice.config.yaml)',
    );
    expect(errors[1]).toContain(
      'unknown connection "nowhere" — known connections: archive, cdr_store, drop, partner',
    );
  });

  it('without any connections file the message says so', async () => {
    const file = ws.pipeline(
      'name: n\nsource:\n  local: {connection: drop}\nsink:\n  local: {path: ./out}\n',
      'lonely.yaml',
    );
    const errors = await errorsOf(file);
    expect(errors[0]).toContain('unknown connection "drop" — no connections are declared');
  });

  it('a variable missing in a used definition is reported there; unused definitions need none', async () => {
    const dir = folder('vars', {
      'p.yaml': 'name: v\nsource:\n  local: {path: ./in}\nsink:\n  s3: {connection: cdr_store}\n',
      'ok.yaml': 'name: ok\nsource:\n  local: {connection: drop}\nsink:\n  local: {connection: archive}\n',
    });
    const [missing] = await errorsOf(join(dir, 'p.yaml'));
    expect(missing).toMatch(
      /^vars\/sluice\.config\.yaml:13:15: environment variable CDR_BUCKET is not set and has no default .*\(connection "cdr_store", used at vars\/p\.yaml:5:20\)/,
    );
    await expect(loadPipelineFile(join(dir, 'ok.yaml'), { env: {} })).resolves.toBeDefined();
    const def = await loadPipelineFile(join(dir, 'p.yaml'), { env: { CDR_BUCKET: 'cdrs' } });
    expect(def.sinks[0].config).toMatchObject({ bucket: 'cdrs', region: 'eu-west-1' });
  });

  it('secrets of a connection are masked (x-secret)', async () => {
    const dir = folder('secret', {
      'p.yaml': 'name: s\nsource:\n  local: {path: ./in}\nsink:\n  sftp: {connection: partner, path: /in}\n',
    });
    await loadPipelineFile(join(dir, 'p.yaml'), { env: { PARTNER_PASSWORD: 'pw-of-the-partner-9x' } });
    expect(redact('login with pw-of-the-partner-9x failed')).toBe('login with *** failed');
  });

  it('a pipeline’s own connections win over the shared ones, and work alone', async () => {
    const dir = folder('own', {
      'p.yaml':
        'name: own\nconnections:\n  drop:\n    local: {path: ./mine}\nsource:\n  local: {connection: drop}\nsink:\n  local: {connection: archive}\n',
    });
    const def = await loadPipelineFile(join(dir, 'p.yaml'), { env: {} });
    expect(def.sources[0].config).toMatchObject({ path: './mine' });
    expect(def.sources[0].config).not.toHaveProperty('after_success', 'delete');
  });

  it('the version changes with a used shared definition, not with an unused one', async () => {
    const dir = folder('hash', {
      'p.yaml': 'name: h\nsource:\n  local: {connection: drop}\nsink:\n  local: {path: ./out}\n',
    });
    const file = join(dir, 'p.yaml');
    const before = (await loadPipelineFile(file, { env: {} })).hash;
    writeFileSync(join(dir, 'sluice.config.yaml'), SHARED.replace('region: eu-west-1', 'region: eu-west-3'));
    expect((await loadPipelineFile(file, { env: {} })).hash).toBe(before);
    writeFileSync(
      join(dir, 'sluice.config.yaml'),
      SHARED.replace('include: ["*.csv"]', 'include: ["*.tsv"]'),
    );
    expect((await loadPipelineFile(file, { env: {} })).hash).not.toBe(before);
  });

  it('a connections file given explicitly wins over the one beside the pipeline', async () => {
    const dir = folder('explicit', {
      'p.yaml': 'name: e\nsource:\n  local: {connection: drop}\nsink:\n  local: {path: ./out}\n',
    });
    const other = ws.write(
      'elsewhere/conf.yaml',
      'connections:\n  drop:\n    local: {path: ./from-elsewhere}\n',
    );
    const def = await loadPipelineFile(join(dir, 'p.yaml'), { env: {}, connectionsFile: other });
    expect(def.sources[0].config).toMatchObject({ path: './from-elsewhere' });
  });
});

describe('YAML merge keys in pipeline files', () => {
  it('<<: *anchor merges a block, and the block’s keys win', async () => {
    const file = ws.pipeline(
      'name: mk\nsource:\n  local: {path: ./in}\nsinks:\n  - local: &box\n      path: ./out\n      if_exists: skip\n  - local:\n      <<: *box\n      path: ./out2\n',
      'merge.yaml',
    );
    const def = await loadPipelineFile(file, { env: {} });
    expect(def.sinks[1].config).toMatchObject({ path: './out2', if_exists: 'skip' });
  });

  it('a problem inside a merged block points at the anchor’s definition', async () => {
    const file = ws.pipeline(
      'name: mk\nsource:\n  local: {path: ./in}\nsinks:\n  - local: &box\n      path: ./out\n      if_exists: skipp\n  - local:\n      <<: *box\n      path: ./out2\n',
      'merge-error.yaml',
    );
    const errors = await errorsOf(file);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(
      /^merge-error\.yaml:7:18: \[sinks\[0\]\.local\] \/sinks\/0\/local\/if_exists: "skipp"/,
    );
    expect(errors[1]).toMatch(
      /^merge-error\.yaml:7:18: \[sinks\[1\]\.local\] \/sinks\/1\/local\/if_exists: "skipp"/,
    );
  });
});

describe('the editor schema', () => {
  const schema = pipelineJsonSchema(builtinRegistry());
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
  const check = (yaml: string) => {
    const ok = validate(parse(yaml));
    return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
  };

  it('accepts `connection:` in every plugin block, and required keys given by it', () => {
    expect(
      check(
        'name: a\nconnections:\n  in: {sftp: {host: h, username: u}}\nsource:\n  sftp: {connection: in, path: /x}\nsteps:\n  - compress: {connection: c}\nsinks:\n  - s3: {connection: cdr_store}\non_error:\n  local: {connection: dead}\n',
      ),
    ).toEqual([]);
  });

  it('still asks for required keys when no connection is named, and refuses unknown keys', () => {
    expect(check('name: a\nsource:\n  sftp: {path: /x}\nsink:\n  local: {path: ./o}\n').join('\n')).toContain(
      "must have required property 'host'",
    );
    expect(
      check('name: a\nsource:\n  sftp: {connection: x, hots: h}\nsink:\n  local: {path: ./o}\n').join('\n'),
    ).toContain('must NOT have additional properties');
  });
});

describe('three pipelines sharing one connections file (sluice binary)', () => {
  it('validate and run use the shared connections', () => {
    const dir = folder('three', {
      'a.yaml':
        'name: a\nsource:\n  local: {connection: drop}\nsink:\n  local: {connection: archive, path: ./out-a}\n',
      'b.yaml':
        'name: b\nsource:\n  local: {connection: drop, include: ["*.txt"], after_success: keep}\nsink:\n  local: {connection: archive, path: ./out-b}\n',
      'c.yaml': 'name: c\nsource:\n  local: {path: ./in-c}\nsink:\n  local: {connection: archive}\n',
    });
    ws.write('three/in/x.csv', 'x\n');
    ws.write('three/in/y.txt', 'y\n');
    ws.write('three/in-c/z.csv', 'z\n');
    const sluice = (...args: string[]) =>
      spawnSync(process.execPath, [SLUICE_BIN, ...args], {
        cwd: dir,
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
        encoding: 'utf8',
      });
    const validated = sluice('validate', '.');
    expect(validated.stderr).toBe('');
    expect(validated.stdout.split('\n').filter(Boolean)).toHaveLength(3);
    expect(sluice('run', 'a.yaml', 'b.yaml', 'c.yaml', '--log-format', 'json').status).toBe(0);
    expect(ws.files('three/out-a')).toEqual(['x.csv']);
    expect(ws.files('three/out-b')).toEqual(['y.txt']);
    expect(ws.files('three/archive')).toEqual(['z.csv']);
    expect(ws.files('three/in')).toEqual(['y.txt']); // a deleted x.csv (the connection's after_success), b kept y.txt

    // --config from elsewhere: its connections, not the folder's
    const conf = ws.write('conf/other.yaml', 'connections:\n  drop:\n    local: {path: ./nowhere}\n');
    const other = sluice('validate', 'a.yaml', '--config', conf);
    expect(other.status).toBe(2);
    expect(other.stderr).toContain('unknown connection "archive" — known connections: drop');
  });
});
