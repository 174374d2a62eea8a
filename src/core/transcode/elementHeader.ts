// Element and item headers read from a SequentialReader in any of the three encodings
// (PS3.5 7.1.1-7.1.3, 7.5), and the VR an element gets when written with explicit VR.
import { hexTag, implicitVr } from '../dicom/parser.js';
import { ITEM, ITEM_DELIMITATION, LONG_VRS, PIXEL_DATA, SEQUENCE_DELIMITATION } from '../dicom/constants.js';
import { IMPLICIT_LE, type Encoding } from '../dicom/transferSyntax.js';
import type { SequentialReader } from './sequentialSource.js';
import { corrupt } from './conversionError.js';

export interface ElementHeader {
  tag: number;
  /** Explicit VR as written, or the dictionary VR for implicit data ('UN' when unknown). */
  vr: string;
  /** Value length (UNDEFINED_LENGTH for undefined). */
  length: number;
}

const isUpper = (b: number): boolean => b >= 0x41 && b <= 0x5a;

function tagAt(buf: Buffer, pos: number, le: boolean): number {
  return le
    ? ((buf.readUInt16LE(pos) << 16) | buf.readUInt16LE(pos + 2)) >>> 0
    : ((buf.readUInt16BE(pos) << 16) | buf.readUInt16BE(pos + 2)) >>> 0;
}

/**
 * Reads the next header (element, item or delimiter) and consumes it. Null at the end of the
 * source, or when only NUL padding (fewer than 8 bytes) is left there.
 */
export async function readHeader(r: SequentialReader, enc: Encoding): Promise<ElementHeader | null> {
  if (!(await r.ensure(8))) {
    if (r.available === 0 || r.buf.subarray(r.off, r.off + r.available).every((b) => b === 0)) {
      r.consume(r.available);
      return null;
    }
    throw corrupt(`truncated element header at byte ${r.position}`);
  }
  const { buf, off } = r;
  const le = enc.littleEndian;
  const tag = tagAt(buf, off, le);
  const u32 = (p: number): number => (le ? buf.readUInt32LE(p) : buf.readUInt32BE(p));
  if (tag === ITEM || tag === ITEM_DELIMITATION || tag === SEQUENCE_DELIMITATION) {
    r.consume(8);
    return { tag, vr: '', length: u32(off + 4) };
  }
  if (!enc.explicitVr) {
    r.consume(8);
    return { tag, vr: implicitVr(tag), length: u32(off + 4) };
  }
  const b0 = buf[off + 4]!;
  const b1 = buf[off + 5]!;
  if (!isUpper(b0) || !isUpper(b1)) throw corrupt(`invalid VR bytes at ${hexTag(tag)} (byte ${r.position})`);
  const vr = String.fromCharCode(b0, b1);
  if (!LONG_VRS.has(vr)) {
    const length = le ? buf.readUInt16LE(off + 6) : buf.readUInt16BE(off + 6);
    r.consume(8);
    return { tag, vr, length };
  }
  if (!(await r.ensure(12))) throw corrupt(`truncated header of ${hexTag(tag)} at byte ${r.position}`);
  const length = le ? r.buf.readUInt32LE(r.off + 8) : r.buf.readUInt32BE(r.off + 8);
  r.consume(12);
  return { tag, vr, length };
}

/**
 * A data set labelled explicit VR little endian whose first element has no VR is implicit VR in
 * disguise (seen in the wild; the parser detects it the same way). Peeks without consuming.
 */
export async function detectEncoding(r: SequentialReader, declared: Encoding): Promise<Encoding> {
  if (declared.explicitVr && declared.littleEndian && (await r.ensure(8))) {
    if (!isUpper(r.buf[r.off + 4]!) || !isUpper(r.buf[r.off + 5]!)) return IMPLICIT_LE;
  }
  return declared;
}

/** Whether an undefined-length element holds encapsulated fragments rather than a sequence. */
export function isEncapsulated(h: ElementHeader, enc: Encoding): boolean {
  return h.tag === PIXEL_DATA || (enc.explicitVr && (h.vr === 'OB' || h.vr === 'OW'));
}

/** Tags whose dictionary VR is "US or SS": SS when Pixel Representation is 1 (PS3.6 6). LUT
 *  descriptors stay US (their first value is always US, as pydicom reads them). */
const US_OR_SS = new Set([
  0x00280104, 0x00280105, 0x00280106, 0x00280107, 0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120,
  0x00280121,
]);

/** What the data set around an element says that decides an implicit element's VR. */
export interface VrContext {
  pixelRepresentation?: number;
  bitsAllocated?: number;
}

/**
 * The VR to write for an element read with implicit VR (`dictVr` from the dictionary), resolving
 * the dictionary's ambiguous VRs as dcmtk and pydicom do: US/SS by Pixel Representation, pixel
 * data OB when Bits Allocated <= 8 else OW. A value longer than a 16-bit length field becomes UN
 * (PS3.5 6.2.2).
 */
export function explicitVr(tag: number, dictVr: string, length: number, ctx: VrContext): string {
  let vr = dictVr;
  if (US_OR_SS.has(tag)) vr = ctx.pixelRepresentation === 1 ? 'SS' : 'US';
  else if (tag === PIXEL_DATA) vr = (ctx.bitsAllocated ?? 16) <= 8 ? 'OB' : 'OW';
  if (!LONG_VRS.has(vr) && length > 0xffff) vr = 'UN';
  return vr;
}
