// Zero-copy parsing of P-DATA-TF PDUs (PS3.8 9.3.5), and the A-ABORT PDU we send.
//
// dcmjs-dimse parses P-DATA-TF through its SmartBuffer-based RawPdu/PDataTF classes, copying the
// PDU body and every PDV value. The receiver parses the PDV items itself (its messageAssembly.ts
// handles them; the library never sees P-DATA): each value is a view into the PDU buffer.
import { PduError } from './pduReader.js';

/** One presentation data value item. */
export class PdvView {
  /**
   * `presentationContextId`: the PDV's context ID; `header`: its message control header byte (PS3.8 E.2);
   * `value`: the fragment, a view into the PDU (not copied).
   */
  constructor(
    readonly presentationContextId: number,
    private readonly header: number,
    readonly value: Buffer,
  ) {}
  /** Bit 0 of the message control header: the fragment is of a command set (else of a data set). */
  isCommand(): boolean {
    return (this.header & 0x01) !== 0;
  }
  /** Bit 1 of the message control header: the last fragment of its command set or data set. */
  isLastFragment(): boolean {
    return (this.header & 0x02) !== 0;
  }
}

/** Splits a complete P-DATA-TF PDU (header included) into its PDV items. */
export function parsePdvs(pdu: Buffer): PdvView[] {
  const end = 6 + pdu.readUInt32BE(2);
  if (end !== pdu.length) throw new PduError('P-DATA-TF length mismatch');
  const pdvs: PdvView[] = [];
  let off = 6;
  while (off < end) {
    if (end - off < 6) throw new PduError('truncated PDV item');
    const itemLength = pdu.readUInt32BE(off);
    if (itemLength < 2 || itemLength > end - off - 4) throw new PduError('invalid PDV item length');
    const pcId = pdu[off + 4]!;
    const header = pdu[off + 5]!;
    if ((header & 0xfc) !== 0) throw new PduError('invalid PDV message control header');
    pdvs.push(new PdvView(pcId, header, pdu.subarray(off + 6, off + 4 + itemLength)));
    off += 4 + itemLength;
  }
  if (pdvs.length === 0) throw new PduError('P-DATA-TF without PDV items');
  return pdvs;
}

/** A-ABORT source values (PS3.8 9.3.8). */
export const AbortSource = { ServiceUser: 0, ServiceProvider: 2 } as const;
/** A-ABORT reasons when the source is the service provider. */
export const AbortReason = {
  NotSpecified: 0,
  UnrecognizedPdu: 1,
  UnexpectedPdu: 2,
  UnrecognizedPduParameter: 4,
  UnexpectedPduParameter: 5,
  InvalidPduParameterValue: 6,
} as const;

/** An A-ABORT PDU (PS3.8 9.3.8): 10 bytes, `source` and `reason` from AbortSource and AbortReason. */
export function abortPdu(source: number, reason: number): Buffer {
  return Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, source, reason]);
}

/** Message Control Header bits of a PDV (PS3.8 E.2). */
export const PdvControl = { Data: 0x00, Command: 0x01, LastFragment: 0x02 } as const;

/**
 * The 12 bytes in front of the value of a P-DATA-TF PDU that carries one PDV (PS3.8 9.3.5):
 * the PDU header (type, reserved, length) and the PDV item header (length, context ID, message
 * control header). The value follows in the same PDU.
 */
export function pdvPduHeader(presentationContextId: number, control: number, valueLength: number): Buffer {
  const head = Buffer.allocUnsafe(12);
  head[0] = 0x04; // P-DATA-TF
  head[1] = 0;
  head.writeUInt32BE(6 + valueLength, 2);
  head.writeUInt32BE(2 + valueLength, 6);
  head[10] = presentationContextId;
  head[11] = control;
  return head;
}
