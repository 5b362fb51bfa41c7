import { posix } from 'node:path';

const PGP_EXTENSION = /\.(gpg|pgp|asc)$/i;

/** `in/x.csv.gpg` → `in/x.csv`; a name without a PGP extension is kept. */
export function stripPgpExtension(path: string): string {
  const name = posix.basename(path);
  const stripped = name.replace(PGP_EXTENSION, '');
  return stripped === '' ? path : path.slice(0, path.length - name.length) + stripped;
}

/** Names of detached signatures that may sit beside an encrypted file, in lookup order. */
export function detachedSignatureNames(fileName: string): string[] {
  return [`${fileName}.sig`, `${fileName}.asc`];
}

/**
 * True for detached signatures: `*.sig` always, `*.asc` only beside an encrypted file
 * (`x.gpg.asc`, `x.pgp.asc`) so an armored message `x.csv.asc` is still processed.
 */
export function isDetachedSignature(path: string, verifying: boolean): boolean {
  if (/\.sig$/i.test(path)) return true;
  return verifying && /\.(gpg|pgp)\.asc$/i.test(path);
}
