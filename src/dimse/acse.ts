// The ACSE PDUs of the DICOM Upper Layer (PS3.8 9.3.2-9.3.4, 9.3.6-9.3.8): A-ASSOCIATE-RQ/AC/RJ,
// A-RELEASE-RQ/RP and A-ABORT, encoded and decoded as plain data. P-DATA-TF is in pdataTf.ts,
// the PDU framing of a byte stream in pduReader.ts.
//
// Every PDU is encoded and decoded in both directions, so the sending side (dimse/scu) and a
// receiver can share this one codec: the SCU encodes an RQ and decodes the AC/RJ; a receiver
// would decode the RQ and encode the AC/RJ. dcmjs-dimse has the same classes but does not export
// them (and its decoder copies every item through a SmartBuffer).
//
// Decoding is strict about lengths (an item running past its parent is a PduError) and lenient
// about what a peer is allowed to leave out or pad: UIDs lose trailing NUL/space padding (trimUid),
// AE titles lose their padding spaces, and unknown user-information sub-items are kept as bytes.
import { trimUid } from '../core/dicom/uid.js';
import { PduError, PduType } from './pduReader.js';

/** DICOM Application Context Name (PS3.7 A.2.1): the only one there is. */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** Item types inside A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3; PS3.7 D.3.3). */
export const ItemType = {
  ApplicationContext: 0x10,
  PresentationContextRq: 0x20,
  PresentationContextAc: 0x21,
  AbstractSyntax: 0x30,
  TransferSyntax: 0x40,
  UserInformation: 0x50,
  MaxLength: 0x51,
  ImplementationClassUid: 0x52,
  AsyncOperationsWindow: 0x53,
  RoleSelection: 0x54,
  ImplementationVersionName: 0x55,
} as const;

/** A-ASSOCIATE-RJ Result (PS3.8 9.3.4). */
export const RejectResult = { Permanent: 1, Transient: 2 } as const;
/** A-ASSOCIATE-RJ Source (PS3.8 9.3.4). */
export const RejectSource = { ServiceUser: 1, ServiceProviderAcse: 2, ServiceProviderPresentation: 3 } as const;
/**
 * A-ASSOCIATE-RJ Reason/Diag. (PS3.8 9.3.4). Its meaning depends on the source, so the same
 * number has a name under each source that gives it.
 */
export const RejectReason = {
  /** Source ServiceUser or ServiceProviderAcse. */
  NoReasonGiven: 1,
  /** Source ServiceUser. */
  ApplicationContextNotSupported: 2,
  /** Source ServiceUser. */
  CallingAeNotRecognized: 3,
  /** Source ServiceUser. */
  CalledAeNotRecognized: 7,
  /** Source ServiceProviderAcse. */
  ProtocolVersionNotSupported: 2,
  /** Source ServiceProviderPresentation. */
  TemporaryCongestion: 1,
  /** Source ServiceProviderPresentation. */
  LocalLimitExceeded: 2,
} as const;

/** Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2). */
export const ContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

/** A presentation context as proposed in an A-ASSOCIATE-RQ. */
export interface ProposedContext {
  /** Odd, 1-255. */
  id: number;
  abstractSyntaxUid: string;
  /** At least one. */
  transferSyntaxUids: string[];
}

/** A presentation context as answered in an A-ASSOCIATE-AC. */
export interface ContextAnswer {
  id: number;
  /** ContextResult value. */
  result: number;
  /** The accepted transfer syntax ('' unless result is Acceptance). */
  transferSyntaxUid: string;
}

/** SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4): e.g. the SCP role for C-GET's C-STOREs. */
export interface RoleSelection {
  sopClassUid: string;
  scuRole: boolean;
  scpRole: boolean;
}

/** A user-information sub-item this codec does not interpret, kept as it came. */
export interface RawSubItem {
  type: number;
  value: Buffer;
}

/** The User Information item (PS3.8 9.3.2.3, PS3.7 D.3.3). */
export interface UserInformation {
  /** Maximum P-DATA-TF PDU length (bytes after its 6-byte header) the sender of this PDU can receive; 0 = no limit. */
  maxPduLength: number;
  implementationClassUid: string;
  /** SH, at most 16 characters. */
  implementationVersionName?: string;
  /** Asynchronous Operations Window; absent = synchronous (1, 1). */
  asyncOps?: { maxInvoked: number; maxPerformed: number };
  roleSelections?: RoleSelection[];
  /** Any other sub-items (extended negotiation, user identity...), in order. */
  other?: RawSubItem[];
}

/** Fields common to A-ASSOCIATE-RQ and -AC. */
interface AssociateCommon {
  /** 1 unless a peer says otherwise. */
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  userInformation: UserInformation;
}

/** An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2): what the requestor proposes. */
export interface AssociateRq extends AssociateCommon {
  presentationContexts: ProposedContext[];
}

/** An A-ASSOCIATE-AC PDU (PS3.8 9.3.3): the answer to each proposed presentation context. */
export interface AssociateAc extends AssociateCommon {
  presentationContexts: ContextAnswer[];
}

/** An A-ASSOCIATE-RJ PDU (PS3.8 9.3.4). */
export interface AssociateRj {
  /** RejectResult. */
  result: number;
  /** RejectSource. */
  source: number;
  /** RejectReason (its meaning depends on the source). */
  reason: number;
}

/** A-ABORT source and reason (PS3.8 9.3.8; values in pdataTf.ts AbortSource / AbortReason). */
export interface AbortInfo {
  source: number;
  reason: number;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function item(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`item 0x${type.toString(16)} of ${value.length} bytes is too long`);
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function uidValue(uid: string): Buffer {
  return Buffer.from(uid, 'latin1');
}

/** 16 bytes, space-padded (PS3.8 9.3.2: AE titles in the PDU header). */
function aeField(aet: string): Buffer {
  if (aet.length === 0 || aet.length > 16) throw new RangeError(`AE title "${aet}" must be 1-16 characters`);
  return Buffer.from(aet.padEnd(16, ' '), 'latin1');
}

function encodeUserInformation(u: UserInformation): Buffer {
  const max = Buffer.alloc(4);
  max.writeUInt32BE(u.maxPduLength);
  const subs: Buffer[] = [
    item(ItemType.MaxLength, max),
    item(ItemType.ImplementationClassUid, uidValue(u.implementationClassUid)),
  ];
  if (u.asyncOps) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(u.asyncOps.maxInvoked, 0);
    v.writeUInt16BE(u.asyncOps.maxPerformed, 2);
    subs.push(item(ItemType.AsyncOperationsWindow, v));
  }
  for (const r of u.roleSelections ?? []) {
    const uid = uidValue(r.sopClassUid);
    const v = Buffer.alloc(2 + uid.length + 2);
    v.writeUInt16BE(uid.length, 0);
    uid.copy(v, 2);
    v[2 + uid.length] = r.scuRole ? 1 : 0;
    v[3 + uid.length] = r.scpRole ? 1 : 0;
    subs.push(item(ItemType.RoleSelection, v));
  }
  if (u.implementationVersionName) {
    subs.push(item(ItemType.ImplementationVersionName, Buffer.from(u.implementationVersionName, 'latin1')));
  }
  for (const o of u.other ?? []) subs.push(item(o.type, o.value));
  return item(ItemType.UserInformation, Buffer.concat(subs));
}

function encodeAssociate(type: number, a: AssociateCommon, contextItems: Buffer[]): Buffer {
  const fixed = Buffer.alloc(74);
  fixed[0] = type;
  fixed.writeUInt16BE(a.protocolVersion, 6);
  aeField(a.calledAeTitle).copy(fixed, 10);
  aeField(a.callingAeTitle).copy(fixed, 26);
  const body = Buffer.concat([
    fixed,
    item(ItemType.ApplicationContext, uidValue(a.applicationContextName)),
    ...contextItems,
    encodeUserInformation(a.userInformation),
  ]);
  body.writeUInt32BE(body.length - 6, 2);
  return body;
}

/** The A-ASSOCIATE-RQ PDU (PS3.8 9.3.2). Throws RangeError for an AE title or item out of range. */
export function encodeAssociateRq(rq: AssociateRq): Buffer {
  const contexts = rq.presentationContexts.map((c) => {
    const head = Buffer.from([c.id, 0, 0, 0]);
    const subs = [
      item(ItemType.AbstractSyntax, uidValue(c.abstractSyntaxUid)),
      ...c.transferSyntaxUids.map((ts) => item(ItemType.TransferSyntax, uidValue(ts))),
    ];
    return item(ItemType.PresentationContextRq, Buffer.concat([head, ...subs]));
  });
  return encodeAssociate(PduType.AssociateRq, rq, contexts);
}

/** The A-ASSOCIATE-AC PDU (PS3.8 9.3.3). */
export function encodeAssociateAc(ac: AssociateAc): Buffer {
  const contexts = ac.presentationContexts.map((c) => {
    const head = Buffer.from([c.id, 0, c.result, 0]);
    // PS3.8 9.3.3.2: one transfer syntax sub-item, not significant unless accepted.
    return item(
      ItemType.PresentationContextAc,
      Buffer.concat([head, item(ItemType.TransferSyntax, uidValue(c.transferSyntaxUid))]),
    );
  });
  return encodeAssociate(PduType.AssociateAc, ac, contexts);
}

function fourBytePdu(type: number, b: [number, number, number, number]): Buffer {
  return Buffer.from([type, 0, 0, 0, 0, 4, ...b]);
}

/** The A-ASSOCIATE-RJ PDU (PS3.8 9.3.4). */
export function encodeAssociateRj(rj: AssociateRj): Buffer {
  return fourBytePdu(PduType.AssociateRj, [0, rj.result, rj.source, rj.reason]);
}

/** The A-RELEASE-RQ PDU (PS3.8 9.3.6). */
export function encodeReleaseRq(): Buffer {
  return fourBytePdu(PduType.ReleaseRq, [0, 0, 0, 0]);
}

/** The A-RELEASE-RP PDU (PS3.8 9.3.7). */
export function encodeReleaseRp(): Buffer {
  return fourBytePdu(PduType.ReleaseRp, [0, 0, 0, 0]);
}

/** The A-ABORT PDU (PS3.8 9.3.8). */
export function encodeAbort(a: AbortInfo): Buffer {
  return fourBytePdu(PduType.Abort, [0, 0, a.source, a.reason]);
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Item {
  type: number;
  value: Buffer;
}

/** Splits `buf` into items with 2-byte lengths; throws PduError when one runs past the end. */
function items(buf: Buffer, what: string): Item[] {
  const out: Item[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 4) throw new PduError(`${what}: truncated item header`);
    const type = buf[off]!;
    const len = buf.readUInt16BE(off + 2);
    if (len > buf.length - off - 4) {
      throw new PduError(`${what}: item 0x${type.toString(16).padStart(2, '0')} runs past the end`);
    }
    out.push({ type, value: buf.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}

function uidOf(v: Buffer): string {
  return trimUid(v.toString('latin1'));
}

function checkHeader(pdu: Buffer, type: number, what: string, minLength: number): void {
  if (pdu.length < 6 || pdu[0] !== type) throw new PduError(`${what}: not a ${what} PDU`);
  const len = pdu.readUInt32BE(2);
  if (len !== pdu.length - 6)
    throw new PduError(`${what}: PDU length ${len} does not match its ${pdu.length - 6} bytes`);
  if (len < minLength) throw new PduError(`${what}: PDU of ${len} bytes is too short`);
}

function decodeUserInformation(v: Buffer, what: string): UserInformation {
  const u: UserInformation = { maxPduLength: 0, implementationClassUid: '' };
  let sawMax = false;
  for (const sub of items(v, `${what} user information`)) {
    switch (sub.type) {
      case ItemType.MaxLength:
        if (sub.value.length !== 4) throw new PduError(`${what}: maximum length sub-item is not 4 bytes`);
        u.maxPduLength = sub.value.readUInt32BE(0);
        sawMax = true;
        break;
      case ItemType.ImplementationClassUid:
        u.implementationClassUid = uidOf(sub.value);
        break;
      case ItemType.ImplementationVersionName:
        u.implementationVersionName = sub.value.toString('latin1').trim();
        break;
      case ItemType.AsyncOperationsWindow:
        if (sub.value.length !== 4)
          throw new PduError(`${what}: asynchronous operations window sub-item is not 4 bytes`);
        u.asyncOps = { maxInvoked: sub.value.readUInt16BE(0), maxPerformed: sub.value.readUInt16BE(2) };
        break;
      case ItemType.RoleSelection: {
        const n = sub.value.length >= 2 ? sub.value.readUInt16BE(0) : -1;
        if (n < 0 || sub.value.length !== n + 4) throw new PduError(`${what}: malformed role selection sub-item`);
        (u.roleSelections ??= []).push({
          sopClassUid: uidOf(sub.value.subarray(2, 2 + n)),
          scuRole: sub.value[2 + n] === 1,
          scpRole: sub.value[3 + n] === 1,
        });
        break;
      }
      default:
        (u.other ??= []).push({ type: sub.type, value: Buffer.from(sub.value) });
    }
  }
  if (!sawMax) throw new PduError(`${what}: user information without a maximum length sub-item`);
  return u;
}

/** Decodes what RQ and AC share; `onContext` reads each presentation context item. */
function decodeAssociate(
  pdu: Buffer,
  type: number,
  what: string,
  contextType: number,
  onContext: (v: Buffer) => void,
): AssociateCommon {
  checkHeader(pdu, type, what, 68);
  const a: AssociateCommon = {
    protocolVersion: pdu.readUInt16BE(6),
    calledAeTitle: pdu.toString('latin1', 10, 26).trim(),
    callingAeTitle: pdu.toString('latin1', 26, 42).trim(),
    applicationContextName: '',
    userInformation: { maxPduLength: 0, implementationClassUid: '' },
  };
  let sawUser = false;
  for (const it of items(pdu.subarray(74), what)) {
    if (it.type === ItemType.ApplicationContext) a.applicationContextName = uidOf(it.value);
    else if (it.type === contextType) onContext(it.value);
    else if (it.type === ItemType.UserInformation) {
      a.userInformation = decodeUserInformation(it.value, what);
      sawUser = true;
    } else throw new PduError(`${what}: unexpected item type 0x${it.type.toString(16).padStart(2, '0')}`);
  }
  if (!a.applicationContextName) throw new PduError(`${what}: no application context item`);
  if (!sawUser) throw new PduError(`${what}: no user information item`);
  return a;
}

/** Decodes an A-ASSOCIATE-RQ PDU (header included). Throws PduError on malformed bytes. */
export function decodeAssociateRq(pdu: Buffer): AssociateRq {
  const what = 'A-ASSOCIATE-RQ';
  const contexts: ProposedContext[] = [];
  const common = decodeAssociate(pdu, PduType.AssociateRq, what, ItemType.PresentationContextRq, (v) => {
    if (v.length < 4) throw new PduError(`${what}: truncated presentation context item`);
    const c: ProposedContext = { id: v[0]!, abstractSyntaxUid: '', transferSyntaxUids: [] };
    for (const sub of items(v.subarray(4), `${what} presentation context ${c.id}`)) {
      if (sub.type === ItemType.AbstractSyntax) c.abstractSyntaxUid = uidOf(sub.value);
      else if (sub.type === ItemType.TransferSyntax) c.transferSyntaxUids.push(uidOf(sub.value));
      else
        throw new PduError(`${what}: unexpected sub-item 0x${sub.type.toString(16)} in presentation context ${c.id}`);
    }
    contexts.push(c);
  });
  return { ...common, presentationContexts: contexts };
}

/** Decodes an A-ASSOCIATE-AC PDU (header included). Throws PduError on malformed bytes. */
export function decodeAssociateAc(pdu: Buffer): AssociateAc {
  const what = 'A-ASSOCIATE-AC';
  const contexts: ContextAnswer[] = [];
  const common = decodeAssociate(pdu, PduType.AssociateAc, what, ItemType.PresentationContextAc, (v) => {
    if (v.length < 4) throw new PduError(`${what}: truncated presentation context item`);
    const c: ContextAnswer = { id: v[0]!, result: v[2]!, transferSyntaxUid: '' };
    for (const sub of items(v.subarray(4), `${what} presentation context ${c.id}`)) {
      if (sub.type === ItemType.TransferSyntax) c.transferSyntaxUid = uidOf(sub.value);
      else
        throw new PduError(`${what}: unexpected sub-item 0x${sub.type.toString(16)} in presentation context ${c.id}`);
    }
    if (c.result !== ContextResult.Acceptance) c.transferSyntaxUid = '';
    else if (!c.transferSyntaxUid)
      throw new PduError(`${what}: presentation context ${c.id} accepted without a transfer syntax`);
    contexts.push(c);
  });
  return { ...common, presentationContexts: contexts };
}

/** The 4 bytes of an A-ASSOCIATE-RJ, A-RELEASE-RQ/RP or A-ABORT, whose length is always 4. */
function decodeFour(pdu: Buffer, type: number, what: string): Buffer {
  checkHeader(pdu, type, what, 4);
  if (pdu.length !== 10) throw new PduError(`${what}: PDU of ${pdu.length - 6} bytes (4 expected)`);
  return pdu.subarray(6, 10);
}

/** Decodes an A-ASSOCIATE-RJ PDU. Throws PduError on malformed bytes. */
export function decodeAssociateRj(pdu: Buffer): AssociateRj {
  const b = decodeFour(pdu, PduType.AssociateRj, 'A-ASSOCIATE-RJ');
  return { result: b[1]!, source: b[2]!, reason: b[3]! };
}

/** Decodes an A-ABORT PDU. Throws PduError on malformed bytes. */
export function decodeAbort(pdu: Buffer): AbortInfo {
  const b = decodeFour(pdu, PduType.Abort, 'A-ABORT');
  return { source: b[2]!, reason: b[3]! };
}

/** Checks an A-RELEASE-RQ or -RP PDU's framing (they carry nothing). Throws PduError. */
export function checkReleasePdu(pdu: Buffer): void {
  const type = pdu[0] === PduType.ReleaseRp ? PduType.ReleaseRp : PduType.ReleaseRq;
  decodeFour(pdu, type, type === PduType.ReleaseRp ? 'A-RELEASE-RP' : 'A-RELEASE-RQ');
}

// ---------------------------------------------------------------------------------------------
// Words for logs and dead letters

const REJECT_REASONS: Record<string, string> = {
  '1:1': 'no reason given',
  '1:2': 'application context name not supported',
  '1:3': 'calling AE title not recognized',
  '1:7': 'called AE title not recognized',
  '2:1': 'no reason given (ACSE)',
  '2:2': 'protocol version not supported',
  '3:1': 'temporary congestion',
  '3:2': 'local limit exceeded',
};

/** "association rejected (permanent): calling AE title not recognized" (PS3.8 9.3.4 names). */
export function describeReject(rj: AssociateRj): string {
  const kind =
    rj.result === RejectResult.Permanent
      ? 'permanent'
      : rj.result === RejectResult.Transient
        ? 'transient'
        : `result ${rj.result}`;
  const why = REJECT_REASONS[`${rj.source}:${rj.reason}`] ?? `source ${rj.source} reason ${rj.reason}`;
  return `association rejected (${kind}): ${why}`;
}

const ABORT_REASONS = [
  'reason not specified',
  'unrecognized PDU',
  'unexpected PDU',
  'reserved',
  'unrecognized PDU parameter',
  'unexpected PDU parameter',
  'invalid PDU parameter value',
];

/** "source 2, reason 1: unrecognized PDU" (PS3.8 9.3.8; a service user gives no reason). */
export function describeAbort(a: AbortInfo): string {
  const why = a.source === 2 ? ABORT_REASONS[a.reason] : a.source === 0 ? 'service user' : undefined;
  return `source ${a.source}, reason ${a.reason}${why ? `: ${why}` : ''}`;
}

/** "abstract syntax not supported" for a ContextResult. */
export function describeContextResult(result: number): string {
  switch (result) {
    case ContextResult.Acceptance:
      return 'accepted';
    case ContextResult.UserRejection:
      return 'rejected by the user';
    case ContextResult.NoReason:
      return 'rejected, no reason given';
    case ContextResult.AbstractSyntaxNotSupported:
      return 'abstract syntax not supported';
    case ContextResult.TransferSyntaxesNotSupported:
      return 'transfer syntaxes not supported';
    default:
      return `result ${result}`;
  }
}
