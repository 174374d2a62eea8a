// How an SCU association gets its connected socket: a factory, so TLS (PS3.15 B.1, issue 13)
// is another factory and not another association.
import net from 'node:net';

/** Where to connect. */
export interface SocketTarget {
  host: string;
  port: number;
}

/**
 * Opens a connected, ready-to-write stream socket to `target` (for TLS: after the handshake).
 * Rejects with the system error (ECONNREFUSED, ETIMEDOUT...) or a TLS error. When `signal`
 * aborts (the connect timeout), it must destroy the socket and reject. The returned socket
 * should have Nagle off (see tcpSocketFactory).
 */
export type SocketFactory = (target: SocketTarget, signal: AbortSignal) => Promise<net.Socket>;

/**
 * Plain TCP (`net.connect`) with Nagle off: with it on, every C-STORE stalls ~40 ms on the
 * peer's delayed ACK (research notes dcmjs-dimse.md section 2).
 */
export const tcpSocketFactory: SocketFactory = (target, signal) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error('connect aborted'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    const onError = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      resolve(socket);
    });
  });
