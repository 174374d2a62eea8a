// Splits an incoming DICOM Upper Layer byte stream into PDUs, with a size cap.
//
// Replaces dcmjs-dimse's internal PduAccumulator, which (0.3.3) Buffer.concat()s every socket
// chunk onto the partial PDU (quadratic copying for large PDUs), accepts any announced PDU
// length (a peer can make it buffer gigabytes) and only reports an unknown PDU type once six
// bytes have arrived. Here a PDU that fits in one socket chunk is handed on as a zero-copy view;
// a PDU spanning chunks is assembled into one buffer allocated once at its announced size, after
// the size was checked against the cap.

/** PDU types of PS3.8 9.3. */
export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PDataTf: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

/**
 * A peer broke the DICOM Upper Layer protocol (PS3.8 9.3): unknown PDU type, a PDU over the cap, a malformed
 * P-DATA-TF or DIMSE message. One-line message, no identifier; the association aborts.
 */
export class PduError extends Error {
  override name = 'PduError';
}

export interface PduReaderOptions {
  /** Largest acceptable PDU length field (bytes after the 6-byte header) for a PDU type. */
  maxLength(type: number): number;
  /** Called with the complete PDU, header included. May throw; the caller of push() catches. */
  onPdu(type: number, pdu: Buffer): void;
}

/**
 * Splits a DICOM Upper Layer byte stream (PS3.8 9.3) into PDUs, capped per type (see above): push() socket
 * chunks, onPdu receives each complete PDU (a view into the chunk when it fits in one).
 */
export class PduReader {
  private readonly header = Buffer.alloc(6);
  private headerFill = 0;
  /** PDU being assembled across chunks. */
  private partial: Buffer | undefined;
  private partialFill = 0;
  private stopped = false;

  /**
   * `opts.maxLength(type)`: largest PDU length field (bytes after the 6-byte header) per PDU type;
   * `opts.onPdu`: called with each complete PDU.
   */
  constructor(private readonly opts: PduReaderOptions) {}

  /** True while a PDU has been started but not completed. */
  get midPdu(): boolean {
    return this.headerFill > 0 || this.partial !== undefined;
  }

  /** Stops delivering PDUs (after an abort); later pushes are ignored. */
  stop(): void {
    this.stopped = true;
    this.partial = undefined;
  }

  /** Feeds one socket chunk. Throws PduError on an unknown type or an oversized PDU. */
  push(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (off < len && !this.stopped) {
      if (this.partial !== undefined) {
        const need = this.partial.length - this.partialFill;
        const n = Math.min(need, len - off);
        chunk.copy(this.partial, this.partialFill, off, off + n);
        this.partialFill += n;
        off += n;
        if (this.partialFill === this.partial.length) {
          const pdu = this.partial;
          this.partial = undefined;
          this.partialFill = 0;
          this.opts.onPdu(pdu[0]!, pdu);
        }
        continue;
      }

      let type: number;
      let pduLength: number;
      let bodyStart: number; // offset in chunk where the bytes after the header start
      if (this.headerFill === 0 && len - off >= 6) {
        type = chunk[off]!;
        this.checkType(type);
        pduLength = chunk.readUInt32BE(off + 2);
        this.checkLength(type, pduLength);
        const total = 6 + pduLength;
        if (len - off >= total) {
          const pdu = chunk.subarray(off, off + total);
          off += total;
          this.opts.onPdu(type, pdu);
          continue;
        }
        bodyStart = off + 6;
      } else {
        if (this.headerFill === 0) this.checkType(chunk[off]!);
        const n = Math.min(6 - this.headerFill, len - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < 6) return;
        this.headerFill = 0;
        type = this.header[0]!;
        pduLength = this.header.readUInt32BE(2);
        this.checkLength(type, pduLength);
        if (pduLength === 0) {
          this.opts.onPdu(type, Buffer.from(this.header));
          continue;
        }
        bodyStart = off;
      }
      const pdu = Buffer.allocUnsafe(6 + pduLength);
      if (bodyStart !== off) {
        // Header is in this chunk: copy it together with the body bytes.
        chunk.copy(pdu, 0, off, off + 6);
      } else {
        this.header.copy(pdu, 0, 0, 6);
      }
      const avail = Math.min(len - bodyStart, pduLength);
      chunk.copy(pdu, 6, bodyStart, bodyStart + avail);
      this.partial = pdu;
      this.partialFill = 6 + avail;
      off = bodyStart + avail;
      if (this.partialFill === pdu.length) {
        this.partial = undefined;
        this.partialFill = 0;
        this.opts.onPdu(type, pdu);
      }
    }
  }

  private checkType(type: number): void {
    if (type < PduType.AssociateRq || type > PduType.Abort) {
      throw new PduError(`unrecognized PDU type 0x${type.toString(16).padStart(2, '0')}`);
    }
  }

  private checkLength(type: number, length: number): void {
    const max = this.opts.maxLength(type);
    if (length > max) throw new PduError(`PDU type ${type} of ${length} bytes exceeds limit ${max}`);
  }
}
