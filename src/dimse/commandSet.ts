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
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
  CCancelRq: 0x0fff,
} as const;

/** (0000,0800) value meaning "no data set follows". */
export const NO_DATA_SET = 0x0101;

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
  let commandField: number | undefined;
  let messageId = 0;
  let dataSetType: number | undefined;
  let sopClass = '';
  let sopInstance = '';
  let off = 0;
  while (off < cmd.length) {
    if (cmd.length - off < 8) throw new CommandSetError('truncated command element');
    const group = cmd.readUInt16LE(off);
    const element = cmd.readUInt16LE(off + 2);
    const len = cmd.readUInt32LE(off + 4);
    const at = off + 8;
    if (group !== 0x0000) throw new CommandSetError('command set element outside group 0000');
    if (len > cmd.length - at) throw new CommandSetError('command element longer than the command set');
    const us = (): number => {
      if (len !== 2)
        throw new CommandSetError(`command element (0000,${element.toString(16).padStart(4, '0')}) is not a US`);
      return cmd.readUInt16LE(at);
    };
    switch (element) {
      case 0x0002:
        sopClass = readUid(cmd, at, len);
        break;
      case 0x0100:
        commandField = us();
        break;
      case 0x0110:
        messageId = us();
        break;
      case 0x0800:
        dataSetType = us();
        break;
      case 0x1000:
        sopInstance = readUid(cmd, at, len);
        break;
      default:
        break;
    }
    off = at + len;
  }
  if (commandField === undefined) throw new CommandSetError('command set without a Command Field');
  if (dataSetType === undefined) throw new CommandSetError('command set without a Command Data Set Type');
  return {
    commandField,
    messageId,
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
  const elements = [
    element(0x0002, ui(r.affectedSopClassUid)),
    element(0x0100, us(r.commandField)),
    element(0x0120, us(r.messageIdBeingRespondedTo)),
    element(0x0800, us(NO_DATA_SET)),
    element(0x0900, us(r.status)),
  ];
  if (r.affectedSopInstanceUid) elements.push(element(0x1000, ui(r.affectedSopInstanceUid)));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([element(0x0000, groupLength), body]);
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
