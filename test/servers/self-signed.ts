/** A self-signed certificate for 127.0.0.1 made with real openssl (TLS test servers: vsftpd, Azurite). */
import { execFileSync } from 'node:child_process';

export function selfSignedCert(keyFile: string, certFile: string, days = 2): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      String(days),
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
}
