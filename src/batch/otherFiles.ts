// --copy-other-files: which non-DICOM files may be copied, and where (README "The output tree").
// Only what was checked is copied: a text file (core/identifiers/textFile.ts) whose text holds no
// identifier of its patient, no source UID and no date (PathPlan.textProblem), whose name holds
// none either (PathPlan.otherPath), inside a patient folder whose de-identified files all went to
// one research patient. Anything else is left out, with its reason.
import fs from 'node:fs';
import path from 'node:path';
import { MAX_TEXT_FILE_BYTES, readTextFile } from '../core/identifiers/index.js';
import { describeSystemError } from '../errors.js';
import { sourceLayout } from './layout.js';
import type { PathPlan } from './pathPlan.js';

/** What to do with one non-DICOM file. */
export type OtherFileDecision =
  /** Left out: `why`, a few words for the audit log (no identifier). */
  | { kind: 'left-out'; why: string }
  /** Copied: exactly `bytes` (the bytes checked) to `<output>/<researchId>/<session folder>/<dirs...>/<fileName>`. */
  | { kind: 'copy'; researchId: string; bytes: Buffer; dirs: string[]; fileName: string };

/**
 * Decides for the non-DICOM file `rel` (relative to `inputDir`, '/' separated), given the research
 * IDs the de-identified files of each patient folder went to and the run's path plan. Reads the
 * file (at most MAX_TEXT_FILE_BYTES); never throws for the file's sake.
 */
export function decideOtherFile(
  inputDir: string,
  rel: string,
  researchIdsOfPatientFolder: ReadonlyMap<string, ReadonlySet<string>>,
  plan: PathPlan,
): OtherFileDecision {
  const left = (why: string): OtherFileDecision => ({ kind: 'left-out', why });
  const l = sourceLayout(rel);
  if (l.patientFolder === null) return left('outside any patient folder');
  const ids = researchIdsOfPatientFolder.get(l.patientFolder);
  if (!ids) return left('no de-identified DICOM in its patient folder');
  if (ids.size !== 1) return left('its patient folder maps to several research IDs');
  const researchId = [...ids][0]!;
  const planned = plan.otherPath(rel, researchId);
  if (planned.fileName === null) return left('its name holds an identifier');
  const bytes = readOtherFile(path.join(inputDir, ...rel.split('/')));
  if (typeof bytes === 'string') return left(bytes);
  const text = readTextFile(bytes);
  if (text.kind === 'not-text') return left(text.why);
  const problem = plan.textProblem(text.text, researchId);
  if (problem !== null) return left(problem);
  return { kind: 'copy', researchId, bytes, dirs: planned.dirs, fileName: planned.fileName };
}

/** The reason of a decision without its details in parentheses (the summary counts these). */
export function reasonWithoutDetails(why: string): string {
  return why.replace(/ \(.*\)$/, '');
}

/** A file's bytes, or why they are not read: larger than any text worth copying, or unreadable. */
function readOtherFile(file: string): Buffer | string {
  try {
    if (fs.statSync(file).size > MAX_TEXT_FILE_BYTES) {
      return `larger than ${MAX_TEXT_FILE_BYTES >> 20} MiB, too large to check`;
    }
    return fs.readFileSync(file);
  } catch (err) {
    return `unreadable: ${describeSystemError(err)}`;
  }
}
