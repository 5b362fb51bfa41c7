/**
 * The SFTP and FTP connectors as one table, for tests that hold both to the same behaviour
 * against real sshd and vsftpd: start a server, make a source or sink on it, write the YAML.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SinkInstance, SourceInstance } from '../../core/plugin-api.js';
import { ftpSink } from '../../plugins/ftp/sink.js';
import { ftpSource } from '../../plugins/ftp/source.js';
import { sftpSink } from '../../plugins/sftp/sink.js';
import { sftpSource } from '../../plugins/sftp/source.js';
import { startSshd } from '../servers/sshd.js';
import { startVsftpd, type VsftpdOptions } from '../servers/vsftpd.js';
import { makePluginContext } from './context.js';

export interface RemoteServer {
  readonly protocol: 'sftp' | 'ftp';
  host: string;
  port: number;
  username: string;
  /** SFTP: the host key fingerprint (`SHA256:…`). */
  hostKey?: string;
  /** The server's folder for `path: .` of a sink or source made by `config`. */
  rootDir: string;
  /** The configured `path` of folder `dir` under `rootDir`. */
  path(dir: string): string;
  /** Source or sink config keys (connection and `path`), with `overrides` on top. */
  config(dir: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  /** The same as YAML lines indented under the plugin name (connection keys only). */
  yaml(): string[];
  source(dir: string, overrides?: Record<string, unknown>): Promise<SourceInstance>;
  sink(dir: string, overrides?: Record<string, unknown>): Promise<SinkInstance>;
  /** Writes a file under `rootDir` owned by the login user, with `mtime` if given. */
  put(rel: string, data: string | Buffer, mtime?: Date): string;
  stop(): Promise<void>;
}

export interface RemoteConnector {
  readonly protocol: 'sftp' | 'ftp';
  /** `user` must differ between test files running in parallel (each start sets a password). */
  start(user: string, options?: { vsftpd?: Omit<VsftpdOptions, 'username'> }): Promise<RemoteServer>;
}

export const REMOTE_CONNECTORS: RemoteConnector[] = [
  {
    protocol: 'sftp',
    async start(user) {
      const sshd = await startSshd(`${user}-s`);
      const path = (dir: string) => join(sshd.rootDir, dir);
      const config = (dir: string, overrides: Record<string, unknown> = {}) => ({
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        private_key_file: sshd.privateKeyFile,
        host_key_sha256: sshd.hostKeySha256,
        insecure_accept_any_host_key: false,
        max_connections: 2,
        connect_timeout: '10s',
        keepalive_interval: '15s',
        path: path(dir),
        ...overrides,
      });
      return { ...finish('sftp', sshd, path, config, sshd.sftpYaml()), hostKey: sshd.hostKeySha256 };
    },
  },
  {
    protocol: 'ftp',
    async start(user, options) {
      const vsftpd = await startVsftpd({ ...options?.vsftpd, username: `${user}-f` });
      const path = (dir: string) => dir || '.';
      const config = (dir: string, overrides: Record<string, unknown> = {}) => ({
        host: vsftpd.host,
        port: vsftpd.port,
        username: vsftpd.username,
        password: vsftpd.password,
        secure: false,
        insecure_tls: false,
        max_connections: 2,
        timeout: '10s',
        keepalive_interval: '60s',
        path: path(dir),
        ...overrides,
      });
      const yaml = [
        `    host: ${vsftpd.host}`,
        `    port: ${vsftpd.port}`,
        `    username: ${vsftpd.username}`,
        `    password: "${vsftpd.password}"`,
      ];
      return finish('ftp', vsftpd, path, config, yaml);
    },
  },
];

function finish(
  protocol: 'sftp' | 'ftp',
  server: { host: string; port: number; username: string; rootDir: string; stop(): Promise<void> },
  path: (dir: string) => string,
  config: RemoteServer['config'],
  yaml: string[],
): RemoteServer {
  const { uid, gid } = userIds(server.username);
  const opened: Array<SourceInstance | SinkInstance> = [];
  const plugins =
    protocol === 'sftp' ? { source: sftpSource, sink: sftpSink } : { source: ftpSource, sink: ftpSink };
  return {
    protocol,
    host: server.host,
    port: server.port,
    username: server.username,
    rootDir: server.rootDir,
    path,
    config,
    yaml: () => yaml,
    async source(dir, overrides) {
      const instance = await plugins.source.create(
        { recursive: true, ...config(dir, overrides) } as never,
        makePluginContext(),
      );
      opened.push(instance);
      return instance;
    },
    async sink(dir, overrides) {
      const instance = await plugins.sink.create(
        { if_exists: 'overwrite', preserve_mtime: true, ...config(dir, overrides) } as never,
        makePluginContext(),
      );
      opened.push(instance);
      return instance;
    },
    put(rel, data, mtime) {
      const file = join(server.rootDir, rel);
      const parts = rel.split('/').slice(0, -1);
      for (let i = 1; i <= parts.length; i++) {
        const dir = join(server.rootDir, ...parts.slice(0, i));
        mkdirSync(dir, { recursive: true });
        chownSync(dir, uid, gid);
      }
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, data);
      chownSync(file, uid, gid);
      if (mtime) utimesSync(file, mtime, mtime);
      return file;
    },
    async stop() {
      await Promise.allSettled(opened.splice(0).map((o) => o.close?.()));
      await server.stop();
    },
  };
}

/** uid/gid of the test user the server start created (asking again would change its password). */
function userIds(username: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, username]).toString());
  return { uid: id('-u'), gid: id('-g') };
}
