// Types shared between the pure core and its adapters (batch, node, forwarder).
// The core never does I/O: bytes + mapping row + secret in, bytes out.
import type { ByteRange } from './dicom/byteSource.js';

import type { CsvProblem } from './mapping/csvProblem.js';
import type { IdentifyingValues } from './identifiers/identifyingValues.js';

/** One validated row of the researcher's mapping CSV. */
export interface MappingRow {
  /** 1-based line number in the CSV file (header is line 1). */
  line: number;
  /** Column 1 (MRN); null when empty or "no information" (5+ underscores). */
  mrn: string | null;
  /** Column 2 (Accession); null when empty or "no information". */
  accession: string | null;
  /** New_Patient_ID: the research ID; safe as a folder name and a DICOM LO value. */
  researchId: string;
  /** Surgery_Date, YYYY-MM-DD. */
  surgeryDate: string;
  /** Anchor_Date, YYYY-MM-DD (default 2024-06-15). */
  anchorDate: string;
  /** Anchor_Date - Surgery_Date, in whole days: added to every date. */
  dayOffset: number;
  /** Notes ('' when absent). */
  notes: string;
}

/** Which lookup step found the row (in lookup order). */
export type MatchedBy =
  | 'mrn' // DICOM PatientID found in the MRN column
  | 'accession' // DICOM AccessionNumber found in the Accession column
  | 'mrn-in-accession-column' // PatientID found in the Accession column (swapped columns)
  | 'accession-in-mrn-column'; // AccessionNumber found in the MRN column (swapped columns)

/**
 * Something the audit log (and the batch summary) should say about a lookup: which of several
 * disagreeing rows gave the day offset, or why an instance that did not match was close to a row.
 * The text names CSV lines, never a value, so it may also be shown in summaries.
 */
export interface MatchNote {
  kind: 'day-offset-choice' | 'lost-leading-zeros';
  /** The CSV lines concerned (the first is the one used, for a day-offset choice). */
  lines: number[];
  text: string;
}

export interface Match {
  row: MappingRow;
  matchedBy: MatchedBy;
  /** Set when the row was one of several of the patient's rows that disagree on the day offset. */
  note?: MatchNote;
}

/** The few identifying keys the adapters need before de-identifying (matching, counters). */
export interface InstanceKeys {
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** Media Storage SOP Class and Instance UIDs of the file meta ('' when none). A node's spool
   *  writes there the Affected SOP Class and Instance UIDs of the C-STORE request. */
  metaSopClassUid: string;
  metaSopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  patientId: string;
  accessionNumber: string;
  patientName: string;
  patientBirthDate: string;
  studyDate: string;
  patientAge: string;
  /** Modality (0008,0060), Conversion Type (0008,0064), Image Type (0008,0008) as written, and
   *  Burned In Annotation (0028,0301): what burnedIn.ts judges the pixels by. */
  modality: string;
  conversionType: string;
  imageType: string;
  burnedInAnnotation: string;
  /** True when the data set has top-level pixel data (Pixel Data, Float or Double Float Pixel Data). */
  hasPixelData: boolean;
  /** True for a DICOMDIR (Media Storage Directory, PS3.10 7.2): an index of a medium's files, not an instance. */
  isMediaIndex: boolean;
}

/** What the adapter decided for one instance; everything the core needs besides the bytes. */
export interface DeidPlan {
  researchId: string;
  /** The new AccessionNumber, already `{researchId}_{N}` cut to 16 characters. */
  accessionNumber: string;
  dayOffset: number;
  notes: string;
  /** Project secret for HMAC UID remapping (from the SQLite state). */
  uidSecret: Buffer;
}

/** What de-identification made of an instance, besides its bytes. */
export interface DeidInstanceInfo {
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** De-identified values usable for naming (never identifying). */
  modality: string;
  seriesNumber: string;
  seriesDescription: string;
  /**
   * What was repaired or could not be kept exactly, one short log-safe sentence each (no
   * identifier): elements put into ascending order, odd lengths padded, a character set
   * extended for the notes, notes characters written as '?'. For the audit log.
   */
  notices: string[];
  /** The source's identifying values, for the leak guard (core/leakGuard): key material, never logged. */
  sourceValues: IdentifyingValues;
}

export interface DeidResult extends DeidInstanceInfo {
  /** The de-identified Part 10 file (concatenated on first access). */
  readonly bytes: Buffer;
  /** The same file as consecutive pieces (views into the input where unchanged): write them
   *  with writev to avoid copying the pixel data once more. */
  parts: Buffer[];
}

/**
 * The de-identified instance as three stretches, for adapters that copy the pixel data from
 * the source without reading it: the file is `head`, then the source's bytes `pixelData`
 * (unchanged), then `tail`.
 */
export interface RangedDeidResult extends DeidInstanceInfo {
  /** New preamble, file meta and elements before the pixel data. */
  head: Buffer[];
  /** The whole top-level Pixel Data element (header included) as a byte range of the source;
   *  its value alone when its header was rewritten (an odd length padded: the new header ends
   *  `head`, the padding byte starts `tail`); null when there is nothing to copy from it. */
  pixelData: ByteRange | null;
  /** New elements after the pixel data. */
  tail: Buffer[];
  /** Size of the de-identified file (bytes). */
  size: number;
}

/** Thrown by the core for input it cannot de-identify safely; message is one clear line. */
export class DicomFormatError extends Error {
  override name = 'DicomFormatError';
}

/**
 * Thrown for a mapping CSV that does not validate. The message is one line per problem (capped),
 * each naming the file, line, column and value; `problems` lists every problem, each also worded
 * without its value (`redacted`, for logs).
 */
export class MappingError extends Error {
  override name = 'MappingError';
  /** `message`: one line per problem (with values); `problems`: every problem, also worded without values. */
  constructor(
    message: string,
    readonly problems: readonly CsvProblem[] = [],
  ) {
    super(message);
  }
}
