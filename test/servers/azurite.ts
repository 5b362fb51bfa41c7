/**
 * Starts Azurite's blob service (pinned 3.35.0: later versions need Node 22) as a child process
 * on a free port, in memory. `--skipApiVersionCheck` is required: the SDK speaks a newer API
 * version than Azurite knows and every call would fail with 400.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort } from './remote-fs-net.js';

export interface AzuriteHandle {
  connectionString: string;
  /** `http://127.0.0.1:PORT/devstoreaccount1` */
  accountUrl: string;
  account: string;
  accountKey: string;
  stop(): Promise<void>;
}

/** Azurite's fixed development account (public, documented by Microsoft). */
const ACCOUNT = 'devstoreaccount1';
const ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * `oauth`: Azurite's `--oauth basic` over HTTPS with this certificate and key (bearer tokens are
 * checked for lifetime, issuer and audience, not signature); the URLs are then `https://`.
 */
export async function startAzurite(
  options: { oauth?: { cert: string; key: string } } = {},
): Promise<AzuriteHandle> {
  const port = await freePort();
  const bin = realpathSync(join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'azurite-blob'));
  // The bin is a node script: running it with our node keeps the child's PID the server's PID.
  const child = spawn(
    process.execPath,
    [
      bin,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--inMemoryPersistence',
      '--skipApiVersionCheck',
      '--disableTelemetry',
      '--silent',
      ...(options.oauth
        ? ['--oauth', 'basic', '--cert', options.oauth.cert, '--key', options.oauth.key]
        : []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Should the test process die without afterAll, do not leave the server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await waitForPort(port, 15_000, () =>
    child.exitCode !== null ? `azurite exited with ${child.exitCode}: ${stderr}` : undefined,
  );

  const protocol = options.oauth ? 'https' : 'http';
  const accountUrl = `${protocol}://127.0.0.1:${port}/${ACCOUNT}`;
  return {
    connectionString: `DefaultEndpointsProtocol=${protocol};AccountName=${ACCOUNT};AccountKey=${ACCOUNT_KEY};BlobEndpoint=${accountUrl};`,
    accountUrl,
    account: ACCOUNT,
    accountKey: ACCOUNT_KEY,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(killTimer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
