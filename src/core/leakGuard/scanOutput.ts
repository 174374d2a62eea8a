// The leak guard: a second reader of every output before it is written or sent. It does not
// trust the profile (a rule can have a gap: a new attribute, a vendor writing a name into an
// unlisted LO element, a value kept on purpose such as SeriesDescription "Smith knee"); it reads
// what is about to leave, every element value at every depth decoded under the data set's
// Specific Character Set, plus the output path and sidecar texts, and looks for the identifying
// values of the source, with the matching rules of the path plan (identifiers/matcher.ts).
//
// What the researcher supplied is not an identifier of the source and is not judged: the
// research ID and the new AccessionNumber wherever they appear (as whole words: `RES001` in
// `RES001_1/...`), the notes where the core wrote them (PatientComments, notes.txt: an identifier
// of the patient in the notes themselves is a warning, never a hold), and dates
// the anchor made (an original date that some original date plus the day offset equals is not
// looked for: with a day offset of 0 no date is). Values the core writes itself (dummies such as
// ANONYMIZED, the de-identification method) are not judged either. Words of the institution
// name that are also words of the output's Manufacturer (kept on purpose) are not looked for:
// they name the equipment's maker ('TOSHIBA', 'GE MEDICAL SYSTEMS' as institution names).
//
// Cost: the output's elements are parsed once more from the new bytes before and after the
// pixel data (never the pixel data: only `head` and `tail` are given); all values are searched at
// once, and only when that finds something is each value searched alone, to name it. The
// instances of a series repeat most of their header: a value found clean for a patient is not
// searched again for that patient's values (only for the instance's own UIDs), and the matcher of
// a patient is built once. Pure: no I/O (module-level caches only).
import { CORE_TEXTS } from '../deidentify.js';
import { CHARSET_VRS, decodeText, parseSpecificCharacterSet, type SpecificCharacterSet } from '../charset/index.js';
import { bufferSource } from '../dicom/byteSource.js';
import { PIXEL_DATA, UNDEFINED_LENGTH } from '../dicom/constants.js';
import { readFileMeta } from '../dicom/fileMeta.js';
import { findElement, parseDataSetElements, parseDataSetHead, parsePart10, type Element } from '../dicom/parser.js';
import type { ByteRange } from '../dicom/byteSource.js';
import { EXPLICIT_LE, transferSyntaxInfo } from '../dicom/transferSyntax.js';
import { DicomFormatError } from '../types.js';
import { dictionaryVr } from '../dicom/vrDictionary.js';
import {
  IdentifierMatcher,
  addDays,
  fold,
  identifiersOf,
  toDA,
  type CohortMatcher,
  type IdentifierKind,
  type IdentifyingValues,
} from '../identifiers/index.js';
import { formatAttributePath, pathHasTag, type PathStep } from './attributePath.js';

/** What a hit does: `hold` keeps the output from being written or sent; `warn` is only reported. */
export type LeakAction = 'hold' | 'warn';

/** One place an identifier of the source was found. Never carries the value. */
export interface LeakHit {
  /**
   * Where: an attribute path ('(0008,103E) SeriesDescription', '(0040,0275)[0]/(0032,1060)
   * RequestedProcedureDescription'), `output path`, or a sidecar's path relative to the output
   * root ('RES001/RES001_1/notes.txt'), or that path followed by ' (name)' for its name.
   */
  where: string;
  kind: IdentifierKind;
  action: LeakAction;
  /** Set when the identifier is another patient's of the run (LeakScanInput.cohort). */
  otherPatient?: true;
}

/** What the researcher supplied for this output (the mapping row): excluded from the scan. */
export interface SuppliedValues {
  researchId: string;
  /** The new AccessionNumber ({researchId}_{N}, cut to 16 characters). */
  accessionNumber: string;
  notes: string;
  /** Days added to every date (Anchor_Date - Surgery_Date). */
  dayOffset: number;
}

/** A text written beside the output (notes.txt). */
export interface Sidecar {
  /** Relative to the output root, '/' separated. */
  path: string;
  text: string;
}

export interface LeakScanInput {
  /** The output's bytes before the pixel data: preamble, file meta, elements (RangedDeidResult.head). */
  head: readonly Buffer[];
  /**
   * The source's byte range copied between them (RangedDeidResult.pixelData): never read; its
   * length tells where the pixel data ends when its header was rewritten (it then ends `head`,
   * and a padding byte may start `tail`). Null or absent: `head` and `tail` are the whole output.
   */
  pixelData?: ByteRange | null;
  /** The output's bytes after the pixel data (RangedDeidResult.tail; empty when none). */
  tail: readonly Buffer[];
  /** The output's path relative to the output root, '/' separated. */
  path: string;
  sidecars?: readonly Sidecar[];
  /** The identifying values of the source (DeidInstanceInfo.sourceValues). */
  source: IdentifyingValues;
  supplied: SuppliedValues;
  /** Attributes (tags) whose hits, at any depth and in anything below them, are warnings only. */
  warnOnly?: ReadonlySet<number>;
  /**
   * The identifiers of the run's patients (the mapping CSV's MRNs and Accessions; in batch also
   * the IDs and names of every file of the tree), each owned by a research ID: those of patients
   * other than `supplied.researchId` are looked for too (cohortMatcher.ts's stricter rules), and
   * held like the source's own, as `otherPatient` hits.
   */
  cohort?: CohortMatcher;
}

/** Kinds the path plan deliberately lets into kept folder and file names (README, the output tree). */
const NAMES_PATHS_MAY_HOLD: ReadonlySet<IdentifierKind> = new Set(['institution', 'physician', 'operator']);

/** VRs whose values are numbers in binary: no text to find. */
const BINARY_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'OW', 'OF', 'OD', 'OL', 'OV', 'SV', 'UV', 'AT']);
const SPECIFIC_CHARACTER_SET = 0x00080005;
const MANUFACTURER = 0x00080070;
const FLOAT_PIXEL_DATA = 0x7fe00008;
const DOUBLE_FLOAT_PIXEL_DATA = 0x7fe00009;
/** Where the core writes the notes: 'IMPORT_NOTES: <notes>' (deidentify.ts). */
const NOTES_PREFIX = 'IMPORT_NOTES: ';
/** Where a hit in the researcher's notes is reported (a warning: LeakHit.where). */
export const NOTES_WHERE = 'the Notes of its mapping CSV row';
/**
 * Between values searched at once. It cannot hide an identifier in a value (a control character
 * ends words, dates, numbers and UIDs; the letter keeps an ID's digits from touching the next
 * value's digits once the matcher drops punctuation), so the search at once finds whatever the
 * values alone would; something it finds across values is cleared by searching each alone.
 */
const SEPARATOR = '\u0000x\u0000';

/** The output, parsed: file meta, and the data set's elements before and after the pixel data. */
interface ParsedOutput {
  parts: { elements: Element[]; data: Buffer; cs: SpecificCharacterSet }[];
  /** The top-level Manufacturer, decoded ('' when none). */
  manufacturer: string;
}

/**
 * The identifiers of the source found in the output (rules above), one hit per place and kind,
 * in the order they occur; [] when there is none. Throws DicomFormatError when `head`/`tail` are
 * not a readable Part 10 instance (which the core's own output always is).
 */
export function scanOutput(input: LeakScanInput): LeakHit[] {
  const output = parseOutput(input.head, input.pixelData ?? null, input.tail);
  const matcher = matcherFor(input.source, input.supplied.dayOffset, output.manufacturer);
  const cohort = input.cohort && !input.cohort.empty ? input.cohort : undefined;
  if (matcher.empty && !cohort) return [];
  const mask = masker(input.supplied);
  const written = writtenValues(input.supplied.notes);
  const hits: LeakHit[] = [];
  const seen = new Set<string>();
  const add = (where: string, kinds: IdentifierKind[], warn: (k: IdentifierKind) => boolean, other = false): void => {
    for (const kind of kinds) {
      const key = `${where}\0${kind}\0${other}`;
      // Found as this patient's already: the same value may be another's too (a namesake, a
      // file of the tree no row matched); one hit says it.
      if (seen.has(key) || (other && seen.has(`${where}\0${kind}\0false`))) continue;
      seen.add(key);
      hits.push({
        where,
        kind,
        action: warn(kind) ? 'warn' : 'hold',
        ...(other ? { otherPatient: true as const } : {}),
      });
    }
  };

  // The data set (and file meta): all values at once; each alone only when that finds something.
  // Values already found clean in an earlier instance of the patient (most of a series' header
  // repeats) are not searched again for the patient's values; the instance's own UIDs are looked
  // for in every value.
  const clean = cleanValues(matcher.shared, mask);
  const fresh: string[] = [];
  let uidSeen = false;
  // Every value decoded once, for this patient's search and the other patients'.
  const values = valuesOf(output);
  for (const { text } of values) {
    uidSeen ||= matcher.mayHoldUid(text);
    if (!clean.has(text) && !isWritten(text, written)) fresh.push(text);
  }
  const sharedHit = fresh.length > 0 && matcher.shared.find(mask(fresh.join(SEPARATOR))).length > 0;
  if (!sharedHit && !uidSeen) {
    if (clean.size + fresh.length > CLEAN_VALUES) clean.clear();
    for (const text of fresh) clean.add(text);
  } else {
    for (const { text, tag, parent } of values) {
      if (isWritten(text, written)) continue;
      const kinds = matcher.find(mask(text));
      if (kinds.length === 0) continue;
      const step = { tag, parent };
      const warnOnly = input.warnOnly !== undefined && pathHasTag(step, input.warnOnly);
      add(formatAttributePath(step), kinds, () => warnOnly);
    }
  }

  // The notes are the researcher's and are written as given (PatientComments, notes.txt): never
  // held, but an identifier of this patient in them is a warning, so that a name or a real date
  // typed into the Notes column is seen rather than shared unnoticed.
  add(NOTES_WHERE, matcher.find(mask(input.supplied.notes.trim())), () => true);

  // Paths: the kinds the path plan keeps in names are warnings (they never made a name change).
  const inPath = (k: IdentifierKind) => NAMES_PATHS_MAY_HOLD.has(k);
  add('output path', matcher.find(mask(input.path)), inPath);
  for (const sidecar of input.sidecars ?? []) {
    add(`${sidecar.path} (name)`, matcher.find(mask(sidecar.path)), inPath);
    const lines = sidecar.text.split(/\r?\n/).filter((l) => !isWritten(l, written));
    add(sidecar.path, matcher.find(lines.map(mask).join('\n')), () => false);
  }
  if (cohort) scanForOthers(input, values, cohort, mask, written, add);
  return hits;
}

/**
 * VRs not searched for other patients: dates, times, numbers, ages, UIDs and code strings
 * (MONOCHROME2, ORIGINAL: defined terms, never a name). Their digits are not an ID (a time 101530 is not the MRN 101530 of one of thousands of patients); the file's
 * own identifiers are still looked for in them.
 */
const NOT_FOR_OTHERS: ReadonlySet<string> = new Set(['DA', 'TM', 'DT', 'DS', 'IS', 'AS', 'UI', 'CS']);

/** Values found clean of every identifier of a cohort (whoever's output): a series repeats its header. */
const cohortCleanSets = new WeakMap<CohortMatcher, Set<string>>();

/**
 * The same places again, for the identifiers of the run's other patients (LeakScanInput.cohort):
 * every value, the notes (a warning, as the source's own), the path and the sidecars.
 */
function scanForOthers(
  input: LeakScanInput,
  values: readonly OutputValue[],
  cohort: CohortMatcher,
  mask: (text: string) => string,
  written: readonly string[],
  add: (where: string, kinds: IdentifierKind[], warn: (k: IdentifierKind) => boolean, other?: boolean) => void,
): void {
  const except = input.supplied.researchId;
  let clean = cohortCleanSets.get(cohort);
  if (!clean) cohortCleanSets.set(cohort, (clean = new Set()));
  const fresh: string[] = [];
  for (const { text, vr } of values) {
    if (!NOT_FOR_OTHERS.has(vr) && !clean.has(text) && !isWritten(text, written)) fresh.push(text);
  }
  // Cached as clean only when no one's identifier is in them (this patient's included).
  if (fresh.length > 0 && cohort.find(mask(fresh.join(SEPARATOR)), '').length === 0) {
    if (clean.size + fresh.length > CLEAN_VALUES) clean.clear();
    for (const text of fresh) clean.add(text);
  } else if (fresh.length > 0) {
    for (const { text, tag, parent, vr } of values) {
      if (NOT_FOR_OTHERS.has(vr) || isWritten(text, written)) continue;
      const kinds = cohort.find(mask(text), except);
      if (kinds.length === 0) continue;
      const step = { tag, parent };
      const warnOnly = input.warnOnly !== undefined && pathHasTag(step, input.warnOnly);
      add(formatAttributePath(step), kinds, () => warnOnly, true);
    }
  }
  add(NOTES_WHERE, cohort.find(mask(input.supplied.notes.trim()), except), () => true, true);
  add('output path', cohort.find(mask(input.path), except), () => false, true);
  for (const sidecar of input.sidecars ?? []) {
    add(`${sidecar.path} (name)`, cohort.find(mask(sidecar.path), except), () => false, true);
    const lines = sidecar.text.split(/\r?\n/).filter((l) => !isWritten(l, written));
    add(sidecar.path, cohort.find(lines.map(mask).join('\n'), except), () => false, true);
  }
}

/**
 * One line for the audit log and the status: where and which kind, never the value
 * ('patient-name in (0008,103E) SeriesDescription; date in output path').
 */
export function describeLeakHits(hits: readonly LeakHit[]): string {
  return hits.map((h) => `${h.kind}${h.otherPatient ? ' of another patient' : ''} in ${h.where}`).join('; ');
}

/**
 * The matcher of a source: one for its values but the UIDs, shared by the instances of a study
 * (they repeat the same names, IDs and dates: built once for a run of them), and one for its own
 * UIDs (a few lookups).
 */
class SourceMatcher {
  /** Made when first needed: most instances never have one of their UIDs in a value. */
  private uids: IdentifierMatcher | undefined;

  /** What all the UIDs start with, when that is long enough to rule most values out at once. */
  private readonly uidRoot: string;

  constructor(
    readonly shared: IdentifierMatcher,
    private readonly uidValues: readonly string[],
  ) {
    let root = uidValues[0] ?? '';
    for (const u of uidValues) while (!u.startsWith(root)) root = root.slice(0, -1);
    this.uidRoot = root.length >= 8 ? root : '';
  }

  get empty(): boolean {
    return this.shared.empty && !this.uidValues.some((u) => u.trim() !== '');
  }

  /** False when `text` cannot hold one of the source's UIDs (a plain search). */
  mayHoldUid(text: string): boolean {
    if (this.uidRoot !== '' && !text.includes(this.uidRoot)) return false;
    return this.uidValues.some((u) => text.includes(u));
  }

  find(text: string): IdentifierKind[] {
    const found = this.shared.find(text);
    // A UID is found only where its digits are (a plain search first).
    if (!this.mayHoldUid(text)) return found;
    this.uids ??= new IdentifierMatcher(this.uidValues.map((value) => ({ kind: 'uid', value })));
    const more = this.uids.find(text);
    return more.length === 0 ? found : [...new Set([...found, ...more])];
  }
}

/**
 * Values found clean (after masking) by a shared matcher, per masker; at most CLEAN_VALUES of
 * them (then it starts over): a series repeats most of its header from instance to instance.
 */
const cleanSets = new WeakMap<IdentifierMatcher, WeakMap<(text: string) => string, Set<string>>>();
const CLEAN_VALUES = 8192;

function cleanValues(shared: IdentifierMatcher, mask: (text: string) => string): Set<string> {
  let byMask = cleanSets.get(shared);
  if (!byMask) cleanSets.set(shared, (byMask = new WeakMap()));
  let set = byMask.get(mask);
  if (!set) byMask.set(mask, (set = new Set()));
  return set;
}

/** Shared matchers by their values (a handful: batch workers interleave a few studies). */
const sharedMatchers = new Map<string, IdentifierMatcher>();
const SHARED_MATCHERS = 16;

/** The last source's values but its UIDs, and its shared matcher: the next is most often the same patient. */
let last: { source: IdentifyingValues; dayOffset: number; manufacturer: string; shared: IdentifierMatcher } | undefined;

/** True when `a` and `b` hold the same values in every field but the UIDs. */
function sameButUids(a: IdentifyingValues, b: IdentifyingValues): boolean {
  for (const field of Object.keys(a) as (keyof IdentifyingValues)[]) {
    if (field === 'uids') continue;
    const x = a[field];
    const y = b[field];
    if (x.length !== y?.length || x.some((v, i) => v !== y[i])) return false;
  }
  return Object.keys(a).length === Object.keys(b).length;
}

function matcherFor(source: IdentifyingValues, dayOffset: number, manufacturer: string): SourceMatcher {
  if (last && last.dayOffset === dayOffset && last.manufacturer === manufacturer && sameButUids(last.source, source)) {
    return new SourceMatcher(last.shared, source.uids);
  }
  const key = [
    ...Object.entries(source).map(([field, values]) => (field === 'uids' ? '' : (values as string[]).join('\0'))),
    dayOffset,
    manufacturer,
  ].join('\u0001');
  let shared = sharedMatchers.get(key);
  if (!shared) {
    shared = sharedMatcher({ ...source, uids: [] }, dayOffset, manufacturer);
    if (sharedMatchers.size >= SHARED_MATCHERS) sharedMatchers.clear();
    sharedMatchers.set(key, shared);
  }
  last = { source, dayOffset, manufacturer, shared };
  return new SourceMatcher(shared, source.uids);
}

/**
 * A matcher for the source's identifying values, without the dates the anchor made and the
 * institution's words that name the maker (`manufacturer`: the output's Manufacturer).
 */
function sharedMatcher(source: IdentifyingValues, dayOffset: number, manufacturer: string): IdentifierMatcher {
  const anchored = new Set<string>();
  for (const value of [...source.birthDates, ...source.dates]) {
    const m = /^(\d{4})(\d{2})(\d{2})$/.exec(dateKey(value));
    if (m) anchored.add(toDA(addDays({ year: +m[1]!, month: +m[2]!, day: +m[3]! }, dayOffset)));
  }
  const maker = new Set(tokens(manufacturer).map(fold));
  const ids = identifiersOf(source)
    .filter((id) => (id.kind === 'date' || id.kind === 'birth-date' ? !anchored.has(dateKey(id.value)) : true))
    .map((id) =>
      id.kind === 'institution' && maker.size > 0
        ? {
            ...id,
            value: tokens(id.value)
              .filter((t) => !maker.has(fold(t)))
              .join(' '),
          }
        : id,
    );
  return new IdentifierMatcher(ids);
}

/** A DA or DT value's date as YYYYMMDD. */
function dateKey(value: string): string {
  return value.replace(/[-.]/g, '').slice(0, 8);
}

/** The runs of letters and digits of a text. */
function tokens(text: string): string[] {
  return text.normalize('NFKC').match(/[\p{L}\p{M}\p{N}]+/gu) ?? [];
}

/**
 * Replaces the research ID and the new AccessionNumber, where they stand as whole words (not
 * touching other letters or digits), by a space: they are the researcher's, not the source's.
 */
function masker(supplied: SuppliedValues): (text: string) => string {
  if (lastMask?.accessionNumber === supplied.accessionNumber && lastMask.researchId === supplied.researchId) {
    return lastMask.mask;
  }
  const key = `${supplied.accessionNumber}\0${supplied.researchId}`;
  let mask = maskers.get(key);
  if (!mask) {
    mask = newMasker(supplied);
    if (maskers.size >= 64) maskers.clear();
    maskers.set(key, mask);
  }
  lastMask = { accessionNumber: supplied.accessionNumber, researchId: supplied.researchId, mask };
  return mask;
}
const maskers = new Map<string, (text: string) => string>();
let lastMask: { accessionNumber: string; researchId: string; mask: (text: string) => string } | undefined;

function newMasker(supplied: SuppliedValues): (text: string) => string {
  const words = [supplied.accessionNumber, supplied.researchId]
    .map((w) => w.trim())
    .filter((w) => w !== '')
    .sort((a, b) => b.length - a.length);
  if (words.length === 0) return (t) => t;
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
  return (text) => (words.some((w) => text.includes(w)) ? text.replace(re, ' ') : text);
}

/**
 * The notes as the core writes them: in PatientComments ('IMPORT_NOTES: <notes>', in the data
 * set's character set, a character it cannot hold written '?') and in notes.txt (as they are).
 */
function writtenValues(notes: string): string[] {
  const n = notes.trim();
  return n === '' ? [] : [n, NOTES_PREFIX + n];
}

/** True when `value` is `form` but for characters written '?' (one per character). */
function sameButSubstituted(value: string, form: string): boolean {
  if (value === form) return true;
  // A '?' is one code unit where the character may have been two: only lengths in between.
  if (value.length > form.length || !value.includes('?')) return false;
  const v = [...value];
  const f = [...form];
  return v.length === f.length && v.every((c, i) => c === f[i] || c === '?');
}

/** True when a value (its padding aside) is one the core or the researcher wrote, not the source. */
function isWritten(text: string, written: readonly string[]): boolean {
  let start = 0;
  let end = text.length;
  while (end > 0 && (text[end - 1] === ' ' || text[end - 1] === '\0')) end--;
  while (start < end && text[start] === ' ') start++;
  if (start === end) return true;
  const t = start === 0 && end === text.length ? text : text.slice(start, end);
  return CORE_TEXTS.has(t) || written.some((form) => sameButSubstituted(t, form));
}

/** Parses the output from its bytes before the pixel data (`head`) and after it (`tail`). */
function parseOutput(head: readonly Buffer[], pixelData: ByteRange | null, tail: readonly Buffer[]): ParsedOutput {
  const bytes = head.length === 1 ? head[0]! : Buffer.concat(head);
  const fileMeta = readFileMeta(bytes, bytes.length);
  if (fileMeta === 'need-more') throw new DicomFormatError('truncated file meta information');
  const ts = transferSyntaxInfo(fileMeta.transferSyntaxUid);
  const meta = bytes.subarray(0, fileMeta.dataSetOffset);
  let dataSet: { elements: Element[]; data: Buffer };
  let skip = 0;
  if (ts.deflated) {
    // Deflated: the whole data set, pixel data included, inflated (it cannot be read by range).
    dataSet = parsePart10(bufferSource(bytes), { headOnly: true }).head;
  } else if (pixelData === null) {
    // Nothing copied from the source: the head is the whole data set.
    const data = bytes.subarray(fileMeta.dataSetOffset);
    dataSet = { elements: parseDataSetElements(data, ts.encoding), data };
  } else {
    // The head ends where the pixel data starts, or after its header when that was rewritten:
    // then the part of its value not in the range (a padding byte) starts the tail.
    const data = bytes.subarray(fileMeta.dataSetOffset);
    const h = parseDataSetHead(data, ts.encoding);
    dataSet = { elements: h.elements, data };
    if (h.pixelData && h.pixelData.length !== UNDEFINED_LENGTH) skip = h.pixelData.length - pixelData.length;
  }
  const cs = characterSetOf(dataSet.elements, dataSet.data);
  const parts = [
    { elements: parseDataSetElements(meta, EXPLICIT_LE, 132), data: meta, cs: DEFAULT_CS },
    { ...dataSet, cs },
  ];
  const all = tail.length === 1 ? tail[0]! : Buffer.concat(tail);
  if (skip < 0 || skip > all.length) throw new DicomFormatError('the pixel data does not end where the tail starts');
  const after = all.subarray(skip);
  if (after.length > 0) parts.push({ elements: parseDataSetElements(after, ts.encoding), data: after, cs });
  const maker = findElement(dataSet.elements, MANUFACTURER);
  return { parts, manufacturer: maker ? valueText(maker, dataSet.data, cs, 'LO') : '' };
}

/** An element's value as text: under the character set for the VRs it applies to, else Latin-1. */
function valueText(el: Element, data: Buffer, cs: SpecificCharacterSet, vr: string): string {
  const latin1 = data.toString('latin1', el.valueStart, el.valueStart + el.length);
  // Plain ASCII (no escape, nothing above 0x7F) reads the same under every character set.
  if (!CHARSET_VRS.has(vr) || !/[\x1b\x80-\xff]/.test(latin1)) return latin1;
  return decodeText(data.subarray(el.valueStart, el.valueStart + el.length), cs, vr);
}

type ValueVisitor = (text: string, tag: number, parent: PathStep | undefined, vr: string) => void;

/** One value of the output as text, where it is, and its VR. */
interface OutputValue {
  text: string;
  tag: number;
  parent: PathStep | undefined;
  vr: string;
}

/** Every value of the output as text, decoded once: file meta, then the data set at every depth. */
function valuesOf(output: ParsedOutput): OutputValue[] {
  const out: OutputValue[] = [];
  for (const part of output.parts) {
    walk(part.elements, part.data, part.cs, undefined, (text, tag, parent, vr) => out.push({ text, tag, parent, vr }));
  }
  return out;
}

const characterSets = new Map<string, SpecificCharacterSet>();
const DEFAULT_CS = parseSpecificCharacterSet(undefined);

function characterSetOf(elements: Element[], data: Buffer, inherited?: SpecificCharacterSet): SpecificCharacterSet {
  const el = findElement(elements, SPECIFIC_CHARACTER_SET);
  if (!el) return inherited ?? DEFAULT_CS;
  const value = data.toString('latin1', el.valueStart, el.valueStart + el.length);
  let cs = characterSets.get(value);
  if (!cs) {
    cs = parseSpecificCharacterSet(value);
    if (characterSets.size < 64) characterSets.set(value, cs);
  }
  return cs;
}

function walk(
  elements: Element[],
  data: Buffer,
  cs: SpecificCharacterSet,
  parent: PathStep | undefined,
  visit: ValueVisitor,
): void {
  for (const el of elements) {
    if (el.items) {
      for (let i = 0; i < el.items.length; i++) {
        const item = el.items[i]!;
        // An item may name its own character set (PS3.5 6.1.2.5.2); else it inherits.
        walk(item.elements, data, characterSetOf(item.elements, data, cs), { tag: el.tag, item: i, parent }, visit);
      }
      continue;
    }
    if (el.encapsulated || el.length === 0 || el.length === 0xffffffff) continue;
    if (el.tag === PIXEL_DATA || el.tag === FLOAT_PIXEL_DATA || el.tag === DOUBLE_FLOAT_PIXEL_DATA) continue;
    const vr = el.vr === 'UN' ? (dictionaryVr(el.tag) ?? 'UN') : el.vr;
    if (BINARY_VRS.has(vr)) continue;
    // Text VRs under the character set; OB and UN as bytes (Latin-1: ASCII text in them shows).
    visit(valueText(el, data, cs, vr), el.tag, parent, vr);
  }
}
