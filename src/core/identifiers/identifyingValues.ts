// The identifying values of a source instance, decoded with its Specific Character Set: what
// must not reappear in what is made from it (its output path; later, its de-identified bytes).
import { decodeValues, parseSpecificCharacterSet, type SpecificCharacterSet } from '../charset/index.js';
import { bufferSource, type ByteSource } from '../dicom/byteSource.js';
import { findElement, findElements, parsePart10, type Element, type ParsedInstance } from '../dicom/parser.js';
import { dictionaryVr } from '../dicom/vrDictionary.js';
import type { Identifier, IdentifierKind } from './matcher.js';

export interface IdentifyingValues {
  /** PatientName, Other Patient Names, Patient's Birth Name, Patient's Mother's Birth Name (PN values). */
  patientNames: string[];
  patientIds: string[];
  /** Other Patient IDs (0010,1000) and the PatientID of each Other Patient IDs Sequence item. */
  otherPatientIds: string[];
  accessionNumbers: string[];
  /** SOP Instance (data set and file meta), Study and Series Instance UIDs. */
  uids: string[];
  /** Patient's Birth Date (DA). */
  birthDates: string[];
  /** Study, Series, Acquisition and Content Dates (DA) and Acquisition DateTime (DT). */
  dates: string[];
  /** Institution Name, Institutional Department Name. */
  institutionNames: string[];
  /** Referring, Performing, Reading and Requesting Physician, Physician(s) of Record (PN values). */
  physicianNames: string[];
  /** Operators' Name (PN values). */
  operatorNames: string[];
  /** Study Instance UID (also among `uids`): what a study is known by. */
  studyInstanceUids: string[];
}

const TAGS: [tag: number, field: keyof IdentifyingValues][] = [
  [0x00080018, 'uids'], // SOP Instance UID
  [0x00080020, 'dates'], // Study Date
  [0x00080021, 'dates'], // Series Date
  [0x00080022, 'dates'], // Acquisition Date
  [0x00080023, 'dates'], // Content Date
  [0x0008002a, 'dates'], // Acquisition DateTime
  [0x00080050, 'accessionNumbers'],
  [0x00080080, 'institutionNames'],
  [0x00080090, 'physicianNames'], // Referring Physician's Name
  [0x00081040, 'institutionNames'], // Institutional Department Name
  [0x00081048, 'physicianNames'], // Physician(s) of Record
  [0x00081050, 'physicianNames'], // Performing Physician's Name
  [0x00081060, 'physicianNames'], // Name of Physician(s) Reading Study
  [0x00081070, 'operatorNames'],
  [0x00100010, 'patientNames'],
  [0x00100020, 'patientIds'],
  [0x00100030, 'birthDates'],
  [0x00101000, 'otherPatientIds'],
  [0x00101001, 'patientNames'], // Other Patient Names
  [0x00101005, 'patientNames'], // Patient's Birth Name
  [0x00101060, 'patientNames'], // Patient's Mother's Birth Name
  [0x0020000d, 'uids'], // Study Instance UID
  [0x0020000e, 'uids'], // Series Instance UID
  [0x00321032, 'physicianNames'], // Requesting Physician
];
const SPECIFIC_CHARACTER_SET = 0x00080005;
const OTHER_PATIENT_IDS_SEQUENCE = 0x00101002;
const PATIENT_ID = 0x00100020;
const STUDY_INSTANCE_UID = 0x0020000d;
const MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003;
/** The top-level tags read: TAGS and the Other Patient IDs Sequence. */
const WANTED: ReadonlySet<number> = new Set([...TAGS.map(([tag]) => tag), OTHER_PATIENT_IDS_SEQUENCE]);

function characterSetOf(elements: Element[], data: Buffer, inherited?: SpecificCharacterSet): SpecificCharacterSet {
  const el = findElement(elements, SPECIFIC_CHARACTER_SET);
  if (!el) return inherited ?? parseSpecificCharacterSet(undefined);
  return parseSpecificCharacterSet(data.toString('latin1', el.valueStart, el.valueStart + el.length));
}

function values(data: Buffer, el: Element, cs: SpecificCharacterSet): string[] {
  if (el.items || el.encapsulated || el.length === 0xffffffff) return [];
  const vr = el.vr === 'UN' ? (dictionaryVr(el.tag) ?? 'UN') : el.vr;
  return decodeValues(data.subarray(el.valueStart, el.valueStart + el.length), cs, vr);
}

/** The identifying values of a parsed instance (top-level elements and Other Patient IDs items). */
export function identifyingValues(p: ParsedInstance): IdentifyingValues {
  const out: IdentifyingValues = {
    patientNames: [],
    patientIds: [],
    otherPatientIds: [],
    accessionNumbers: [],
    uids: [],
    birthDates: [],
    dates: [],
    institutionNames: [],
    physicianNames: [],
    operatorNames: [],
    studyInstanceUids: [],
  };
  const { elements, data } = p.head; // the elements before the pixel data
  const cs = characterSetOf(elements, data);
  // One pass over the data set (it may be out of order, and repeat an element): each wanted
  // element in its tag's bucket, in data set order, then the buckets in the order of TAGS.
  const byTag = new Map<number, Element[]>();
  for (const el of elements) {
    if (!WANTED.has(el.tag)) continue;
    const bucket = byTag.get(el.tag);
    if (bucket) bucket.push(el);
    else byTag.set(el.tag, [el]);
  }
  // Every copy of a repeated element counts (the editor writes one, but the others were there).
  for (const [tag, field] of TAGS) {
    for (const el of byTag.get(tag) ?? []) out[field].push(...values(data, el, cs).filter((v) => v.trim() !== ''));
  }
  for (const seq of byTag.get(OTHER_PATIENT_IDS_SEQUENCE) ?? []) {
    for (const item of seq.items ?? []) {
      for (const el of findElements(item.elements, PATIENT_ID)) {
        out.otherPatientIds.push(...values(data, el, characterSetOf(item.elements, data, cs)));
      }
    }
  }
  for (const el of byTag.get(STUDY_INSTANCE_UID) ?? []) out.studyInstanceUids.push(...values(data, el, cs));
  const meta = findElement(p.meta, MEDIA_STORAGE_SOP_INSTANCE_UID);
  if (meta) out.uids.push(...values(p.metaBytes, meta, cs));
  for (const field of Object.keys(out) as (keyof IdentifyingValues)[]) out[field] = [...new Set(out[field])];
  return out;
}

/**
 * The identifying values of a Part 10 file (its bytes, or a ByteSource, which is read up to the
 * pixel data only), or of its first bytes (`partial`): the data set is read up to Pixel Data
 * only. Returns null when `partial` bytes end before the header does (read more of the file).
 * Throws DicomFormatError for bytes that are not a readable DICOM file; an error of the source
 * itself as it is.
 */
export function readIdentifyingValues(input: Uint8Array | ByteSource, partial = false): IdentifyingValues | null {
  let p: ParsedInstance;
  try {
    p = parsePart10(input instanceof Uint8Array ? bufferSource(input) : input, { headOnly: true });
  } catch (e) {
    if (partial) return null;
    throw e;
  }
  if (partial && !p.reachedPixelData) return null;
  return identifyingValues(p);
}

const KINDS: [keyof IdentifyingValues, IdentifierKind][] = [
  ['patientNames', 'patient-name'],
  ['patientIds', 'patient-id'],
  ['otherPatientIds', 'other-patient-id'],
  ['accessionNumbers', 'accession-number'],
  ['uids', 'uid'],
  ['birthDates', 'birth-date'],
  ['dates', 'date'],
  ['institutionNames', 'institution'],
  ['physicianNames', 'physician'],
  ['operatorNames', 'operator'],
];

/** The values as identifiers for an IdentifierMatcher (`only`: just these kinds). */
export function identifiersOf(values: IdentifyingValues, only?: ReadonlySet<IdentifierKind>): Identifier[] {
  const out: Identifier[] = [];
  for (const [field, kind] of KINDS) {
    if (only && !only.has(kind)) continue;
    for (const value of values[field]) out.push({ kind, value });
  }
  return out;
}
