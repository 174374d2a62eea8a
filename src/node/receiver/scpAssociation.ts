// One association, SCP side (PS3.8): the TCP connection's PDUs, negotiation, release and abort.
// P-DATA goes to message assembly (messageAssembly.ts) and its commands to the association's
// services (storeService.ts); this file owns the socket and the association's life.
//
// Built on dcmjs-dimse 0.3.3 (see docs/research/dcmjs-dimse.md): its `Scp` decodes the
// A-ASSOCIATE-RQ, encodes the A-ASSOCIATE-AC/RJ and the A-RELEASE-RP, and reports a peer's
// A-ABORT; the rest is ours, each for a measured defect:
// * `_wrapSocket()` is overridden with a no-op and the socket is wired here instead: our
//   PduReader (src/dimse/pduReader.ts) replaces the library's accumulator (quadratic
//   Buffer.concat, no PDU size cap, late detection of garbage), and the listener applies our own
//   timeouts (the library aborts an association whose response we are still computing once its
//   PDU timeout passes). Sinks write synchronously, so nothing queues and no backpressure is needed.
// * P-DATA-TF never reaches the library (its DIMSE layer goes through dcmjs for every command,
//   ~0.5 ms per instance, can hang on hostile input, and would re-encode the data set, dropping
//   private tags): see messageAssembly.ts and storeService.ts.
// * Async-ops negotiation is forced to synchronous (the library echoes whatever is proposed,
//   while we serve one DIMSE message at a time), and the A-ASSOCIATE-AC announces our own max
//   PDU length (the library mirrors the requestor's value instead).
// Negotiation policy: associationPolicy.ts (AE titles, limits), storageSopClasses.ts (Verification
// plus every storage SOP class), transferSyntaxes.ts (the sender's first acceptable one).
//
// Library internals used (not in its index.d.ts; pinned to 0.3.3, re-check them when upgrading):
// * `_wrapSocket()`: called by the Network constructor to wire the socket; overridden (no-op).
// * `_processPdu(pdu: Buffer): Promise<void>`: decodes one complete PDU and emits the library's
//   events; called for A-ASSOCIATE-RQ, A-RELEASE-RQ and A-ABORT only. It calls back
//   associationRequested(), associationReleaseRequested() and abort(), overridden here.
// * `sendAssociationAccept()`, `sendAssociationReject()`, `sendAssociationReleaseResponse()`
//   (public) write through `this.socket`, which the library keeps from its constructor.
// * `dimse.Implementation.setMaxPduLength()`: a process-wide value the accept reads; set around
//   sendAssociationAccept() and restored.
import type net from 'node:net';
import tls from 'node:tls';
import dimse from 'dcmjs-dimse';
import {
  decideAssociation,
  escapeAet,
  negotiateContext,
  normalizeAet,
  type AssociationPolicyConfig,
} from './associationPolicy.js';
import { canonicalAddress } from './callingAes.js';
import { ContextResult } from '../../dimse/acse.js';
import { commandPdu, CommandField, encodeResponse, type Command } from '../../dimse/commandSet.js';
import { AbortReason, AbortSource, abortPdu } from '../../dimse/pdataTf.js';
import { PduError, PduReader, PduType } from '../../dimse/pduReader.js';
import { errorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import { MessageAssembly, type AcceptedContext } from './messageAssembly.js';
import type { ReceiverStats } from './receiverStats.js';
import { StoreService, type ServicePeer } from './storeService.js';
import type { StoreHandler, StoreSinkFactory } from './storeSink.js';

type Association = InstanceType<typeof dimse.association.Association>;

/** Largest non-P-DATA PDU accepted (an A-ASSOCIATE-RQ with many contexts is ~20 KB). */
const MAX_CONTROL_PDU = 256 * 1024;

/** The receiver's settings, as an association needs them (validated by the listener). */
export interface AssociationSettings {
  aeTitle: string;
  /** Who may call from where; replaced when the listener (re)loads allowedAets. */
  callingAes: AssociationPolicyConfig['callingAes'];
  maxAssociations: number;
  /** Associations one peer address may hold at once. */
  maxAssociationsPerAddress: number;
  /** Max PDU length we announce and accept, in bytes. */
  maxPduLength: number;
  /** Data set size cap, in bytes. */
  maxInstanceBytes: number;
  logger: Logger;
}

/** A peer's address as the limits per address count it (IPv4-mapped IPv6 as IPv4). */
export function peerAddressOf(remoteAddress: string): string {
  return canonicalAddress(remoteAddress)?.address ?? remoteAddress;
}

/** What the listener shares with its associations. */
export interface ReceiverContext<R> {
  settings: AssociationSettings;
  sinks: StoreSinkFactory<R>;
  onStore: StoreHandler<R>;
  stats: ReceiverStats;
  /** The listener is stopping: new associations are rejected (transient). */
  stopping: boolean;
  connections: Set<ScpAssociation<R>>;
  /** Registers work that stopping must wait for (store completions, discards). */
  track(work: Promise<unknown>): void;
}

/** dcmjs-dimse internals we rely on (0.3.3; see the header comment). */
interface LibraryInternals {
  _processPdu(pdu: Buffer): Promise<void>;
}

/** One TCP connection / association. dcmjs-dimse negotiates; we own the socket and P-DATA. */
export class ScpAssociation<R> extends dimse.Scp implements ServicePeer {
  // No field may shadow a library property (socket, association, dimse...): with ES2022 class
  // fields they would be reset to undefined after super() returns.
  private readonly ctx: ReceiverContext<R>;
  private readonly sock: net.Socket;
  private readonly reader: PduReader;
  readonly remoteAddress: string;
  /** remoteAddress as the limits per address count it (peerAddressOf). */
  readonly peerAddress: string;
  /** Date.now() when the TCP connection was accepted. */
  readonly connectedAtMs = Date.now();
  /** Date.now() of the last byte received or the last answer sent (for the idle timeouts). */
  lastActivity = Date.now();
  /** Date.now() of the first byte of the message (or PDU) being received, and its bytes so far. */
  messageStartedAt = Date.now();
  messageBytes = 0;
  /**
   * The peer's AE titles as printable ASCII (escapeAet): what logs, sidecars and the audit see.
   * An accepted association's calling title is printable ASCII already (decideAssociation), so
   * escaping changes only what a rejection logs.
   */
  callingAet = '';
  calledAet = '';
  associated = false;
  private rqSeen = false;
  ending = false;
  private closed = false;
  private released = false;
  private readonly acceptedContexts = new Map<number, AcceptedContext>();
  private readonly assembly: MessageAssembly;
  /** Created when the association is accepted. */
  private service: StoreService<R> | undefined;
  private releaseDeferred = false;
  /** Instances stored on this association and their data set bytes (for the closing log line). */
  private instances = 0;
  private instanceBytes = 0;

  /**
   * Takes over an accepted TCP (or TLS) connection: PDUs are read by our PduReader with the PDU size caps of
   * `ctx.settings` (maxPduLength for P-DATA-TF), not by the library's socket handler.
   */
  constructor(socket: net.Socket, ctx: ReceiverContext<R>) {
    super(socket, {});
    this.ctx = ctx;
    this.sock = socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.peerAddress = peerAddressOf(this.remoteAddress);
    this.reader = new PduReader({
      maxLength: (type) => (type === PduType.PDataTf ? ctx.settings.maxPduLength : MAX_CONTROL_PDU),
      onPdu: (type, pdu) => this.onPdu(type, pdu),
    });
    this.assembly = new MessageAssembly(this.acceptedContexts, (message) => {
      if (!this.service) throw new PduError('P-DATA before the association was accepted');
      return this.service.onCommand(message);
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.debug('socket error', { code: errorCode(err) }));
    socket.on('close', () => this.onClose());
    this.on('networkError', (err: unknown) => {
      this.protocolAbort(`DIMSE error (${errorCode(err)})`);
    });
  }

  private get lib(): LibraryInternals {
    return this as unknown as LibraryInternals;
  }

  /** Replaces the library's socket wiring (called from its constructor); see header comment. */
  _wrapSocket(): void {}

  /** True while a PDU or a DIMSE message is partially received. */
  get midMessage(): boolean {
    return this.reader.midPdu || this.assembly.midMessage;
  }

  /** C-STOREs received and not answered yet (the timeouts do not run meanwhile). */
  get storesInFlight(): number {
    return this.service?.storesInFlight ?? 0;
  }

  get answerable(): boolean {
    return !this.ending && !this.closed;
  }

  // --- input --------------------------------------------------------------------------------
  private onData(chunk: Buffer): void {
    const now = Date.now();
    this.lastActivity = now;
    this.ctx.stats.bytesReceived += chunk.length;
    if (this.ending) return;
    // The message deadline runs from a message's first byte (see the listener's sweep).
    if (!this.midMessage) {
      this.messageStartedAt = now;
      this.messageBytes = 0;
    }
    this.messageBytes += chunk.length;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.protocolAbort(err instanceof PduError ? err.message : `receive error (${errorCode(err)})`);
    }
  }

  private onPdu(type: number, pdu: Buffer): void {
    if (!this.associated) {
      if (type !== PduType.AssociateRq || this.rqSeen)
        throw new PduError(`unexpected PDU type ${type} before association`);
      this.rqSeen = true;
      this.runLibrary(pdu);
      return;
    }
    switch (type) {
      case PduType.PDataTf:
        this.assembly.push(pdu);
        return;
      case PduType.ReleaseRq:
      case PduType.Abort:
        this.runLibrary(pdu);
        return;
      default:
        throw new PduError(`unexpected PDU type ${type} on an established association`);
    }
  }

  private runLibrary(pdu: Buffer): void {
    this.lib._processPdu(pdu).catch((err: unknown) => this.protocolAbort(`PDU error (${errorCode(err)})`));
  }

  // --- output -------------------------------------------------------------------------------
  /** Sends a response command set (no data set) in one P-DATA-TF and one socket write. */
  respond(pcId: number, request: Command, commandField: number, status: number): void {
    if (this.ending || this.closed || this.sock.destroyed) return;
    const command = encodeResponse({
      commandField,
      messageIdBeingRespondedTo: request.messageId,
      status,
      affectedSopClassUid: request.affectedSopClassUid,
      affectedSopInstanceUid: commandField === CommandField.CStoreRsp ? request.affectedSopInstanceUid : undefined,
    });
    this.sock.write(commandPdu(pcId, command));
  }

  /** ServicePeer: counts one stored instance of `bytes` data set bytes for the closing log line. */
  instanceStored(bytes: number): void {
    this.instances++;
    this.instanceBytes += bytes;
  }

  /** ServicePeer: a C-STORE was answered; completes an A-RELEASE deferred until the last one was. */
  storeSettled(): void {
    this.lastActivity = Date.now();
    if (this.releaseDeferred && this.storesInFlight === 0) {
      this.releaseDeferred = false;
      this.completeRelease();
    }
  }

  /** ServicePeer: sends an A-ABORT (PS3.8 9.3.8) and closes the connection; `why` is logged. */
  abortAssociation(why: string): void {
    this.protocolAbort(why);
  }

  /** A-ABORT received from the peer (called by the library). */
  override abort(_source: number, _reason: number): void {
    this.ctx.settings.logger.info('association aborted by peer', {
      callingAet: this.callingAet,
      remoteAddress: this.remoteAddress,
    });
    this.ending = true;
    this.reader.stop();
    this.sock.destroy();
  }

  // --- association --------------------------------------------------------------------------
  /**
   * A-ASSOCIATE-RQ decoded by dcmjs-dimse (called by the library): applies the policy (AE titles, limits;
   * associationPolicy.ts), then accepts the presentation contexts (storage SOP classes and Verification, one
   * transfer syntax each) with an A-ASSOCIATE-AC or answers an A-ASSOCIATE-RJ (PS3.8 9.3.2-9.3.4). An
   * unexpected failure aborts the association; never throws to the library.
   */
  override associationRequested(association: Association): void {
    try {
      const { settings, stats } = this.ctx;
      // Decided on the titles as received; never logged raw (a peer's C1 bytes would reach the log).
      const callingAet = normalizeAet(association.getCallingAeTitle());
      const calledAet = normalizeAet(association.getCalledAeTitle());
      this.callingAet = escapeAet(callingAet);
      this.calledAet = escapeAet(calledAet);
      let fromAddress = 0;
      for (const a of this.ctx.connections) if (a.associated && a.peerAddress === this.peerAddress) fromAddress++;
      const decision = decideAssociation(
        {
          callingAet,
          calledAet,
          remoteAddress: this.remoteAddress,
          activeAssociations: stats.associationsOpen,
          activeFromAddress: fromAddress,
          stopping: this.ctx.stopping,
        },
        settings,
      );
      if (!decision.accept) {
        stats.rejected(decision.code);
        settings.logger.warn('association rejected', {
          reason: decision.why,
          callingAet: this.callingAet,
          calledAet: this.calledAet,
          remoteAddress: this.remoteAddress,
        });
        this.sendAssociationReject(decision.result, decision.source, decision.reason);
        this.finishSoon();
        return;
      }
      let accepted = 0;
      for (const { id, context } of association.getPresentationContexts()) {
        const answer = negotiateContext(context.getAbstractSyntaxUid(), [...context.getTransferSyntaxUids()]);
        context.setResult(answer.result, answer.transferSyntaxUid);
        if (answer.result === ContextResult.Acceptance) {
          this.acceptedContexts.set(id, {
            abstractSyntaxUid: context.getAbstractSyntaxUid(),
            transferSyntaxUid: answer.transferSyntaxUid,
          });
          accepted++;
        }
      }
      // One operation at a time: we serve a single DIMSE message at a time.
      association.setNegotiateAsyncOps(false);
      association.setMaxAsyncOpsInvoked(1);
      association.setMaxAsyncOpsPerformed(1);
      // Announce our own receive limit (the library would send min(requestor's, global max)).
      association.setMaxPduLength(settings.maxPduLength);
      const previous = dimse.Implementation.getMaxPduLength();
      dimse.Implementation.setMaxPduLength(settings.maxPduLength);
      try {
        this.sendAssociationAccept();
      } finally {
        dimse.Implementation.setMaxPduLength(previous);
      }
      this.service = new StoreService(this, {
        sinks: this.ctx.sinks.forAssociation({
          callingAet: this.callingAet,
          calledAet: this.calledAet,
          remoteAddress: this.remoteAddress,
        }),
        onStore: this.ctx.onStore,
        maxInstanceBytes: settings.maxInstanceBytes,
        logger: settings.logger,
        stats,
        track: this.ctx.track,
      });
      this.associated = true;
      this.lastActivity = Date.now();
      stats.associationsOpen++;
      stats.associationsAccepted++;
      settings.logger.info('association accepted', {
        callingAet: this.callingAet,
        calledAet: this.calledAet,
        remoteAddress: this.remoteAddress,
        contextsAccepted: accepted,
        contextsProposed: association.getPresentationContexts().length,
        ...tlsDetails(this.sock),
      });
    } catch (err) {
      this.ctx.stats.error(`association negotiation failed (${errorCode(err)})`);
      this.protocolAbort(`association negotiation failed (${errorCode(err)})`);
    }
  }

  /**
   * A-RELEASE-RQ (called by the library): answered with an A-RELEASE-RP (PS3.8 9.3.6-9.3.7) at once, or after
   * the last C-STORE in flight is answered.
   */
  override associationReleaseRequested(): void {
    if (this.storesInFlight > 0) {
      // A well-behaved requestor waits for the response first; answer the release afterwards.
      this.releaseDeferred = true;
      return;
    }
    this.completeRelease();
  }

  private completeRelease(): void {
    if (this.ending) return;
    try {
      this.sendAssociationReleaseResponse();
    } catch (err) {
      this.debug('release response failed', { code: errorCode(err) });
    }
    this.released = true;
    this.finishSoon();
  }

  // --- teardown -----------------------------------------------------------------------------
  /**
   * The peer missed the message deadline (the listener's sweep): one log line saying so, with its
   * address and AE title, then A-ABORT and close.
   */
  cutOffTooSlow(tookMs: number, allowedMs: number): void {
    if (this.ending || this.closed) return;
    this.ctx.stats.slowPeersCutOff++;
    this.ctx.settings.logger.warn('peer cut off: too slow to send a message', {
      callingAet: this.callingAet,
      remoteAddress: this.remoteAddress,
      bytes: this.messageBytes,
      seconds: Math.round(tookMs / 100) / 10,
      allowedSeconds: Math.round(allowedMs / 100) / 10,
    });
    this.protocolAbort('too slow', { quiet: true });
  }

  /** Protocol violation, limit exceeded or timeout: A-ABORT (when associated) and close. */
  protocolAbort(why: string, o: { quiet?: boolean } = {}): void {
    if (this.ending || this.closed) return;
    if (!o.quiet) {
      this.ctx.settings.logger.warn('aborting association', {
        reason: why,
        callingAet: this.callingAet,
        remoteAddress: this.remoteAddress,
      });
    }
    this.ending = true;
    this.reader.stop();
    this.assembly.stop();
    if (this.rqSeen) {
      this.sock.write(abortPdu(AbortSource.ServiceProvider, AbortReason.NotSpecified), () => undefined);
    }
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  /** After A-ASSOCIATE-RJ or A-RELEASE-RP: let the peer close, force it after a grace period. */
  private finishSoon(): void {
    this.ending = true;
    this.reader.stop();
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }

  /** The listener stops: A-ABORT (when associated) and close now. */
  shutdown(): void {
    if (this.closed) return;
    if (!this.ending && this.associated) {
      this.sock.write(abortPdu(AbortSource.ServiceProvider, AbortReason.NotSpecified), () => undefined);
    }
    this.ending = true;
    this.reader.stop();
    this.assembly.stop();
    this.sock.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    this.reader.stop();
    if (this.assembly.receivingDataSet) {
      this.ctx.settings.logger.warn('connection closed in the middle of an instance', {
        callingAet: this.callingAet,
        remoteAddress: this.remoteAddress,
      });
    }
    this.assembly.stop();
    const { stats } = this.ctx;
    if (this.associated) {
      this.service?.close();
      stats.associationsOpen--;
      if (this.released) stats.associationsReleased++;
      else stats.associationsAborted++;
      this.ctx.settings.logger.info('association closed', {
        callingAet: this.callingAet,
        remoteAddress: this.remoteAddress,
        released: this.released,
        instances: this.instances,
        bytes: this.instanceBytes,
      });
    }
    this.ctx.connections.delete(this);
    stats.connections = this.ctx.connections.size;
  }

  private debug(msg: string, meta?: object): void {
    this.ctx.settings.logger.debug(msg, meta);
  }
}

/** For the 'association accepted' line: the TLS version and the client certificate's subject CN. */
function tlsDetails(socket: net.Socket): Record<string, string> {
  if (!(socket instanceof tls.TLSSocket)) return {};
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return { tls: socket.getProtocol() ?? 'TLS', ...(typeof cn === 'string' ? { clientCertificate: cn } : {}) };
}
