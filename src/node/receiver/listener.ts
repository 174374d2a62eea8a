// The receiver's listening side: accepts TCP connections, makes one ScpAssociation of each,
// enforces the connection and association limits and the timeouts, and stops cleanly (answers
// the stores already received first). In the spirit of dcmjs-dimse's `Server` and pynetdicom's
// AssociationServer, which dcmjs-dimse 0.3.3's `Server` cannot be: its `listen(port)` ignores the
// host (binds every interface), has no association limit and never prunes its client list.
//
// It listens on one or more endpoints (the plain DICOM port, the DICOM TLS port), each with its
// server from a factory (default `net.createServer`; TLS: tlsServer.ts), sharing one association
// limit, one status and one set of rules: who may call from where (callingAes.ts), how many
// associations one address may hold, and how slowly a peer may send a message (a peer that
// trickles bytes would otherwise hold its slot for ever, since each byte restarts the timers).
//
// The receiver keeps nothing itself: each C-STORE's data set goes into a sink from the
// StoreSinkFactory the node passes in (its spool), which must be ready before start().
import net from 'node:net';
import { isValidAeTitle, normalizeAet } from './associationPolicy.js';
import { CallingAeList, isLoopbackHost, parseAllowedAe } from './callingAes.js';
import { OncePerPeer } from './oncePerPeer.js';
import { silenceLibraryLogs } from '../../dimse/silenceLibraryLogs.js';
import { errorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ComponentStatus, StatusReporter } from '../../status.js';
import { ReceiverStats } from './receiverStats.js';
import { ScpAssociation, peerAddressOf, type AssociationSettings, type ReceiverContext } from './scpAssociation.js';
import type { StoreHandler, StoreSinkFactory } from './storeSink.js';

/**
 * Creates a listening server, calling `onConnection` for each connection ready for DICOM (for TLS:
 * after the handshake and the client certificate check), and `onRefused` for each one it refused
 * on its own (a failed TLS handshake, a client certificate not trusted) with the peer's address
 * and the reason in words.
 */
export type ServerFactory = (
  onConnection: (socket: net.Socket) => void,
  onRefused?: (remoteAddress: string, reason: string) => void,
) => net.Server;

/** One listening port. */
export interface ListenerEndpoint {
  /** How logs and the status name it: 'dicom', 'dicom-tls'. */
  name: string;
  /** 0 = pick a free port (returned by start()). */
  port: number;
  /** Default `net.createServer`. */
  createServer?: ServerFactory;
}

export interface ListenerOptions<R> {
  aeTitle: string;
  /** Interface to bind, e.g. '127.0.0.1' or '0.0.0.0'. */
  host: string;
  /** The one endpoint's port when `endpoints` is absent (0 = pick a free port, returned by start()). */
  port?: number;
  /** The one endpoint's server when `endpoints` is absent; see ServerFactory. */
  createServer?: ServerFactory;
  /** Every endpoint, in this order (default: one, 'dicom', from port and createServer). */
  endpoints?: ListenerEndpoint[];
  /**
   * `allowedAets` entries: calling AE titles, alone or bound to addresses (`CT@10.1.2.0/24`, see
   * callingAes.ts). Empty or absent = any calling AE.
   */
  allowedCallingAets?: string[];
  /**
   * With an empty allow-list on an interface other than loopback: 'warn' (default) accepts any
   * calling AE and says so at start, 'reject' rejects every association, 'allow' accepts quietly.
   */
  openAccess?: OpenAccess;
  /** Concurrent associations; beyond -> A-ASSOCIATE-RJ transient / local limit exceeded. Default 8. */
  maxAssociations?: number;
  /** Concurrent associations from one peer address (default: half of maxAssociations, rounded up). */
  maxAssociationsPerAddress?: number;
  /** Max PDU length we announce and accept, in bytes; a bigger incoming PDU aborts the association. Default 262144. */
  maxPduLength?: number;
  /** Data set size cap in bytes; beyond, the association is aborted and the partial discarded. Default 2 GiB. */
  maxInstanceBytes?: number;
  /**
   * Milliseconds. connect: TCP accept -> complete A-ASSOCIATE-RQ (default 15000; also the TLS
   * handshake's limit, given to the TLS server by its creator);
   * association: idle time between DIMSE messages (default 60000);
   * pdu: silence in the middle of a PDU or message (default 30000).
   * message: the deadline of one message (a command and its data set, or any other PDU), from its
   * first byte to its last: this many ms plus 1 s per `minReceiveBytesPerSecond` bytes received
   * (default 30000); a peer that misses it is cut off (aborted) as too slow.
   * Never counted while a received C-STORE is being made durable or handed on.
   */
  timeouts?: { connect?: number; association?: number; pdu?: number; message?: number };
  /** The message deadline's allowance per byte (see timeouts.message); 0 = none (default 16384). */
  minReceiveBytesPerSecond?: number;
  /** Never receives patient identifiers or UIDs: AE titles, addresses, counts, error codes only. */
  logger: Logger;
  /** Gives each association the sinks its C-STORE data sets are written into (the node's spool). */
  sinks: StoreSinkFactory<R>;
  /** Takes each instance on once it is durable; its result is the C-STORE status. */
  onStore: StoreHandler<R>;
  /** Called with each C-STORE's acknowledgement latency (ms, last fragment to C-STORE-RSP), e.g. for a histogram. */
  onAcknowledged?: (ms: number) => void;
}

/** What an empty allow-list means on an interface others can reach; see ListenerOptions. */
export type OpenAccess = 'warn' | 'reject' | 'allow';

/** A connection that arrived before accept(), with its 'close' handler (which forgets it). */
interface HeldConnection {
  socket: net.Socket;
  endpoint: string;
  onGone: () => void;
}

/** A held connection's socket errors (a reset) end in its 'close'; nothing else to do. */
const ignoreError = (): void => undefined;

/** Calling AE checks for "nobody may call" (openAccess 'reject' with an empty list). */
const NOBODY = { check: () => 'unknownAeTitle' as const };

/** The receiver: a C-STORE / C-ECHO SCP. Reports its status as the 'receiver' component. */
export class DicomListener<R> implements StatusReporter {
  private readonly ctx: ReceiverContext<R>;
  private readonly host: string;
  private readonly endpoints: Required<ListenerEndpoint>[];
  private readonly timeouts: { connect: number; association: number; pdu: number; message: number };
  private readonly minReceiveBytesPerSecond: number;
  private readonly allowedEntries: string[];
  private readonly openAccess: OpenAccess;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly servers: net.Server[] = [];
  /** Bound ports by endpoint name. */
  private readonly boundPorts = new Map<string, number>();
  private readonly refusals = new OncePerPeer();
  private sweeper: NodeJS.Timeout | undefined;
  private stopPromise: Promise<void> | undefined;
  private started = false;
  /** Connections that arrived between listen() and accept(), unread; null once accepting. */
  private held: HeldConnection[] | null = [];

  /** Throws RangeError for an invalid AE title, allowedAets entry or limit. */
  constructor(options: ListenerOptions<R>) {
    const maxAssociations = options.maxAssociations ?? 8;
    const settings: AssociationSettings = {
      aeTitle: options.aeTitle,
      callingAes: NOBODY, // replaced by start(), once host names are resolved
      maxAssociations,
      maxAssociationsPerAddress: Math.min(
        maxAssociations,
        options.maxAssociationsPerAddress ?? Math.ceil(maxAssociations / 2),
      ),
      maxPduLength: options.maxPduLength ?? 262144,
      maxInstanceBytes: options.maxInstanceBytes ?? 2 * 1024 * 1024 * 1024,
      logger: options.logger,
    };
    if (!isValidAeTitle(normalizeAet(settings.aeTitle))) throw new RangeError('aeTitle must be 1-16 characters');
    if (!Number.isInteger(settings.maxAssociations) || settings.maxAssociations < 1)
      throw new RangeError('maxAssociations must be >= 1');
    if (!Number.isInteger(settings.maxAssociationsPerAddress) || settings.maxAssociationsPerAddress < 1)
      throw new RangeError('maxAssociationsPerAddress must be >= 1');
    // PS3.8: a receive limit below 4096 is not interoperable; the PDU length field is 32 bits.
    const pduLength = settings.maxPduLength;
    if (!Number.isInteger(pduLength) || pduLength < 4096 || pduLength > 0xffffffff) {
      throw new RangeError('maxPduLength must be between 4096 and 4294967295');
    }
    if (!(settings.maxInstanceBytes > 0)) throw new RangeError('maxInstanceBytes must be > 0');
    this.allowedEntries = [...(options.allowedCallingAets ?? [])];
    this.allowedEntries.forEach(parseAllowedAe); // a bad entry throws now, not at start()
    this.openAccess = options.openAccess ?? 'warn';
    this.host = options.host;
    const plain = (onConnection: (socket: net.Socket) => void) => net.createServer(onConnection);
    this.endpoints = (
      options.endpoints ?? [{ name: 'dicom', port: options.port ?? 0, createServer: options.createServer }]
    ).map((e) => ({ name: e.name, port: e.port, createServer: e.createServer ?? plain }));
    if (this.endpoints.length === 0) throw new RangeError('a listener needs at least one endpoint');
    this.timeouts = {
      connect: options.timeouts?.connect ?? 15_000,
      association: options.timeouts?.association ?? 60_000,
      pdu: options.timeouts?.pdu ?? 30_000,
      message: options.timeouts?.message ?? 30_000,
    };
    this.minReceiveBytesPerSecond = options.minReceiveBytesPerSecond ?? 16_384;
    if (!(this.minReceiveBytesPerSecond >= 0)) throw new RangeError('minReceiveBytesPerSecond must be >= 0');
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
    const ports = Object.fromEntries(this.endpoints.map((e) => [e.name, this.boundPorts.get(e.name) ?? e.port]));
    return stats.report({
      aeTitle: settings.aeTitle,
      host: this.host,
      port: ports[this.endpoints[0]!.name],
      ports,
      maxAssociations: settings.maxAssociations,
      maxAssociationsPerAddress: settings.maxAssociationsPerAddress,
    });
  }

  /**
   * listen() then accept(): resolves the allowedAets host names, listens on every endpoint and
   * takes associations at once. Resolves and throws as listen() does.
   */
  async start(): Promise<{ port: number; ports: Record<string, number> }> {
    const bound = await this.listen();
    this.accept();
    return bound;
  }

  /**
   * Resolves the allowedAets host names, then binds every endpoint's port without taking
   * associations yet: a connection that arrives before accept() is held, unread, and handed on
   * by accept() (its peer waits, as for a slow A-ASSOCIATE-AC; nothing is answered before the
   * sinks are ready). So the node can bind first, failing at once on a port in use, and prepare
   * its spool after. Resolves with the first endpoint's bound port and every endpoint's by name.
   * Throws (e.g. EADDRINUSE, with the error's `port`, or an Error naming an allowedAets host that
   * does not resolve) when it cannot listen; endpoints already listening are closed then.
   */
  async listen(): Promise<{ port: number; ports: Record<string, number> }> {
    if (this.started) throw new Error('DicomListener already started');
    this.started = true;
    const { settings, stats } = this.ctx;
    try {
      await this.loadCallingAes();
    } catch (err) {
      stats.error('cannot resolve an allowed AE host name');
      stats.tracker.set('failed');
      throw err;
    }
    for (const endpoint of this.endpoints) {
      const server = endpoint.createServer(
        (socket) => this.onConnection(socket, endpoint.name),
        (address, reason) => this.onRefused(endpoint.name, address, reason),
      );
      // Unassociated sockets count too; keep a margin for peers we must answer with a reject.
      server.maxConnections = settings.maxAssociations * 2 + 4;
      this.servers.push(server);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: this.host, port: endpoint.port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        stats.error(`cannot listen (${errorCode(err)})`);
        stats.tracker.set('failed');
        await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
        // Node's listen error carries the port only for some codes: the one we asked for, always.
        const e = err as NodeJS.ErrnoException & { port?: number; endpoint?: string };
        e.port ??= endpoint.port;
        e.endpoint = endpoint.name;
        throw err;
      }
      server.on('error', (err) => {
        settings.logger.error('DICOM listener error', { endpoint: endpoint.name, code: errorCode(err) });
        stats.error(`listener error (${errorCode(err)})`);
      });
      this.boundPorts.set(endpoint.name, (server.address() as net.AddressInfo).port);
    }
    const ports = Object.fromEntries(this.boundPorts);
    return { port: this.boundPorts.get(this.endpoints[0]!.name)!, ports };
  }

  /**
   * Takes associations from now on (after listen()), starting with the connections held since
   * listen(); the sinks must be ready. Repeat calls do nothing.
   */
  accept(): void {
    if (!this.started) throw new Error('DicomListener.accept() before listen()');
    if (this.held === null || this.ctx.stopping) return;
    const { settings, stats } = this.ctx;
    const { connect, association, pdu, message } = this.timeouts;
    const tick = Math.max(100, Math.min(1000, Math.floor(Math.min(connect, association, pdu, message) / 4)));
    this.sweeper = setInterval(() => this.sweepTimeouts(), tick);
    this.sweeper.unref();
    stats.tracker.set('running');
    for (const e of this.endpoints) {
      settings.logger.info('DICOM node listening', {
        endpoint: e.name,
        aeTitle: settings.aeTitle,
        host: this.host,
        port: this.boundPorts.get(e.name),
      });
    }
    const held = this.held;
    this.held = null;
    for (const { socket, endpoint, onGone } of held) {
      socket.off('error', ignoreError).off('close', onGone);
      if (!socket.destroyed) this.onConnection(socket, endpoint);
    }
  }

  /**
   * Resolves the allowedAets host names again (on SIGHUP: a modality's address changed); the
   * previous list stays when one does not resolve (the Error names it).
   */
  async reloadCallingAes(): Promise<void> {
    await this.loadCallingAes();
  }

  private async loadCallingAes(): Promise<void> {
    const { settings } = this.ctx;
    const list = await CallingAeList.resolve(this.allowedEntries);
    const exposed = !isLoopbackHost(this.host);
    if (list.isEmpty && exposed && this.openAccess === 'reject') {
      settings.callingAes = NOBODY;
      settings.logger.warn(
        `allowedAets is empty and openAccess is "reject": every association is rejected until allowedAets lists the calling AE titles`,
      );
      return;
    }
    settings.callingAes = list;
    if (list.isEmpty && exposed && this.openAccess === 'warn') {
      settings.logger.warn(
        `any calling AE title may store into this node: allowedAets is empty and it listens on ${this.host}, which other machines can reach (list the senders in allowedAets, e.g. CT1@10.1.2.0/24, or set openAccess to "reject")`,
      );
    }
    for (const line of list.resolvedHosts) settings.logger.info(`allowed AE host resolved: ${line}`);
  }

  /** Stops accepting, waits until the stores already received are answered, then closes everything. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    const { ctx } = this;
    const accepted = this.held === null; // a start that failed after listen() never took one
    ctx.stopping = true;
    ctx.stats.tracker.set('stopping');
    // Held connections were never read from: closing them loses nothing (no store was received).
    for (const { socket } of this.held?.splice(0) ?? []) socket.destroy();
    const closed = Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    await Promise.allSettled([...this.pending]);
    for (const a of [...ctx.connections]) a.shutdown();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await closed;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    ctx.stats.tracker.set('stopped');
    if (accepted) ctx.settings.logger.info('DICOM node stopped', { ...this.status().counts });
  }

  /**
   * A connection an endpoint's server refused on its own (a TLS handshake or client certificate
   * that failed): counted, and logged once per peer address and reason (OncePerPeer).
   */
  private onRefused(endpoint: string, remoteAddress: string, reason: string): void {
    const { stats, settings } = this.ctx;
    stats.tlsRefused++;
    stats.error(`connection refused by TLS: ${reason}`);
    const seen = this.refusals.note(`${endpoint}|${remoteAddress}|${reason}`);
    if (!seen.log) return;
    settings.logger.warn('TLS connection refused', {
      endpoint,
      remoteAddress: remoteAddress || 'unknown',
      reason,
      ...(seen.suppressed > 0 ? { repeatsNotLogged: seen.suppressed } : {}),
    });
  }

  private onConnection(socket: net.Socket, endpoint: string): void {
    const { ctx } = this;
    if (ctx.stopping) {
      socket.destroy();
      return;
    }
    if (this.held) {
      // Before accept(): kept unread until the sinks are ready (server.maxConnections bounds them).
      const entry: HeldConnection = {
        socket,
        endpoint,
        onGone: () => {
          const i = this.held?.indexOf(entry) ?? -1;
          if (i >= 0) this.held!.splice(i, 1);
        },
      };
      socket.on('error', ignoreError).once('close', entry.onGone);
      this.held.push(entry);
      return;
    }
    // One address may not fill the connection table with unassociated sockets either: beyond its
    // associations and a margin for the rejects it must be able to receive, it is dropped.
    const address = peerAddressOf(socket.remoteAddress ?? '');
    let fromAddress = 0;
    for (const a of ctx.connections) if (a.peerAddress === address) fromAddress++;
    if (fromAddress >= ctx.settings.maxAssociationsPerAddress + 4) {
      ctx.stats.connectionsDropped++;
      const seen = this.refusals.note(`${endpoint}|${address}|too many connections`);
      if (seen.log) {
        ctx.settings.logger.warn('connection dropped: too many connections from this address', {
          endpoint,
          remoteAddress: address,
          open: fromAddress,
          ...(seen.suppressed > 0 ? { repeatsNotLogged: seen.suppressed } : {}),
        });
      }
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
    const msPerByte = this.minReceiveBytesPerSecond > 0 ? 1000 / this.minReceiveBytesPerSecond : 0;
    for (const a of this.ctx.connections) {
      try {
        if (a.ending) continue;
        if (!a.associated) {
          if (now - a.connectedAtMs > timeouts.connect) a.protocolAbort('no association request in time');
          continue;
        }
        // Checked even while we hold the ball: a peer that sends during a store is not waiting on us.
        if (a.midMessage) {
          const allowedMs = timeouts.message + a.messageBytes * msPerByte;
          const tookMs = now - a.messageStartedAt;
          if (tookMs > allowedMs) {
            a.cutOffTooSlow(tookMs, allowedMs);
            continue;
          }
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
