// A process that decrypts one message with the gpg engine's `decryptInto` (gpg reads the file
// and writes the plaintext into a descriptor itself, as for a local sink's temp file), says
// `started` on stdout and then waits to be killed. Arguments: key file, message file, output
// path (a FIFO the test drains at its own pace). Built code only: run after `npm run build`.
import { openSync, readFileSync, statSync } from 'node:fs';
import { createGpgDecryptEngine } from '../../dist/plugins/pgp/gpg-engine.js';

const [keyFile, messageFile, outPath] = process.argv.slice(2);
const engine = await createGpgDecryptEngine({
  privateKey: readFileSync(keyFile),
  verificationKeys: [],
  verifying: false,
});
const input = {
  fd: openSync(messageFile, 'r'),
  size: statSync(messageFile).size,
  finish: async () => {},
  close: async () => {},
};
const out = openSync(outPath, 'w');
const { written } = engine.decryptInto(input, out);
written.catch(() => {});
process.stdout.write('started\n');
setInterval(() => {}, 60_000);
