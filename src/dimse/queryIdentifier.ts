// The identifier of a C-FIND or C-MOVE request (PS3.4 C.4.1.1.3, C.4.2.1.4), and the identifiers
// a C-FIND answers with: a small data set of matching and return keys, written with the core's
// element encoder and read with its parser, in the transfer syntax the presentation context
// negotiated (Implicit or Explicit VR Little Endian: the only ones a query context proposes).
import { parseSpecificCharacterSet, decodeText, CHARSET_VRS } from '../core/charset/index.js';
import { encodeText } from '../core/dicom/encoder.js';
import { parseDataSetElements, stringValue } from '../core/dicom/parser.js';
import {
  EXPLICIT_LE,
  EXPLICIT_VR_LE,
  IMPLICIT_LE,
  IMPLICIT_VR_LE,
  type Encoding,
} from '../core/dicom/transferSyntax.js';
import { trimUid } from '../core/dicom/uid.js';

/** Tags of the keys this project queries and reads (PS3.6). */
export const QueryTag = {
  SpecificCharacterSet: 0x00080005,
  StudyDate: 0x00080020,
  AccessionNumber: 0x00080050,
  QueryRetrieveLevel: 0x00080052,
  FailedSopInstanceUidList: 0x00080058,
  ModalitiesInStudy: 0x00080061,
  Modality: 0x00080060,
  PatientId: 0x00100020,
  StudyInstanceUid: 0x0020000d,
  SeriesInstanceUid: 0x0020000e,
  SopInstanceUid: 0x00080018,
  NumberOfStudyRelatedInstances: 0x00201208,
  NumberOfSeriesRelatedInstances: 0x00201209,
} as const;

/** One key of an identifier: a matching key when `value` is set, a return key when it is ''. */
export interface QueryKey {
  tag: number;
  /** Its VR (PS3.6): 'CS', 'DA', 'LO', 'SH', 'UI', 'IS'... */
  vr: string;
  value: string;
}

/** The element encoding of a query context's transfer syntax; throws for any other syntax. */
export function identifierEncoding(transferSyntaxUid: string): Encoding {
  if (transferSyntaxUid === IMPLICIT_VR_LE) return IMPLICIT_LE;
  if (transferSyntaxUid === EXPLICIT_VR_LE) return EXPLICIT_LE;
  throw new Error(`identifiers are written in Implicit or Explicit VR Little Endian, not ${transferSyntaxUid}`);
}

/**
 * Encodes `keys` as an identifier in `transferSyntaxUid` (Implicit or Explicit VR LE), elements in
 * tag order. Values outside ASCII are written in UTF-8 behind Specific Character Set "ISO_IR 192"
 * (PS3.3 C.12.1.1.2); ASCII-only identifiers carry no Specific Character Set (the default
 * repertoire). Throws for another transfer syntax, or a value longer than its VR allows in a
 * 16-bit length.
 */
export function encodeIdentifier(keys: readonly QueryKey[], transferSyntaxUid: string): Buffer {
  const enc = identifierEncoding(transferSyntaxUid);
  const utf8 = keys.some((k) => /[^\x00-\x7f]/.test(k.value));
  const all = utf8 ? [{ tag: QueryTag.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' }, ...keys] : [...keys];
  all.sort((a, b) => a.tag - b.tag);
  return Buffer.concat(all.map((k) => encodeText(k.tag, k.vr, k.value, enc, utf8 && CHARSET_VRS.has(k.vr))));
}

/**
 * Reads the top-level text values of an identifier (a C-FIND answer, the Failed SOP Instance UID
 * List of a C-MOVE answer) written in `transferSyntaxUid`: each value decoded under the
 * identifier's Specific Character Set, without its padding (spaces both ends; NULs of UIDs).
 * Nothing else is trimmed: `00123` stays `00123`. Multiple values keep their backslashes. Throws
 * DicomFormatError for a malformed identifier.
 */
export function decodeIdentifier(bytes: Buffer, transferSyntaxUid: string): Map<number, string> {
  const elements = parseDataSetElements(bytes, identifierEncoding(transferSyntaxUid));
  const csElement = elements.find((e) => e.tag === QueryTag.SpecificCharacterSet);
  const cs = parseSpecificCharacterSet(csElement ? stringValue(bytes, csElement).split('\\') : undefined);
  const out = new Map<number, string>();
  for (const el of elements) {
    if (el.items || el.encapsulated) continue;
    const raw = bytes.subarray(el.valueStart, el.valueStart + el.length);
    if (el.vr === 'UI') out.set(el.tag, raw.toString('latin1').split('\\').map(trimUid).join('\\'));
    else if (CHARSET_VRS.has(el.vr)) out.set(el.tag, trimPadding(decodeText(raw, cs, el.vr)));
    else out.set(el.tag, trimPadding(raw.toString('latin1')));
  }
  return out;
}

/** Spaces and NULs at both ends: the padding PS3.5 6.2 lets writers add. */
function trimPadding(s: string): string {
  return s.replace(/^[ \0]+|[ \0]+$/g, '');
}
