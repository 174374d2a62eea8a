// Certificates and keys for DICOM TLS, read from PEM files and checked, so that a wrong path or a
// wrong file is one line naming it (at start, on SIGHUP, or when an association is opened),
// never an OpenSSL error stack in the middle of a handshake.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError, describeSystemError } from '../errors.js';
import { bcp195Options } from './tls.js';

/** PEM files: our certificate (with its chain) and key, and the CA(s) we trust for the peer. */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

export interface TlsCredentials {
  /** PEM contents for tls.createServer / tls.connect / setSecureContext (only those given). */
  options: { cert?: Buffer; key?: Buffer; ca?: Buffer };
  /** Things worth a warning: our certificate expired, not valid yet, or expiring within 14 days. */
  warnings: string[];
}

const DAY_MS = 86_400_000;

/**
 * Reads and checks the PEM files: each must be readable and hold what it should (certificates,
 * an unencrypted private key), and the key must match the certificate. `what` names the setting
 * in messages ("tls", 'destination "pacs"'). Throws ConfigError, one line naming the file:
 * `tls: cannot read the certificate file /etc/deid/node.pem: not found`.
 */
export function readTlsCredentials(files: TlsFiles, what: string, now = new Date()): TlsCredentials {
  const options: TlsCredentials['options'] = {};
  const warnings: string[] = [];
  const read = (path: string, kind: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new ConfigError(`${what}: cannot read the ${kind} file ${path}: ${describeSystemError(e)}`);
    }
  };
  const certificates = (path: string, kind: string): Buffer => {
    const pem = read(path, kind);
    const text = pem.toString('latin1');
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new ConfigError(`${what}: the ${kind} file ${path} holds no PEM certificate`);
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch {
        throw new ConfigError(`${what}: the ${kind} file ${path} holds a certificate that cannot be read`);
      }
    }
    return pem;
  };
  if (files.cert !== undefined) {
    const pem = certificates(files.cert, 'certificate');
    options.cert = pem;
    const leaf = new X509Certificate(
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem.toString('latin1'))![0],
    );
    const from = new Date(leaf.validFrom);
    const to = new Date(leaf.validTo);
    if (to < now) warnings.push(`${what}: the certificate ${files.cert} expired on ${to.toISOString()}`);
    else if (from > now)
      warnings.push(`${what}: the certificate ${files.cert} is not valid before ${from.toISOString()}`);
    else if (to.getTime() - now.getTime() < 14 * DAY_MS)
      warnings.push(`${what}: the certificate ${files.cert} expires on ${to.toISOString()}`);
  }
  if (files.key !== undefined) {
    const pem = read(files.key, 'key');
    try {
      createPrivateKey(pem);
    } catch (e) {
      const encrypted = /passphrase|encrypted/i.test((e as Error).message) || /ENCRYPTED/.test(pem.toString('latin1'));
      throw new ConfigError(
        encrypted
          ? `${what}: the key file ${files.key} is encrypted; give an unencrypted key (readable by this user only)`
          : `${what}: the key file ${files.key} holds no PEM private key`,
      );
    }
    options.key = pem;
  }
  if (files.ca !== undefined) options.ca = certificates(files.ca, 'CA');
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new ConfigError(`${what}: a certificate needs its key and a key its certificate (give both)`);
  }
  try {
    tls.createSecureContext({ ...bcp195Options(), ...options });
  } catch (e) {
    const message = (e as Error).message;
    if (/key values mismatch/.test(message)) {
      throw new ConfigError(`${what}: the key ${files.key} does not belong to the certificate ${files.cert}`);
    }
    const reason = /:([^:]+)$/.exec(message)?.[1]?.trim() ?? message.split('\n')[0];
    throw new ConfigError(`${what}: the TLS files cannot be used: ${reason}`);
  }
  return { options, warnings };
}
