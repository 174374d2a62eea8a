// Before any file is written: read the header of every input file (up to its pixel data, read
// through a FileByteSource: a first read of 16 KiB, more only when the header is longer, never
// the pixel data) and feed its identifying values and mapping row to the path plan, so that each
// folder's name is decided once, knowing every patient it holds.
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { readIdentifyingValues, type IdentifyingValues } from '../core/identifiers/index.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import type { MappingRow } from '../core/types.js';
import { FileByteSource } from '../io/fileByteSource.js';
import { PathPlan } from './pathPlan.js';

/** The identifying values of a DICOM file; null for a file that is not DICOM or cannot be read. */
function surveyFile(abs: string): IdentifyingValues | null {
  let fd: number;
  try {
    fd = openSync(abs, 'r');
  } catch {
    return null; // its worker reports it
  }
  try {
    const source = new FileByteSource(fd);
    return source.isDicom() ? readIdentifyingValues(source) : null;
  } catch {
    return null; // not readable: its worker reports why, and it is not written
  } finally {
    closeSync(fd);
  }
}

/** A DICOM file the survey matched, and its study (what StateStore.claimStudies claims). */
export interface SurveyedStudy {
  rel: string;
  researchId: string;
  /** Its original Study Instance UID. */
  studyInstanceUid: string;
}

/** What the survey found: the path plan, and the study of each matched file, in walk order. */
export interface Survey {
  plan: PathPlan;
  studies: SurveyedStudy[];
}

/** Files read between two turns of the event loop (a signal is handled between them). */
const FILES_PER_TURN = 32;

/**
 * Reads every file of `files` (relative to `inputDir`) and returns the path plan and the
 * matched files' studies. Files that are not DICOM or not readable add nothing (they are not
 * written, or are left out). Gives the event loop a turn every few files; after `signal`
 * aborts it stops reading and returns what it found so far (not to be used: the caller stops
 * too).
 */
export async function surveyTree(
  inputDir: string,
  files: readonly string[],
  table: MappingTable,
  rows: readonly MappingRow[],
  secret: Buffer,
  signal?: AbortSignal,
): Promise<Survey> {
  const plan = new PathPlan(rows, secret);
  const studies: SurveyedStudy[] = [];
  for (const [i, rel] of files.entries()) {
    if (i % FILES_PER_TURN === FILES_PER_TURN - 1) {
      await new Promise((resolve) => setImmediate(resolve));
      if (signal?.aborted) break;
    }
    const values = surveyFile(path.join(inputDir, ...rel.split('/')));
    if (values === null) continue;
    const match = table.match({
      patientId: values.patientIds[0] ?? '',
      accessionNumber: values.accessionNumbers[0] ?? '',
    });
    plan.addFile({ rel, researchId: match?.row.researchId ?? null, dayOffset: match?.row.dayOffset ?? null, values });
    const studyInstanceUid = values.studyInstanceUids[0];
    if (match && studyInstanceUid) studies.push({ rel, researchId: match.row.researchId, studyInstanceUid });
  }
  return { plan, studies };
}
