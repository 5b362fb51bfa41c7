/**
 * Secret values (passwords, tokens, keys read from the environment or config) are registered
 * here once; every message Sluice prints passes through `redact`, so a secret never reaches
 * a terminal, a log file or an error report.
 */
const secrets = new Set<string>();
let pattern: RegExp | null = null;

/** Values shorter than this are not registered: masking "a" everywhere helps nobody. */
const MIN_SECRET_LENGTH = 4;

export function registerSecret(value: unknown): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  const escaped = [...secrets]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  pattern = new RegExp(escaped.join('|'), 'g');
}

export function redact(text: string): string {
  if (!pattern || text.length === 0) return text;
  return text.replace(pattern, '***');
}

/** Config keys whose values are secrets wherever they appear. */
export const SECRET_KEY = /pass(word|phrase)?|secret|token|private_key$|^key$|account_key|connection_string|sas|authorization|credential|api_key/i;

/** Registers every string under a secret-looking key in a config tree. */
export function registerSecretsIn(value: unknown, key = ''): void {
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key)) registerSecret(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) registerSecretsIn(v, key);
    return;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) registerSecretsIn(v, k);
  }
}
