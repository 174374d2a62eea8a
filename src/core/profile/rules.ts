// What happens to one attribute: PS3.15 Table E.1-1 Basic Profile, overridden by the Retain
// Longitudinal Temporal Information with Modified Dates option, overridden by the attributes
// this project keeps (the seed script's research choices).
import { dictionaryVr } from '../dicom/vrDictionary.js';
import { PROFILE_ROWS } from './profileTable.js';

export type Action =
  | 'keep' // copy the bytes verbatim (sequences: keep, and apply the rules to every item)
  | 'remove' // X
  | 'empty' // Z: zero-length value (sequences: zero items)
  | 'dummy' // D: a non-empty dummy valid for the VR (sequences: kept and processed)
  | 'uid' // U: consistent HMAC remapping
  | 'shift' // dates (DA) and date-times (DT): moved by the patient's day offset
  | 'age'; // PatientAge, binned down to 5 years

/** Attributes the table would remove or empty that the research workflow keeps. */
export const KEPT_ATTRIBUTES: ReadonlyMap<number, string> = new Map([
  [0x0008103e, 'SeriesDescription'],
  [0x00080060, 'Modality'],
  [0x00180015, 'BodyPartExamined'],
  [0x00180010, 'ContrastBolusAgent'],
  [0x00200012, 'AcquisitionNumber'],
  [0x00100040, 'PatientSex'],
]);
export const PATIENT_AGE = 0x00101010;

/**
 * Free text the table does not list but that carries identity in practice: SR TextValue
 * (Content Sequence is D, and we do not implement Clean Structured Content). A dummy keeps the
 * content item valid.
 */
const EXTRA_DUMMY = new Set([0x0040a160]);

/**
 * Attributes Table E.1-1 does not list that are identifying by definition and that no by-VR rule
 * can reach, removed (X):
 * - the patient's birth and death dates written in an alternative calendar (LO, so the date shift
 *   cannot move them; Patient's Birth Date itself is Z with no date option keeping it);
 * - locators of the source system (Retrieve URL/URI, Storage URL, Pixel Data Provider URL): they
 *   mean what Retrieve AE Title and Display URI mean (both X), name the institution's host and
 *   embed the original Study/Series/SOP Instance UIDs in their paths, which no remapping reaches.
 */
const EXTRA_REMOVE = new Set([
  0x00100033, // PatientBirthDateInAlternativeCalendar
  0x00100034, // PatientDeathDateInAlternativeCalendar
  0x00081190, // RetrieveURL
  0x0040e010, // RetrieveURI
  0x00404073, // StorageURL
  0x00287fe0, // PixelDataProviderURL
]);

/**
 * UI attributes that name a class, a syntax or a coding scheme rather than an instance: they
 * are never remapped, even outside the standard root (a private SOP class must stay valid).
 */
const CLASS_UIDS = new Set([
  0x00020002,
  0x00020010,
  0x00020012, // meta: SOP class, transfer syntax, implementation
  0x00080016, // SOPClassUID
  0x0008001a, // RelatedGeneralSOPClassUID
  0x0008001b, // OriginalSpecializedSOPClassUID
  0x00080062, // SOPClassesInStudy
  0x0008010c, // CodingSchemeUID
  0x0008010d, // ContextGroupExtensionCreatorUID
  0x00080117, // ContextUID
  0x00080118, // MappingResourceUID
  0x00081150, // ReferencedSOPClassUID
  0x0008115a, // SOPClassesSupported
  0x00041510,
  0x00041512, // DICOMDIR referenced SOP class / transfer syntax
]);

interface Row {
  basic: string;
  modifiedDates: string;
}

const TABLE = new Map<number, Row>();
for (const [tag, , basic, modifiedDates] of PROFILE_ROWS) {
  if (!/^[0-9A-F]{4},[0-9A-F]{4}$/i.test(tag)) continue; // repeating groups and private: in code
  TABLE.set(parseInt(tag.replace(',', ''), 16), { basic, modifiedDates });
}

/** Curve groups (50xx, retired) and overlay groups (60xx) are removed whole. */
function isCurveOrOverlay(group: number): boolean {
  return ((group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000) && (group & 0xff) <= 0x1e && !(group & 1);
}

/**
 * The action for an attribute with the given VR (the dictionary VR is used for UN), wherever it
 * occurs (top level or any sequence depth).
 */
export function actionFor(tag: number, vr: string): Action {
  const group = tag >>> 16;
  if (group & 1) return 'remove'; // every private tag (E.1.1: the gggg,eeee row)
  if (group === 0x0002 || group === 0x0004) return 'remove'; // meta is rebuilt; no DICOMDIR groups
  if ((tag & 0xffff) === 0) return 'remove'; // group lengths (retired, and wrong after edits)
  if (isCurveOrOverlay(group)) return 'remove'; // 50xx,xxxx X; overlays: data and comments X
  if (KEPT_ATTRIBUTES.has(tag)) return 'keep';
  if (tag === PATIENT_AGE) return 'age';
  if (EXTRA_DUMMY.has(tag)) return 'dummy';
  if (EXTRA_REMOVE.has(tag)) return 'remove';
  const effVr = vr === 'UN' ? (dictionaryVr(tag) ?? 'UN') : vr;
  const row = TABLE.get(tag);
  if (row) {
    if (row.modifiedDates === 'C') {
      if (effVr === 'DA' || effVr === 'DT') return 'shift';
      if (effVr === 'TM') return 'keep'; // whole-day shifts keep times of day
    }
    return basicAction(row.basic, effVr === 'SQ');
  }
  // Not in the table: technical and clinical data stay, but dates move and instance UIDs are
  // remapped wherever they are (PS3.15 suggests handling dates and UIDs by VR). A person name is
  // identifying whatever attribute holds it (DICONDE reviewer names, trial-era author names, tags
  // newer than the dictionary): every PN the table does not list is emptied, like Z.
  if (effVr === 'DA' || effVr === 'DT') return 'shift';
  if (effVr === 'UI' && !CLASS_UIDS.has(tag)) return 'uid';
  if (effVr === 'PN') return 'empty';
  // Long free text (LT, ST, UT) the table does not list (procedure step comments, document
  // titles, HL7 instance identifiers...) is where people write names and history; no technical
  // or clinical attribute a research image needs is free text of these VRs, so it goes.
  if (effVr === 'LT' || effVr === 'ST' || effVr === 'UT') return 'remove';
  // A public attribute whose VR nobody here knows (implicit VR, or UN, and not in the dictionary)
  // could hold a name, a date or a UID the rules above would have changed: it cannot be judged,
  // so it goes. (A UN of undefined length that parsed as a sequence is kept and its items are
  // processed: see deidentify.ts.)
  if (effVr === 'UN') return 'remove';
  return 'keep';
}

/**
 * Compound codes depend on the attribute's Type in the IOD, which a generic editor does not know;
 * we keep the IOD valid rather than minimal: Z where Z is allowed, else D. Sequences with D or U
 * in their code are kept and processed item by item; with only X/Z they are emptied or removed.
 */
function basicAction(code: string, isSequence: boolean): Action {
  if (code === 'X') return 'remove';
  const parts = code.replace('*', '').split('/');
  if (isSequence) {
    if (parts.includes('D') || parts.includes('U')) return 'dummy';
    if (parts.includes('Z')) return 'empty';
    return 'remove';
  }
  if (parts.includes('U')) return parts.length === 1 ? 'uid' : 'empty';
  if (parts.includes('Z')) return 'empty';
  if (parts.includes('D')) return 'dummy';
  return 'remove';
}
