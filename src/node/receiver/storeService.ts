// The services the receiver provides on one association (PS3.4 Annex A Verification, Annex B
// Storage, SCP role): C-ECHO, and C-STORE into a sink the node supplies (storeSink.ts). Any other
// command is answered 0x0211 (unrecognized operation), or aborts the association when it carries
// a data set. Statuses come from the shared table (src/dimse/status.ts).
//
// A C-STORE is answered only after its sink made the instance durable and the store handler took
// it on: Success then means the instance cannot be lost. A data set that will be refused anyway
// (invalid UIDs, a SOP class other than its context's) is counted and dropped, never stored.
import { CommandField, type Command } from '../../dimse/commandSet.js';
import { PduError } from '../../dimse/pduReader.js';
import { Status, isStored } from '../../dimse/status.js';
import { isValidUid, trimUid } from '../../core/dicom/uid.js';
import { errorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { CommandMessage, DataSetConsumer } from './messageAssembly.js';
import type { ReceiverStats } from './receiverStats.js';
import type { AssociationInfo, AssociationSinks, IncomingInstance, StoreHandler, StoreSink } from './storeSink.js';

/** The association as its services see it. */
export interface ServicePeer extends AssociationInfo {
  /** Whether an answer can still reach the peer (false once the association is ending). */
  readonly answerable: boolean;
  /** Sends a response command set (no data set) on the request's presentation context. */
  respond(presentationContextId: number, request: Command, commandField: number, status: number): void;
  /** Aborts the association (A-ABORT) for a limit exceeded; `why` is logged. */
  abortAssociation(why: string): void;
  /** An instance was stored and handed on (`bytes`: its data set), for the association's own counts. */
  instanceStored(bytes: number): void;
  /** A store was answered (or could not be): the association may complete a deferred release. */
  storeSettled(): void;
}

export interface StoreServiceOptions<R> {
  /** This association's sinks (from the node's StoreSinkFactory). */
  sinks: AssociationSinks<R>;
  onStore: StoreHandler<R>;
  /** Data set size cap in bytes; beyond, the association is aborted and the partial discarded. */
  maxInstanceBytes: number;
  /** Never receives patient identifiers or UIDs. */
  logger: Logger;
  stats: ReceiverStats;
  /** Registers work that stopping the receiver must wait for (store completions, discards). */
  track(work: Promise<unknown>): void;
}

/**
 * One association's C-ECHO and C-STORE SCP (see above): onCommand is its MessageAssembly CommandHandler, and
 * throws PduError only for a message that must abort the association (a C-ECHO or unsupported command with a
 * data set, a response from the requestor). A data set above `maxInstanceBytes` aborts the association
 * through the peer; sink and store handler failures become failure statuses (src/dimse/status.ts), never
 * exceptions.
 */
export class StoreService<R> {
  /** C-STOREs whose data set arrived and that are not answered yet. */
  private pending = 0;

  /**
   * `peer`: the association it answers on; `opts`: its sinks, store handler, size cap (bytes), logger,
   * counters and the tracker of work the receiver's stop waits for.
   */
  constructor(
    private readonly peer: ServicePeer,
    private readonly opts: StoreServiceOptions<R>,
  ) {}

  get storesInFlight(): number {
    return this.pending;
  }

  /** The association ended: its sinks are closed (stores still finishing settle on their own). */
  close(): void {
    this.opts.sinks.close();
  }

  get maxInstanceBytes(): number {
    return this.opts.maxInstanceBytes;
  }

  /**
   * Serves one command (a MessageAssembly CommandHandler): returns the consumer of the data set
   * a C-STORE announces; throws PduError for a message that must abort the association.
   */
  onCommand = ({ presentationContextId: pcId, context, command }: CommandMessage): DataSetConsumer | undefined => {
    switch (command.commandField) {
      case CommandField.CStoreRq:
        if (!command.hasDataSet) {
          this.opts.logger.warn('C-STORE without a data set', { callingAet: this.peer.callingAet });
          this.opts.stats.instancesFailed++;
          this.peer.respond(pcId, command, CommandField.CStoreRsp, Status.CannotUnderstand);
          return undefined;
        }
        return this.receive(pcId, command, trimUid(context.abstractSyntaxUid), trimUid(context.transferSyntaxUid));
      case CommandField.CEchoRq:
        if (command.hasDataSet) throw new PduError('C-ECHO with a data set');
        this.peer.respond(pcId, command, CommandField.CEchoRsp, Status.Success);
        return undefined;
      case CommandField.CCancelRq:
        return undefined; // nothing of ours can be cancelled; C-CANCEL has no response
      default:
        if (command.hasDataSet) {
          throw new PduError(`unsupported DIMSE command 0x${command.commandField.toString(16)} with a data set`);
        }
        if (command.commandField & 0x8000) throw new PduError('unexpected DIMSE response from the requestor');
        this.peer.respond(pcId, command, command.commandField | 0x8000, Status.UnrecognizedOperation);
        return undefined;
    }
  };

  /** The consumer of one C-STORE's data set: its sink, or nothing when it will be refused. */
  private receive(
    pcId: number,
    command: Command,
    abstractSyntaxUid: string,
    transferSyntaxUid: string,
  ): IncomingStore<R> {
    const sopClassUid = command.affectedSopClassUid;
    const sopInstanceUid = command.affectedSopInstanceUid;
    let refusal: number | undefined;
    if (!isValidUid(sopClassUid) || !isValidUid(sopInstanceUid)) refusal = Status.CannotUnderstand;
    else if (sopClassUid !== abstractSyntaxUid) refusal = Status.SopClassNotSupported;
    const instance: IncomingInstance = {
      callingAet: this.peer.callingAet,
      calledAet: this.peer.calledAet,
      remoteAddress: this.peer.remoteAddress,
      sopClassUid,
      sopInstanceUid,
      transferSyntaxUid,
    };
    let sink: StoreSink<R> | undefined;
    let openError: unknown;
    if (refusal === undefined) {
      try {
        sink = this.opts.sinks.open(instance);
      } catch (err) {
        openError = err;
      }
    }
    return new IncomingStore(this, pcId, command, instance, refusal, sink, openError);
  }

  /** Over the size cap: counted as failed, and the association is aborted (once per instance). */
  overflow(): void {
    this.opts.stats.instancesFailed++;
    // Named as the admin sets it (config maxInstanceMB, --max-instance-mb), not by this option.
    const mib = Math.round((this.opts.maxInstanceBytes / 1024 / 1024) * 100) / 100;
    this.peer.abortAssociation(`instance exceeds maxInstanceMB (${mib} MiB)`);
  }

  /** An abandoned partial instance: its sink (when it had one) lets go of what was written. */
  abandoned(sink: StoreSink<R> | undefined): void {
    if (!sink) return;
    this.opts.stats.partialsDiscarded++;
    this.opts.track(sink.discard());
  }

  /** The last fragment arrived: make the instance durable, hand it on, then answer. */
  completed(store: IncomingStore<R>): void {
    this.pending++;
    this.opts.stats.storesInFlight++;
    const receivedAt = performance.now();
    const done = (async () => {
      let status: number;
      try {
        status = await this.complete(store);
      } catch (err) {
        this.opts.logger.error('C-STORE processing failed', { code: errorCode(err), callingAet: this.peer.callingAet });
        this.opts.stats.error(`C-STORE processing failed (${errorCode(err)})`);
        status = Status.OutOfResources;
      }
      try {
        if (!isStored(status)) this.opts.stats.instancesFailed++;
        if (this.peer.answerable) {
          this.peer.respond(store.presentationContextId, store.command, CommandField.CStoreRsp, status);
          this.opts.stats.acknowledged(performance.now() - receivedAt);
        }
      } catch (err) {
        this.opts.logger.debug('C-STORE answer failed', { code: errorCode(err) });
      }
      this.pending--;
      this.opts.stats.storesInFlight--;
      this.peer.storeSettled();
    })().catch((err: unknown) => this.opts.logger.debug('C-STORE completion failed', { code: errorCode(err) }));
    this.opts.track(done);
  }

  private async complete(store: IncomingStore<R>): Promise<number> {
    const { logger, stats } = this.opts;
    const callingAet = this.peer.callingAet;
    if (store.refusal !== undefined) {
      logger.warn('C-STORE refused', { status: store.refusal, callingAet });
      return store.refusal;
    }
    let ref: R;
    try {
      if (!store.sink) throw store.openError;
      ref = await store.sink.finish();
    } catch (err) {
      logger.error('instance could not be made durable; answering out of resources', {
        code: errorCode(err),
        callingAet,
      });
      stats.error(`instance could not be made durable (${errorCode(err)})`);
      return Status.OutOfResources;
    }
    if (!this.peer.answerable) {
      // Nobody can receive our answer: drop the instance, the sender will send it again.
      await store.sink.discard();
      stats.partialsDiscarded++;
      return Status.OutOfResources;
    }
    stats.instancesStored++;
    this.peer.instanceStored(store.bytes);
    let status: unknown;
    try {
      status = await this.opts.onStore({ ...store.instance, ref, byteLength: store.bytes });
    } catch (err) {
      const formatError = (err as { name?: unknown } | null)?.name === 'DicomFormatError';
      logger.error('store handler failed', { error: errorCode(err), callingAet });
      stats.error(`store handler failed (${errorCode(err)})`);
      return formatError ? Status.CannotUnderstand : Status.OutOfResources;
    }
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 0 || status > 0xffff) {
      logger.error('store handler returned an invalid status', { callingAet });
      stats.error('store handler returned an invalid status');
      return Status.OutOfResources;
    }
    return status;
  }
}

/** One C-STORE's data set on its way in: counted against the cap, written to its sink. */
class IncomingStore<R> implements DataSetConsumer {
  /** Data set bytes received. */
  bytes = 0;
  private overflowed = false;

  constructor(
    private readonly service: StoreService<R>,
    readonly presentationContextId: number,
    readonly command: Command,
    readonly instance: IncomingInstance,
    /** The status it will be refused with; no sink then. */
    readonly refusal: number | undefined,
    readonly sink: StoreSink<R> | undefined,
    /** Why no sink could be opened (answered 0xA700). */
    readonly openError: unknown,
  ) {}

  write(fragment: Buffer): void {
    this.bytes += fragment.length;
    if (this.overflowed) return;
    if (this.bytes > this.service.maxInstanceBytes) {
      this.overflowed = true;
      this.service.overflow();
      return;
    }
    this.sink?.write(fragment);
  }

  end(): void {
    // Over the cap, the association is being aborted: never make a truncated instance durable.
    if (this.overflowed) this.abandon();
    else this.service.completed(this);
  }

  abandon(): void {
    this.service.abandoned(this.sink);
  }
}
