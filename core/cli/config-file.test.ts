import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../errors.js';
import { isPipelineFileName } from './common.js';
import { applyConfigFile, type ConfigurableOptions, findConfigFile, readConfigFile } from './config-file.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-config-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const userMessage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SluiceError);
    return (err as SluiceError).toUserString();
  }
  throw new Error('expected an error');
};

describe('sluice.config.yaml', () => {
  it('takes every log setting, and refuses bad ones at file:line:col', () => {
    const f = file(
      'logs.yaml',
      'log_level: debug\nlog_file_format: pretty\nlog_rotate: 10MiB\nlog_keep: 7\n',
    );
    expect(readConfigFile(f, {})).toMatchObject({
      logLevel: 'debug',
      logFileFormat: 'pretty',
      logRotate: '10MiB',
      logKeep: 7,
    });
    const bad = file('bad-logs.yaml', 'log_level: loud\nlog_rotate: weekly\nlog_keep: 0\n');
    const lines = userMessage(() => readConfigFile(bad, {}))
      .split('\n')
      .map((l) => l.replace(/^.*bad-logs\.yaml/, 'bad-logs.yaml'));
    expect(lines).toEqual([
      'bad-logs.yaml:1:12: log_level is one of trace, debug, info, warn, error, got "loud"',
      'bad-logs.yaml:2:13: log_rotate takes a size (10MiB) or "daily", got "weekly"',
      'bad-logs.yaml:3:11: log_keep must be a whole number ≥ 1, got "0"',
    ]);
  });

  it('-q, -v and SLUICE_LOG_LEVEL win over the file’s log_level', () => {
    const f = file('level.yaml', 'log_level: debug\n');
    const level = (opts: ConfigurableOptions, env: NodeJS.ProcessEnv = {}) =>
      applyConfigFile({ config: f, ...opts }, env).logLevel;
    expect(level({})).toBe('debug');
    expect(level({ quiet: true })).toBeUndefined();
    expect(level({ verbose: true })).toBeUndefined();
    expect(level({}, { SLUICE_LOG_LEVEL: 'warn' })).toBeUndefined();
    expect(level({ logLevel: 'error' })).toBe('error');
  });

  it('reads every setting, interpolates ${VAR} and resolves paths against the file', () => {
    const f = file(
      'full.yaml',
      'cluster: redis://:${REDIS_PASSWORD}@redis:6379\nstate_dir: ./state\nlog_format: json\nlog_file: logs/s.log\nerror_log: /var/log/e.log\nmetrics_port: 9464\nvars:\n  REGION: eu-west-1\n  PORT: 22\n',
    );
    expect(readConfigFile(f, { REDIS_PASSWORD: 'hunter2-long-secret' })).toEqual({
      file: f,
      cluster: 'redis://:hunter2-long-secret@redis:6379',
      stateDir: join(dir, 'state'),
      logFormat: 'json',
      logFile: join(dir, 'logs/s.log'),
      errorLog: '/var/log/e.log',
      metricsPort: 9464,
      vars: { REGION: 'eu-west-1', PORT: '22' },
    });
  });

  it('reports every problem with file:line:col', () => {
    const f = file(
      'bad.yaml',
      'cluster: redis://${NOPE_NOT_SET}\nclustr: x\nlog_format: xml\nmetrics_port: 99999\nvars: [a]\n',
    );
    const message = userMessage(() => readConfigFile(f, {}));
    const lines = message.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/bad\.yaml:1:10: .*environment variable NOPE_NOT_SET is not set/);
    expect(lines[1]).toMatch(/bad\.yaml:2:1: .*unknown setting "clustr".*known settings: cluster, state_dir/);
    expect(lines[2]).toMatch(/bad\.yaml:3:13: .*log_format is pretty or json, got "xml"/);
    expect(lines[3]).toMatch(/bad\.yaml:4:15: .*metrics_port must be a port number/);
    expect(lines[4]).toMatch(/bad\.yaml:5:7: .*vars must be a mapping/);
  });

  it('reports YAML syntax errors and a file that is not a mapping', () => {
    expect(userMessage(() => readConfigFile(file('syntax.yaml', 'cluster: [unclosed\n'), {}))).toMatch(
      /syntax\.yaml:\d+:\d+: .*YAML syntax/,
    );
    expect(userMessage(() => readConfigFile(file('list.yaml', '- a\n- b\n'), {}))).toMatch(
      /list\.yaml:1:1: .*mapping of settings/,
    );
  });

  it('is found by --config, then $SLUICE_CONFIG, then in the current folder', () => {
    const sub = mkdtempSync(join(dir, 'cwd-'));
    expect(findConfigFile(undefined, {}, sub)).toBeUndefined();
    const local = join(sub, 'sluice.config.yaml');
    writeFileSync(local, 'state_dir: s\n');
    expect(findConfigFile(undefined, {}, sub)).toBe(local);
    const other = file('other.yaml', 'state_dir: o\n');
    expect(findConfigFile(undefined, { SLUICE_CONFIG: other }, sub)).toBe(other);
    expect(findConfigFile(other, { SLUICE_CONFIG: local }, sub)).toBe(other);
    expect(userMessage(() => findConfigFile('missing.yaml', {}, sub))).toMatch(
      /config file not found: missing\.yaml/,
    );
  });

  it('fills only what the command line left out; the environment beats the file', () => {
    const f = file(
      'defaults.yaml',
      'cluster: redis://file:6379\nstate_dir: /from/file\nvars: { A: file, B: file }\n',
    );
    expect(applyConfigFile({ config: f, stateDir: '/from/flag', var: ['B=flag'] }, {})).toMatchObject({
      cluster: 'redis://file:6379',
      stateDir: '/from/flag',
      var: ['A=file', 'B=file', 'B=flag'],
    });
    expect(
      applyConfigFile<ConfigurableOptions>({ config: f }, { SLUICE_CLUSTER: 'redis://env:6379' }).cluster,
    ).toBeUndefined();
    expect(applyConfigFile({ config: f, cluster: 'redis://flag:6379' }, {}).cluster).toBe(
      'redis://flag:6379',
    );
  });

  it('is never taken for a pipeline in a folder', () => {
    expect(isPipelineFileName('sluice.config.yaml')).toBe(false);
    expect(isPipelineFileName('sluice.config.yml')).toBe(false);
    expect(isPipelineFileName('orders.test.yaml')).toBe(false);
    expect(isPipelineFileName('orders.yaml')).toBe(true);
  });
});
