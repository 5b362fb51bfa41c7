/**
 * Sinks never write where their sources list (issue 11, #6): the loader rejects a sink (or
 * on_error) whose root is a source's root or inside it, per system, with file:line:col of the sink.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builtinRegistry } from '../builtins.js';
import { loadPipeline } from './load.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-roots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function load(yaml: string, stateDir?: string) {
  const file = join(dir, `p${++n}.yaml`);
  writeFileSync(file, yaml);
  return loadPipeline(file, { registry: builtinRegistry(), env: {}, stateDir });
}
async function problem(yaml: string, stateDir?: string): Promise<string> {
  const err = await load(yaml, stateDir).then(
    () => undefined,
    (e: Error & { toUserString?: () => string }) => e,
  );
  if (!err) throw new Error('expected a validation error');
  return err.toUserString?.() ?? err.message;
}

const sftp =
  'host: files.example.com\n    username: acme\n    password: x\n    insecure_accept_any_host_key: true';
const s3 =
  'bucket: data\n    endpoint: http://127.0.0.1:9000\n    access_key_id: k\n    secret_access_key: s';

describe('sink and source roots', () => {
  it('local: a sink inside or equal to the source is an error at the sink', async () => {
    const inside = await problem(
      'name: p\nsource:\n  local: { path: ./in }\nsink:\n  local:\n    path: ./in/out\n',
    );
    expect(inside).toMatch(
      /p\d+\.yaml:6:11: .*sink\.local writes under .*\/in\/out, which is inside .*\/in, the root of source\.local/,
    );
    expect(
      await problem('name: p\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: in/ }\n'),
    ).toMatch(/:5:18: .*is the root of source\.local/);
  });

  it('local: the dead-letter sink counts as a sink', async () => {
    expect(
      await problem(
        'name: p\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./out }\non_error:\n  local: { path: ./in/failed }\n',
      ),
    ).toMatch(/:7:18: .*on_error\.local writes under .*\/in\/failed, which is inside/);
  });

  it('local: symlinks are resolved where they exist', async () => {
    mkdirSync(join(dir, 'real-in'), { recursive: true });
    symlinkSync(join(dir, 'real-in'), join(dir, 'link-in'));
    expect(
      await problem(
        'name: p\nsource:\n  local: { path: ./link-in }\nsink:\n  local: { path: ./real-in/out }\n',
      ),
    ).toMatch(/is inside .*real-in, the root of source\.local/);
  });

  it('local: fine when apart, around the source, below a source that does not list sub-folders, a move_to inside the source', async () => {
    await load('name: p\nsource:\n  local: { path: ./in }\nsink:\n  local: { path: ./inbox }\n');
    await load('name: p\nsource:\n  local: { path: ./data/in }\nsink:\n  local: { path: ./data }\n');
    await load(
      'name: p\nsource:\n  local: { path: ./in, recursive: false }\nsink:\n  local: { path: ./in/out }\n',
    );
    await load(
      'name: p\nsource:\n  local: { path: ./in, after_success: { move_to: ./in/done } }\nsink:\n  local: { path: ./out }\n',
    );
  });

  it('local: a source that lists the state folder (the ledger) is an error unless it is a .sluice folder', async () => {
    expect(
      await problem(
        'name: p\nsource:\n  local: { path: . }\nsink:\n  local: { path: ../elsewhere }\n',
        join(dir, 'state'),
      ),
    ).toMatch(/holds the state folder .*state \(the ledger\)/);
    await load('name: p\nsource:\n  local: { path: . }\nsink:\n  local: { path: ../elsewhere }\n');
  });

  it('sftp: same host, port and user and an overlapping path is an error; another user or port is another store', async () => {
    const yaml = (sinkExtra: string, sinkPath: string) =>
      `name: p\nsource:\n  sftp:\n    ${sftp}\n    path: /exports\nsink:\n  sftp:\n    ${sftp}${sinkExtra}\n    path: ${sinkPath}\n`;
    expect(await problem(yaml('', '/exports/copy'))).toMatch(
      /:15:11: .*sink\.sftp writes under sftp:\/\/acme@files\.example\.com:22\/exports\/copy, which is inside sftp:\/\/acme@files\.example\.com:22\/exports/,
    );
    expect(await problem(yaml('\n    port: 22', '/exports/'))).toMatch(/is the root of source\.sftp/);
    await load(yaml('\n    port: 2222', '/exports/copy'));
    await load(yaml('', '/exports2'));
    await load(yaml('', 'exports/copy')); // relative to the login folder: not comparable with an absolute path
  });

  it('ftp: the implicit-TLS default port and the anonymous default user make the store', async () => {
    const src = 'ftp:\n    host: ftp.example.com\n    path: /pub';
    expect(
      await problem(
        `name: p\nsource:\n  ${src}\nsink:\n  ftp:\n    host: FTP.example.com\n    port: 21\n    username: anonymous\n    path: /pub/x\n`,
      ),
    ).toMatch(/is inside ftp:\/\/anonymous@ftp\.example\.com:21\/pub/);
    await load(
      `name: p\nsource:\n  ${src}\nsink:\n  ftp:\n    host: ftp.example.com\n    secure: implicit\n    path: /pub/x\n`,
    );
  });

  it('s3: same endpoint and bucket with overlapping prefixes is an error; another bucket or a sibling prefix is fine', async () => {
    const yaml = (sink: string, src = 'prefix: incoming/') =>
      `name: p\nsource:\n  s3:\n    ${s3}\n    ${src}\nsink:\n  s3:\n    ${sink}\n`;
    expect(await problem(yaml(`${s3}\n    prefix: incoming/done`))).toMatch(
      /:15:13: .*sink\.s3 writes under s3:\/\/data\/incoming\/done, which is inside s3:\/\/data\/incoming, the root of source\.s3/,
    );
    await load(yaml(s3)); // the whole bucket around incoming/, as the cdr-s3-segregation reference pipeline does
    expect(await problem(yaml(`${s3}\n    prefix: b/`, 'prefixes: [a/, b/]'))).toMatch(
      /is the root of source\.s3/,
    );
    await load(yaml(`${s3.replace('bucket: data', 'bucket: other')}\n    prefix: incoming/`));
    await load(yaml(`${s3}\n    prefix: incoming-copies/`));
    await load(yaml(`${s3.replace('9000', '9001')}\n    prefix: incoming/`));
  });

  it('s3 and azure sources list a move_to folder inside their prefix again: an error unless they do not recurse', async () => {
    const yaml = (extra: string) =>
      `name: p\nsource:\n  s3:\n    ${s3}\n    prefix: in/\n    after_success: { move_to: in/done/ }${extra}\nsink:\n  local: { path: ./out }\n`;
    expect(await problem(yaml(''))).toMatch(
      /source\.s3 moves delivered files to s3:\/\/data\/in\/done, inside s3:\/\/data\/in/,
    );
    await load(yaml('\n    recursive: false'));
  });

  it('azure_blob: a connection string and account + endpoint naming one account and container are one store', async () => {
    const cs =
      'connection_string: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"';
    const yaml = (sink: string) =>
      `name: p\nsource:\n  azure_blob:\n    ${cs}\n    container: box1\n    prefix: in\nsink:\n  azure_blob:\n    ${sink}\n`;
    expect(
      await problem(
        yaml(
          'account: devstoreaccount1\n    endpoint: http://127.0.0.1:10000/devstoreaccount1/\n    account_key: a2V5\n    container: box1\n    prefix: in/x',
        ),
      ),
    ).toMatch(/sink\.azure_blob writes under azure:\/\/box1\/in\/x, which is inside azure:\/\/box1\/in/);
    await load(yaml(`${cs}\n    container: box2\n    prefix: in/x`));
  });
});
