// Before any file is written: read the header of every input file (up to its pixel data, read
// through a FileByteSource: a first read of 16 KiB, more only when the header is longer, never
// the pixel data) and feed its identifying values and mapping row to the path plan, so that each
// folder's name is decided once, knowing every patient it holds.
//
// The files are read in chunks shared by the main thread and, when given, the batch workers
// (SurveyHelpers): the main thread starts at once while the workers are still loading, and they
// join as soon as they are up. The plan is then fed in walk order whoever read each file.
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { readIdentifyingValues, type IdentifyingValues } from '../core/identifiers/index.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import type { MappingRow } from '../core/types.js';
import { FileByteSource } from '../io/fileByteSource.js';
import { PathPlan } from './pathPlan.js';

/**
 * The identifying values of the DICOM file at absolute path `abs`; null for a file that is not
 * DICOM or cannot be read (its worker reports why later). Never throws.
 */
export function surveyFile(abs: string): IdentifyingValues | null {
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

/**
 * Other threads that read files for the survey (the batch workers): `count` of them, each asked
 * with `surveyOn(i, rels)` for the values of files `rels` (relative, '/' separated), in order. A
 * rejected request's files are read by the main thread instead.
 */
export interface SurveyHelpers {
  count: number;
  /** Resolves when helper `i` can take work (rejects: it never will). */
  ready(i: number): Promise<void>;
  surveyOn(i: number, rels: string[]): Promise<(IdentifyingValues | null)[]>;
}

/** Files read per chunk; the main thread gives the event loop a turn between its chunks. */
const CHUNK = 16;

/**
 * Reads every file of `files` (relative to `inputDir`) and returns the path plan and the
 * matched files' studies. Files that are not DICOM or not readable add nothing (they are not
 * written, or are left out). After `signal` aborts it stops reading and returns what it found
 * so far (not to be used: the caller stops too).
 */
export async function surveyTree(
  inputDir: string,
  files: readonly string[],
  table: MappingTable,
  rows: readonly MappingRow[],
  secret: Buffer,
  signal?: AbortSignal,
  helpers?: SurveyHelpers,
): Promise<Survey> {
  const found = new Array<IdentifyingValues | null>(files.length).fill(null);
  const chunks: number[] = [];
  for (let start = 0; start < files.length; start += CHUNK) chunks.push(start);
  const chunkRels = (start: number) => files.slice(start, start + CHUNK);
  const readHere = (start: number): void => {
    chunkRels(start).forEach((rel, i) => (found[start + i] = surveyFile(path.join(inputDir, ...rel.split('/')))));
  };
  // A helper joins once it is up (a chunk sent to a worker still loading would wait for it), and
  // not at all when the main thread has read every chunk by then. It takes the next chunk when it
  // answers its last; a failed request is read here.
  let mainFinished = (): void => {};
  const mainDone = new Promise<false>((resolve) => (mainFinished = () => resolve(false)));
  const helping = Array.from({ length: helpers?.count ?? 0 }, async (_, h) => {
    const up = await Promise.race([
      helpers!.ready(h).then(
        () => true,
        () => false,
      ),
      mainDone,
    ]);
    if (!up) return;
    for (let start = chunks.shift(); start !== undefined && !signal?.aborted; start = chunks.shift()) {
      try {
        const values = await helpers!.surveyOn(h, chunkRels(start));
        values.forEach((v, i) => (found[start + i] = v));
      } catch {
        readHere(start);
      }
    }
  });
  for (let start = chunks.shift(); start !== undefined && !signal?.aborted; start = chunks.shift()) {
    readHere(start);
    await new Promise((resolve) => setImmediate(resolve));
  }
  mainFinished();
  await Promise.all(helping);

  const plan = new PathPlan(rows, secret);
  const studies: SurveyedStudy[] = [];
  for (const [i, rel] of files.entries()) {
    const values = found[i];
    if (values === null || values === undefined) continue;
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
