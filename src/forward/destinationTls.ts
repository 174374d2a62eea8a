// A destination's DICOM TLS settings put to use: the socket factory its associations connect
// with, and the check of its files when the node starts.
import { readTlsCredentials } from '../dimse/tlsCredentials.js';
import { tlsSocketFactory } from '../dimse/scu/tlsSocketFactory.js';
import type { SocketFactory } from '../dimse/scu/socketFactory.js';
import type { Destination } from './destination.js';

/**
 * The socket factory for `dest`: TLS (BCP 195, src/dimse/scu/tlsSocketFactory.ts) when it has
 * `tls`, reading its PEM files for each association; undefined (plain TCP) otherwise. A file that
 * cannot be read fails that association with a one-line reason naming the file (transient: the
 * items wait and are retried).
 */
export function destinationSocketFactory(dest: Destination): SocketFactory | undefined {
  const t = dest.tls;
  if (!t) return undefined;
  return tlsSocketFactory(() => {
    const { options } = readTlsCredentials(
      { ca: t.caFile, cert: t.certFile, key: t.keyFile },
      `destination "${dest.name}"`,
    );
    return { ...options, serverName: t.serverName, verify: t.verify };
  });
}

/**
 * Checks a TLS destination's files (readable, PEM, key matching certificate) and returns what is
 * worth a warning (verification off; our client certificate expired or expiring). Throws a
 * ConfigError naming the file. Nothing for a plain destination.
 */
export function checkDestinationTls(dest: Destination): string[] {
  const t = dest.tls;
  if (!t) return [];
  const what = `destination "${dest.name}"`;
  const { warnings } = readTlsCredentials({ ca: t.caFile, cert: t.certFile, key: t.keyFile }, what);
  if (t.verify === false) {
    warnings.push(
      `${what}: TLS certificate verification is off ("verify": false): anyone in between can read and change what is sent`,
    );
  }
  return warnings;
}
