// DIMSE receive transport: a C-STORE / C-ECHO SCP that spools every received data set,
// byte-identical, as a Part 10 file (a spool journal record or a file of its own: spoolWriter.ts)
// and hands it to a StoreHandler. No de-identification here.
//
// Built on dcmjs-dimse 0.3.3 (see /work/shared/research/dcmjs-dimse.md), with these deviations
// from the library's intended use, each for a measured defect:
// * Its `Server` is not used. `Server.listen(port)` ignores the host (binds every interface),
//   has no association limit and never prunes its client list on close. We own the net.Server,
//   bind opts.host, cap raw connections and count associations.
// * `_wrapSocket()` is overridden with a no-op and the socket is wired here instead: our
//   PduReader replaces the library's accumulator (quadratic Buffer.concat, no PDU size cap,
//   late detection of garbage), we apply our own timeouts (the library aborts an association
//   whose response we are still computing once its PDU timeout passes). Spool writes are
//   synchronous (see spoolWriter.ts), so nothing queues and no backpressure is needed.
// * P-DATA-TF is handled here entirely; the library's DIMSE layer is not used. PDVs are parsed
//   as zero-copy views and validated in sequence: a data PDV with no pending command, a command
//   PDV in the middle of a data set or a PDV on a context that was not accepted abort the
//   association (the library would silently mix those bytes into the stored data set). Command
//   sets are read and responses written by commandSet.ts: the library's path goes through dcmjs
//   for each (~0.5 ms per instance, measured) and can hang on hostile input. A data set for
//   anything but C-STORE aborts the association.
// * The data set never goes through dcmjs: it is written, as received, after our own file meta
//   by a SpoolWriter into the association's journal segment (spoolJournal.ts) or a file, and made
//   durable before onStore runs and before any status is returned.
// * Async-ops negotiation is forced to synchronous (the library echoes whatever is proposed,
//   while its receive path can only hold one DIMSE message at a time), and the A-ASSOCIATE-AC
//   announces opts.maxPduLength (the library mirrors the requestor's value instead).
// Negotiation: Verification plus every storage SOP class; documented choice in
// storageSopClasses.ts (the PS3.6 storage list, plus unknown UIDs as possible newer/private
// storage classes; known non-storage services are refused). Transfer syntax: transferSyntaxes.ts.
// Internal members used (not in index.d.ts): _wrapSocket, _processPdu (association, release and
// abort PDUs only).
// They are pinned to dcmjs-dimse 0.3.3; re-check them when upgrading.
import fs from 'node:fs';
import net from 'node:net';
import dimse from 'dcmjs-dimse';
import {
  decideAssociation,
  negotiateContext,
  ContextResult,
  isValidAeTitle,
  normalizeAet,
} from '../receiver/associationPolicy.js';
import {
  CommandField,
  CommandSetError,
  commandPdu,
  encodeResponse,
  parseCommand,
  type Command,
} from '../../dimse/commandSet.js';
import { buildFileMeta } from '../../core/dicom/fileMeta.js';
import { AbortReason, AbortSource, abortPdu, parsePdvs } from '../../dimse/pdataTf.js';
import { PduError, PduReader, PduType } from '../../dimse/pduReader.js';
import { Status, isStored } from '../../dimse/status.js';
import type { Logger } from '../../log.js';
import { silenceLibraryLogs } from '../../dimse/silenceLibraryLogs.js';
import { JournalCursor, SpoolJournal } from '../spool/spoolJournal.js';
import { DiscardSink, SpoolPool, SpoolWriter, recoverSpool } from '../spool/spoolWriter.js';
import { isValidUid, trimUid } from '../../core/dicom/uid.js';
import { errorCode } from '../../errors.js';

type Association = InstanceType<typeof dimse.association.Association>;

export interface ReceivedInstance {
  /** A complete Part 10 file: our file meta + the received data set bytes, byte-identical; fsync'd, renamed into place, directory fsync'd. */
  spoolPath: string;
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Data set bytes received (the file meta we prepend is not counted). */
  byteLength: number;
}

/**
 * Called once per received instance, after it is durably in the spool; returns the DIMSE status
 * to answer (0x0000 success, 0xB000 coercion warning, 0xA700 out of resources, 0xC000 cannot
 * understand...). The handler owns the spool file from then on (also when it fails). If it
 * throws, 0xA700 is answered (0xC000 for a DicomFormatError) and the error name is logged.
 */
export type StoreHandler = (inst: ReceivedInstance) => Promise<number>;

export interface DicomServerOptions {
  aeTitle: string;
  /** Interface to bind, e.g. '127.0.0.1' or '0.0.0.0'. */
  host: string;
  /** 0 = pick a free port (returned by start()). */
  port: number;
  /** Empty or absent = any calling AE. */
  allowedCallingAets?: string[];
  /**
   * Instances are written into journal segments in `<spoolDir>/journal/` (spoolJournal.ts), or into
   * files filled in `<spoolDir>/incoming/` that land as `<spoolDir>/<uuid>.dcm` (spoolWriter.ts).
   */
  spoolDir: string;
  /**
   * The spool journal (on `spoolDir`), when its owner keeps it open past stop() (its records are
   * retired as they are filed, after receiving stopped). Default: one of the server's own, with a
   * 64 MiB reserve (one segment), closed by stop(); nobody releases its records, so once it is
   * full instances go to files (for tests, and callers that read the spool themselves).
   */
  journal?: SpoolJournal;
  /** Concurrent associations; beyond -> A-ASSOCIATE-RJ transient / local limit exceeded. Default 8. */
  maxAssociations?: number;
  /** Max PDU length we announce and accept; a bigger incoming PDU aborts the association. Default 262144. */
  maxPduLength?: number;
  /** Data set size cap; beyond, the association is aborted and the partial file deleted. Default 2 GiB. */
  maxInstanceBytes?: number;
  /**
   * Milliseconds. connect: TCP accept -> complete A-ASSOCIATE-RQ (default 15000);
   * association: idle time between DIMSE messages (default 60000);
   * pdu: silence in the middle of a PDU or message (default 30000).
   * Never counted while we are writing/fsyncing or the handler runs.
   */
  timeouts?: { connect?: number; association?: number; pdu?: number };
  /** Never receives patient identifiers or UIDs: AE titles, addresses, counts, error codes only. */
  logger: Logger;
  onStore: StoreHandler;
}

export interface DicomServerStats {
  /** Open TCP connections (associated or not). */
  connections: number;
  activeAssociations: number;
  associationsAccepted: number;
  associationsRejected: number;
  /** Associations that ended without an A-RELEASE (peer abort, our abort, disconnect, timeout). */
  associationsAborted: number;
  /** Instances durably spooled and handed to onStore. */
  instancesStored: number;
  /** Instances answered with a failure status (write error, refused, handler failure/status). */
  instancesFailed: number;
  /** Partial data sets deleted because the association ended mid-instance. */
  partialsDiscarded: number;
  bytesReceived: number;
}

interface ResolvedOptions {
  aeTitle: string;
  host: string;
  port: number;
  allowedCallingAets: string[];
  spoolDir: string;
  maxAssociations: number;
  maxPduLength: number;
  maxInstanceBytes: number;
  timeouts: { connect: number; association: number; pdu: number };
  logger: Logger;
  onStore: StoreHandler;
}

interface ServerContext {
  opts: ResolvedOptions;
  pool: SpoolPool;
  journal: SpoolJournal;
  stats: Omit<DicomServerStats, 'connections' | 'activeAssociations'>;
  activeAssociations: number;
  stopping: boolean;
  connections: Set<DimseAssociation>;
  /** Store completions and partial-file deletions not finished yet. */
  pending: Set<Promise<unknown>>;
}

/** dcmjs-dimse internals we rely on (0.3.3; see the header comment). */
interface LibraryInternals {
  _processPdu(pdu: Buffer): Promise<void>;
}

/** An accepted presentation context. */
interface AcceptedContext {
  abstractSyntaxUid: string;
  transferSyntaxUid: string;
}

/** The C-STORE whose data set is being received. */
interface Receiving {
  command: Command;
  presentationContextId: number;
  sink: SpoolWriter | DiscardSink;
}

/** Largest non-P-DATA PDU accepted (an A-ASSOCIATE-RQ with many contexts is ~20 KB). */
const MAX_CONTROL_PDU = 256 * 1024;
/** Largest DIMSE command set accepted (a C-STORE-RQ command is ~200 bytes). */
const MAX_COMMAND_BYTES = 64 * 1024;

/** One TCP connection / association. dcmjs-dimse creates the DIMSE state; we own the socket. */
class DimseAssociation extends dimse.Scp {
  // No field may shadow a library property (socket, association, dimse...): with ES2022 class
  // fields they would be reset to undefined after super() returns.
  private readonly ctx: ServerContext;
  private readonly sock: net.Socket;
  private readonly reader: PduReader;
  readonly remoteAddress: string;
  private readonly connectedAt = Date.now();
  lastActivity = Date.now();
  private callingAet = '';
  private calledAet = '';
  associated = false;
  private rqSeen = false;
  ending = false;
  private closed = false;
  private released = false;
  private readonly acceptedContexts = new Map<number, AcceptedContext>();
  /** Fragments of the command set being received, and their context. */
  private commandParts: Buffer[] = [];
  private commandPcId: number | undefined;
  private commandBytes = 0;
  /** The C-STORE whose data set is being received, until its last fragment. */
  private receiving: Receiving | undefined;
  storesInFlight = 0;
  private releaseDeferred = false;
  private instances = 0;
  /** This association's segment of the spool journal (taken at its first instance). */
  private cursor: JournalCursor | undefined;
  private instanceBytes = 0;

  constructor(socket: net.Socket, ctx: ServerContext) {
    super(socket, {});
    this.ctx = ctx;
    this.sock = socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.reader = new PduReader({
      maxLength: (type) => (type === PduType.PDataTf ? ctx.opts.maxPduLength : MAX_CONTROL_PDU),
      onPdu: (type, pdu) => this.onPdu(type, pdu),
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
    return this.reader.midPdu || this.receiving !== undefined || this.commandBytes > 0;
  }

  get connectedAtMs(): number {
    return this.connectedAt;
  }

  // --- input --------------------------------------------------------------------------------
  private onData(chunk: Buffer): void {
    this.lastActivity = Date.now();
    this.ctx.stats.bytesReceived += chunk.length;
    if (this.ending) return;
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
        this.onPData(pdu);
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

  /**
   * Command PDVs are gathered into the command set; data PDVs go straight to the sink of the
   * pending C-STORE (they are views into the PDU, written synchronously). Any PDV out of place
   * aborts the association rather than being mixed into a stored data set.
   */
  private onPData(pdu: Buffer): void {
    for (const pdv of parsePdvs(pdu)) {
      if (this.ending) return;
      const pcId = pdv.presentationContextId;
      const context = this.acceptedContexts.get(pcId);
      if (!context) throw new PduError('PDV on a presentation context that was not accepted');
      if (pdv.isCommand()) {
        if (this.receiving) throw new PduError('command PDV in the middle of a data set');
        if (this.commandBytes > 0 && this.commandPcId !== pcId)
          throw new PduError('command fragments on different contexts');
        this.commandPcId = pcId;
        this.commandBytes += pdv.value.length;
        if (this.commandBytes > MAX_COMMAND_BYTES) throw new PduError('command set too large');
        this.commandParts.push(Buffer.from(pdv.value)); // the PDU buffer is not ours to keep
        if (pdv.isLastFragment()) {
          const command = Buffer.concat(this.commandParts);
          this.commandParts = [];
          this.commandBytes = 0;
          this.onCommand(pcId, context, command);
        }
      } else {
        const receiving = this.receiving;
        if (!receiving) throw new PduError('data PDV without a pending command');
        if (pcId !== receiving.presentationContextId)
          throw new PduError('data set on a different context than its command');
        receiving.sink.write(pdv.value);
        if (pdv.isLastFragment()) {
          this.receiving = undefined;
          this.onStoreReceived(receiving);
        }
      }
    }
  }

  private onCommand(pcId: number, context: AcceptedContext, bytes: Buffer): void {
    let command: Command;
    try {
      command = parseCommand(bytes);
    } catch (err) {
      throw new PduError(err instanceof CommandSetError ? err.message : 'unreadable command set');
    }
    switch (command.commandField) {
      case CommandField.CStoreRq:
        if (!command.hasDataSet) {
          this.ctx.opts.logger.warn('C-STORE without a data set', { callingAet: this.callingAet });
          this.ctx.stats.instancesFailed++;
          this.respond(pcId, command, CommandField.CStoreRsp, Status.CannotUnderstand);
          return;
        }
        this.receiving = { command, presentationContextId: pcId, sink: this.openSink(command, context) };
        return;
      case CommandField.CEchoRq:
        if (command.hasDataSet) throw new PduError('C-ECHO with a data set');
        this.respond(pcId, command, CommandField.CEchoRsp, Status.Success);
        return;
      case CommandField.CCancelRq:
        return; // nothing of ours can be cancelled; C-CANCEL has no response
      default:
        if (command.hasDataSet) {
          throw new PduError(`unsupported DIMSE command 0x${command.commandField.toString(16)} with a data set`);
        }
        if (command.commandField & 0x8000) throw new PduError('unexpected DIMSE response from the requestor');
        this.respond(pcId, command, command.commandField | 0x8000, Status.UnrecognizedOperation);
    }
  }

  /** Sends a response command set (no data set) in one P-DATA-TF and one socket write. */
  private respond(pcId: number, request: Command, commandField: number, status: number): void {
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

  // --- association --------------------------------------------------------------------------
  override associationRequested(association: Association): void {
    try {
      const { opts } = this.ctx;
      this.callingAet = normalizeAet(association.getCallingAeTitle());
      this.calledAet = normalizeAet(association.getCalledAeTitle());
      const decision = decideAssociation(
        this.callingAet,
        this.calledAet,
        opts,
        this.ctx.activeAssociations,
        this.ctx.stopping,
      );
      if (!decision.accept) {
        this.ctx.stats.associationsRejected++;
        opts.logger.warn('association rejected', {
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
        if (answer.result === ContextResult.Accept) {
          this.acceptedContexts.set(id, {
            abstractSyntaxUid: context.getAbstractSyntaxUid(),
            transferSyntaxUid: answer.transferSyntaxUid ?? '',
          });
          accepted++;
        }
      }
      // One operation at a time: the library's receive path holds a single DIMSE message.
      association.setNegotiateAsyncOps(false);
      association.setMaxAsyncOpsInvoked(1);
      association.setMaxAsyncOpsPerformed(1);
      // Announce our own receive limit (the library would send min(requestor's, global max)).
      association.setMaxPduLength(opts.maxPduLength);
      const previous = dimse.Implementation.getMaxPduLength();
      dimse.Implementation.setMaxPduLength(opts.maxPduLength);
      try {
        this.sendAssociationAccept();
      } finally {
        dimse.Implementation.setMaxPduLength(previous);
      }
      this.associated = true;
      this.lastActivity = Date.now();
      this.ctx.activeAssociations++;
      this.ctx.stats.associationsAccepted++;
      opts.logger.info('association accepted', {
        callingAet: this.callingAet,
        calledAet: this.calledAet,
        remoteAddress: this.remoteAddress,
        contextsAccepted: accepted,
        contextsProposed: association.getPresentationContexts().length,
      });
    } catch (err) {
      this.protocolAbort(`association negotiation failed (${errorCode(err)})`);
    }
  }

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

  /** A-ABORT received from the peer. */
  override abort(_source: number, _reason: number): void {
    this.ctx.opts.logger.info('association aborted by peer', {
      callingAet: this.callingAet,
      remoteAddress: this.remoteAddress,
    });
    this.ending = true;
    this.reader.stop();
    this.sock.destroy();
  }

  // --- C-STORE ------------------------------------------------------------------------------
  /** Where the data set of a C-STORE goes: the spool, or nowhere when it will be refused. */
  private openSink(command: Command, context: AcceptedContext): SpoolWriter | DiscardSink {
    const { opts } = this.ctx;
    const sopClassUid = command.affectedSopClassUid;
    const sopInstanceUid = command.affectedSopInstanceUid;
    const transferSyntaxUid = trimUid(context.transferSyntaxUid);
    const onOverflow = (): void => {
      this.ctx.stats.instancesFailed++;
      this.protocolAbort('instance exceeds maxInstanceBytes');
    };
    if (!isValidUid(sopClassUid) || !isValidUid(sopInstanceUid)) {
      return new DiscardSink(Status.CannotUnderstand, opts.maxInstanceBytes, onOverflow);
    }
    if (sopClassUid !== trimUid(context.abstractSyntaxUid)) {
      return new DiscardSink(Status.SopClassNotSupported, opts.maxInstanceBytes, onOverflow);
    }
    this.cursor ??= new JournalCursor(this.ctx.journal);
    return new SpoolWriter({
      spoolDir: opts.spoolDir,
      pool: this.ctx.pool,
      cursor: this.cursor,
      journal: this.ctx.journal,
      transferSyntaxUid,
      meta: buildFileMeta({ sopClassUid, sopInstanceUid, transferSyntaxUid, sourceAeTitle: this.callingAet }),
      maxBytes: opts.maxInstanceBytes,
      onOverflow,
      alone: () => this.ctx.activeAssociations <= 1,
    });
  }

  /** The last data fragment arrived: make it durable, hand it on, then answer. */
  private onStoreReceived({ command, presentationContextId, sink }: Receiving): void {
    this.storesInFlight++;
    const done = (async () => {
      let status: number;
      try {
        status = await this.completeStore(command, sink);
      } catch (err) {
        this.ctx.opts.logger.error('C-STORE processing failed', { code: errorCode(err), callingAet: this.callingAet });
        status = Status.OutOfResources;
      }
      try {
        if (!isStored(status)) this.ctx.stats.instancesFailed++;
        this.respond(presentationContextId, command, CommandField.CStoreRsp, status);
      } catch (err) {
        this.debug('C-STORE answer failed', { code: errorCode(err) });
      }
      this.storesInFlight--;
      this.lastActivity = Date.now();
      if (this.releaseDeferred && this.storesInFlight === 0) {
        this.releaseDeferred = false;
        this.completeRelease();
      }
    })()
      .catch((err: unknown) => this.debug('C-STORE completion failed', { code: errorCode(err) }))
      .finally(() => this.ctx.pending.delete(done));
    this.ctx.pending.add(done);
  }

  private async completeStore(command: Command, sink: SpoolWriter | DiscardSink): Promise<number> {
    const { opts } = this.ctx;
    if (sink instanceof DiscardSink) {
      opts.logger.warn('C-STORE refused', { status: sink.status, callingAet: this.callingAet });
      return sink.status;
    }
    let spoolPath: string;
    try {
      spoolPath = await sink.finish();
    } catch (err) {
      opts.logger.error('spool write failed; answering out of resources', {
        code: errorCode(err),
        callingAet: this.callingAet,
      });
      return Status.OutOfResources;
    }
    if (this.ending || this.closed) {
      // Nobody can receive our answer: drop the file, the sender will send the instance again.
      await sink.discard();
      this.ctx.stats.partialsDiscarded++;
      return Status.OutOfResources;
    }
    this.ctx.stats.instancesStored++;
    this.instances++;
    this.instanceBytes += sink.bytes;
    const instance: ReceivedInstance = {
      spoolPath,
      callingAet: this.callingAet,
      calledAet: this.calledAet,
      remoteAddress: this.remoteAddress,
      sopClassUid: command.affectedSopClassUid,
      sopInstanceUid: command.affectedSopInstanceUid,
      transferSyntaxUid: sink.transferSyntaxUid,
      byteLength: sink.bytes,
    };
    let status: unknown;
    try {
      status = await opts.onStore(instance);
    } catch (err) {
      const formatError = (err as { name?: unknown } | null)?.name === 'DicomFormatError';
      opts.logger.error('store handler failed', { error: errorCode(err), callingAet: this.callingAet });
      return formatError ? Status.CannotUnderstand : Status.OutOfResources;
    }
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 0 || status > 0xffff) {
      opts.logger.error('store handler returned an invalid status', { callingAet: this.callingAet });
      return Status.OutOfResources;
    }
    return status;
  }

  // --- teardown -----------------------------------------------------------------------------
  /** Protocol violation, limit exceeded or timeout: A-ABORT (when associated) and close. */
  protocolAbort(why: string): void {
    if (this.ending || this.closed) return;
    this.ctx.opts.logger.warn('aborting association', {
      reason: why,
      callingAet: this.callingAet,
      remoteAddress: this.remoteAddress,
    });
    this.ending = true;
    this.reader.stop();
    this.dropPartial();
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

  /** Server shutdown. */
  shutdown(): void {
    if (this.closed) return;
    if (!this.ending && this.associated) {
      this.sock.write(abortPdu(AbortSource.ServiceProvider, AbortReason.NotSpecified), () => undefined);
    }
    this.ending = true;
    this.reader.stop();
    this.dropPartial();
    this.sock.destroy();
  }

  private dropPartial(): void {
    const sink = this.receiving?.sink;
    if (!sink) return;
    this.receiving = undefined;
    if (sink instanceof SpoolWriter) this.ctx.stats.partialsDiscarded++;
    const p = sink.discard().finally(() => this.ctx.pending.delete(p));
    this.ctx.pending.add(p);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    this.reader.stop();
    this.cursor?.end();
    if (this.receiving) {
      this.ctx.opts.logger.warn('connection closed in the middle of an instance', {
        callingAet: this.callingAet,
        remoteAddress: this.remoteAddress,
      });
      this.dropPartial();
    }
    if (this.associated) {
      this.ctx.activeAssociations--;
      if (!this.released) this.ctx.stats.associationsAborted++;
      this.ctx.opts.logger.info('association closed', {
        callingAet: this.callingAet,
        remoteAddress: this.remoteAddress,
        released: this.released,
        instances: this.instances,
        bytes: this.instanceBytes,
      });
    }
    this.ctx.connections.delete(this);
  }

  private debug(msg: string, meta?: object): void {
    this.ctx.opts.logger.debug(msg, meta);
  }
}

/** The DICOM receive node's network side. */
export class DicomServer {
  private readonly ctx: ServerContext;
  private server: net.Server | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private stopPromise: Promise<void> | undefined;
  private recovered: Promise<void> | undefined;
  private readonly ownsJournal: boolean;

  constructor(options: DicomServerOptions) {
    this.ownsJournal = !options.journal;
    const opts: ResolvedOptions = {
      aeTitle: options.aeTitle,
      host: options.host,
      port: options.port,
      allowedCallingAets: [...(options.allowedCallingAets ?? [])],
      spoolDir: options.spoolDir,
      maxAssociations: options.maxAssociations ?? 8,
      maxPduLength: options.maxPduLength ?? 262144,
      maxInstanceBytes: options.maxInstanceBytes ?? 2 * 1024 * 1024 * 1024,
      timeouts: {
        connect: options.timeouts?.connect ?? 15_000,
        association: options.timeouts?.association ?? 60_000,
        pdu: options.timeouts?.pdu ?? 30_000,
      },
      logger: options.logger,
      onStore: options.onStore,
    };
    const aet = normalizeAet(opts.aeTitle);
    if (!isValidAeTitle(aet)) throw new RangeError('aeTitle must be 1-16 characters');
    if (!Number.isInteger(opts.maxAssociations) || opts.maxAssociations < 1)
      throw new RangeError('maxAssociations must be >= 1');
    // PS3.8: a receive limit below 4096 is not interoperable; the PDU length field is 32 bits.
    if (!Number.isInteger(opts.maxPduLength) || opts.maxPduLength < 4096 || opts.maxPduLength > 0xffffffff) {
      throw new RangeError('maxPduLength must be between 4096 and 4294967295');
    }
    if (!(opts.maxInstanceBytes > 0)) throw new RangeError('maxInstanceBytes must be > 0');
    silenceLibraryLogs();
    this.ctx = {
      opts,
      // Refill when fewer than 4 ready files per receiving association (plus 4) are left.
      pool: new SpoolPool(opts.spoolDir, () => 4 * (Math.min(opts.maxAssociations, this.ctx.activeAssociations) + 1)),
      journal: options.journal ?? new SpoolJournal(options.spoolDir, { reserveBytes: 64 * 1024 * 1024 }),
      stats: {
        associationsAccepted: 0,
        associationsRejected: 0,
        associationsAborted: 0,
        instancesStored: 0,
        instancesFailed: 0,
        partialsDiscarded: 0,
        bytesReceived: 0,
      },
      activeAssociations: 0,
      stopping: false,
      connections: new Set(),
      pending: new Set(),
    };
  }

  get stats(): DicomServerStats {
    return {
      ...this.ctx.stats,
      connections: this.ctx.connections.size,
      activeAssociations: this.ctx.activeAssociations,
    };
  }

  /**
   * Makes the spool ready (once): complete files a crash left in incoming/ go to the inbox,
   * partial ones (never acknowledged: the senders resend them) are deleted. start() calls it; the
   * owner of the inbox calls it first when it wants to scan the inbox before receiving starts.
   */
  recoverSpool(): Promise<void> {
    this.recovered ??= (async () => {
      const { opts } = this.ctx;
      await fs.promises.mkdir(opts.spoolDir, { recursive: true });
      const { recovered, partials } = await recoverSpool(opts.spoolDir);
      const journal = await this.ctx.journal.recover();
      if (journal.records.length > 0) {
        opts.logger.info('spool journal: acknowledged instances left by a previous run', {
          count: journal.records.length,
        });
      }
      if (partials > 0) opts.logger.warn('deleted partial files left by a previous run', { count: partials });
      if (recovered > 0)
        opts.logger.info('moved complete files left by a previous run to the spool', { count: recovered });
    })();
    return this.recovered;
  }

  async start(): Promise<{ port: number }> {
    if (this.server) throw new Error('DicomServer already started');
    const { opts } = this.ctx;
    await this.recoverSpool();
    await this.ctx.pool.fill();
    const t0 = Date.now();
    const missing = this.ctx.journal.missingBytes();
    if (missing > 0) {
      opts.logger.info('preparing the spool reserve before listening (once, on a new spool)', {
        mb: Math.round(missing / 1024 / 1024),
      });
    }
    const reserve = await this.ctx.journal.prepare();
    if (reserve.preparedBytes > 0) {
      opts.logger.info('spool reserve prepared (once, on a new spool)', {
        mb: Math.round(reserve.preparedBytes / 1024 / 1024),
        ms: Date.now() - t0,
      });
    }
    if (reserve.error === 'LOWDISK') {
      opts.logger.warn(
        'spool reserve left incomplete to keep disk space free (1/20 of the disk, 1-10 GiB); instances beyond it go to files',
      );
    } else if (reserve.error) {
      opts.logger.warn('spool reserve incomplete: instances beyond it go to files', { code: reserve.error });
    }
    const server = net.createServer((socket) => this.onConnection(socket));
    // Unassociated sockets count too; keep a margin for peers we must answer with a reject.
    server.maxConnections = opts.maxAssociations * 2 + 4;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => opts.logger.error('DICOM listener error', { code: errorCode(err) }));
    const { timeouts } = opts;
    const tick = Math.max(
      100,
      Math.min(1000, Math.floor(Math.min(timeouts.connect, timeouts.association, timeouts.pdu) / 4)),
    );
    this.sweeper = setInterval(() => this.sweepTimeouts(), tick);
    this.sweeper.unref();
    const port = (server.address() as net.AddressInfo).port;
    opts.logger.info('DICOM node listening', { aeTitle: opts.aeTitle, host: opts.host, port });
    return { port };
  }

  /** Stops accepting, waits until the stores already received are answered, then closes everything. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    const { ctx } = this;
    ctx.stopping = true;
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.allSettled([...ctx.pending]);
    for (const a of [...ctx.connections]) a.shutdown();
    while (ctx.pending.size > 0) await Promise.allSettled([...ctx.pending]);
    await closed;
    await ctx.pool.close();
    if (this.ownsJournal) await ctx.journal.close();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    ctx.opts.logger.info('DICOM node stopped', { ...this.stats });
  }

  private onConnection(socket: net.Socket): void {
    if (this.ctx.stopping) {
      socket.destroy();
      return;
    }
    try {
      const association = new DimseAssociation(socket, this.ctx);
      this.ctx.connections.add(association);
    } catch (err) {
      this.ctx.opts.logger.error('could not set up connection', { code: errorCode(err) });
      socket.destroy();
    }
  }

  private sweepTimeouts(): void {
    const now = Date.now();
    const { timeouts } = this.ctx.opts;
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
        this.ctx.opts.logger.error('timeout sweep failed', { code: errorCode(err) });
      }
    }
  }
}
