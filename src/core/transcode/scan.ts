// A first pass over a data set that reads only what planning a pixel data decode needs: the
// top-level Image Pixel attributes, the lossy compression attributes, the offset tables, and
// the first bytes of the first fragment. Every other value is skipped (a file source seeks), so
// the pass costs a walk over the headers, whatever the instance's size.
import { hexTag } from '../dicom/parser.js';
import { ITEM, ITEM_DELIMITATION, PIXEL_DATA, SEQUENCE_DELIMITATION, UNDEFINED_LENGTH } from '../dicom/constants.js';
import { IMPLICIT_LE, type Encoding } from '../dicom/transferSyntax.js';
import type { SequentialReader } from './sequentialSource.js';
import { corrupt } from './conversionError.js';
import { isEncapsulated, readHeader, type ElementHeader } from './elementHeader.js';

/** Top-level attributes the pixel module plan reads (PS3.3 C.7.6.3, C.7.6.1.1.5). */
export const PIXEL_TAGS = {
  samplesPerPixel: 0x00280002,
  photometricInterpretation: 0x00280004,
  planarConfiguration: 0x00280006,
  numberOfFrames: 0x00280008,
  rows: 0x00280010,
  columns: 0x00280011,
  bitsAllocated: 0x00280100,
  bitsStored: 0x00280101,
  highBit: 0x00280102,
  pixelRepresentation: 0x00280103,
  lossyImageCompression: 0x00282110,
  lossyImageCompressionRatio: 0x00282112,
  lossyImageCompressionMethod: 0x00282114,
  extendedOffsetTable: 0x7fe00001,
  extendedOffsetTableLengths: 0x7fe00002,
} as const;

const WANTED: ReadonlySet<number> = new Set(Object.values(PIXEL_TAGS));
/** Bytes of the first fragment kept for reading its codestream headers. */
const HEAD_BYTES = 64 * 1024;
const MAX_SMALL_VALUE = 64 * 1024 * 1024; // the Extended Offset Table: 8 bytes per frame

export interface ScanResult {
  /** Encoding actually found (implicit VR in disguise is detected by the caller). */
  encoding: Encoding;
  /** Raw value bytes of the wanted top-level attributes, as found (source byte order). */
  values: Map<number, Buffer>;
  /** Top-level Pixel Data: absent, native, or encapsulated with what was found in it. */
  pixelData?:
    | { encapsulated: false; length: number }
    | {
        encapsulated: true;
        /** Basic Offset Table entries (empty when the table is empty). */
        basicOffsets: number[];
        fragments: number;
        /** Sum of the fragments' lengths, in bytes. */
        compressedBytes: number;
        /** First bytes (at most 64 KiB) of the first fragment. */
        firstFragmentHead: Buffer;
      };
}

/** Walks the data set from the reader's position to its end. Throws ConversionError (corrupt). */
export async function scanDataSet(r: SequentialReader, enc: Encoding): Promise<ScanResult> {
  const result: ScanResult = { encoding: enc, values: new Map() };
  for (;;) {
    const h = await readHeader(r, enc);
    if (!h) return result;
    checkElementTag(h, r);
    if (h.length === UNDEFINED_LENGTH) {
      if (isEncapsulated(h, enc)) {
        if (h.tag === PIXEL_DATA) result.pixelData = await scanFragments(r, enc);
        else await skipFragments(r, enc, h);
      } else await skipSequence(r, h.vr === 'SQ' ? enc : IMPLICIT_LE, 1);
      continue;
    }
    if (WANTED.has(h.tag) && h.length <= MAX_SMALL_VALUE) {
      result.values.set(h.tag, await r.take(h.length, hexTag(h.tag)));
      continue;
    }
    if (h.tag === PIXEL_DATA) result.pixelData = { encapsulated: false, length: h.length };
    await r.skip(h.length, hexTag(h.tag));
  }
}

/**
 * Throws ConversionError 'corrupt' (naming the tag and byte offset) when the header just read is an item or
 * delimitation tag (FFFE,E000/E00D/E0DD) where a data element must be (PS3.5 7.5).
 */
export function checkElementTag(h: ElementHeader, r: SequentialReader): void {
  if (h.tag === ITEM || h.tag === ITEM_DELIMITATION || h.tag === SEQUENCE_DELIMITATION) {
    throw corrupt(`unexpected ${hexTag(h.tag)} at byte ${r.position - 8}`);
  }
}

async function scanFragments(r: SequentialReader, enc: Encoding): Promise<NonNullable<ScanResult['pixelData']>> {
  const bot = await readHeader(r, enc);
  if (!bot || bot.tag !== ITEM) throw corrupt('encapsulated pixel data without a Basic Offset Table item');
  const table = await r.take(bot.length, 'the Basic Offset Table');
  const basicOffsets: number[] = [];
  for (let i = 0; i + 4 <= table.length; i += 4) basicOffsets.push(table.readUInt32LE(i));
  let fragments = 0;
  let compressedBytes = 0;
  let firstFragmentHead: Buffer = Buffer.alloc(0);
  for (;;) {
    const h = await readHeader(r, enc);
    if (!h) throw corrupt('truncated encapsulated pixel data (no sequence delimiter)');
    if (h.tag === SEQUENCE_DELIMITATION) break;
    if (h.tag !== ITEM || h.length === UNDEFINED_LENGTH) {
      throw corrupt(`bad fragment in encapsulated pixel data at byte ${r.position - 8}`);
    }
    if (fragments === 0) {
      const head = Math.min(h.length, HEAD_BYTES);
      firstFragmentHead = await r.take(head, 'the first fragment');
      await r.skip(h.length - head, 'the first fragment');
    } else await r.skip(h.length, 'a fragment');
    fragments += 1;
    compressedBytes += h.length;
  }
  return { encapsulated: true, basicOffsets, fragments, compressedBytes, firstFragmentHead };
}

/** Skips fragments up to and including the sequence delimiter. */
export async function skipFragments(r: SequentialReader, enc: Encoding, h: ElementHeader): Promise<void> {
  for (;;) {
    const f = await readHeader(r, enc);
    if (!f) throw corrupt(`truncated encapsulated ${hexTag(h.tag)}`);
    if (f.tag === SEQUENCE_DELIMITATION) return;
    if (f.tag !== ITEM || f.length === UNDEFINED_LENGTH) throw corrupt(`bad fragment in encapsulated ${hexTag(h.tag)}`);
    await r.skip(f.length, 'a fragment');
  }
}

/** Skips the items of an undefined-length sequence, up to and including its delimiter. */
async function skipSequence(r: SequentialReader, enc: Encoding, depth: number): Promise<void> {
  if (depth > 32) throw corrupt('sequences nested deeper than 32 levels');
  for (;;) {
    const item = await readHeader(r, enc);
    if (!item) throw corrupt('truncated sequence (no sequence delimiter)');
    if (item.tag === SEQUENCE_DELIMITATION) return;
    if (item.tag !== ITEM) throw corrupt(`expected an item, found ${hexTag(item.tag)} at byte ${r.position - 8}`);
    if (item.length !== UNDEFINED_LENGTH) {
      await r.skip(item.length, 'an item');
      continue;
    }
    for (;;) {
      const h = await readHeader(r, enc);
      if (!h) throw corrupt('truncated item (no item delimiter)');
      if (h.tag === ITEM_DELIMITATION) break;
      checkElementTag(h, r);
      if (h.length !== UNDEFINED_LENGTH) await r.skip(h.length, hexTag(h.tag));
      else if (isEncapsulated(h, enc)) await skipFragments(r, enc, h);
      else await skipSequence(r, h.vr === 'SQ' ? enc : IMPLICIT_LE, depth + 1);
    }
  }
}
