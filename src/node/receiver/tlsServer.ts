// The receiver's DICOM TLS listening side (PS3.15 B.10, BCP 195): a ServerFactory for the
// DicomListener that makes a TLS server on the profile, checks client certificates when they are
// required, reports every refused connection with its reason, and takes new certificates
// without a restart (setSecureContext, on SIGHUP).
//
// Client certificates are verified by OpenSSL against `ca` during the handshake, but the verdict
// is applied here, after it (rejectUnauthorized false, then TLSSocket#authorized): a refused
// peer's reason is then precise (expired, untrusted, none sent) and its address known, where
// OpenSSL's own refusal in TLS 1.3 reaches the server only as a reset. No byte a refused peer sent
// is ever read: its socket is destroyed before the association sees it.
import type net from 'node:net';
import tls from 'node:tls';
import { describeSystemError } from '../../errors.js';
import { bcp195Options, describeAuthorizationError, describeTlsError } from '../../dimse/tls.js';
import type { ServerFactory } from './listener.js';

export interface TlsServerSettings {
  /** Our certificate (with its chain) and key, and the CA(s) client certificates must chain to (PEM). */
  credentials: { cert?: Buffer; key?: Buffer; ca?: Buffer };
  /** Only peers presenting a certificate that chains to `ca` may associate. */
  requireClientCert: boolean;
  /** Time a connection has to finish the TLS handshake, ms (default 15000). */
  handshakeTimeoutMs?: number;
}

/** A TLS ServerFactory whose certificates can be replaced while it listens (see header). */
export class TlsServer {
  private readonly servers = new Set<tls.Server>();
  private credentials: TlsServerSettings['credentials'];

  /**
   * `settings`: certificate, key and CA (PEM buffers), whether client certificates are required, and the
   * handshake timeout (ms). Reads no file; a server is made by `create`.
   */
  constructor(private readonly settings: TlsServerSettings) {
    this.credentials = settings.credentials;
  }

  /** The factory for ListenerOptions / ListenerEndpoint. */
  readonly create: ServerFactory = (onConnection, onRefused) => {
    const { requireClientCert } = this.settings;
    const server = tls.createServer(
      {
        ...bcp195Options(),
        ...this.credentials,
        honorCipherOrder: true,
        requestCert: requireClientCert,
        rejectUnauthorized: false, // the verdict is applied below, with its reason
        handshakeTimeout: this.settings.handshakeTimeoutMs ?? 15_000,
      },
      (socket) => {
        if (requireClientCert && !socket.authorized) {
          const hadCertificate = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
          onRefused?.(
            socket.remoteAddress ?? '',
            describeAuthorizationError(socket.authorizationError, hadCertificate, 'client'),
          );
          socket.destroy();
          return;
        }
        onConnection(socket);
      },
    );
    // Reading the address now keeps it on the TCP socket after a reset, for the refusal report.
    server.on('connection', (raw: net.Socket) => void raw.remoteAddress);
    server.on('tlsClientError', (err, socket) => {
      const reason = describeTlsError(err, 'client') ?? `${describeSystemError(err)} during the TLS handshake`;
      onRefused?.(peerAddress(socket), reason);
    });
    server.once('close', () => this.servers.delete(server));
    this.servers.add(server);
    return server;
  };

  /**
   * Replaces the certificate, key and CA for the connections that come next (those open keep
   * theirs). Throws (OpenSSL's error) when they cannot be used together: check them first with
   * readTlsCredentials.
   */
  setCredentials(credentials: TlsServerSettings['credentials']): void {
    for (const server of this.servers) server.setSecureContext({ ...bcp195Options(), ...credentials });
    this.credentials = credentials;
  }
}

/**
 * The address of a TLS socket, also after a reset: Node keeps the TCP socket a server-side
 * TLSSocket wraps as `_parent` (an internal of node:tls, checked defensively; '' when absent).
 */
function peerAddress(socket: tls.TLSSocket): string {
  return socket.remoteAddress ?? (socket as unknown as { _parent?: net.Socket })._parent?.remoteAddress ?? '';
}
