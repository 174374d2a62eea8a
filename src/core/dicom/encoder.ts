// Encodes the few elements the editor writes itself: replaced strings, empty values, binary
// dummies and sequence framing (always undefined length, so no length needs recomputing).
import type { Encoding } from './transferSyntax.js';
import { ITEM, ITEM_DELIMITATION, LONG_VRS, SEQUENCE_DELIMITATION, UNDEFINED_LENGTH } from './constants.js';

function writeTag(b: Buffer, pos: number, tag: number, le: boolean): void {
  if (le) {
    b.writeUInt16LE(tag >>> 16, pos);
    b.writeUInt16LE(tag & 0xffff, pos + 2);
  } else {
    b.writeUInt16BE(tag >>> 16, pos);
    b.writeUInt16BE(tag & 0xffff, pos + 2);
  }
}

/**
 * An element header (PS3.5 7.1.1-7.1.3) in `enc`: 8 bytes (implicit VR, or explicit VR with a 16-bit length),
 * or 12 bytes for explicit VRs with a 32-bit length (OB, OW, SQ, UN, UT...: LONG_VRS). `length` in bytes;
 * UNDEFINED_LENGTH (0xFFFFFFFF) for sequences. Throws RangeError when `length` does not fit a 16-bit length
 * field.
 */
export function encodeHeader(tag: number, vr: string, length: number, enc: Encoding): Buffer {
  const le = enc.littleEndian;
  if (!enc.explicitVr) {
    const b = Buffer.alloc(8);
    writeTag(b, 0, tag, le);
    b.writeUInt32LE(length >>> 0, 4);
    return b;
  }
  if (LONG_VRS.has(vr)) {
    const b = Buffer.alloc(12);
    writeTag(b, 0, tag, le);
    b.write(vr, 4, 'latin1');
    if (le) b.writeUInt32LE(length >>> 0, 8);
    else b.writeUInt32BE(length >>> 0, 8);
    return b;
  }
  if (length > 0xffff) throw new RangeError(`value too long for ${vr}`);
  const b = Buffer.alloc(8);
  writeTag(b, 0, tag, le);
  b.write(vr, 4, 'latin1');
  if (le) b.writeUInt16LE(length, 6);
  else b.writeUInt16BE(length, 6);
  return b;
}

/** A complete element with a text value, padded to even length (NUL for UI, space otherwise). */
export function encodeText(tag: number, vr: string, value: string, enc: Encoding, utf8 = false): Buffer {
  let v = Buffer.from(value, utf8 ? 'utf8' : 'latin1');
  if (v.length % 2) v = Buffer.concat([v, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
  return Buffer.concat([encodeHeader(tag, vr, v.length, enc), v]);
}

/** A complete element with the given raw value bytes (already in the data set's byte order). */
export function encodeRaw(tag: number, vr: string, value: Buffer, enc: Encoding): Buffer {
  return Buffer.concat([encodeHeader(tag, vr, value.length, enc), value]);
}

function marker(tag: number, length: number, enc: Encoding): Buffer {
  const b = Buffer.alloc(8);
  writeTag(b, 0, tag, enc.littleEndian);
  if (enc.littleEndian) b.writeUInt32LE(length >>> 0, 4);
  else b.writeUInt32BE(length >>> 0, 4);
  return b;
}

/** A sequence element header with undefined length (PS3.5 7.5.1); close it with sequenceEnd. */
export const sequenceStart = (tag: number, vr: string, enc: Encoding): Buffer =>
  encodeHeader(tag, vr, UNDEFINED_LENGTH, enc);
/** An Item tag (FFFE,E000) with undefined length: 8 bytes (PS3.5 7.5.1); close it with itemEnd. */
export const itemStart = (enc: Encoding): Buffer => marker(ITEM, UNDEFINED_LENGTH, enc);
/** An Item Delimitation Item (FFFE,E00D), length 0: 8 bytes. */
export const itemEnd = (enc: Encoding): Buffer => marker(ITEM_DELIMITATION, 0, enc);
/** A Sequence Delimitation Item (FFFE,E0DD), length 0: 8 bytes. */
export const sequenceEnd = (enc: Encoding): Buffer => marker(SEQUENCE_DELIMITATION, 0, enc);
