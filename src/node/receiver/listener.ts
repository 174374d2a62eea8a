// The receiver's listening side: accepts TCP connections, makes one ScpAssociation of each,
// enforces the connection and association limits and the timeouts, and stops cleanly (answers
// the stores already received first). In the spirit of dcmjs-dimse's `Server` and pynetdicom's
// AssociationServer, which dcmjs-dimse 0.3.3's `Server` cannot be: its `listen(port)` ignores the
// host (binds every interface), has no association limit and never prunes its client list.
//
// The server comes from a factory (default `net.createServer`), so that a TLS listener is one
// option: `(onConnection) => tls.createServer(tlsOptions, onConnection)`.
//
// The receiver keeps nothing itself: each C-STORE's data set goes into a sink from the
// StoreSinkFactory the node passes in (its spool), which must be ready before start().
import net from 'node:net';
import { isValidAeTitle, normalizeAet } from './associationPolicy.js';
import { silenceLibraryLogs } from '../../dimse/silenceLibraryLogs.js';
import { errorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ComponentStatus, StatusReporter } from '../../status.js';
import { ReceiverStats } from './receiverStats.js';
import { ScpAssociation, type AssociationSettings, type ReceiverContext } from './scpAssociation.js';
import type { StoreHandler, StoreSinkFactory } from './storeSink.js';

/** Creates the listening server, calling `onConnection` for each accepted socket. */
export type ServerFactory = (onConnection: (socket: net.Socket) => void) => net.Server;

export interface ListenerOptions<R> {
  aeTitle: string;
  /** Interface to bind, e.g. '127.0.0.1' or '0.0.0.0'. */
  host: string;
  /** 0 = pick a free port (returned by start()). */
  port: number;
  /** Empty or absent = any calling AE. */
  allowedCallingAets?: string[];
  /** Concurrent associations; beyond -> A-ASSOCIATE-RJ transient / local limit exceeded. Default 8. */
  maxAssociations?: number;
  /** Max PDU length we announce and accept, in bytes; a bigger incoming PDU aborts the association. Default 262144. */
  maxPduLength?: number;
  /** Data set size cap in bytes; beyond, the association is aborted and the partial discarded. Default 2 GiB. */
  maxInstanceBytes?: number;
  /**
   * Milliseconds. connect: TCP accept -> complete A-ASSOCIATE-RQ (default 15000);
   * association: idle time between DIMSE messages (default 60000);
   * pdu: silence in the middle of a PDU or message (default 30000).
   * Never counted while a received C-STORE is being made durable or handed on.
   */
  timeouts?: { connect?: number; association?: number; pdu?: number };
  /** Never receives patient identifiers or UIDs: AE titles, addresses, counts, error codes only. */
  logger: Logger;
  /** Gives each association the sinks its C-STORE data sets are written into (the node's spool). */
  sinks: StoreSinkFactory<R>;
  /** Takes each instance on once it is durable; its result is the C-STORE status. */
  onStore: StoreHandler<R>;
  /** The listening server (default `net.createServer`); see the header comment. */
  createServer?: ServerFactory;
  /** Called with each C-STORE's acknowledgement latency (ms, last fragment to C-STORE-RSP), e.g. for a histogram. */
  onAcknowledged?: (ms: number) => void;
}

/** The receiver: a C-STORE / C-ECHO SCP. Reports its status as the 'receiver' component. */
export class DicomListener<R> implements StatusReporter {
  private readonly ctx: ReceiverContext<R>;
  private readonly host: string;
  private readonly port: number;
  private readonly timeouts: { connect: number; association: number; pdu: number };
  private readonly createServer: ServerFactory;
  private readonly pending = new Set<Promise<unknown>>();
  private server: net.Server | undefined;
  private boundPort: number | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private stopPromise: Promise<void> | undefined;

  /** Throws RangeError for an invalid AE title or limit. */
  constructor(options: ListenerOptions<R>) {
    const settings: AssociationSettings = {
      aeTitle: options.aeTitle,
      allowedCallingAets: [...(options.allowedCallingAets ?? [])],
      maxAssociations: options.maxAssociations ?? 8,
      maxPduLength: options.maxPduLength ?? 262144,
      maxInstanceBytes: options.maxInstanceBytes ?? 2 * 1024 * 1024 * 1024,
      logger: options.logger,
    };
    if (!isValidAeTitle(normalizeAet(settings.aeTitle))) throw new RangeError('aeTitle must be 1-16 characters');
    if (!Number.isInteger(settings.maxAssociations) || settings.maxAssociations < 1)
      throw new RangeError('maxAssociations must be >= 1');
    // PS3.8: a receive limit below 4096 is not interoperable; the PDU length field is 32 bits.
    const pduLength = settings.maxPduLength;
    if (!Number.isInteger(pduLength) || pduLength < 4096 || pduLength > 0xffffffff) {
      throw new RangeError('maxPduLength must be between 4096 and 4294967295');
    }
    if (!(settings.maxInstanceBytes > 0)) throw new RangeError('maxInstanceBytes must be > 0');
    this.host = options.host;
    this.port = options.port;
    this.timeouts = {
      connect: options.timeouts?.connect ?? 15_000,
      association: options.timeouts?.association ?? 60_000,
      pdu: options.timeouts?.pdu ?? 30_000,
    };
    this.createServer = options.createServer ?? ((onConnection) => net.createServer(onConnection));
    silenceLibraryLogs();
    this.ctx = {
      settings,
      sinks: options.sinks,
      onStore: options.onStore,
      stats: new ReceiverStats(options.onAcknowledged),
      stopping: false,
      connections: new Set(),
      track: (work) => {
        const p = work.finally(() => this.pending.delete(p));
        this.pending.add(p);
      },
    };
  }

  /**
   * The receiver's status: associations (open, accepted, released, aborted, rejected by reason),
   * instances stored and failed, bytes received, C-STORE acknowledgement latency; backlog =
   * stores received and not answered yet.
   */
  status(): ComponentStatus {
    const { settings, stats } = this.ctx;
    return stats.report({
      aeTitle: settings.aeTitle,
      host: this.host,
      port: this.boundPort ?? this.port,
      maxAssociations: settings.maxAssociations,
    });
  }

  /** Starts listening; resolves with the bound port. Throws (e.g. EADDRINUSE) when it cannot listen. */
  async start(): Promise<{ port: number }> {
    if (this.server) throw new Error('DicomListener already started');
    const { settings, stats } = this.ctx;
    const server = this.createServer((socket) => this.onConnection(socket));
    // Unassociated sockets count too; keep a margin for peers we must answer with a reject.
    server.maxConnections = settings.maxAssociations * 2 + 4;
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: this.host, port: this.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      stats.error(`cannot listen (${errorCode(err)})`);
      stats.tracker.set('failed');
      throw err;
    }
    server.on('error', (err) => {
      settings.logger.error('DICOM listener error', { code: errorCode(err) });
      stats.error(`listener error (${errorCode(err)})`);
    });
    const { connect, association, pdu } = this.timeouts;
    const tick = Math.max(100, Math.min(1000, Math.floor(Math.min(connect, association, pdu) / 4)));
    this.sweeper = setInterval(() => this.sweepTimeouts(), tick);
    this.sweeper.unref();
    this.boundPort = (server.address() as net.AddressInfo).port;
    stats.tracker.set('running');
    settings.logger.info('DICOM node listening', { aeTitle: settings.aeTitle, host: this.host, port: this.boundPort });
    return { port: this.boundPort };
  }

  /** Stops accepting, waits until the stores already received are answered, then closes everything. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    const { ctx } = this;
    ctx.stopping = true;
    ctx.stats.tracker.set('stopping');
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.allSettled([...this.pending]);
    for (const a of [...ctx.connections]) a.shutdown();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await closed;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    ctx.stats.tracker.set('stopped');
    ctx.settings.logger.info('DICOM node stopped', { ...this.status().counts });
  }

  private onConnection(socket: net.Socket): void {
    const { ctx } = this;
    if (ctx.stopping) {
      socket.destroy();
      return;
    }
    try {
      ctx.connections.add(new ScpAssociation(socket, ctx));
      ctx.stats.connections = ctx.connections.size;
    } catch (err) {
      ctx.settings.logger.error('could not set up connection', { code: errorCode(err) });
      ctx.stats.error(`could not set up connection (${errorCode(err)})`);
      socket.destroy();
    }
  }

  private sweepTimeouts(): void {
    const now = Date.now();
    const { timeouts } = this;
    for (const a of this.ctx.connections) {
      try {
        if (a.ending) continue;
        if (!a.associated) {
          if (now - a.connectedAtMs > timeouts.connect) a.protocolAbort('no association request in time');
          continue;
        }
        if (a.storesInFlight > 0) {
          a.lastActivity = now; // we hold the ball
          continue;
        }
        const limit = a.midMessage ? timeouts.pdu : timeouts.association;
        if (now - a.lastActivity > limit) a.protocolAbort(a.midMessage ? 'PDU timeout' : 'idle association timeout');
      } catch (err) {
        this.ctx.settings.logger.error('timeout sweep failed', { code: errorCode(err) });
      }
    }
  }
}
