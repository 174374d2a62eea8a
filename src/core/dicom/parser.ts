// A strict, allocation-light reader of DICOM element headers. It never decodes pixel data and
// never copies values: each element records where its bytes are, so an editor can copy
// untouched elements verbatim and re-encode only what it changes. It reads an instance through
// a ByteSource, up to the top-level Pixel Data header and from the end of the pixel data on: the
// pixel data itself is never read (encapsulated pixel data is walked by its item headers).
import { inflateRawSync } from 'node:zlib';
import { DicomFormatError } from '../types.js';
import type { ByteSource } from './byteSource.js';
import {
  ALL_VRS,
  ITEM,
  ITEM_DELIMITATION,
  LONG_VRS,
  PIXEL_DATA,
  SEQUENCE_DELIMITATION,
  UNDEFINED_LENGTH,
} from './constants.js';
import { readFileMeta } from './fileMeta.js';
import { dicomFormOf, SNIFF_BYTES, type DicomForm } from './sniff.js';
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
  /** Encapsulated, with an item (fragment) of odd length, which PS3.5 A.4 does not allow. */
  oddFragment?: boolean;
}

export interface Item {
  start: number;
  end: number;
  elements: Element[];
}

/** Top-level elements of one stretch of the data set, with the bytes their offsets point into. */
export interface DataSetPart {
  /** Bytes the elements' offsets are relative to (may extend past the last element). */
  data: Buffer;
  elements: Element[];
}

/** The top-level Pixel Data element, located but not read. */
export interface PixelDataLocation {
  /** Its header, with offsets in data set coordinates (`end` just past its value or delimiter). */
  element: Element;
  /** Offset in the source of its first header byte (bytes). */
  offset: number;
  /** Its length in the source, header and delimiters included (bytes). */
  length: number;
}

export interface ParsedInstance {
  /** What the instance was read from (the pixel data is still there). */
  source: ByteSource;
  /** How the file holds the data set: PS3.10 Part 10, or without preamble or file meta (sniff.ts). */
  form: DicomForm['kind'];
  /** Preamble and file meta: the source's bytes up to the data set (none for a bare data set). */
  metaBytes: Buffer;
  /** File meta elements (group 0002), explicit VR LE, offsets into `metaBytes`. */
  meta: Element[];
  transferSyntaxUid: string;
  /** Offset of the data set in the source (bytes). */
  dataSetOffset: number;
  encoding: Encoding;
  deflated: boolean;
  /** The elements before the top-level Pixel Data (all of them when there is none, or deflated):
   *  `data` starts at the data set's first byte (the inflated data set for deflate). */
  head: DataSetPart;
  /** The top-level Pixel Data, left in the source; null when there is none (or deflated, or
   *  `headOnly`). */
  pixelData: PixelDataLocation | null;
  /** True when the data set has a top-level Pixel Data element (`head` ends where it starts). */
  reachedPixelData: boolean;
  /** The elements after the pixel data (private groups such as 7FE1, trailing padding):
   *  `data` starts at the pixel data's end. */
  tail: DataSetPart;
}

export interface ParseOptions {
  /** Size of the first read (bytes; default 16 KiB): the file meta and, usually, every element
   *  before the pixel data. Reads grow from there when the elements reach further. */
  firstReadBytes?: number;
  /** Read only the file meta and the elements before the top-level Pixel Data (a header survey):
   *  `pixelData` is then null and `tail` empty, and the source may end anywhere after the Pixel
   *  Data header (a file's first bytes). */
  headOnly?: boolean;
  /** Largest inflated data set of a deflated transfer syntax (bytes; default 1 GiB): a deflated
   *  data set cannot be read by range, so it is inflated whole in memory. */
  maxInflatedBytes?: number;
}

/** Default of ParseOptions.maxInflatedBytes. */
export const MAX_INFLATED_BYTES = 1 << 30;
/** Default of ParseOptions.firstReadBytes. */
const FIRST_READ = 16 * 1024;

/** A tag as DICOM writes it, "(GGGG,EEEE)" in upper-case hex: for messages. */
function hexTag(tag: number): string {
  const h = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}
export { hexTag };

/** How every truncation message ends. */
const CUT = ' (the file was cut short or is damaged)';

/** The message for a value that reaches past the end of its data set, item or file. */
function truncated(tag: number, length: number, left: number): string {
  return `truncated: ${hexTag(tag)} declares a value of ${length} bytes but only ${Math.max(0, left)} follow${CUT}`;
}

/**
 * A data set whose elements are not all in its one encoding: PS3.5 7.1 wants explicit or
 * implicit VR throughout, and a reader cannot tell where each element ends once they are mixed.
 * `explicitVr` is the VR found in an implicit data set (null: no VR found in an explicit one).
 */
function mixedEncoding(tag: number, at: number, explicitVr: string | null): DicomFormatError {
  const what =
    explicitVr !== null
      ? `${hexTag(tag)} at byte ${at} is written with its VR (${explicitVr}) in a data set whose other elements have none`
      : `${hexTag(tag)} at byte ${at} is written without a VR in a data set whose other elements have one`;
  return new DicomFormatError(
    `the data set mixes explicit and implicit VR encoding: ${what}; it cannot be read reliably (export it again)`,
  );
}

function isUpperAscii(b: number): boolean {
  return b >= 0x41 && b <= 0x5a;
}

/** Thrown while parsing a prefix of the data set when an element reaches past it. */
class NeedMore {
  constructor(readonly end: number) {}
}

/** An error of the ByteSource itself (I/O): passed on as it is, never taken for bad DICOM. */
class SourceFailure {
  constructor(readonly error: unknown) {}
}

class Reader {
  /**
   * `buf` holds the data set's bytes from offset `base` on; `complete` is false while it is only
   * a prefix of what is being parsed (then reading past it throws NeedMore).
   */
  constructor(
    readonly buf: Buffer,
    readonly enc: Encoding,
    readonly complete = true,
    readonly base = 0,
  ) {}

  /** Makes sure the bytes before `end` (an offset into `buf`) are there. */
  need(end: number): void {
    if (end > this.buf.length && !this.complete) throw new NeedMore(end);
  }
  /** The data set offset of `pos`, for messages. */
  at(pos: number): number {
    return this.base + pos;
  }
  withEncoding(enc: Encoding): Reader {
    return enc === this.enc ? this : new Reader(this.buf, enc, this.complete, this.base);
  }

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
 * item has undefined length. Returns the elements and the position after them. With
 * `stopAtPixelData` (top level only), stops at the Pixel Data element and returns its header
 * as `pixelData` (its value is neither read nor skipped), `pos` being its start.
 */
function parseElements(
  r: Reader,
  pos: number,
  end: number,
  depth: number,
  stopAtItemDelimiter: boolean,
  stopAtPixelData = false,
): { elements: Element[]; pos: number; pixelData?: Element } {
  if (depth > MAX_DEPTH) throw new DicomFormatError(`sequences nested deeper than ${MAX_DEPTH} levels`);
  const { buf, enc } = r;
  const elements: Element[] = [];
  while (pos < end) {
    if (pos + 8 > end) {
      // Some writers pad the data set with a few NUL bytes; anything else is truncation.
      r.need(end);
      if (buf.subarray(pos, end).every((b) => b === 0)) return { elements, pos: end };
      throw new DicomFormatError(`truncated: the data ends inside an element header at byte ${r.at(pos)}${CUT}`);
    }
    r.need(pos + 8);
    const start = pos;
    const tag = r.tag(pos);
    if (tag === ITEM_DELIMITATION) {
      if (!stopAtItemDelimiter) throw new DicomFormatError(`unexpected item delimiter at byte ${r.at(pos)}`);
      return { elements, pos: pos + 8 };
    }
    if (tag === SEQUENCE_DELIMITATION || tag === ITEM) {
      throw new DicomFormatError(`unexpected ${hexTag(tag)} at byte ${r.at(pos)}`);
    }
    let vr: string;
    let length: number;
    let valueStart: number;
    if (enc.explicitVr) {
      const b0 = buf[pos + 4]!;
      const b1 = buf[pos + 5]!;
      if (!isUpperAscii(b0) || !isUpperAscii(b1)) {
        // An implicit VR element (a 4-byte length where the VR should be) in an explicit data set.
        if (pos + 8 + r.u32(pos + 4) <= end) throw mixedEncoding(tag, r.at(pos), null);
        throw new DicomFormatError(
          `damaged data set: ${hexTag(tag)} at byte ${r.at(pos)} has no valid VR where the transfer syntax puts one`,
        );
      }
      vr = String.fromCharCode(b0, b1);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > end)
          throw new DicomFormatError(`truncated: the data ends inside the header of ${hexTag(tag)}${CUT}`);
        r.need(pos + 12);
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
    if (stopAtPixelData && tag === PIXEL_DATA && vr !== 'SQ') {
      if (length === UNDEFINED_LENGTH) el.encapsulated = true;
      return { elements, pos: start, pixelData: el };
    }
    if (length === UNDEFINED_LENGTH) {
      if (tag === PIXEL_DATA || ((vr === 'OB' || vr === 'OW') && enc.explicitVr)) {
        el.encapsulated = true;
        const itemHeader = (p: number): [number, number] => {
          r.need(p + 8);
          return [r.tag(p), r.u32(p + 4)];
        };
        el.end = skipFragments(itemHeader, valueStart, end, el, r.base);
      } else if (vr === 'SQ' || vr === 'UN' || !enc.explicitVr) {
        // Undefined-length UN (and any undefined-length implicit element) holds a sequence
        // encoded implicit VR little endian inside (PS3.5 6.2.2).
        const itemEnc = vr === 'SQ' ? enc : IMPLICIT_LE;
        el.itemEncoding = itemEnc;
        const res = parseItems(r.withEncoding(itemEnc), valueStart, end, depth, true);
        el.items = res.items;
        el.end = res.pos;
      } else {
        throw new DicomFormatError(`undefined length on ${vr} element ${hexTag(tag)}`);
      }
    } else {
      const valueEnd = valueStart + length;
      if (valueEnd > end) {
        if (!enc.explicitVr) {
          // An explicit VR element (VR and 2-byte length read as a 4-byte length) in an implicit data set.
          const explicitVr = buf.toString('latin1', pos + 4, pos + 6);
          const long = LONG_VRS.has(explicitVr);
          if (ALL_VRS.has(explicitVr) && (!long || pos + 12 <= end)) {
            if (long) r.need(pos + 12);
            const explicitEnd = long ? pos + 12 + r.u32(pos + 8) : pos + 8 + r.u16(pos + 6);
            if (explicitEnd <= end) throw mixedEncoding(tag, r.at(pos), explicitVr);
          }
        }
        throw new DicomFormatError(truncated(tag, length, end - valueStart));
      }
      if (vr === 'SQ') {
        el.itemEncoding = enc;
        el.items = parseItems(r, valueStart, valueEnd, depth, false).items;
      } else if (vr === 'UN' && dictionaryVr(tag) === 'SQ') {
        // A sequence sent as UN with a defined length: its items are implicit VR LE. If they
        // do not parse, the element stays opaque (and the profile removes it).
        try {
          el.items = parseItems(r.withEncoding(IMPLICIT_LE), valueStart, valueEnd, depth, false).items;
          el.itemEncoding = IMPLICIT_LE;
        } catch (e) {
          if (e instanceof NeedMore) throw e;
          el.items = undefined;
        }
      }
      el.end = valueEnd;
    }
    elements.push(el);
    pos = el.end;
  }
  if (stopAtItemDelimiter) throw new DicomFormatError(`truncated: an item of undefined length has no end${CUT}`);
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
    if (pos + 8 > end) throw new DicomFormatError(`truncated: a sequence at byte ${r.at(pos)} has no end${CUT}`);
    r.need(pos + 8);
    const tag = r.tag(pos);
    const len = r.u32(pos + 4);
    if (tag === SEQUENCE_DELIMITATION) {
      if (!undefinedLength) throw new DicomFormatError(`unexpected sequence delimiter at byte ${r.at(pos)}`);
      return { items, pos: pos + 8 };
    }
    if (tag !== ITEM) throw new DicomFormatError(`expected an item, found ${hexTag(tag)} at byte ${r.at(pos)}`);
    const start = pos;
    if (len === UNDEFINED_LENGTH) {
      const res = parseElements(r, pos + 8, end, depth + 1, true);
      items.push({ start, end: res.pos, elements: res.elements });
      pos = res.pos;
    } else {
      const itemEnd = pos + 8 + len;
      if (itemEnd > end)
        throw new DicomFormatError(`truncated: the item at byte ${r.at(pos)} reaches past its sequence${CUT}`);
      const res = parseElements(r, pos + 8, itemEnd, depth + 1, false);
      items.push({ start, end: itemEnd, elements: res.elements });
      pos = itemEnd;
    }
  }
  return { items, pos };
}

/**
 * Walks the items (basic offset table, fragments) of encapsulated element `el` from `pos` by
 * their headers alone, up to its sequence delimiter; returns the position after it, and marks
 * `el.oddFragment` when an item has an odd length. `itemHeader(p)` gives the tag and length of
 * the item header at `p`; `base` turns positions into data set offsets for messages.
 */
function skipFragments(
  itemHeader: (pos: number) => [tag: number, length: number],
  pos: number,
  end: number,
  el: Element,
  base: number,
): number {
  const tag = el.tag;
  for (;;) {
    if (pos + 8 > end) throw new DicomFormatError(`truncated: encapsulated ${hexTag(tag)} has no end${CUT}`);
    const [t, len] = itemHeader(pos);
    if (t === SEQUENCE_DELIMITATION) return pos + 8;
    if (t !== ITEM || len === UNDEFINED_LENGTH) {
      throw new DicomFormatError(`bad fragment in encapsulated ${hexTag(tag)} at byte ${base + pos}`);
    }
    if (len % 2 === 1) el.oddFragment = true;
    pos += 8 + len;
    if (pos > end)
      throw new DicomFormatError(`truncated: a fragment of encapsulated ${hexTag(tag)} reaches past the end${CUT}`);
  }
}

/** The string value of a simple element, without trailing padding (space or NUL). */
export function stringValue(buf: Buffer, el: Element, utf8 = false): string {
  if (el.items || el.encapsulated || el.length === UNDEFINED_LENGTH) return '';
  const s = buf.toString(utf8 ? 'utf8' : 'latin1', el.valueStart, el.valueStart + el.length);
  return s.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/**
 * The first element of `elements` with `tag`. Every element is looked at: a data set out of
 * ascending order (which the editor repairs) must not hide a PatientID or a name.
 */
export function findElement(elements: Element[], tag: number): Element | undefined {
  for (const el of elements) if (el.tag === tag) return el;
  return undefined;
}

/** Every element of `elements` with `tag` (a damaged data set may repeat one). */
export function findElements(elements: Element[], tag: number): Element[] {
  return elements.filter((el) => el.tag === tag);
}

/**
 * Parses a Part 10 instance (PS3.10 7.1: preamble, 'DICM', file meta, then the data set) from
 * `source`, or a file in one of the forms seen without preamble or file meta (sniff.ts: 'DICM' at
 * byte 0, the meta at byte 0, a bare data set in the transfer syntax its first element shows),
 * reading only what is not pixel data: the file meta and the elements before the
 * top-level Pixel Data (a first read of 16 KiB, more when they reach further), the item headers
 * of encapsulated pixel data, and the elements after the pixel data. A deflated data set cannot
 * be read by range: it is read and inflated whole (at most `maxInflatedBytes`).
 * Throws DicomFormatError (one line) for anything that is not a readable Part 10 instance; an
 * error of the source itself (I/O) is thrown as it is.
 */
export function parsePart10(source: ByteSource, options: ParseOptions = {}): ParsedInstance {
  try {
    return parseFrom(source, options);
  } catch (e) {
    if (e instanceof SourceFailure) throw e.error;
    if (e instanceof DicomFormatError) throw e;
    // Bounds errors from Buffer reads are truncation in disguise.
    throw new DicomFormatError(`unreadable DICOM: ${(e as Error).message}`);
  }
}

function parseFrom(source: ByteSource, options: ParseOptions): ParsedInstance {
  const size = source.size;
  const read = (offset: number, length: number): Buffer => {
    try {
      return source.read(offset, length);
    } catch (e) {
      throw new SourceFailure(e);
    }
  };
  /** `bytes` (the source's bytes from `offset` on) extended to at least `want` bytes. */
  const extend = (bytes: Buffer, offset: number, want: number): Buffer => {
    const length = Math.min(size - offset, Math.max(want, bytes.length * 2));
    return Buffer.concat([bytes, read(offset + bytes.length, length - bytes.length)], length);
  };

  let prefix = read(0, Math.min(size, Math.max(SNIFF_BYTES, options.firstReadBytes ?? FIRST_READ)));
  const form = dicomFormOf(prefix);
  if (!form) {
    throw new DicomFormatError('not DICOM: no DICM marker after the 128-byte preamble, and no data set at the start');
  }
  let transferSyntaxUid: string;
  let dataSetOffset: number;
  let meta: Element[] = [];
  if (form.kind === 'data-set') {
    // No file meta: the transfer syntax is what the first element header shows.
    transferSyntaxUid = form.transferSyntaxUid;
    dataSetOffset = 0;
  } else {
    // File meta is always explicit VR little endian (read by fileMeta.ts, the one meta reader).
    let fileMeta = readFileMeta(prefix, size, form.metaStart);
    while (fileMeta === 'need-more') {
      if (prefix.length >= size) throw new DicomFormatError('truncated file meta information');
      prefix = extend(prefix, 0, prefix.length * 2);
      fileMeta = readFileMeta(prefix, size, form.metaStart);
    }
    ({ transferSyntaxUid, dataSetOffset } = fileMeta);
    const metaReader = new Reader(prefix.subarray(0, dataSetOffset), EXPLICIT_LE);
    meta = parseElements(metaReader, form.metaStart, dataSetOffset, 0, false).elements;
  }
  const metaBytes = prefix.subarray(0, dataSetOffset);
  const info = transferSyntaxInfo(transferSyntaxUid);
  const dataSize = size - dataSetOffset;
  const base = { source, form: form.kind, metaBytes, meta, transferSyntaxUid, dataSetOffset, deflated: info.deflated };
  const noTail: DataSetPart = { data: Buffer.alloc(0), elements: [] };

  if (info.deflated) {
    const compressed = prefix.length >= size ? prefix.subarray(dataSetOffset) : read(dataSetOffset, dataSize);
    const limit = options.maxInflatedBytes ?? MAX_INFLATED_BYTES;
    let data: Buffer;
    try {
      data = inflateRawSync(compressed, { maxOutputLength: limit });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new DicomFormatError(`deflated data set inflates to more than ${limit} bytes (the limit in memory)`);
      }
      throw new DicomFormatError(`deflated data set cannot be inflated: ${(e as Error).message}`);
    }
    const encoding = detectEncoding(data, info.encoding);
    const { elements } = parseElements(new Reader(data, encoding), 0, data.length, 0, false);
    const reachedPixelData = findElement(elements, PIXEL_DATA) !== undefined;
    return { ...base, encoding, head: { data, elements }, pixelData: null, reachedPixelData, tail: noTail };
  }

  // The data set's bytes read so far: at least its first 8, to check its encoding.
  let data = prefix.subarray(dataSetOffset);
  if (data.length < Math.min(8, dataSize)) data = extend(data, dataSetOffset, 8);
  const encoding = detectEncoding(data, info.encoding);
  let res: ReturnType<typeof parseElements>;
  for (;;) {
    const r = new Reader(data, encoding, data.length >= dataSize);
    try {
      res = parseElements(r, 0, dataSize, 0, false, true);
      // The last element's value may have been skipped, not read: it must be there too.
      r.need(res.pos);
      break;
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      data = extend(data, dataSetOffset, e.end);
    }
  }
  const px = res.pixelData;
  const head = { data, elements: res.elements };
  if (!px || options.headOnly) {
    return { ...base, encoding, head, pixelData: null, reachedPixelData: px !== undefined, tail: noTail };
  }

  // The pixel data: native by its length, encapsulated by its item headers (fragments unread).
  if (px.length !== UNDEFINED_LENGTH) {
    px.end = px.valueStart + px.length;
    if (px.end > dataSize) throw new DicomFormatError(truncated(px.tag, px.length, dataSize - px.valueStart));
  } else {
    const pr = new Reader(data, encoding);
    const itemHeader = (p: number): [number, number] => {
      if (p + 8 <= data.length) return [pr.tag(p), pr.u32(p + 4)];
      const h = new Reader(read(dataSetOffset + p, 8), encoding);
      return [h.tag(0), h.u32(4)];
    };
    px.end = skipFragments(itemHeader, px.valueStart, dataSize, px, 0);
  }
  const pixelData = { element: px, offset: dataSetOffset + px.start, length: px.end - px.start };

  // The elements after it, read whole.
  const tailData = data.length >= dataSize ? data.subarray(px.end) : read(dataSetOffset + px.end, dataSize - px.end);
  const tail = parseElements(new Reader(tailData, encoding, true, px.end), 0, tailData.length, 0, false);
  return {
    ...base,
    encoding,
    head,
    pixelData,
    reachedPixelData: true,
    tail: { data: tailData, elements: tail.elements },
  };
}

/**
 * The data set's real encoding: one labelled explicit VR little endian whose first element has
 * no VR is implicit VR in disguise (seen in the wild); detect it rather than read garbage lengths.
 */
function detectEncoding(data: Buffer, labelled: Encoding): Encoding {
  if (labelled.explicitVr && labelled.littleEndian && data.length >= 8) {
    if (!isUpperAscii(data[4]!) || !isUpperAscii(data[5]!)) return IMPLICIT_LE;
  }
  return labelled;
}

/**
 * The top-level elements of a stretch of a data set held in memory, encoded as `encoding` (e.g.
 * the elements an editor wrote after the pixel data), from offset `from` to the end of `data`
 * (a file meta group: from 132, explicit VR little endian): offsets are into `data`. Throws
 * DicomFormatError (one line) when the bytes are not whole elements.
 */
export function parseDataSetElements(data: Buffer, encoding: Encoding, from = 0): Element[] {
  try {
    return parseElements(new Reader(data, encoding), from, data.length, 0, false).elements;
  } catch (e) {
    if (e instanceof DicomFormatError) throw e;
    throw new DicomFormatError(`unreadable DICOM: ${(e as Error).message}`);
  }
}

/**
 * The top-level elements of a data set's first stretch held in memory (encoded as `encoding`, from
 * offset 0), up to the top-level Pixel Data: its header is returned too when the stretch reaches
 * it (`valueStart` at most `data.length`), its value is not read. Throws DicomFormatError (one
 * line) when the bytes before it are not whole elements.
 */
export function parseDataSetHead(data: Buffer, encoding: Encoding): { elements: Element[]; pixelData?: Element } {
  try {
    const { elements, pixelData } = parseElements(new Reader(data, encoding), 0, data.length, 0, false, true);
    return { elements, pixelData };
  } catch (e) {
    if (e instanceof DicomFormatError) throw e;
    throw new DicomFormatError(`unreadable DICOM: ${(e as Error).message}`);
  }
}
