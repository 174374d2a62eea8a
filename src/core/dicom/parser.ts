// A strict, allocation-light reader of DICOM element headers. It never decodes pixel data and
// never copies values: each element records where its bytes are, so an editor can copy
// untouched elements verbatim and re-encode only what it changes.
import { inflateRawSync } from 'node:zlib';
import { DicomFormatError } from '../types.js';
import { ITEM, ITEM_DELIMITATION, LONG_VRS, PIXEL_DATA, SEQUENCE_DELIMITATION, UNDEFINED_LENGTH } from './constants.js';
import { readFileMeta } from './fileMeta.js';
import { dictionaryVr } from './vrDictionary.js';
import { EXPLICIT_LE, IMPLICIT_LE, transferSyntaxInfo, type Encoding } from './transferSyntax.js';

export { ITEM, ITEM_DELIMITATION, LONG_VRS, PIXEL_DATA, SEQUENCE_DELIMITATION, UNDEFINED_LENGTH } from './constants.js';
const MAX_DEPTH = 32;

export interface Element {
  tag: number;
  /** Explicit VR as written, or the dictionary VR for implicit data ('UN' when unknown). */
  vr: string;
  /** Offset of the element's first header byte. */
  start: number;
  /** Offset of the value (after the header). */
  valueStart: number;
  /** Value length as written (UNDEFINED_LENGTH for undefined). */
  length: number;
  /** Offset just past the element, including any delimiters. */
  end: number;
  /** Parsed items when the element is a sequence (SQ, or UN/implicit with sequence content). */
  items?: Item[];
  /** Encoding of the items' contents (implicit LE inside a UN sequence). */
  itemEncoding?: Encoding;
  /** Encapsulated (fragmented) pixel data: copied verbatim. */
  encapsulated?: boolean;
}

export interface Item {
  start: number;
  end: number;
  elements: Element[];
}

export interface ParsedInstance {
  /** The original file bytes. */
  file: Buffer;
  /** File meta elements (group 0002), explicit VR LE, offsets into `file`. */
  meta: Element[];
  transferSyntaxUid: string;
  /** Data set bytes (a view into `file`, or the inflated data set for deflate). */
  data: Buffer;
  encoding: Encoding;
  deflated: boolean;
  elements: Element[];
}

function hexTag(tag: number): string {
  const h = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}
export { hexTag };

function isUpperAscii(b: number): boolean {
  return b >= 0x41 && b <= 0x5a;
}

class Reader {
  constructor(
    readonly buf: Buffer,
    readonly enc: Encoding,
  ) {}

  u16(pos: number): number {
    return this.enc.littleEndian ? this.buf.readUInt16LE(pos) : this.buf.readUInt16BE(pos);
  }
  u32(pos: number): number {
    return this.enc.littleEndian ? this.buf.readUInt32LE(pos) : this.buf.readUInt32BE(pos);
  }
  tag(pos: number): number {
    return ((this.u16(pos) << 16) | this.u16(pos + 2)) >>> 0;
  }
}

/**
 * Parses elements from `pos` up to `end`, or up to an item delimitation when `inItem` and the
 * item has undefined length. Returns the elements and the position after them.
 */
function parseElements(
  r: Reader,
  pos: number,
  end: number,
  depth: number,
  stopAtItemDelimiter: boolean,
  stopBefore = 0x100000000,
): { elements: Element[]; pos: number } {
  if (depth > MAX_DEPTH) throw new DicomFormatError(`sequences nested deeper than ${MAX_DEPTH} levels`);
  const { buf, enc } = r;
  const elements: Element[] = [];
  while (pos < end) {
    if (pos + 8 > end) {
      // Some writers pad the data set with a few NUL bytes; anything else is truncation.
      if (buf.subarray(pos, end).every((b) => b === 0)) return { elements, pos: end };
      throw new DicomFormatError(`truncated element header at byte ${pos}`);
    }
    const start = pos;
    const tag = r.tag(pos);
    if (tag >= stopBefore) return { elements, pos };
    if (tag === ITEM_DELIMITATION) {
      if (!stopAtItemDelimiter) throw new DicomFormatError(`unexpected item delimiter at byte ${pos}`);
      return { elements, pos: pos + 8 };
    }
    if (tag === SEQUENCE_DELIMITATION || tag === ITEM) {
      throw new DicomFormatError(`unexpected ${hexTag(tag)} at byte ${pos}`);
    }
    let vr: string;
    let length: number;
    let valueStart: number;
    if (enc.explicitVr) {
      const b0 = buf[pos + 4]!;
      const b1 = buf[pos + 5]!;
      if (!isUpperAscii(b0) || !isUpperAscii(b1)) {
        throw new DicomFormatError(`invalid VR bytes at ${hexTag(tag)} (byte ${pos})`);
      }
      vr = String.fromCharCode(b0, b1);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > end) throw new DicomFormatError(`truncated header of ${hexTag(tag)}`);
        length = r.u32(pos + 8);
        valueStart = pos + 12;
      } else {
        length = r.u16(pos + 6);
        valueStart = pos + 8;
      }
    } else {
      length = r.u32(pos + 4);
      valueStart = pos + 8;
      vr = implicitVr(tag);
    }
    const el: Element = { tag, vr, start, valueStart, length, end: 0 };
    if (length === UNDEFINED_LENGTH) {
      if (tag === PIXEL_DATA || ((vr === 'OB' || vr === 'OW') && enc.explicitVr)) {
        el.encapsulated = true;
        el.end = skipFragments(r, valueStart, end, tag);
      } else if (vr === 'SQ' || vr === 'UN' || !enc.explicitVr) {
        // Undefined-length UN (and any undefined-length implicit element) holds a sequence
        // encoded implicit VR little endian inside (PS3.5 6.2.2).
        const itemEnc = vr === 'SQ' ? enc : IMPLICIT_LE;
        el.itemEncoding = itemEnc;
        const rr = itemEnc === enc ? r : new Reader(buf, itemEnc);
        const res = parseItems(rr, valueStart, end, depth, true);
        el.items = res.items;
        el.end = res.pos;
      } else {
        throw new DicomFormatError(`undefined length on ${vr} element ${hexTag(tag)}`);
      }
    } else {
      const valueEnd = valueStart + length;
      if (valueEnd > end) {
        throw new DicomFormatError(
          `truncated: ${hexTag(tag)} needs ${length} bytes, only ${Math.max(0, end - valueStart)} left`,
        );
      }
      if (vr === 'SQ') {
        el.itemEncoding = enc;
        el.items = parseItems(r, valueStart, valueEnd, depth, false).items;
      } else if (vr === 'UN' && dictionaryVr(tag) === 'SQ') {
        // A sequence sent as UN with a defined length: its items are implicit VR LE. If they
        // do not parse, the element stays opaque (and the profile removes it).
        try {
          el.items = parseItems(new Reader(buf, IMPLICIT_LE), valueStart, valueEnd, depth, false).items;
          el.itemEncoding = IMPLICIT_LE;
        } catch {
          el.items = undefined;
        }
      }
      el.end = valueEnd;
    }
    elements.push(el);
    pos = el.end;
  }
  if (stopAtItemDelimiter) throw new DicomFormatError('truncated: item without delimiter');
  return { elements, pos };
}

/** The VR an implicit VR reader gives `tag`: the dictionary's, UL for group lengths, LO for private creators, else UN. */
export function implicitVr(tag: number): string {
  const group = tag >>> 16;
  const elem = tag & 0xffff;
  if (group & 1) return elem >= 0x0010 && elem <= 0x00ff ? 'LO' : 'UN';
  if (elem === 0) return 'UL';
  const vr = dictionaryVr(tag);
  if (vr) return vr;
  if (group >= 0x6000 && group <= 0x601e && elem === 0x3000) return 'OW';
  return 'UN';
}

function parseItems(
  r: Reader,
  pos: number,
  end: number,
  depth: number,
  undefinedLength: boolean,
): { items: Item[]; pos: number } {
  const items: Item[] = [];
  while (pos < end || undefinedLength) {
    if (pos + 8 > end) throw new DicomFormatError(`truncated sequence at byte ${pos}`);
    const tag = r.tag(pos);
    const len = r.u32(pos + 4);
    if (tag === SEQUENCE_DELIMITATION) {
      if (!undefinedLength) throw new DicomFormatError(`unexpected sequence delimiter at byte ${pos}`);
      return { items, pos: pos + 8 };
    }
    if (tag !== ITEM) throw new DicomFormatError(`expected an item, found ${hexTag(tag)} at byte ${pos}`);
    const start = pos;
    if (len === UNDEFINED_LENGTH) {
      const res = parseElements(r, pos + 8, end, depth + 1, true);
      items.push({ start, end: res.pos, elements: res.elements });
      pos = res.pos;
    } else {
      const itemEnd = pos + 8 + len;
      if (itemEnd > end) throw new DicomFormatError(`truncated item at byte ${pos}`);
      const res = parseElements(r, pos + 8, itemEnd, depth + 1, false);
      items.push({ start, end: itemEnd, elements: res.elements });
      pos = itemEnd;
    }
  }
  return { items, pos };
}

function skipFragments(r: Reader, pos: number, end: number, tag: number): number {
  for (;;) {
    if (pos + 8 > end) throw new DicomFormatError(`truncated encapsulated ${hexTag(tag)}`);
    const t = r.tag(pos);
    const len = r.u32(pos + 4);
    if (t === SEQUENCE_DELIMITATION) return pos + 8;
    if (t !== ITEM || len === UNDEFINED_LENGTH) {
      throw new DicomFormatError(`bad fragment in encapsulated ${hexTag(tag)} at byte ${pos}`);
    }
    pos += 8 + len;
    if (pos > end) throw new DicomFormatError(`truncated encapsulated ${hexTag(tag)}`);
  }
}

/** The string value of a simple element, without trailing padding (space or NUL). */
export function stringValue(buf: Buffer, el: Element, utf8 = false): string {
  if (el.items || el.encapsulated || el.length === UNDEFINED_LENGTH) return '';
  const s = buf.toString(utf8 ? 'utf8' : 'latin1', el.valueStart, el.valueStart + el.length);
  return s.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

export function findElement(elements: Element[], tag: number): Element | undefined {
  for (const el of elements) {
    if (el.tag === tag) return el;
    if (el.tag > tag) return undefined;
  }
  return undefined;
}

/**
 * Parses a Part 10 file: preamble, 'DICM', file meta, then the data set. With `stopBefore`, the
 * data set's top level ends before the first element whose tag is >= it (to read the header
 * from the first bytes of a file: `elements` then ends where that element starts).
 */
export function parsePart10(file: Buffer, options: { stopBefore?: number } = {}): ParsedInstance {
  if (file.length < 132 || file.toString('latin1', 128, 132) !== 'DICM') {
    throw new DicomFormatError('not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)');
  }
  // File meta is always explicit VR little endian (read by fileMeta.ts, the one meta reader).
  const fileMeta = readFileMeta(file, file.length);
  if (fileMeta === 'need-more') throw new DicomFormatError('truncated file meta information');
  const meta = parseElements(new Reader(file, EXPLICIT_LE), 132, fileMeta.dataSetOffset, 0, false).elements;
  const { transferSyntaxUid, dataSetOffset } = fileMeta;
  const info = transferSyntaxInfo(transferSyntaxUid);
  let data = file.subarray(dataSetOffset);
  if (info.deflated) {
    try {
      data = inflateRawSync(data);
    } catch (e) {
      throw new DicomFormatError(`deflated data set cannot be inflated: ${(e as Error).message}`);
    }
  }
  let encoding = info.encoding;
  // A data set labelled explicit VR whose first element has no VR is implicit VR in disguise
  // (seen in the wild); detect it rather than reading garbage lengths.
  if (encoding.explicitVr && encoding.littleEndian && data.length >= 8) {
    if (!isUpperAscii(data[4]!) || !isUpperAscii(data[5]!)) encoding = IMPLICIT_LE;
  }
  const { elements } = parseElements(new Reader(data, encoding), 0, data.length, 0, false, options.stopBefore);
  return { file, meta, transferSyntaxUid, data, encoding, deflated: info.deflated, elements };
}
