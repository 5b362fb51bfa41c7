// The benchmarks' servers are the test suite's own (test/servers/*.ts): one implementation of
// how sshd and s3rver are started. Node 20 cannot import TypeScript, so the few modules needed
// are transpiled (types stripped, no type check) into bench/data/servers-js/test/servers/ —
// two levels deep like the originals, so s3rver.ts's `cwd: <dir>/../..` still resolves
// `require('s3rver')` through the repo's node_modules.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchDir, repoDir } from './common.mjs';

const MODULES = ['remote-fs-net', 'unix-user', 'sshd', 's3rver'];
const outDir = join(benchDir, 'data', 'servers-js', 'test', 'servers');

async function loadServer(name) {
  const ts = (await import('typescript')).default;
  mkdirSync(outDir, { recursive: true });
  for (const module of MODULES) {
    const src = join(repoDir, 'test', 'servers', `${module}.ts`);
    const dst = join(outDir, `${module}.js`);
    let fresh = false;
    try {
      fresh = statSync(dst).mtimeMs >= statSync(src).mtimeMs;
    } catch {}
    if (fresh) continue;
    const { outputText } = ts.transpileModule(readFileSync(src, 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
      fileName: src,
    });
    writeFileSync(dst, outputText);
  }
  return import(pathToFileURL(join(outDir, `${name}.js`)).href);
}

/** s3rver in a child process, without the per-request log the tests read. */
export async function startS3rver() {
  const { startS3rver: start } = await loadServer('s3rver');
  return start({ logRequests: false });
}

/**
 * OpenSSH sshd for the bench's own user (not the tests' `sluice-sftp`, whose password the
 * tests set), plus the uid/gid that own its `rootDir`, for writing files the server serves.
 */
export async function startSshd(username = 'sluice-bench') {
  const { startSshd: start } = await loadServer('sshd');
  const sshd = await start(username);
  const { uid, gid } = statSync(sshd.rootDir);
  return Object.assign(sshd, { uid, gid });
}

/** rclone's environment for the remote `src:`, an SFTP server started by startSshd. */
export function rcloneSftpSource(sshd) {
  return {
    RCLONE_CONFIG: '/dev/null',
    RCLONE_CONFIG_SRC_TYPE: 'sftp',
    RCLONE_CONFIG_SRC_HOST: sshd.host,
    RCLONE_CONFIG_SRC_PORT: String(sshd.port),
    RCLONE_CONFIG_SRC_USER: sshd.username,
    RCLONE_CONFIG_SRC_KEY_FILE: sshd.privateKeyFile,
    RCLONE_CONFIG_SRC_DISABLE_HASHCHECK: 'true',
  };
}
