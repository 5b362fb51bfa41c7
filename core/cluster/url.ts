/** The cluster URL option (kept free of Redis imports: the embedded CLI path loads it). */
import { SluiceError } from '../errors.js';

/** `--cluster`, else `SLUICE_CLUSTER`; undefined = embedded mode. */
export function clusterUrl(
  option: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const url = option ?? env.SLUICE_CLUSTER;
  if (url === undefined || url === '') return undefined;
  if (!/^rediss?:\/\//.test(url)) {
    throw new SluiceError(
      'SLUICE_E_USAGE',
      `--cluster takes a redis:// or rediss:// URL, got "${redactUrl(url)}"`,
    );
  }
  return url;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
