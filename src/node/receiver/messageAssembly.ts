// DIMSE message assembly (PS3.8 9.3.5, PS3.7 9.3): the PDVs of P-DATA-TF PDUs in, complete
// command sets and data set fragments out, validated in sequence.
//
// dcmjs-dimse's own path (0.3.3) silently mixes whatever arrives into the message being built, so
// it is not used: here a data PDV with no pending command, a command PDV in the middle of a data
// set, fragments of one message on two presentation contexts, or a PDV on a context that was not
// accepted throw PduError, and the association aborts rather than store bytes that do not belong
// to the instance. Data PDVs are never copied: each fragment is a view into its PDU, handed to
// the consumer of the pending command's data set (the C-STORE service's sink) and written before
// the next one is read.
import { CommandSetError, parseCommand, type Command } from '../../dimse/commandSet.js';
import { parsePdvs } from '../../dimse/pdataTf.js';
import { PduError } from '../../dimse/pduReader.js';

/** Largest DIMSE command set accepted, in bytes (a C-STORE-RQ command is ~200 bytes). */
const MAX_COMMAND_BYTES = 64 * 1024;

/** A presentation context accepted at negotiation (UIDs as negotiated, possibly padded). */
export interface AcceptedContext {
  abstractSyntaxUid: string;
  transferSyntaxUid: string;
}

/** One complete command set, received on an accepted presentation context. */
export interface CommandMessage {
  presentationContextId: number;
  context: AcceptedContext;
  command: Command;
}

/** Takes the data set that follows a command, fragment by fragment. */
export interface DataSetConsumer {
  /** One fragment: a view into the PDU, valid during the call only. */
  write(fragment: Buffer): void;
  /** The last fragment was written. */
  end(): void;
  /** The data set will never be complete (the association ends): let go of what was written. */
  abandon(): void;
}

/**
 * Serves one command. When the command announces a data set it returns the consumer for it (or
 * throws PduError to refuse it: the association aborts); otherwise undefined.
 */
export type CommandHandler = (message: CommandMessage) => DataSetConsumer | undefined;

/**
 * Reassembles one association's DIMSE messages from its P-DATA-TF PDUs (PS3.8 9.3.5: PDVs and their message
 * control headers; PS3.7 9.3 command sets up to 64 KiB), handing each command to `onCommand` and each data
 * set fragment, uncopied, to the consumer it returned. push() throws PduError for a PDV out of sequence or on
 * a context not accepted (the association then aborts).
 */
export class MessageAssembly {
  /** Fragments of the command set being received, and their context. */
  private commandParts: Buffer[] = [];
  private commandPcId: number | undefined;
  private commandBytes = 0;
  /** The data set being received, until its last fragment. */
  private dataSet: { presentationContextId: number; consumer: DataSetConsumer } | undefined;
  private stopped = false;

  /**
   * `contexts`: the association's accepted presentation contexts by ID (read at each PDV).
   * `onCommand`: called with each complete command set.
   */
  constructor(
    private readonly contexts: ReadonlyMap<number, AcceptedContext>,
    private readonly onCommand: CommandHandler,
  ) {}

  /** True while a command set or a data set is partially received. */
  get midMessage(): boolean {
    return this.dataSet !== undefined || this.commandBytes > 0;
  }

  /** True while a data set is being received. */
  get receivingDataSet(): boolean {
    return this.dataSet !== undefined;
  }

  /**
   * Feeds one complete P-DATA-TF PDU (header included). Throws PduError on a malformed PDU or a
   * PDV out of place, and when a handler refuses a message; the caller aborts the association.
   */
  push(pdu: Buffer): void {
    for (const pdv of parsePdvs(pdu)) {
      if (this.stopped) return;
      const pcId = pdv.presentationContextId;
      const context = this.contexts.get(pcId);
      if (!context) throw new PduError('PDV on a presentation context that was not accepted');
      if (pdv.isCommand()) {
        if (this.dataSet) throw new PduError('command PDV in the middle of a data set');
        if (this.commandBytes > 0 && this.commandPcId !== pcId)
          throw new PduError('command fragments on different contexts');
        this.commandPcId = pcId;
        this.commandBytes += pdv.value.length;
        if (this.commandBytes > MAX_COMMAND_BYTES) throw new PduError('command set too large');
        this.commandParts.push(Buffer.from(pdv.value)); // the PDU buffer is not ours to keep
        if (pdv.isLastFragment()) {
          const bytes = Buffer.concat(this.commandParts);
          this.commandParts = [];
          this.commandBytes = 0;
          this.dispatch(pcId, context, bytes);
        }
      } else {
        const dataSet = this.dataSet;
        if (!dataSet) throw new PduError('data PDV without a pending command');
        if (pcId !== dataSet.presentationContextId)
          throw new PduError('data set on a different context than its command');
        dataSet.consumer.write(pdv.value);
        // The write may have ended the association (the instance exceeded its size limit).
        if (this.stopped) return;
        if (pdv.isLastFragment()) {
          this.dataSet = undefined;
          dataSet.consumer.end();
        }
      }
    }
  }

  private dispatch(presentationContextId: number, context: AcceptedContext, bytes: Buffer): void {
    let command: Command;
    try {
      command = parseCommand(bytes);
    } catch (err) {
      throw new PduError(err instanceof CommandSetError ? err.message : 'unreadable command set');
    }
    const consumer = this.onCommand({ presentationContextId, context, command });
    if (command.hasDataSet) {
      if (!consumer) throw new PduError('a data set for a command that takes none');
      this.dataSet = { presentationContextId, consumer };
    }
  }

  /**
   * Stops assembling (the association ends): later PDVs, also the rest of the PDU being read, are
   * ignored, and the data set being received, if any, is abandoned. Returns whether there was one.
   */
  stop(): boolean {
    this.stopped = true;
    this.commandParts = [];
    this.commandBytes = 0;
    const dataSet = this.dataSet;
    this.dataSet = undefined;
    dataSet?.consumer.abandon();
    return dataSet !== undefined;
  }
}
