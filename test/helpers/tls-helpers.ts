// Certificates for the DICOM TLS tests, made with the openssl CLI in the test's folder: a test
// CA, certificates it signs (server, client, expired), and a second CA nobody trusts.
//
//   const pki = makeTestPki(dir);
//   storescp +tls pki.server.key pki.server.cert +cf pki.ca.cert ...

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyPair {
  /** PEM private key (unencrypted). */
  key: string;
  /** PEM certificate. */
  cert: string;
}

export interface TestPki {
  dir: string;
  /** The test CA (self-signed). */
  ca: KeyPair;
  /** CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1; signed by ca, valid a year. */
  server: KeyPair;
  /** The same key, a certificate valid 2020-01-01 to 2020-01-02 (expired), signed by ca. */
  expiredServer: KeyPair;
  /** CN=deid-client; signed by ca. */
  client: KeyPair;
  /** A CA the others do not trust, and a client certificate it signs (CN=deid-client). */
  otherCa: KeyPair;
  otherClient: KeyPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** Makes a test PKI under `dir` (RSA 2048 keys: the BCP 195 TLS 1.2 suites authenticate with RSA). */
export function makeTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  const selfSigned = (name: string, cn: string): KeyPair => {
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '365',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        p(`${name}.key`),
        '-out',
        p(`${name}.pem`),
      ],
      dir,
    );
    return { key: p(`${name}.key`), cert: p(`${name}.pem`) };
  };
  const request = (name: string, cn: string): string => {
    openssl(
      [
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        p(`${name}.key`),
        '-out',
        p(`${name}.csr`),
      ],
      dir,
    );
    return p(`${name}.csr`);
  };
  const sign = (csr: string, ca: KeyPair, out: string, ext?: string): void => {
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-CAcreateserial',
        '-days',
        '365',
        '-out',
        out,
        ...(ext ? ['-extfile', ext] : []),
      ],
      dir,
    );
  };
  const ca = selfSigned('ca', 'DEID Test CA');
  const otherCa = selfSigned('other-ca', 'Some Other CA');
  writeFileSync(p('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const serverCsr = request('server', 'localhost');
  sign(serverCsr, ca, p('server.pem'), p('server.ext'));
  // An expired certificate for the same key: `openssl ca` takes explicit dates (OpenSSL 3.0's
  // `x509 -req` cannot set a start date in the past).
  mkdirSync(p('cadb'), { recursive: true });
  writeFileSync(p('cadb/index.txt'), '');
  writeFileSync(p('cadb/serial'), '1000\n');
  writeFileSync(
    p('ca.cnf'),
    [
      '[ ca ]',
      'default_ca = test',
      '[ test ]',
      'database = cadb/index.txt',
      'new_certs_dir = cadb',
      'serial = cadb/serial',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      '[ any ]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  openssl(
    [
      'ca',
      '-batch',
      '-config',
      p('ca.cnf'),
      '-cert',
      ca.cert,
      '-keyfile',
      ca.key,
      '-in',
      serverCsr,
      '-startdate',
      '20200101000000Z',
      '-enddate',
      '20200102000000Z',
      '-extfile',
      p('server.ext'),
      '-out',
      p('server-expired.pem'),
    ],
    dir,
  );
  const clientCsr = request('client', 'deid-client');
  sign(clientCsr, ca, p('client.pem'));
  const otherCsr = request('other-client', 'deid-client');
  sign(otherCsr, otherCa, p('other-client.pem'));
  return {
    dir,
    ca,
    server: { key: p('server.key'), cert: p('server.pem') },
    expiredServer: { key: p('server.key'), cert: p('server-expired.pem') },
    client: { key: p('client.key'), cert: p('client.pem') },
    otherCa,
    otherClient: { key: p('other-client.key'), cert: p('other-client.pem') },
  };
}
