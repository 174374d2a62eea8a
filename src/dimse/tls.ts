// DICOM TLS (PS3.15 Annex B): the security profile both sides use, and TLS failures in words.
//
// The profile is the Non-downgrading BCP 195 TLS Secure Transport Connection Profile (PS3.15
// B.10, RFC 7525): TLS 1.2 or 1.3 only, never an older version, and for TLS 1.2 only the four
// cipher suites the profile names (forward-secret key exchange, AES-GCM), which is what dcmtk's
// `--profile-bcp195-nd` (its default) and `--profile-bcp195` negotiate in TLS 1.2:
//   TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
//   TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_DHE_RSA_WITH_AES_256_GCM_SHA384.
// TLS 1.3 has its own suites, all AEAD (RFC 8446); OpenSSL's three are kept. B.9's backward
// compatible suite (TLS_RSA_WITH_AES_128_CBC_SHA, RSA key transport) is deliberately left out.
// The profile's suites authenticate with RSA: in TLS 1.2, certificates must have RSA keys.
import type tls from 'node:tls';

/** The TLS 1.2 suites of PS3.15 B.10, in OpenSSL's names, in the order dcmtk proposes them. */
export const BCP195_TLS12_CIPHERS = [
  'ECDHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-AES256-GCM-SHA384',
] as const;

/** The TLS 1.3 suites (RFC 8446 9.1 and OpenSSL's default set). */
export const TLS13_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
] as const;

/**
 * The options that put a Node TLS context (server or client) on the BCP 195 profile: TLS 1.2
 * minimum, the profile's cipher suites only, the RFC 7919 DH groups for the DHE suites.
 */
export function bcp195Options(): Pick<tls.SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'dhparam'> {
  return {
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_CIPHERS, ...BCP195_TLS12_CIPHERS].join(':'),
    dhparam: 'auto',
  };
}

/** Whose certificate a verification error is about, as seen from our side. */
export type TlsPeerRole = 'server' | 'client';

/** OpenSSL's certificate verification results (X509_V_ERR_*, as Node names them), in words. */
const VERIFY_WORDS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not valid yet',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'certificate is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate is not trusted (its chain ends in a CA we do not trust)',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate is not trusted (issuer unknown)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate is not trusted (issuer unknown)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate is not trusted (not signed by a CA we trust)',
  CERT_SIGNATURE_FAILURE: 'certificate signature is invalid',
  CERT_REVOKED: 'certificate is revoked',
  CERT_UNTRUSTED: 'certificate is not trusted',
  CERT_REJECTED: 'certificate is rejected',
  INVALID_CA: 'certificate chain has an invalid CA certificate',
  INVALID_PURPOSE: 'certificate is not for this purpose (key usage)',
  CERT_CHAIN_TOO_LONG: 'certificate chain is too long',
  ERR_TLS_CERT_ALTNAME_INVALID: 'certificate does not match the host name',
};

/** TLS protocol failures and alerts (Node's ERR_SSL_* codes), in words. */
const PROTOCOL_WORDS: Record<string, string> = {
  ERR_SSL_WRONG_VERSION_NUMBER:
    'the peer does not speak TLS here (plain DICOM port?) or offers only an old TLS version',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'the peer offers only TLS versions older than 1.2',
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: 'no TLS version in common (TLS 1.2 or 1.3 required)',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'the peer refused our TLS version (TLS 1.2 or 1.3)',
  ERR_SSL_NO_SHARED_CIPHER: 'no cipher suite in common (the BCP 195 profile is required)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE:
    'the peer refused the handshake (no common cipher suite, or it wants a client certificate)',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the peer does not trust our certificate (unknown CA)',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the peer refused our certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the peer says our certificate has expired',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'the peer refused our certificate',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'the peer could not verify our certificate key',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the peer requires a client certificate and we sent none',
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'the peer sent no client certificate',
  ERR_SSL_HTTP_REQUEST: 'the peer sent an HTTP request',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'the TLS handshake timed out',
};

/**
 * A TLS failure in words, naming whose certificate it is about ("the server's certificate has
 * expired (CERT_HAS_EXPIRED)"), or undefined when `err` is not a TLS error. `peer` is the role of
 * the other side: 'server' when we connect, 'client' when we accept. Never quotes a certificate.
 */
export function describeTlsError(err: unknown, peer: TlsPeerRole): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const verify = VERIFY_WORDS[code];
  if (verify) return `the ${peer}'s ${verify} (${code})`;
  const protocol = PROTOCOL_WORDS[code];
  if (protocol) return `${protocol} (${code})`;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    // An alert or failure we have no words for: OpenSSL's reason is short and never a value.
    const reason = (err as { reason?: unknown }).reason;
    return `TLS failure${typeof reason === 'string' ? `: ${reason}` : ''} (${code})`;
  }
  return undefined;
}

/**
 * Why a peer's certificate was refused, from TLSSocket#authorizationError (a verify code such as
 * 'CERT_HAS_EXPIRED', a string on the server side), or that it sent none. Whose: see
 * describeTlsError.
 */
export function describeAuthorizationError(error: unknown, hadCertificate: boolean, peer: TlsPeerRole): string {
  if (!hadCertificate) return `the ${peer} sent no certificate`;
  const code = error instanceof Error ? ((error as { code?: string }).code ?? error.name) : String(error ?? 'unknown');
  const words = VERIFY_WORDS[code];
  return words ? `the ${peer}'s ${words} (${code})` : `the ${peer}'s certificate is not trusted (${code})`;
}
