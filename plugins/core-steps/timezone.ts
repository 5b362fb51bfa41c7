import { Type } from '@sinclair/typebox';
import { SluiceError } from '../../core/errors.js';
import { validateTimezone } from '../../core/time-format.js';

/** The `timezone` option of steps that read or write dates. */
export const TimezoneField = Type.String({
  default: 'UTC',
  description:
    'Timezone for reading date text and writing `{date:…}`/`{now:…}`: `UTC` or an IANA name (`Europe/Paris`).',
});

/** Checks the configured timezone; an unknown one is a config error at `/timezone`. */
export function checkTimezoneConfig(timezone: string): void {
  try {
    validateTimezone(timezone);
  } catch (err) {
    throw new SluiceError('SLUICE_E_CONFIG', (err as Error).message, {
      cause: err,
      context: { jsonPath: '/timezone' },
    });
  }
}
