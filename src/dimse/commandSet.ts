// DIMSE command sets (PS3.7 9.3, E.1): the group 0000 elements of a request, always Implicit VR
// Little Endian, parsed; the C-STORE / C-ECHO responses encoded, and framed as one P-DATA-TF.
//
// The receiver used to hand every command to dcmjs-dimse, which parses it through dcmjs into a
// naturalized object and encodes each response the same way: about 0.5 ms of the receiving
// thread per instance, a sixth of an instance's whole time on one association. A command set is
// a handful of fixed elements, so it is read and written here directly.
import { readUid } from '../core/dicom/uid.js';

export const CommandField = {
  CStoreRq: 0x0001,
  CStoreRsp: 0x8001,
  CGetRq: 0x0010,
  CGetRsp: 0x8010,
  CFindRq: 0x0020,
  CFindRsp: 0x8020,
  CMoveRq: 0x0021,
  CMoveRsp: 0x8021,
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
  CCancelRq: 0x0fff,
} as const;

/** (0000,0700) Priority (PS3.7 E.1). */
export const Priority = { Low: 0x0002, Medium: 0x0000, High: 0x0001 } as const;

/** (0000,0800) value meaning "no data set follows". */
export const NO_DATA_SET = 0x0101;

/** A command set that cannot be parsed or lacks a required element (PS3.7 9.3, E.1); one-line message. */
export class CommandSetError extends Error {
  override name = 'CommandSetError';
}

export interface Command {
  commandField: number;
  messageId: number;
  /** (0000,0002) Affected SOP Class UID, trailing NUL/space removed ('' when absent). */
  affectedSopClassUid: string;
  /** (0000,1000) Affected SOP Instance UID, trailing NUL/space removed ('' when absent). */
  affectedSopInstanceUid: string;
  hasDataSet: boolean;
}

/** Reads the elements a receiver needs; throws CommandSetError on anything malformed. */
export function parseCommand(cmd: Buffer): Command {
  let messageId = 0;
  const common = parseCommonElements(cmd, (element, at, len) => {
    if (element === 0x0110) messageId = readUs(cmd, element, at, len);
  });
  return { ...common, messageId };
}

/** The elements every command set has (PS3.7 E.1-1), read by the request and response parsers. */
type CommonElements = Omit<Command, 'messageId'>;

/**
 * Reads Command Field, Command Data Set Type and the Affected SOP Class/Instance UIDs, and hands
 * every other element to `other(element, valueOffset, valueLength)`. Throws CommandSetError when
 * the set is malformed or lacks Command Field or Command Data Set Type.
 */
function parseCommonElements(cmd: Buffer, other: (element: number, at: number, len: number) => void): CommonElements {
  let commandField: number | undefined;
  let dataSetType: number | undefined;
  let sopClass = '';
  let sopInstance = '';
  forEachCommandElement(cmd, (element, at, len) => {
    switch (element) {
      case 0x0002:
        sopClass = readUid(cmd, at, len);
        break;
      case 0x0100:
        commandField = readUs(cmd, element, at, len);
        break;
      case 0x0800:
        dataSetType = readUs(cmd, element, at, len);
        break;
      case 0x1000:
        sopInstance = readUid(cmd, at, len);
        break;
      default:
        other(element, at, len);
    }
  });
  if (commandField === undefined) throw new CommandSetError('command set without a Command Field');
  if (dataSetType === undefined) throw new CommandSetError('command set without a Command Data Set Type');
  return {
    commandField,
    affectedSopClassUid: sopClass,
    affectedSopInstanceUid: sopInstance,
    hasDataSet: dataSetType !== NO_DATA_SET,
  };
}

function element(elementNumber: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0000, 0);
  head.writeUInt16LE(elementNumber, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

function us(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

/** A UI value padded to even length with one NUL (PS3.5 9.1). */
function ui(uid: string): Buffer {
  return Buffer.from(uid.length % 2 === 0 ? uid : `${uid}\0`, 'latin1');
}

export interface ResponseFields {
  /** Response command field (0x8001 C-STORE-RSP, 0x8030 C-ECHO-RSP...). */
  commandField: number;
  messageIdBeingRespondedTo: number;
  status: number;
  affectedSopClassUid: string;
  /** Omitted when empty (C-ECHO-RSP). */
  affectedSopInstanceUid?: string;
}

/** The response command set, elements in ascending order after their group length. */
export function encodeResponse(r: ResponseFields): Buffer {
  const elements: [number, Buffer][] = [
    [0x0002, ui(r.affectedSopClassUid)],
    [0x0100, us(r.commandField)],
    [0x0120, us(r.messageIdBeingRespondedTo)],
    [0x0800, us(NO_DATA_SET)],
    [0x0900, us(r.status)],
  ];
  if (r.affectedSopInstanceUid) elements.push([0x1000, ui(r.affectedSopInstanceUid)]);
  return commandSetOf(elements);
}

/** One P-DATA-TF PDU carrying a whole command set in a single last-fragment command PDV. */
export function commandPdu(presentationContextId: number, command: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0x04; // P-DATA-TF
  head.writeUInt32BE(6 + command.length, 2);
  head.writeUInt32BE(2 + command.length, 6);
  head[10] = presentationContextId;
  head[11] = 0x03; // command, last fragment
  return Buffer.concat([head, command]);
}

/** An AE value padded to even length with one space (PS3.5 6.2). */
function ae(aet: string): Buffer {
  return Buffer.from(aet.length % 2 === 0 ? aet : `${aet} `, 'latin1');
}

/** Elements (element number, value) in ascending order, behind their group length (PS3.7 E.1). */
function commandSetOf(elements: [number, Buffer][]): Buffer {
  const body = Buffer.concat(elements.sort((a, b) => a[0] - b[0]).map(([n, v]) => element(n, v)));
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([element(0x0000, groupLength), body]);
}

/** The fields of a DIMSE-C request command set (PS3.7 9.3); unset ones are left out. */
export interface RequestFields {
  /** CommandField.CStoreRq, CEchoRq, CFindRq, CMoveRq, CGetRq, CCancelRq. */
  commandField: number;
  /** (0000,0110) Message ID; for C-CANCEL-RQ, see messageIdBeingRespondedTo. */
  messageId?: number;
  /** (0000,0120) for C-CANCEL-RQ: the Message ID of the request to cancel. */
  messageIdBeingRespondedTo?: number;
  /** (0000,0002) Affected SOP Class UID (C-STORE, C-ECHO, C-FIND, C-MOVE, C-GET). */
  affectedSopClassUid?: string;
  /** (0000,1000) Affected SOP Instance UID (C-STORE). */
  affectedSopInstanceUid?: string;
  /** (0000,0700) Priority (C-STORE, C-FIND, C-MOVE, C-GET); Priority.Medium when omitted for those. */
  priority?: number;
  /** (0000,0600) Move Destination AE title (C-MOVE). */
  moveDestination?: string;
  /** (0000,1030) / (0000,1031): the C-MOVE this C-STORE is a sub-operation of. */
  moveOriginatorAeTitle?: string;
  moveOriginatorMessageId?: number;
  /** True when a data set (or identifier) follows the command. */
  hasDataSet: boolean;
}

const PRIORITY_COMMANDS = new Set<number>([
  CommandField.CStoreRq,
  CommandField.CFindRq,
  CommandField.CMoveRq,
  CommandField.CGetRq,
]);

/**
 * Encodes a request command set (Implicit VR Little Endian, PS3.7 E.1) from its fields.
 * Throws RangeError for a Message ID or priority outside 16 bits.
 */
export function encodeRequest(r: RequestFields): Buffer {
  const elements: [number, Buffer][] = [
    [0x0100, us(r.commandField)],
    [0x0800, us(r.hasDataSet ? 0x0000 : NO_DATA_SET)],
  ];
  if (r.affectedSopClassUid !== undefined) elements.push([0x0002, ui(r.affectedSopClassUid)]);
  if (r.messageId !== undefined) elements.push([0x0110, us(r.messageId)]);
  if (r.messageIdBeingRespondedTo !== undefined) elements.push([0x0120, us(r.messageIdBeingRespondedTo)]);
  if (r.moveDestination !== undefined) elements.push([0x0600, ae(r.moveDestination)]);
  if (r.priority !== undefined || PRIORITY_COMMANDS.has(r.commandField)) {
    elements.push([0x0700, us(r.priority ?? Priority.Medium)]);
  }
  if (r.affectedSopInstanceUid !== undefined) elements.push([0x1000, ui(r.affectedSopInstanceUid)]);
  if (r.moveOriginatorAeTitle !== undefined) elements.push([0x1030, ae(r.moveOriginatorAeTitle)]);
  if (r.moveOriginatorMessageId !== undefined) elements.push([0x1031, us(r.moveOriginatorMessageId)]);
  return commandSetOf(elements);
}

/** A response command set as a requestor reads it (PS3.7 9.3, C.4). */
export interface ResponseCommand {
  commandField: number;
  /** (0000,0120). */
  messageIdBeingRespondedTo: number;
  /** (0000,0900). */
  status: number;
  affectedSopClassUid: string;
  affectedSopInstanceUid: string;
  hasDataSet: boolean;
  /** (0000,0902) Error Comment, when the peer gave one (LO, may be free text: do not log it unchecked). */
  errorComment?: string;
  /** (0000,1020)-(0000,1023) of C-MOVE / C-GET responses, when present. */
  subOperations?: { remaining?: number; completed?: number; failed?: number; warning?: number };
}

/**
 * Reads a response command set; throws CommandSetError when it is malformed or lacks Command
 * Field, Message ID Being Responded To, Command Data Set Type or Status.
 */
export function parseResponse(cmd: Buffer): ResponseCommand {
  let respondedTo: number | undefined;
  let status: number | undefined;
  let errorComment: string | undefined;
  let subOps: ResponseCommand['subOperations'];
  const common = parseCommonElements(cmd, (el, at, len) => {
    const us = (): number => readUs(cmd, el, at, len);
    switch (el) {
      case 0x0120:
        respondedTo = us();
        break;
      case 0x0900:
        status = us();
        break;
      case 0x0902:
        errorComment = cmd.toString('latin1', at, at + len).trim();
        break;
      case 0x1020:
        (subOps ??= {}).remaining = us();
        break;
      case 0x1021:
        (subOps ??= {}).completed = us();
        break;
      case 0x1022:
        (subOps ??= {}).failed = us();
        break;
      case 0x1023:
        (subOps ??= {}).warning = us();
        break;
      default:
        break;
    }
  });
  if (respondedTo === undefined)
    throw new CommandSetError('response command set without a Message ID Being Responded To');
  if (status === undefined) throw new CommandSetError('response command set without a Status');
  return {
    ...common,
    messageIdBeingRespondedTo: respondedTo,
    status,
    ...(errorComment ? { errorComment } : {}),
    ...(subOps ? { subOperations: subOps } : {}),
  };
}

/** Calls `fn(element, valueOffset, valueLength)` for each group 0000 element; throws CommandSetError. */
function forEachCommandElement(cmd: Buffer, fn: (element: number, at: number, len: number) => void): void {
  let off = 0;
  while (off < cmd.length) {
    if (cmd.length - off < 8) throw new CommandSetError('truncated command element');
    const group = cmd.readUInt16LE(off);
    const el = cmd.readUInt16LE(off + 2);
    const len = cmd.readUInt32LE(off + 4);
    const at = off + 8;
    if (group !== 0x0000) throw new CommandSetError('command set element outside group 0000');
    if (len > cmd.length - at) throw new CommandSetError('command element longer than the command set');
    fn(el, at, len);
    off = at + len;
  }
}

/** A US value (2 bytes); throws CommandSetError for any other length. */
function readUs(cmd: Buffer, element: number, at: number, len: number): number {
  if (len !== 2)
    throw new CommandSetError(`command element (0000,${element.toString(16).padStart(4, '0')}) is not a US`);
  return cmd.readUInt16LE(at);
}
