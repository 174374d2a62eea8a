// DICOM TLS for the requesting side (PS3.15 B.10, BCP 195): a SocketFactory that connects over
// TLS, verifies the peer's certificate (on by default) and resolves once the handshake is done.
import net from 'node:net';
import tls from 'node:tls';
import { describeSystemError } from '../../errors.js';
import { bcp195Options, describeTlsError } from '../tls.js';
import type { SocketFactory } from './socketFactory.js';

/** What one TLS connection uses; see tlsSocketFactory. */
export interface TlsConnectSettings {
  /** PEM CA certificate(s) the peer's certificate must chain to (default: Node's public CAs). */
  ca?: Buffer;
  /** Our client certificate (with its chain) and key, for a peer that asks for one. */
  cert?: Buffer;
  key?: Buffer;
  /** The name the peer's certificate must carry (default: the host, when it is a name). */
  serverName?: string;
  /** Verify the peer's certificate chain and name (default true). */
  verify?: boolean;
}

/** A TLS connection that could not be made; the message is one line in words, no code field. */
export class TlsConnectError extends Error {
  override name = 'TlsConnectError';
}

/**
 * A SocketFactory for DICOM TLS. `settings` is called for each connection (so certificates read
 * from files are read again for each association: a replaced file is used from the next one); if
 * it throws, the connection fails with its error. The handshake follows bcp195Options(); the
 * peer's certificate is verified against `ca` and the name (serverName, else the host when it is
 * a name; an IP host is checked against the certificate's IP addresses) unless `verify` is false.
 * Rejects with a TlsConnectError in words ("the server's certificate has expired
 * (CERT_HAS_EXPIRED)"), or the system error of the TCP connect. Nagle is off.
 */
export function tlsSocketFactory(settings: () => TlsConnectSettings): SocketFactory {
  return (target, signal) =>
    new Promise<net.Socket>((resolve, reject) => {
      let s: TlsConnectSettings;
      try {
        s = settings();
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      const servername = s.serverName ?? (net.isIP(target.host) ? undefined : target.host);
      const socket = tls.connect({
        ...bcp195Options(),
        host: target.host,
        port: target.port,
        ...(servername !== undefined ? { servername } : {}),
        ...(s.ca ? { ca: s.ca } : {}),
        ...(s.cert ? { cert: s.cert } : {}),
        ...(s.key ? { key: s.key } : {}),
        rejectUnauthorized: s.verify !== false,
      });
      socket.setNoDelay(true);
      let connected = false;
      const onAbort = (): void => {
        socket.destroy();
        reject(signal.reason instanceof Error ? signal.reason : new Error('connect aborted'));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => (connected = true));
      const onError = (err: Error): void => {
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        const tlsWords = describeTlsError(err, 'server');
        if (tlsWords) reject(new TlsConnectError(`TLS handshake failed: ${tlsWords}`));
        else if (connected) {
          // TCP was up: the peer closed or reset during the handshake (it refused us, or it is
          // not a TLS port).
          reject(new TlsConnectError(`TLS handshake failed: ${describeSystemError(err)} during the handshake`));
        } else reject(err);
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        signal.removeEventListener('abort', onAbort);
        socket.removeListener('error', onError);
        resolve(socket);
      });
    });
}
