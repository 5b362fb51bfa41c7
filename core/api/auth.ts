/**
 * Who may use the server: a bearer token (`--api-token-file`, else `$SLUICE_API_TOKEN`) for every
 * POST and, when the server binds anything but loopback, for every request but `/healthz` and the
 * status page's HTML (which holds no data and asks for the token itself). The token is registered
 * as a secret (never printed) and compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { SluiceError } from '../errors.js';
import { registerSecret } from '../observe/redact.js';

export const TOKEN_SETTING = '--api-token-file <file> or $SLUICE_API_TOKEN';

/** The configured token, or undefined (then every control endpoint answers 403). */
export function loadApiToken(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let token: string | undefined;
  let from: string;
  if (file !== undefined) {
    from = `--api-token-file ${file}`;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new SluiceError(
        'SLUICE_E_USAGE',
        `cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  } else {
    from = '$SLUICE_API_TOKEN';
    token = env.SLUICE_API_TOKEN?.trim();
    if (token === undefined) return undefined;
  }
  // A short token is guessable; an empty one would let an empty Authorization header in.
  if (token.length < 16)
    throw new SluiceError('SLUICE_E_USAGE', `the API token from ${from} is shorter than 16 characters`);
  registerSecret(token);
  return token;
}

/** Whether `host` (what the server binds) is reachable only from this machine. */
export function isLoopback(host: string | undefined): boolean {
  if (host === undefined || host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export type AuthResult = { ok: true } | { ok: false; status: 401 | 403; message: string };

export class ApiAuth {
  private readonly expected: Buffer | undefined;

  constructor(
    token: string | undefined,
    private readonly loopback: boolean,
  ) {
    this.expected = token === undefined ? undefined : digest(token);
  }

  get configured(): boolean {
    return this.expected !== undefined;
  }

  /**
   * Whether `req` may go on. Without a configured token, GETs outside /api stay as they were
   * before the API existed (the status page, /status and /metrics, on any bind); the API answers
   * 403 on a non-loopback bind, and every POST does.
   */
  check(req: IncomingMessage, path: string): AuthResult {
    const post = req.method !== 'GET' && req.method !== 'HEAD';
    if (path === '/healthz' || path === '/') return { ok: true };
    const needed = post || !this.loopback;
    if (!needed) return { ok: true };
    if (this.expected === undefined) {
      if (!post && !path.startsWith('/api/')) return { ok: true };
      return {
        ok: false,
        status: 403,
        message: `the control API is off: no API token is configured (set ${TOKEN_SETTING})`,
      };
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    // Equal-length digests: the comparison time says nothing about the token or its length.
    if (!match || !timingSafeEqual(digest(match[1]), this.expected))
      return {
        ok: false,
        status: 401,
        message: match ? 'wrong API token' : 'an API token is required: Authorization: Bearer <token>',
      };
    return { ok: true };
  }
}
