// The de-identification core: instance bytes + plan in, instance bytes out, no I/O.
// It edits at the element level over the original bytes: untouched elements are copied
// verbatim (pixel data, compressed or not, is never decoded), only the elements the rules
// change are re-encoded, and every rewritten sequence is written with undefined lengths.
// The instance is read through a ByteSource, and the top-level pixel data is not read at all:
// deidentifySource returns the new bytes before it, its byte range in the source, and the new
// bytes after it, for the adapter to copy the range unchanged (deidentify joins the three).
import { deflateRawSync } from 'node:zlib';
import { ageFromDates, binAge } from './age.js';
import { shiftDA, shiftDT } from './dates.js';
import {
  encodeHeader,
  encodeRaw,
  encodeText,
  itemEnd,
  itemStart,
  sequenceEnd,
  sequenceStart,
} from './dicom/encoder.js';
import { bufferSource, type ByteRange, type ByteSource } from './dicom/byteSource.js';
import { UNDEFINED_LENGTH } from './dicom/constants.js';
import {
  findElement,
  hexTag,
  parsePart10,
  stringValue,
  type Element,
  type Item,
  type ParsedInstance,
  type ParseOptions,
} from './dicom/parser.js';
import { CHARSET_VRS, decodeText, encodeText as encodeCharset, parseSpecificCharacterSet } from './charset/index.js';
import type { SpecificCharacterSet } from './charset/index.js';
import { buildFileMeta } from './dicom/fileMeta.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntaxInfo, type Encoding } from './dicom/transferSyntax.js';
import { CHECKED_VRS, checkValue } from './dicom/valueRules.js';
import { dictionaryVr } from './dicom/vrDictionary.js';
import { actionFor, PATIENT_AGE } from './profile/rules.js';
import { createUidRemapper } from './uidRemap.js';
import { identifyingValues } from './identifiers/identifyingValues.js';
import {
  DicomFormatError,
  type DeidInstanceInfo,
  type DeidPlan,
  type DeidResult,
  type InstanceKeys,
  type RangedDeidResult,
} from './types.js';

export const DEIDENTIFICATION_METHOD = 'PS3.15 E.1 Basic Profile, Modified Dates Option (dicom-deid)'; // LO: max 64

const T = {
  MediaStorageSOPClassUID: 0x00020002,
  SpecificCharacterSet: 0x00080005,
  StudyDate: 0x00080020,
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  AccessionNumber: 0x00080050,
  Modality: 0x00080060,
  SeriesDescription: 0x0008103e,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  PatientBirthDate: 0x00100030,
  PatientComments: 0x00104000,
  ImageType: 0x00080008,
  ConversionType: 0x00080064,
  BurnedInAnnotation: 0x00280301,
  FloatPixelData: 0x7fe00008,
  DoubleFloatPixelData: 0x7fe00009,
  DirectoryRecordSequence: 0x00041220,
  PatientIdentityRemoved: 0x00120062,
  DeidentificationMethod: 0x00120063,
  DeidentificationMethodCodeSequence: 0x00120064,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  SeriesNumber: 0x00200011,
  LongitudinalTemporalInformationModified: 0x00280303,
  CodeValue: 0x00080100,
  CodingSchemeDesignator: 0x00080102,
  CodeMeaning: 0x00080104,
} as const;

const METHOD_CODES: ReadonlyArray<readonly [string, string]> = [
  ['113100', 'Basic Application Confidentiality Profile'],
  ['113107', 'Retain Longitudinal Temporal Information Modified Dates Option'],
];

// Parsing is shared by readInstanceKeys and deidentify on the same bytes or source (adapters
// call both).
const parseCache = new WeakMap<object, ParsedInstance>();
const EMPTY = Buffer.alloc(0);

function isByteSource(input: Uint8Array | ByteSource): input is ByteSource {
  return !(input instanceof Uint8Array);
}

function parse(input: Uint8Array | ByteSource, options?: ParseOptions): ParsedInstance {
  let p = parseCache.get(input);
  if (!p) {
    p = parsePart10(isByteSource(input) ? input : bufferSource(input), options);
    parseCache.set(input, p);
  }
  return p;
}

/** A top-level element, before or after the pixel data, with the bytes its offsets point into. */
function topElement(p: ParsedInstance, tag: number): { data: Buffer; el: Element } | undefined {
  const el = findElement(p.head.elements, tag);
  if (el) return { data: p.head.data, el };
  const after = findElement(p.tail.elements, tag);
  return after ? { data: p.tail.data, el: after } : undefined;
}

const utf8Cache = new WeakMap<ParsedInstance, boolean>();
function isUtf8(p: ParsedInstance): boolean {
  let utf8 = utf8Cache.get(p);
  if (utf8 === undefined) {
    const cs = topElement(p, T.SpecificCharacterSet);
    utf8 = cs ? /ISO_IR 192/.test(stringValue(cs.data, cs.el)) : false;
    utf8Cache.set(p, utf8);
  }
  return utf8;
}

function topString(p: ParsedInstance, tag: number): string {
  const found = topElement(p, tag);
  return found ? stringValue(found.data, found.el, isUtf8(p)) : '';
}

/**
 * The keys an adapter matches and files an instance by, from its bytes or from a ByteSource
 * (which is read up to the pixel data and after it, never the pixel data itself). The parse is
 * kept for deidentify/deidentifySource on the same input (then the options given here apply).
 * Throws DicomFormatError (one line) for input that is not a readable Part 10 instance.
 */
export function readInstanceKeys(input: Uint8Array | ByteSource, options?: ParseOptions): InstanceKeys {
  return instanceKeys(parse(input, options));
}

function instanceKeys(p: ParsedInstance): InstanceKeys {
  const metaSopInstance = findElement(p.meta, 0x00020003);
  const metaSopClass = findElement(p.meta, T.MediaStorageSOPClassUID);
  const metaSopClassUid = metaSopClass ? stringValue(p.metaBytes, metaSopClass) : '';
  const metaSopInstanceUid = metaSopInstance ? stringValue(p.metaBytes, metaSopInstance) : '';
  return {
    transferSyntaxUid: p.transferSyntaxUid,
    sopClassUid: topString(p, T.SOPClassUID) || metaSopClassUid,
    sopInstanceUid: topString(p, T.SOPInstanceUID) || metaSopInstanceUid,
    metaSopClassUid,
    metaSopInstanceUid,
    studyInstanceUid: topString(p, T.StudyInstanceUID),
    seriesInstanceUid: topString(p, T.SeriesInstanceUID),
    patientId: topString(p, T.PatientID),
    accessionNumber: topString(p, T.AccessionNumber),
    patientName: topString(p, T.PatientName),
    patientBirthDate: topString(p, T.PatientBirthDate),
    studyDate: topString(p, T.StudyDate),
    patientAge: topString(p, PATIENT_AGE),
    modality: topString(p, T.Modality),
    conversionType: topString(p, T.ConversionType),
    imageType: topString(p, T.ImageType),
    burnedInAnnotation: topString(p, T.BurnedInAnnotation),
    hasPixelData:
      p.reachedPixelData ||
      topElement(p, T.FloatPixelData) !== undefined ||
      topElement(p, T.DoubleFloatPixelData) !== undefined,
    isMediaIndex:
      metaSopClassUid === MEDIA_STORAGE_DIRECTORY ||
      topString(p, T.SOPClassUID) === MEDIA_STORAGE_DIRECTORY ||
      topElement(p, T.DirectoryRecordSequence) !== undefined,
  };
}

/** Media Storage Directory Storage (PS3.4 Annex I): the SOP class of a DICOMDIR. */
const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';

interface Context {
  data: Buffer;
  dayOffset: number;
  remap: (uid: string) => string;
  /** The character set of the data set's text (its Specific Character Set). */
  charset: SpecificCharacterSet;
  /** Set when the data set is re-encoded as UTF-8: the character set its text is in now. */
  recode: SpecificCharacterSet | null;
  repairs: Repairs;
  /** DeidOptions.testOnlyKeep. */
  keep?: ReadonlySet<number>;
}

/** Options of deidentifySource: how to read the source, and a hook for tests. */
export interface DeidOptions extends ParseOptions {
  /**
   * Tests only: attributes (tags) kept verbatim at any depth whatever the rules say, i.e. a rule
   * table broken on purpose, to prove that the leak guard (core/leakGuard) catches what it lets
   * through. Values the workflow sets (PatientName, PatientID, AccessionNumber...) still win.
   */
  testOnlyKeep?: ReadonlySet<number>;
}

/** What was repaired on the way, for the audit log (tags are not identifiers). */
interface Repairs {
  /** Data sets or items whose elements were put into ascending tag order. */
  reordered: number;
  /** Tags repeated in one data set or item, written once. */
  repeated: Set<number>;
  /** Tags of odd-length values padded to even length. */
  padded: Set<number>;
  /** Tags of encapsulated values labelled OW, written as OB. */
  relabelled: Set<number>;
  /** Values repaired to follow their VR's rules: what was done -> tags. */
  values: Map<string, Set<number>>;
  /** Kept values that break their VR's rules beyond a safe repair, passed on as they are: why -> tags. */
  invalidKept: Map<string, Set<number>>;
  /** DA/DT elements with a value that is not a date, emptied instead of shifted. */
  datesInvalid: Set<number>;
  /** DA/DT elements with a date the day offset moves outside the years 0000-9999, emptied. */
  datesOutOfRange: Set<number>;
}

function repairNotices(r: Repairs): string[] {
  const tags = (set: Set<number>) =>
    [...set]
      .sort((a, b) => a - b)
      .map(hexTag)
      .join(' ');
  const out: string[] = [];
  if (r.reordered > 0) out.push('repaired: elements put into ascending tag order (PS3.5 7.1)');
  if (r.repeated.size > 0) out.push(`repaired: repeated element(s) written once: ${tags(r.repeated)}`);
  if (r.padded.size > 0) {
    out.push(`repaired: odd-length value(s) padded to even length (PS3.5 7.1.1): ${tags(r.padded)}`);
  }
  for (const [repair, set] of r.values) out.push(`repaired: ${repair} (PS3.5 Table 6.2-1): ${tags(set)}`);
  if (r.relabelled.size > 0) {
    out.push(`repaired: encapsulated value(s) labelled OW written as OB (PS3.5 A.4): ${tags(r.relabelled)}`);
  }
  for (const [problem, set] of r.invalidKept) {
    out.push(`kept as received, although it ${problem} (PS3.5 Table 6.2-1): ${tags(set)}`);
  }
  if (r.datesInvalid.size > 0) {
    out.push(`emptied: value(s) that are not a valid date (PS3.5 Table 6.2-1): ${tags(r.datesInvalid)}`);
  }
  if (r.datesOutOfRange.size > 0) {
    out.push(
      `emptied: date(s) the day offset moves outside the years 0000-9999 (check Surgery_Date and Anchor_Date in the mapping CSV): ${tags(r.datesOutOfRange)}`,
    );
  }
  return out;
}

function oddFragment(el: Element): DicomFormatError {
  return new DicomFormatError(
    `damaged data set: encapsulated ${hexTag(el.tag)} has a fragment of odd length (PS3.5 A.4), ` +
      'which cannot be repaired without rewriting the compressed data',
  );
}

/** Bytes per value of the binary VRs whose length must be a whole number of values (PS3.5 6.2). */
const VALUE_SIZE: Readonly<Record<string, number>> = {
  AT: 4,
  FD: 8,
  FL: 4,
  OD: 8,
  OF: 4,
  OL: 4,
  OV: 8,
  SL: 4,
  SS: 2,
  SV: 8,
  UL: 4,
  US: 2,
  UV: 8,
};

/** VRs padded with NUL to an even length (UI, and byte/word streams: PS3.5 6.2, 8.1.1); text gets a space. */
const NUL_PADDED = new Set(['UI', 'OB', 'OW', 'UN']);

/** `value` padded to even length with the padding of `vr` (PS3.5 6.2). */
function padded(value: Buffer, vr: string): Buffer {
  if (value.length % 2 === 0) return value;
  return Buffer.concat([value, Buffer.of(NUL_PADDED.has(vr) ? 0 : 0x20)]);
}

function isPlainAscii(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b >= 0x80 || b === 0x1b) return false;
  return true;
}

/**
 * An element the rules keep, as it goes out: its bytes unchanged, unless its text must move to
 * UTF-8 (ctx.recode) or its length is odd (padded with its VR's padding). A binary value that is
 * not a whole number of values cannot be repaired: DicomFormatError.
 */
function keptElement(el: Element, effVr: string, enc: Encoding, ctx: Context): Buffer {
  const verbatim = ctx.data.subarray(el.start, el.end);
  if (el.encapsulated) {
    if (el.oddFragment) throw oddFragment(el);
    if (!enc.explicitVr || el.vr === 'OB') return verbatim;
    ctx.repairs.relabelled.add(el.tag);
    return Buffer.concat([encodeHeader(el.tag, 'OB', UNDEFINED_LENGTH, enc), ctx.data.subarray(el.valueStart, el.end)]);
  }
  if (el.length === UNDEFINED_LENGTH) return verbatim;
  const value = ctx.data.subarray(el.valueStart, el.valueStart + el.length);
  const unit = VALUE_SIZE[el.vr];
  if (unit !== undefined && el.length % unit !== 0) {
    throw new DicomFormatError(
      `damaged data set: ${hexTag(el.tag)} (${el.vr}) has ${el.length} bytes, not a whole number of ${unit}-byte values`,
    );
  }
  const inCharset = CHARSET_VRS.has(effVr) && !isPlainAscii(value);
  const recode = ctx.recode !== null && inCharset;
  if (recode || CHECKED_VRS.has(effVr)) {
    // Text: checked against its VR's rules (PS3.5 Table 6.2-1), and re-encoded if it must be.
    let text = inCharset ? decodeText(value, ctx.recode ?? ctx.charset, effVr) : value.toString('latin1');
    const check = checkValue(effVr, text);
    if (check.ok === false) {
      // A kept value the source wrote against its VR's rules (a CS `L-SPINE`, a 70-character
      // LO): no repair would keep its meaning, and refusing would lose a clinically valid instance
      // that every archive stores. It is passed on as it is (the file stays well formed: only the
      // value's content breaks a rule) and the audit log says so.
      const tags = ctx.repairs.invalidKept.get(check.problem) ?? new Set<number>();
      ctx.repairs.invalidKept.set(check.problem, tags.add(el.tag));
    }
    if (check.ok === 'repaired') {
      text = check.text;
      const tags = ctx.repairs.values.get(check.repair) ?? new Set<number>();
      ctx.repairs.values.set(check.repair, tags.add(el.tag));
    }
    if (recode || check.ok === 'repaired') {
      return encodeRaw(el.tag, el.vr, padded(Buffer.from(text, recode ? 'utf8' : 'latin1'), effVr), enc);
    }
  }
  if (el.length % 2 === 0) return verbatim;
  ctx.repairs.padded.add(el.tag);
  return encodeRaw(el.tag, el.vr, padded(value, el.vr), enc);
}

/** An element with the bytes its offsets point into; `pixelData`: the top-level pixel data, left in the source. */
interface Placed {
  el: Element;
  data: Buffer;
  pixelData?: boolean;
}

/**
 * The elements of one data set or item in ascending tag order, each tag once (PS3.5 7.1.1), as
 * a reader must find them. Out-of-order elements are sorted (a stable sort: nothing else moves).
 * A repeated tag is written once when its copies are identical or when the output does not
 * depend on them (`replaced(tag, vr)`: removed, emptied or written anew); copies that differ
 * cannot be decided between, and are refused (DicomFormatError).
 */
function ascending(list: Placed[], repairs: Repairs, replaced: (el: Element) => boolean): Placed[] {
  let sorted = true;
  for (let i = 1; i < list.length && sorted; i++) if (list[i]!.el.tag <= list[i - 1]!.el.tag) sorted = false;
  if (sorted) return list;
  const order = list.map((x, i) => [x, i] as const).sort((a, b) => a[0].el.tag - b[0].el.tag || a[1] - b[1]);
  if (order.some(([, i], k) => i !== k)) repairs.reordered++;
  const out: Placed[] = [];
  for (const [x] of order) {
    const prev = out[out.length - 1];
    if (prev === undefined || prev.el.tag !== x.el.tag) {
      out.push(x);
      continue;
    }
    const tag = hexTag(x.el.tag);
    if (x.pixelData || prev.pixelData) throw new DicomFormatError(`damaged data set: Pixel Data ${tag} appears twice`);
    const same =
      prev.el.vr === x.el.vr &&
      prev.data.subarray(prev.el.valueStart, prev.el.end).equals(x.data.subarray(x.el.valueStart, x.el.end));
    if (!same && !replaced(x.el)) {
      throw new DicomFormatError(
        `damaged data set: ${tag} appears twice with different values, and which one is right cannot be told`,
      );
    }
    repairs.repeated.add(x.el.tag);
  }
  return out;
}

/** True when the output of `el` does not depend on its value (so repeats of it need no choosing). */
function valueIgnored(el: Element): boolean {
  const effVr = el.vr === 'UN' ? (dictionaryVr(el.tag) ?? (el.items ? 'SQ' : 'UN')) : el.vr;
  const action = actionFor(el.tag, effVr);
  return action === 'remove' || action === 'empty' || (action === 'dummy' && effVr !== 'SQ' && effVr !== 'UI');
}

/** Dummy text by VR for D actions (valid for the VR's length and character rules). */
export const DUMMY_TEXT: Readonly<Record<string, string>> = {
  AE: 'ANONYMOUS',
  AS: '000Y',
  CS: 'ANONYMIZED',
  DA: '19000101',
  DS: '0',
  DT: '19000101',
  IS: '0',
  LO: 'ANONYMIZED',
  LT: 'ANONYMIZED',
  PN: 'ANONYMIZED',
  SH: 'ANONYMIZED',
  ST: 'ANONYMIZED',
  TM: '000000',
  UC: 'ANONYMIZED',
  UR: 'urn:anonymized',
  UT: 'ANONYMIZED',
};

function processElement(el: Element, enc: Encoding, ctx: Context, out: Buffer[]): void {
  // An element of unknown VR whose value parsed as a sequence (undefined length) is judged as one.
  const effVr = el.vr === 'UN' ? (dictionaryVr(el.tag) ?? (el.items ? 'SQ' : 'UN')) : el.vr;
  let action = ctx.keep?.has(el.tag) ? 'keep' : actionFor(el.tag, effVr);
  // A public UN element whose real VR is a sequence but whose items did not parse cannot be
  // inspected: it goes.
  if (effVr === 'SQ' && !el.items && action !== 'remove' && action !== 'empty') action = 'remove';
  switch (action) {
    case 'remove':
      return;
    case 'keep':
    case 'dummy':
      if (el.items) return writeSequence(el, enc, ctx, out);
      if (action === 'keep') {
        out.push(keptElement(el, effVr, enc, ctx));
        return;
      }
      out.push(dummyElement(el, effVr, enc, ctx));
      return;
    case 'empty':
      if (el.vr === 'UN') {
        // Zero items of a UN sequence: a zero-length UN (see writeSequence).
        out.push(encodeHeader(el.tag, el.vr, 0, enc));
      } else if (el.items || effVr === 'SQ') {
        out.push(sequenceStart(el.tag, el.vr, enc), sequenceEnd(el.itemEncoding ?? enc));
      } else {
        out.push(encodeHeader(el.tag, el.vr, 0, enc));
      }
      return;
    case 'uid': {
      const v = stringValue(ctx.data, el);
      out.push(encodeText(el.tag, el.vr, v === '' ? '' : ctx.remap(v), enc));
      return;
    }
    case 'shift': {
      const v = stringValue(ctx.data, el);
      const shift = effVr === 'DT' ? shiftDT : shiftDA;
      const shifted = shift(v, ctx.dayOffset);
      noteEmptiedDates(el.tag, v, shifted, shift, ctx.repairs);
      out.push(encodeText(el.tag, el.vr, shifted, enc));
      return;
    }
    case 'age':
      out.push(encodeText(el.tag, el.vr, binAge(stringValue(ctx.data, el)), enc));
      return;
  }
}

/**
 * Records in `repairs` a DA or DT value (`value`, shifted by `shift` into `shifted`) of which a
 * value became empty: because it is not a valid date, or because the day offset takes it outside
 * the years 0000-9999 (dates.ts empties both rather than pass anything on).
 */
function noteEmptiedDates(
  tag: number,
  value: string,
  shifted: string,
  shift: (value: string, days: number) => string,
  repairs: Repairs,
): void {
  const before = value.split('\\');
  const after = shifted.split('\\');
  before.forEach((one, i) => {
    if (one.replace(/^[\s\0]+|[\s\0]+$/g, '') === '' || (after[i] ?? '') !== '') return;
    // A value that stays a date with no shift is a date the offset took out of range.
    (shift(one, 0) === '' ? repairs.datesInvalid : repairs.datesOutOfRange).add(tag);
  });
}

function dummyElement(el: Element, effVr: string, enc: Encoding, ctx: Context): Buffer {
  if (effVr === 'UI') return encodeText(el.tag, el.vr, ctx.remap(stringValue(ctx.data, el)), enc);
  const text = DUMMY_TEXT[effVr];
  if (text !== undefined) return encodeText(el.tag, el.vr, text, enc);
  // Binary VRs: zeros of the same length keep the value multiplicity valid (an odd length padded).
  const len = el.length === UNDEFINED_LENGTH ? 0 : el.length;
  return encodeRaw(el.tag, el.vr, Buffer.alloc(len + (len % 2)), enc);
}

function writeSequence(el: Element, enc: Encoding, ctx: Context, out: Buffer[]): void {
  const inner = el.itemEncoding ?? enc;
  const body: Buffer[] = [];
  for (const item of el.items ?? []) {
    body.push(itemStart(inner));
    for (const child of itemElements(item, ctx)) processElement(child, inner, ctx, body);
    body.push(itemEnd(inner));
  }
  if (el.vr === 'UN' && enc.explicitVr) {
    // A sequence sent as UN keeps VR UN (its items are implicit VR LE, which an SQ header would
    // misdescribe) and gets a defined length: a reader that does not know the tag then skips an
    // opaque value instead of hunting for a delimiter whose byte order (implicit LE inside a big
    // endian data set) it has to guess. pydicom cannot read it back otherwise.
    const value = Buffer.concat(body);
    out.push(encodeHeader(el.tag, el.vr, value.length, enc), value);
    return;
  }
  out.push(sequenceStart(el.tag, el.vr, enc), ...body, sequenceEnd(inner));
}

/** An item's elements in ascending order, each once (see ascending). */
function itemElements(item: Item, ctx: Context): Element[] {
  const placed = item.elements.map((el) => ({ el, data: ctx.data }));
  return ascending(placed, ctx.repairs, valueIgnored).map((x) => x.el);
}

function codeSequence(enc: Encoding): Buffer {
  const parts: Buffer[] = [sequenceStart(T.DeidentificationMethodCodeSequence, 'SQ', enc)];
  for (const [value, meaning] of METHOD_CODES) {
    parts.push(
      itemStart(enc),
      encodeText(T.CodeValue, 'SH', value, enc),
      encodeText(T.CodingSchemeDesignator, 'SH', 'DCM', enc),
      encodeText(T.CodeMeaning, 'LO', meaning, enc),
      itemEnd(enc),
    );
  }
  parts.push(sequenceEnd(enc));
  return Buffer.concat(parts);
}

/** How a character set is named in messages. */
function charsetLabel(cs: SpecificCharacterSet): string {
  const terms = cs.terms.filter((t) => t !== '');
  return terms.length > 0
    ? `the data set's character set ${terms.join('\\')}`
    : 'the default repertoire (the data set has no Specific Character Set)';
}

/**
 * Why the data set cannot be re-encoded as UTF-8 exactly, or null when it can: every text value
 * that goes out must decode without doubt under `cs`, and no item may declare a character set of
 * its own. Values the profile removes or empties do not matter.
 */
function recodeObstacle(p: ParsedInstance, cs: SpecificCharacterSet): string | null {
  if (cs.unknownTerms.length > 0) return 'its Specific Character Set names a character set this tool does not know';
  const defaultRepertoire = cs.standAlone === null && cs.initialG1 === null && !cs.extensions;
  const walk = (elements: Element[], data: Buffer, top: boolean): string | null => {
    for (const el of elements) {
      if (!top && el.tag === T.SpecificCharacterSet) return 'a sequence item declares a character set of its own';
      const effVr = el.vr === 'UN' ? (dictionaryVr(el.tag) ?? (el.items ? 'SQ' : 'UN')) : el.vr;
      const action = actionFor(el.tag, effVr);
      if (action === 'remove' || action === 'empty') continue;
      if (el.items) {
        for (const item of el.items) {
          const why = walk(item.elements, data, false);
          if (why !== null) return why;
        }
        continue;
      }
      if (action !== 'keep' || !CHARSET_VRS.has(effVr) || el.length === UNDEFINED_LENGTH) continue;
      const value = data.subarray(el.valueStart, el.valueStart + el.length);
      if (isPlainAscii(value)) continue;
      if (defaultRepertoire) return 'it has text beyond ASCII but no Specific Character Set saying which';
      if (decodeText(value, cs, effVr).includes('\ufffd')) return 'some of its text is not valid in its character set';
    }
    return null;
  };
  return walk(p.head.elements, p.head.data, true) ?? walk(p.tail.elements, p.tail.data, true);
}

/**
 * Merges runs of small pieces (element headers, short values) into one buffer each and keeps
 * large ones (pixel data) as views: a handful of pieces for writev, with no copy of the pixels.
 */
function coalesce(pieces: Buffer[], large = 64 * 1024): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  const flush = () => {
    if (run.length > 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run));
    run = [];
  };
  for (const b of pieces) {
    if (b.length >= large) {
      flush();
      out.push(b);
    } else {
      run.push(b);
    }
  }
  flush();
  return out;
}

// One remapper (with its cache) per secret: studies repeat the same UIDs in every instance.
const remappers = new WeakMap<Buffer, (uid: string) => string>();
function remapperFor(secret: Buffer): (uid: string) => string {
  let r = remappers.get(secret);
  if (!r) {
    r = createUidRemapper(secret);
    remappers.set(secret, r);
  }
  return r;
}

/**
 * De-identifies one Part 10 instance held in memory (PS3.15 Basic Profile + Retain Longitudinal
 * Modified Dates, plus the project's kept attributes): deidentifySource over the bytes, the three
 * stretches joined (the pixel data as a view of `bytes`). Pure: no I/O. Throws DicomFormatError
 * on bad input.
 */
export function deidentify(bytes: Uint8Array, plan: DeidPlan, options?: DeidOptions): DeidResult {
  const { head, pixelData, tail, size: _size, ...info } = deidentifySource(bytes, plan, options);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts = pixelData
    ? [...head, buf.subarray(pixelData.offset, pixelData.offset + pixelData.length), ...tail]
    : [...head, ...tail];
  let joined: Buffer | undefined;
  return {
    get bytes(): Buffer {
      joined ??= Buffer.concat(parts);
      return joined;
    },
    parts,
    ...info,
  };
}

/**
 * De-identifies one Part 10 instance (PS3.15 Basic Profile + Retain Longitudinal Modified Dates,
 * plus the project's kept attributes) read through `source` (or given as bytes), without
 * reading its top-level pixel data: the result is the new bytes before the pixel data, the
 * source's byte range of the whole Pixel Data element (copied unchanged), and the new bytes
 * after it. A deflated data set has no range: it is inflated in memory (at most
 * `options.maxInflatedBytes`, default 1 GiB) and comes back whole in `head`.
 * Pure: the only input is what `source.read` returns. Throws DicomFormatError on bad input; an
 * error of the source itself is thrown as it is.
 */
export function deidentifySource(
  source: Uint8Array | ByteSource,
  plan: DeidPlan,
  options?: DeidOptions,
): RangedDeidResult {
  const p = parse(source, options);
  parseCache.delete(source);
  const keys = instanceKeys(p);
  if (keys.isMediaIndex) throw new DicomFormatError('a DICOMDIR is an index of a medium, not an instance: not copied');
  // A data set written implicit VR under an explicit VR LE label is relabelled honestly;
  // under any other label it cannot be repaired without re-encoding, so it is refused.
  let transferSyntaxUid = p.transferSyntaxUid;
  if (p.encoding.explicitVr !== transferSyntaxInfo(p.transferSyntaxUid).encoding.explicitVr) {
    if (p.transferSyntaxUid !== EXPLICIT_VR_LE || p.deflated) {
      throw new DicomFormatError(`data set is implicit VR but transfer syntax ${p.transferSyntaxUid} says explicit`);
    }
    transferSyntaxUid = IMPLICIT_VR_LE;
  }
  if (!keys.sopInstanceUid) throw new DicomFormatError('no SOPInstanceUID');
  if (!keys.sopClassUid) throw new DicomFormatError('no SOPClassUID');
  if (!Number.isInteger(plan.dayOffset)) throw new RangeError('day offset must be a whole number');
  const repairs: Repairs = {
    reordered: 0,
    repeated: new Set(),
    padded: new Set(),
    relabelled: new Set(),
    values: new Map(),
    invalidKept: new Map(),
    datesInvalid: new Set(),
    datesOutOfRange: new Set(),
  };
  const notices: string[] = [];
  if (p.form !== 'part10') {
    notices.push(
      p.form === 'data-set'
        ? 'read as a bare data set (no preamble, no file meta): written as a Part 10 file'
        : 'read without its 128-byte preamble: written as a Part 10 file',
    );
  }
  const enc = p.encoding;

  // Values the workflow sets at the top level, replacing whatever the profile would do there.
  const overrides = new Map<number, Buffer | null>();
  overrides.set(T.AccessionNumber, encodeText(T.AccessionNumber, 'SH', plan.accessionNumber, enc));
  overrides.set(T.PatientName, encodeText(T.PatientName, 'PN', plan.researchId, enc));
  overrides.set(T.PatientID, encodeText(T.PatientID, 'LO', plan.researchId, enc));
  overrides.set(T.PatientBirthDate, encodeHeader(T.PatientBirthDate, 'DA', 0, enc));
  if (!topElement(p, PATIENT_AGE)) {
    const age = ageFromDates(keys.patientBirthDate, keys.studyDate);
    if (age) overrides.set(PATIENT_AGE, encodeText(PATIENT_AGE, 'AS', age, enc));
  }
  // The notes, in the data set's character set; when it lacks some of their characters, the
  // data set moves to UTF-8 if all its text can go with it, else they are written as '?'.
  let recode: SpecificCharacterSet | null = null;
  const cs = parseSpecificCharacterSet(topString(p, T.SpecificCharacterSet));
  const notes = plan.notes.trim();
  if (notes !== '') {
    const text = `IMPORT_NOTES: ${notes}`;
    let value = encodeCharset(text, cs, 'LT');
    const lacking = value.unencodable.length;
    if (lacking > 0) {
      const what = `the notes have ${lacking} character(s) that ${charsetLabel(cs)} lacks`;
      const obstacle = cs.standAlone === 'ISO_IR 192' ? 'not representable in UTF-8' : recodeObstacle(p, cs);
      if (obstacle === null) {
        recode = cs;
        value = { bytes: Buffer.from(text, 'utf8'), unencodable: [] };
        overrides.set(T.SpecificCharacterSet, encodeText(T.SpecificCharacterSet, 'CS', 'ISO_IR 192', enc));
        notices.push(`${what}: the data set's text was re-encoded as UTF-8 (ISO_IR 192)`);
      } else {
        notices.push(`${what}: they were written as '?' (the data set cannot move to UTF-8: ${obstacle})`);
      }
    }
    overrides.set(T.PatientComments, encodeRaw(T.PatientComments, 'LT', padded(value.bytes, 'LT'), enc));
  } else {
    overrides.set(T.PatientComments, null);
  }
  overrides.set(T.PatientIdentityRemoved, encodeText(T.PatientIdentityRemoved, 'CS', 'YES', enc));
  overrides.set(T.DeidentificationMethod, encodeText(T.DeidentificationMethod, 'LO', DEIDENTIFICATION_METHOD, enc));
  overrides.set(T.DeidentificationMethodCodeSequence, codeSequence(enc));
  overrides.set(
    T.LongitudinalTemporalInformationModified,
    encodeText(T.LongitudinalTemporalInformationModified, 'CS', 'MODIFIED', enc),
  );
  const common = {
    dayOffset: plan.dayOffset,
    remap: remapperFor(plan.uidSecret),
    charset: cs,
    recode,
    repairs,
    keep: options?.testOnlyKeep,
  };

  const out: Buffer[] = [];
  const pending = [...overrides.entries()].filter(([, b]) => b !== null).sort((a, b) => a[0] - b[0]);
  let next = 0;
  /** Writes the overrides that go before `tag` (a data set is in ascending tag order). */
  const insertBefore = (tag: number): void => {
    while (next < pending.length && pending[next]![0] < tag) out.push(pending[next++]![1]!);
  };
  /** Element `el` (offsets into `ctx.data`) goes out as the rules and overrides say. */
  const visit = (el: Element, ctx: Context): void => {
    insertBefore(el.tag);
    if (overrides.has(el.tag)) {
      const b = overrides.get(el.tag);
      if (b) out.push(b);
      if (next < pending.length && pending[next]![0] === el.tag) next++;
      return;
    }
    processElement(el, enc, ctx, out);
  };
  // The top level in ascending order, each tag once: the elements before the pixel data, the
  // pixel data (left in the source), the elements after it.
  const px = p.pixelData;
  const placed: Placed[] = [
    ...p.head.elements.map((el) => ({ el, data: p.head.data })),
    ...(px ? [{ el: px.element, data: EMPTY, pixelData: true }] : []),
    ...p.tail.elements.map((el) => ({ el, data: p.tail.data })),
  ];
  const top = ascending(placed, repairs, (el) => overrides.has(el.tag) || valueIgnored(el));
  const contexts = new Map<Buffer, Context>();
  const contextOf = (data: Buffer): Context => {
    let ctx = contexts.get(data);
    if (!ctx) contexts.set(data, (ctx = { ...common, data }));
    return ctx;
  };
  // The output is `out` up to `cut`, the range of the source, the rest of `out`.
  let cut = -1;
  let range: ByteRange | null = null;
  for (const { el, data, pixelData } of top) {
    if (!pixelData || !px) {
      visit(el, contextOf(data));
      continue;
    }
    if (actionFor(el.tag, el.vr) !== 'keep') {
      // Never the case under the current rules; kept whole in memory if the rules ever change.
      const bytes = p.source.read(px.offset, px.length);
      visit({ ...el, start: 0, valueStart: el.valueStart - el.start, end: px.length }, { ...common, data: bytes });
      continue;
    }
    insertBefore(el.tag);
    const value = { offset: px.offset + (el.valueStart - el.start), length: px.length - (el.valueStart - el.start) };
    if (el.oddFragment) throw oddFragment(el);
    if (el.encapsulated && enc.explicitVr && el.vr !== 'OB') {
      // Encapsulated pixel data is OB (PS3.5 A.4); some writers label it OW: a new header.
      repairs.relabelled.add(el.tag);
      out.push(encodeHeader(el.tag, 'OB', UNDEFINED_LENGTH, enc));
      cut = out.length;
      range = value;
    } else if (!el.encapsulated && el.length % 2 === 1) {
      // An odd length (8-bit pixels, odd count): a new header, the value, one NUL (PS3.5 8.1.1).
      repairs.padded.add(el.tag);
      out.push(encodeHeader(el.tag, el.vr, el.length + 1, enc));
      cut = out.length;
      range = value;
      out.push(Buffer.of(0));
    } else {
      cut = out.length;
      range = { offset: px.offset, length: px.length };
    }
  }
  insertBefore(Infinity);
  notices.push(...repairNotices(repairs));

  const sopInstanceUid = common.remap(keys.sopInstanceUid);
  const meta = buildFileMeta({
    sopClassUid: keys.sopClassUid,
    sopInstanceUid,
    transferSyntaxUid,
  });
  let head: Buffer[];
  let tail: Buffer[] = [];
  if (p.deflated) {
    head = [meta, deflateRawSync(Buffer.concat(out))];
  } else if (cut >= 0) {
    head = coalesce([meta, ...out.slice(0, cut)]);
    tail = coalesce(out.slice(cut));
  } else {
    head = coalesce([meta, ...out]);
  }
  const pixelData = cut >= 0 ? range : null;
  const size = [...head, ...tail].reduce((n, b) => n + b.length, pixelData?.length ?? 0);
  const info: DeidInstanceInfo = {
    transferSyntaxUid,
    sopClassUid: keys.sopClassUid,
    sopInstanceUid,
    studyInstanceUid: keys.studyInstanceUid ? common.remap(keys.studyInstanceUid) : '',
    seriesInstanceUid: keys.seriesInstanceUid ? common.remap(keys.seriesInstanceUid) : '',
    modality: topString(p, T.Modality),
    seriesNumber: topString(p, T.SeriesNumber),
    seriesDescription: topString(p, T.SeriesDescription),
    notices,
    sourceValues: identifyingValues(p),
  };
  return { head, pixelData, tail, size, ...info };
}

/**
 * Every text value the core writes of its own (dummies, the de-identification method and its
 * codes): not taken from the source, so the leak guard does not judge a value equal to one.
 */
export const CORE_TEXTS: ReadonlySet<string> = new Set([
  ...Object.values(DUMMY_TEXT),
  DEIDENTIFICATION_METHOD,
  'MODIFIED',
  'YES',
  'DCM',
  ...METHOD_CODES.flat(),
]);
