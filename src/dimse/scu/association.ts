// The requesting side of one DICOM association (PS3.8 9, PS3.7 9): connect, negotiate, send DIMSE
// requests and receive their responses, release or abort; with every timer a sender needs and
// one precise outcome when the peer rejects, aborts, closes or goes silent.
//
// Shared by every SCU (C-STORE forwarding, C-ECHO; C-FIND and C-MOVE later). It owns the whole
// transport: ACSE PDUs from acse.ts, P-DATA-TF framing from pdataTf.ts, command sets from
// commandSet.ts, the PDU stream from pduReader.ts; dcmjs-dimse's Client is not used (it needs a
// data set as one Buffer, transcodes silently, and its abort/close events are unreliable:
// docs/research/dcmjs-dimse.md sections 2, 3, 8).
//
// Data sets are sent from a DataSetSource chunk by chunk, each chunk written out (flushed to the
// system) before the next is read, so memory does not grow with the instance's size and the
// source may reuse one buffer. One request is outstanding at a time (asynchronous operations are not
// proposed, PS3.7 D.3.3.3); a request may get any number of pending responses before its final
// one (C-FIND identifiers, C-MOVE sub-operation counts).
import type net from 'node:net';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/fileMeta.js';
import { describeSystemError } from '../../errors.js';
import {
  ContextResult,
  DICOM_APPLICATION_CONTEXT,
  RejectResult,
  checkReleasePdu,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  describeAbort,
  describeReject,
  encodeAbort,
  encodeAssociateRq,
  encodeReleaseRp,
  encodeReleaseRq,
  type AbortInfo,
  type AssociateAc,
  type AssociateRj,
  type RoleSelection,
} from '../acse.js';
import {
  CommandField,
  CommandSetError,
  commandPdu,
  encodeRequest,
  parseResponse,
  type RequestFields,
  type ResponseCommand,
} from '../commandSet.js';
import { AbortReason, AbortSource, PdvControl, parsePdvs, pdvPduHeader } from '../pdataTf.js';
import { PduError, PduReader, PduType } from '../pduReader.js';
import { Status } from '../status.js';
import { describeTlsError } from '../tls.js';
import type { DataSetSource } from './dataSetSource.js';
import { tcpSocketFactory, type SocketFactory } from './socketFactory.js';

/** Timers of one association, all in ms. */
export interface ScuTimeouts {
  /** TCP (and TLS handshake) connect (default 60 000). */
  connectMs?: number;
  /** Wait for the A-ASSOCIATE-AC/RJ after sending the RQ (default 30 000). */
  associateMs?: number;
  /**
   * Longest silence while we wait for the peer: a response, the A-RELEASE-RP, or the peer taking
   * the bytes of a data set we send (default 60 000).
   */
  silenceMs?: number;
  /** Hard cap on the association's whole life, connect to close; none by default. */
  overallMs?: number;
}

export interface ScuAssociationOptions {
  host: string;
  port: number;
  callingAeTitle: string;
  calledAeTitle: string;
  /** Proposed in this order with IDs 1, 3, 5... (at most 128). */
  presentationContexts: { abstractSyntaxUid: string; transferSyntaxUids: string[] }[];
  /** SCP/SCU role selection sub-items to propose (e.g. for C-GET); none by default. */
  roleSelections?: RoleSelection[];
  /** Largest P-DATA-TF PDU we accept, announced in the RQ (bytes, default 262 144). */
  maxPduLength?: number;
  /** Largest P-DATA-TF PDU we send even when the peer accepts more or has no limit (bytes, default 262 144). */
  maxSendPduLength?: number;
  /** Largest data set we accept in a response (a C-FIND identifier) (bytes, default 16 MiB). */
  maxResponseDataSetBytes?: number;
  /** Default: plain TCP with Nagle off (tcpSocketFactory). */
  socketFactory?: SocketFactory;
  timeouts?: ScuTimeouts;
  /** How the peer is named in messages (default "AET@host:port"). */
  peerLabel?: string;
}

/** Why an association ended before its work was done. */
export type AssociationFailureKind =
  /** TCP/TLS connection could not be made (refused, unreachable, timed out). */
  | 'connect'
  /** A-ASSOCIATE-RJ (see `permanent`). */
  | 'rejected'
  /** The peer sent A-ABORT. */
  | 'aborted'
  /** The connection closed or failed without an A-ABORT. */
  | 'closed'
  /** A timer ran out (association, silence, overall); we aborted. */
  | 'timeout'
  /** The peer broke the protocol (garbage, an unexpected PDU or message); we aborted. */
  | 'protocol'
  /** Our data set source failed (a file that vanished or shrank); we aborted. */
  | 'source'
  /** Our side ended it: abort() was called, an AE title could not be encoded, an onPending handler threw. */
  | 'local';

/** The outcome of a failed association, as one log-safe line (no identifiers). */
export class AssociationError extends Error {
  override name = 'AssociationError';
  /**
   * `message`: one log-safe line; `kind`: how it failed; `permanent`: retrying will not help (an
   * A-ASSOCIATE-RJ permanent rejection, PS3.8 9.3.4); `detail`: the reject or abort fields, or the cause.
   */
  constructor(
    message: string,
    readonly kind: AssociationFailureKind,
    /** True only for a permanent rejection: trying again will not help. */
    readonly permanent = false,
    readonly detail: { reject?: AssociateRj; abort?: AbortInfo; cause?: unknown } = {},
  ) {
    super(message);
  }
}

/** A proposed presentation context and the peer's answer. */
export interface NegotiatedContext {
  id: number;
  abstractSyntaxUid: string;
  proposedTransferSyntaxUids: readonly string[];
  /** ContextResult (acse.ts); NoReason when the peer did not answer it. */
  result: number;
  /** The accepted transfer syntax ('' unless accepted). */
  transferSyntaxUid: string;
}

/** One DIMSE request to send. */
export interface DimseRequest {
  /** An accepted presentation context. */
  contextId: number;
  /** The command's fields; Message ID and Command Data Set Type are set by the association. */
  command: Omit<RequestFields, 'messageId' | 'hasDataSet'>;
  /** The data set (C-STORE) or identifier (C-FIND, C-MOVE), if any. */
  dataSet?: DataSetSource;
  /** Called for each pending response (status 0xFF00/0xFF01) before the final one. May not throw. */
  onPending?: (response: DimseResponse) => void;
}

/** A response as received. */
export interface DimseResponse {
  contextId: number;
  command: ResponseCommand;
  /** The response's data set (a C-FIND identifier...), when it has one. */
  dataSet?: Buffer;
}

type State = 'connecting' | 'requesting' | 'established' | 'releasing' | 'closed';

interface Outstanding {
  messageId: number;
  contextId: number;
  /** cancel() was called before the request was fully sent: send the C-CANCEL-RQ after it. */
  cancelWanted?: boolean;
  onPending?: (response: DimseResponse) => void;
  sent: boolean;
  final?: DimseResponse;
  resolve(r: DimseResponse): void;
  reject(e: AssociationError): void;
}

/** A response being received: its command, then its data set's PDVs. */
interface Incoming {
  contextId: number;
  command: ResponseCommand;
  parts: Buffer[];
  bytes: number;
}

const DEFAULT_MAX_PDU = 262_144;
const MAX_COMMAND_BYTES = 64 * 1024;
/** Data set chunks are read at about this size (a whole number of PDVs). */
const CHUNK_TARGET = 256 * 1024;

/**
 * One association as requestor. Open with `ScuAssociation.open()`; then `request()` (one at a
 * time), and `release()` or `abort()`. Any failure (rejection, abort, close, timeout, protocol
 * error) ends the association: the pending operation rejects with an AssociationError, and so
 * does every later request().
 */
export class ScuAssociation {
  private state: State = 'connecting';
  private socket: net.Socket | undefined;
  private readonly reader: PduReader;
  private readonly label: string;
  private readonly timeouts: Required<Omit<ScuTimeouts, 'overallMs'>> & { overallMs?: number };
  private readonly maxPdu: number;
  private readonly maxResponseData: number;
  private failure: AssociationError | undefined;
  private ac: AssociateAc | undefined;
  private negotiated: NegotiatedContext[] = [];
  private nextMessageId = 1;
  /** Final responses received on this association (0: the peer has answered nothing yet). */
  private finalResponses = 0;
  private outstanding: Outstanding | undefined;
  private incoming: Incoming | undefined;
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  /** The open() / release() step waiting on the peer. */
  private step: { resolve(): void; reject(e: AssociationError): void } | undefined;
  /** The write of a data set chunk waiting to be flushed to the system. */
  private flushWaiter: { resolve(): void; reject(e: AssociationError): void } | undefined;
  private readonly connectAbort = new AbortController();
  private overallTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  /** While waiting on the peer: how long it may stay silent, what we wait for, and when we last heard. */
  private silence: { limitMs: number; what: string; lastHeard: number } | undefined;

  private constructor(private readonly opts: ScuAssociationOptions) {
    this.label = opts.peerLabel ?? `${opts.calledAeTitle}@${opts.host}:${opts.port}`;
    const t = opts.timeouts ?? {};
    this.timeouts = {
      connectMs: t.connectMs ?? 60_000,
      associateMs: t.associateMs ?? 30_000,
      silenceMs: t.silenceMs ?? 60_000,
      overallMs: t.overallMs,
    };
    this.maxPdu = opts.maxPduLength ?? DEFAULT_MAX_PDU;
    this.maxResponseData = opts.maxResponseDataSetBytes ?? 16 * 1024 * 1024;
    this.reader = new PduReader({
      // P-DATA within what we announced (0 = no limit, still bounded); ACSE PDUs are small.
      maxLength: (type) =>
        type === PduType.PDataTf ? this.maxPdu || 0x7fffffff : type === PduType.AssociateAc ? 1 << 20 : 64,
      onPdu: (type, pdu) => this.onPdu(type, pdu),
    });
  }

  /**
   * Connects to the peer and negotiates the association (A-ASSOCIATE-RQ with our Implementation
   * Class UID and version, no asynchronous operations). Resolves once it is accepted, whatever
   * the presentation contexts' results (see `contexts`); rejects with an AssociationError
   * (kind connect, rejected, aborted, closed, timeout or protocol).
   */
  static async open(opts: ScuAssociationOptions): Promise<ScuAssociation> {
    const a = new ScuAssociation(opts);
    await a.connectAndNegotiate();
    return a;
  }

  /** Every proposed context with the peer's answer, in proposal order. */
  get contexts(): readonly NegotiatedContext[] {
    return this.negotiated;
  }

  /** The peer's A-ASSOCIATE-AC (its max PDU length, implementation class UID...). */
  get acceptance(): AssociateAc | undefined {
    return this.ac;
  }

  /** True while requests can be sent. */
  get isOpen(): boolean {
    return this.state === 'established';
  }

  /** What ended the association, if it failed. */
  get error(): AssociationError | undefined {
    return this.failure;
  }

  /** An accepted context for `abstractSyntaxUid` (with `transferSyntaxUid` when given). */
  acceptedContext(abstractSyntaxUid: string, transferSyntaxUid?: string): NegotiatedContext | undefined {
    return this.negotiated.find(
      (c) =>
        c.result === ContextResult.Acceptance &&
        c.abstractSyntaxUid === abstractSyntaxUid &&
        (transferSyntaxUid === undefined || c.transferSyntaxUid === transferSyntaxUid),
    );
  }

  /**
   * Sends one request (and its data set) and resolves with its final response, after passing
   * any pending ones to `onPending`. Rejects with the AssociationError that ended the association
   * (kind 'source' when the data set could not be read: the association is then aborted, since a
   * partial data set cannot be terminated). Throws an Error for a misuse (not open, a request
   * already outstanding, a context that was not accepted).
   */
  async request(req: DimseRequest): Promise<DimseResponse> {
    if (this.failure) throw this.failure;
    if (this.state !== 'established') throw new Error(`association with ${this.label} is not open`);
    if (this.outstanding) throw new Error('a request is already outstanding on this association');
    const ctx = this.negotiated.find((c) => c.id === req.contextId);
    if (!ctx || ctx.result !== ContextResult.Acceptance) {
      throw new Error(`presentation context ${req.contextId} was not accepted by ${this.label}`);
    }
    const messageId = this.nextMessageId;
    const command = encodeRequest({ ...req.command, messageId, hasDataSet: req.dataSet !== undefined });
    this.nextMessageId = (messageId % 0xffff) + 1;
    let out!: Outstanding;
    const final = new Promise<DimseResponse>((resolve, reject) => {
      out = { messageId, contextId: req.contextId, onPending: req.onPending, sent: false, resolve, reject };
    });
    final.catch(() => undefined); // rejected while still sending: awaited below
    this.outstanding = out;
    this.watch(this.timeouts.silenceMs, 'a response');
    try {
      await this.sendMessage(req.contextId, command, req.dataSet);
    } catch (err) {
      if (!this.failure) {
        this.fail(
          new AssociationError(`cannot read the data set: ${systemWords(err)}`, 'source', false, { cause: err }),
          AbortSource.ServiceUser,
          AbortReason.NotSpecified,
        );
      }
      throw this.failure!;
    }
    out.sent = true;
    if (out.final) this.finish(out);
    else if (out.cancelWanted) this.sendCancel(out);
    return final;
  }

  /**
   * Asks the peer to cancel the outstanding request (C-CANCEL-RQ, PS3.7 9.3.2.3: C-FIND, C-MOVE,
   * C-GET). Its final response (usually status 0xFE00 Cancel) still resolves request(). Does
   * nothing when no request is outstanding.
   */
  cancel(): void {
    const out = this.outstanding;
    if (!out || out.final || this.state !== 'established') return;
    if (out.sent) this.sendCancel(out);
    else out.cancelWanted = true;
  }

  private sendCancel(out: Outstanding): void {
    out.cancelWanted = false;
    const command = encodeRequest({
      commandField: CommandField.CCancelRq,
      messageIdBeingRespondedTo: out.messageId,
      hasDataSet: false,
    });
    this.write(commandPdu(out.contextId, command));
  }

  /**
   * Releases the association (A-RELEASE-RQ, waits for the RP) and closes the connection.
   * Resolves at once when it already ended; rejects with an AssociationError when the peer does
   * not answer in time (the association is aborted then) or aborts.
   */
  async release(): Promise<void> {
    if (this.state !== 'established') return;
    if (this.outstanding) throw new Error('cannot release with a request outstanding');
    this.state = 'releasing';
    const done = new Promise<void>((resolve, reject) => (this.step = { resolve, reject }));
    this.write(encodeReleaseRq());
    this.watch(this.timeouts.silenceMs, 'the A-RELEASE-RP');
    await done;
  }

  /** Aborts the association (A-ABORT, source service user) and closes the connection. */
  abort(): void {
    this.fail(new AssociationError(`association with ${this.label} aborted`, 'local'), AbortSource.ServiceUser, 0);
  }

  // -------------------------------------------------------------------------------------------
  // Negotiation

  private async connectAndNegotiate(): Promise<void> {
    const contexts = this.opts.presentationContexts.map((c, i) => ({ id: 2 * i + 1, ...c }));
    if (contexts.length === 0 || contexts.length > 128) {
      this.fail(new AssociationError(`${contexts.length} presentation contexts proposed (1-128 allowed)`, 'local'));
      throw this.failure!;
    }
    this.negotiated = contexts.map((c) => ({
      id: c.id,
      abstractSyntaxUid: c.abstractSyntaxUid,
      proposedTransferSyntaxUids: c.transferSyntaxUids,
      result: ContextResult.NoReason,
      transferSyntaxUid: '',
    }));
    let rq: Buffer;
    try {
      rq = encodeAssociateRq({
        protocolVersion: 1,
        calledAeTitle: this.opts.calledAeTitle,
        callingAeTitle: this.opts.callingAeTitle,
        applicationContextName: DICOM_APPLICATION_CONTEXT,
        presentationContexts: contexts,
        userInformation: {
          maxPduLength: this.maxPdu,
          implementationClassUid: IMPLEMENTATION_CLASS_UID,
          implementationVersionName: IMPLEMENTATION_VERSION_NAME,
          ...(this.opts.roleSelections?.length ? { roleSelections: this.opts.roleSelections } : {}),
        },
      });
    } catch (err) {
      // An AE title or UID that cannot be encoded: nothing was sent.
      this.fail(
        new AssociationError(`cannot request an association with ${this.label}: ${(err as Error).message}`, 'local'),
      );
      throw this.failure!;
    }
    const { overallMs } = this.timeouts;
    if (overallMs !== undefined) {
      this.overallTimer = setTimeout(
        () =>
          this.fail(
            new AssociationError(`timed out after ${overallMs} ms (association to ${this.label})`, 'timeout'),
            AbortSource.ServiceUser,
            0,
          ),
        overallMs,
      );
    }
    const connectTimer = setTimeout(
      () => this.connectAbort.abort(new Error(`timed out after ${this.timeouts.connectMs} ms`)),
      this.timeouts.connectMs,
    );
    let socket: net.Socket;
    try {
      const factory = this.opts.socketFactory ?? tcpSocketFactory;
      socket = await factory({ host: this.opts.host, port: this.opts.port }, this.connectAbort.signal);
    } catch (err) {
      this.fail(
        new AssociationError(`cannot connect to ${this.label}: ${systemWords(err)}`, 'connect', false, { cause: err }),
      );
      throw this.failure!;
    } finally {
      clearTimeout(connectTimer);
    }
    if (this.failure) {
      socket.destroy();
      throw this.failure;
    }
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.heard());
    socket.on('error', (err) =>
      this.fail(
        new AssociationError(`network error: ${systemWords(err)} (${this.label})`, 'closed', false, {
          cause: err,
        }),
      ),
    );
    socket.on('end', () => this.fail(new AssociationError(`connection to ${this.label} closed`, 'closed')));
    socket.on('close', () => this.fail(new AssociationError(`connection to ${this.label} closed`, 'closed')));

    const accepted = new Promise<void>((resolve, reject) => (this.step = { resolve, reject }));
    this.state = 'requesting';
    this.write(rq);
    this.watch(this.timeouts.associateMs, 'an answer to the association request');
    await accepted;
  }

  private onAssociateAc(pdu: Buffer): void {
    const ac = decodeAssociateAc(pdu);
    for (const answer of ac.presentationContexts) {
      const ctx = this.negotiated.find((c) => c.id === answer.id);
      if (!ctx) throw new PduError(`A-ASSOCIATE-AC answers presentation context ${answer.id}, which was not proposed`);
      if (
        answer.result === ContextResult.Acceptance &&
        !ctx.proposedTransferSyntaxUids.includes(answer.transferSyntaxUid)
      ) {
        throw new PduError(
          `A-ASSOCIATE-AC accepts presentation context ${answer.id} with a transfer syntax that was not proposed`,
        );
      }
      ctx.result = answer.result;
      ctx.transferSyntaxUid = answer.transferSyntaxUid;
    }
    this.ac = ac;
    this.state = 'established';
    this.unwatch();
    const step = this.step;
    this.step = undefined;
    step?.resolve();
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  private onData(chunk: Buffer): void {
    this.heard();
    if (this.state === 'closed') return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.protocolError(err);
    }
  }

  /**
   * For an A-ABORT from the peer (a service user, source 0) while negotiating or before it answered
   * any request: the usual cause, a peer that does not know our calling AE title (Orthanc accepts
   * an unknown AE and aborts its first C-STORE: "source 0, reason 0").
   */
  private earlyEndHint(source: number): string {
    const early = this.state === 'requesting' || (this.state === 'established' && this.finalResponses === 0);
    if (!early || source !== 0) return '';
    return (
      `; it aborted before answering anything, the usual sign that it does not know our calling AE title ` +
      `"${this.opts.callingAeTitle}" (add it to the peer's known AEs, with this host's address)`
    );
  }

  /** For an A-ASSOCIATE-RJ from the service user: which AE titles it may not know. */
  private rejectHint(rj: AssociateRj): string {
    if (rj.source !== 1) return '';
    if (rj.reason === 3) return ` (our calling AE title is "${this.opts.callingAeTitle}")`;
    if (rj.reason === 7) return ` (we called it "${this.opts.calledAeTitle}")`;
    if (rj.reason === 1) {
      return (
        ` (no reason given: most often the peer does not know our calling AE title ` +
        `"${this.opts.callingAeTitle}" or this host's address)`
      );
    }
    return '';
  }

  private protocolError(err: unknown): void {
    if (err instanceof AssociationError) {
      this.fail(err, AbortSource.ServiceUser, 0);
      return;
    }
    const why = err instanceof Error ? err.message : String(err);
    const reason = /unrecognized PDU type/.test(why)
      ? AbortReason.UnrecognizedPdu
      : AbortReason.InvalidPduParameterValue;
    this.fail(
      new AssociationError(`protocol error from ${this.label}: ${why}`, 'protocol'),
      AbortSource.ServiceProvider,
      reason,
    );
  }

  private onPdu(type: number, pdu: Buffer): void {
    if (type === PduType.Abort) {
      const a = decodeAbort(pdu);
      this.fail(
        new AssociationError(
          `peer aborted the association (${describeAbort(a)}) (${this.label})${this.earlyEndHint(a.source)}`,
          'aborted',
          false,
          { abort: a },
        ),
      );
      return;
    }
    switch (this.state) {
      case 'requesting':
        if (type === PduType.AssociateAc) return this.onAssociateAc(pdu);
        if (type === PduType.AssociateRj) {
          const rj = decodeAssociateRj(pdu);
          this.fail(
            new AssociationError(
              `${describeReject(rj)} by ${this.label}${this.rejectHint(rj)}`,
              'rejected',
              rj.result === RejectResult.Permanent,
              { reject: rj },
            ),
          );
          return;
        }
        break;
      case 'established':
        if (type === PduType.PDataTf) return this.onPData(pdu);
        if (type === PduType.ReleaseRq) {
          // The peer ends the association: answer, then what was outstanding has no response.
          checkReleasePdu(pdu);
          this.write(encodeReleaseRp());
          this.fail(new AssociationError(`peer released the association (${this.label})`, 'closed'));
          return;
        }
        break;
      case 'releasing':
        if (type === PduType.ReleaseRp) {
          checkReleasePdu(pdu);
          this.close();
          return;
        }
        if (type === PduType.ReleaseRq) {
          // Release collision (PS3.8 9.2.1, requestor side): answer and keep waiting for the RP.
          checkReleasePdu(pdu);
          this.write(encodeReleaseRp());
          return;
        }
        if (type === PduType.PDataTf) return; // late data: nothing is outstanding any more
        break;
      default:
        return;
    }
    this.fail(
      new AssociationError(
        `protocol error from ${this.label}: unexpected PDU type ${type} while ${this.state}`,
        'protocol',
      ),
      AbortSource.ServiceProvider,
      AbortReason.UnexpectedPdu,
    );
  }

  private onPData(pdu: Buffer): void {
    for (const pdv of parsePdvs(pdu)) {
      const ctx = this.negotiated.find((c) => c.id === pdv.presentationContextId);
      if (!ctx || ctx.result !== ContextResult.Acceptance) {
        throw new PduError(`PDV on presentation context ${pdv.presentationContextId}, which was not accepted`);
      }
      if (pdv.isCommand()) {
        if (this.incoming) throw new PduError('command PDV in the middle of a data set');
        this.commandBytes += pdv.value.length;
        if (this.commandBytes > MAX_COMMAND_BYTES)
          throw new PduError(`command set longer than ${MAX_COMMAND_BYTES} bytes`);
        this.commandParts.push(Buffer.from(pdv.value));
        if (!pdv.isLastFragment()) continue;
        const bytes = Buffer.concat(this.commandParts);
        this.commandParts = [];
        this.commandBytes = 0;
        let command: ResponseCommand;
        try {
          command = parseResponse(bytes);
        } catch (err) {
          if (err instanceof CommandSetError) throw new PduError(`unreadable response command set: ${err.message}`);
          throw err;
        }
        if ((command.commandField & 0x8000) === 0) {
          throw new PduError(
            `the peer sent a request (command 0x${command.commandField.toString(16)}), which this SCU does not serve`,
          );
        }
        if (command.hasDataSet) this.incoming = { contextId: ctx.id, command, parts: [], bytes: 0 };
        else this.deliver({ contextId: ctx.id, command });
      } else {
        const inc = this.incoming;
        if (!inc || this.commandParts.length > 0)
          throw new PduError('data PDV without a response command announcing it');
        if (pdv.presentationContextId !== inc.contextId)
          throw new PduError('data set PDVs on two presentation contexts');
        inc.bytes += pdv.value.length;
        if (inc.bytes > this.maxResponseData) {
          throw new PduError(`response data set longer than ${this.maxResponseData} bytes`);
        }
        inc.parts.push(Buffer.from(pdv.value));
        if (!pdv.isLastFragment()) continue;
        this.incoming = undefined;
        this.deliver({ contextId: inc.contextId, command: inc.command, dataSet: Buffer.concat(inc.parts) });
      }
    }
  }

  private deliver(response: DimseResponse): void {
    const out = this.outstanding;
    if (!out || response.command.messageIdBeingRespondedTo !== out.messageId || out.final) {
      throw new PduError(`response to message ${response.command.messageIdBeingRespondedTo}, which is not outstanding`);
    }
    const s = response.command.status;
    if (s === Status.Pending || s === Status.PendingWarning) {
      try {
        out.onPending?.(response);
      } catch (err) {
        // The caller's handler failed: not the peer's fault, but the request cannot go on.
        const why = err instanceof Error ? err.message : String(err);
        throw new AssociationError(`the handler of a pending response failed: ${why}`, 'local');
      }
      return;
    }
    out.final = response;
    this.finalResponses++;
    if (out.sent) this.finish(out);
  }

  private finish(out: Outstanding): void {
    if (this.outstanding !== out) return;
    this.outstanding = undefined;
    this.unwatch();
    out.resolve(out.final!);
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  private write(bytes: Buffer): boolean {
    return this.socket?.write(bytes) ?? false;
  }

  /** Largest PDV value we may send: the peer's max PDU (0 = none) within ours, less the 6-byte PDV header. */
  private maxPdvValue(): number {
    const peer = this.ac?.userInformation.maxPduLength ?? 0;
    const cap = this.opts.maxSendPduLength ?? DEFAULT_MAX_PDU;
    return Math.max(1, (peer > 0 ? Math.min(peer, cap) : cap) - 6);
  }

  /** Writes a command set and its data set as P-DATA-TF PDUs of one PDV each. */
  private async sendMessage(contextId: number, command: Buffer, dataSet: DataSetSource | undefined): Promise<void> {
    const pdvMax = this.maxPdvValue();
    await this.writeFragments(contextId, PdvControl.Command, command, pdvMax, true);
    if (!dataSet) return;
    const chunkSize = pdvMax * Math.max(1, Math.floor(CHUNK_TARGET / pdvMax));
    const total = dataSet.byteLength;
    let sent = 0;
    // The last PDV carries the last-fragment bit. With the length known, the last chunk is known;
    // otherwise each chunk's final slice is held back (copied: the source may reuse its buffer)
    // until the next chunk, or the end, shows whether it was the last.
    let held: Buffer | undefined;
    for await (const chunk of dataSet.chunks(chunkSize)) {
      if (this.failure) throw this.failure;
      if (chunk.length === 0) continue;
      sent += chunk.length;
      if (total !== undefined) {
        if (sent > total) throw new Error(`data set source yielded more than its ${total} bytes`);
        await this.writeFragments(contextId, PdvControl.Data, chunk, pdvMax, sent === total);
        continue;
      }
      if (held) await this.writeFragments(contextId, PdvControl.Data, held, pdvMax, false);
      const lastStart = Math.floor((chunk.length - 1) / pdvMax) * pdvMax;
      if (lastStart > 0) {
        await this.writeFragments(contextId, PdvControl.Data, chunk.subarray(0, lastStart), pdvMax, false);
      }
      held = Buffer.from(chunk.subarray(lastStart));
    }
    if (this.failure) throw this.failure;
    if (total !== undefined) {
      if (sent !== total) throw new Error(`data set source ended after ${sent} of its ${total} bytes`);
      if (total === 0) await this.writeFragments(contextId, PdvControl.Data, Buffer.alloc(0), pdvMax, true);
      return;
    }
    await this.writeFragments(contextId, PdvControl.Data, held ?? Buffer.alloc(0), pdvMax, true);
  }

  /**
   * Writes `bytes` as PDVs of at most `pdvMax` bytes (the last one flagged when `last`), in one
   * corked write, and resolves once the socket has handed them to the system: the caller may
   * then reuse `bytes`, and a peer that stops reading stops us here (on the silence clock).
   */
  private async writeFragments(
    contextId: number,
    kind: number,
    bytes: Buffer,
    pdvMax: number,
    last: boolean,
  ): Promise<void> {
    const socket = this.socket;
    if (this.failure || !socket) throw this.failure ?? new Error('not connected');
    const flushed = new Promise<void>((resolve, reject) => (this.flushWaiter = { resolve, reject }));
    const flushCallback = (err?: Error | null): void => {
      if (!err) return this.flushWaiter?.resolve();
      this.fail(
        new AssociationError(`network error: ${systemWords(err)} (${this.label})`, 'closed', false, { cause: err }),
      );
    };
    socket.cork();
    let off = 0;
    do {
      const n = Math.min(pdvMax, bytes.length - off);
      const isLast = last && off + n === bytes.length;
      const header = pdvPduHeader(contextId, kind | (isLast ? PdvControl.LastFragment : 0), n);
      off += n;
      // The callback of the last write runs once everything before it was flushed too.
      const onFlushed = off === bytes.length ? flushCallback : undefined;
      if (n === 0) socket.write(header, onFlushed);
      else {
        socket.write(header);
        socket.write(bytes.subarray(off - n, off), onFlushed);
      }
    } while (off < bytes.length);
    socket.uncork();
    await flushed;
    this.flushWaiter = undefined;
    if (this.failure) throw this.failure;
    this.heard(); // the peer took these bytes: it is alive, though it does not speak while we send
  }

  // -------------------------------------------------------------------------------------------
  // Timers and teardown

  /** Starts (or restarts) the silence clock: the peer must show life within `limitMs`. */
  private watch(limitMs: number, what: string): void {
    this.silence = { limitMs, what, lastHeard: Date.now() };
    this.armSilenceTimer(limitMs);
  }

  private unwatch(): void {
    this.silence = undefined;
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = undefined;
  }

  private heard(): void {
    if (this.silence) this.silence.lastHeard = Date.now();
  }

  private armSilenceTimer(ms: number): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.silenceTimer = undefined;
      const s = this.silence;
      if (!s) return;
      const quiet = Date.now() - s.lastHeard;
      if (quiet < s.limitMs) return this.armSilenceTimer(s.limitMs - quiet);
      this.fail(
        new AssociationError(
          `no answer from ${this.label} within ${s.limitMs} ms while waiting for ${s.what}`,
          'timeout',
        ),
        AbortSource.ServiceUser,
        0,
      );
    }, ms);
  }

  /** Normal end after A-RELEASE-RP. */
  private close(): void {
    this.state = 'closed';
    this.clearTimers();
    this.socket?.destroy();
    const step = this.step;
    this.step = undefined;
    step?.resolve();
  }

  private clearTimers(): void {
    this.unwatch();
    if (this.overallTimer) clearTimeout(this.overallTimer);
    this.overallTimer = undefined;
  }

  /**
   * Ends the association with `err`: sends A-ABORT first when `abortSource` is given (and the
   * connection is up), closes the socket, rejects whatever was waiting. Only the first call counts.
   */
  private fail(err: AssociationError, abortSource?: number, abortReason = 0): void {
    if (this.state === 'closed') return;
    const wasUp = this.state !== 'connecting';
    this.state = 'closed';
    this.failure = err;
    this.clearTimers();
    this.reader.stop();
    this.connectAbort.abort(err);
    const socket = this.socket;
    if (socket && !socket.destroyed) {
      if (abortSource !== undefined && wasUp && socket.writable) {
        // Give the A-ABORT a moment to leave; a peer that reads nothing cannot hold us.
        const t = setTimeout(() => socket.destroy(), 500);
        t.unref();
        socket.end(encodeAbort({ source: abortSource, reason: abortReason }), () => {
          clearTimeout(t);
          socket.destroy();
        });
      } else socket.destroy();
    }
    const step = this.step;
    this.step = undefined;
    step?.reject(err);
    const out = this.outstanding;
    this.outstanding = undefined;
    out?.reject(err);
    const flush = this.flushWaiter;
    this.flushWaiter = undefined;
    flush?.reject(err);
  }
}

/** "connection refused (ECONNREFUSED)": the plain words, and the code for whoever searches for it. */
function systemWords(err: unknown): string {
  const tlsWords = describeTlsError(err, 'server');
  if (tlsWords) return tlsWords;
  const code = (err as { code?: unknown } | null)?.code;
  const words = describeSystemError(err);
  return typeof code === 'string' && code !== words ? `${words} (${code})` : words;
}
