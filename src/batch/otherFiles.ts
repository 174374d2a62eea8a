// --copy-other-files: which non-DICOM files may be copied, and where (README "The output tree").
// Only what was checked is copied: a text file (core/identifiers/textFile.ts) whose text holds no
// identifier of its patient, no source UID and no date (PathPlan.textProblem), whose name holds
// none either (PathPlan.otherPath), inside a patient folder whose de-identified files all went to
// one research patient. Anything else is left out, with its reason.
//
// Decided after the pool, when every DICOM file's research ID is known; `batch --dry-run` shows
// the decisions (planOtherFile), a run writes them (placeOtherFile).
import fs from 'node:fs';
import path from 'node:path';
import type { AuditRow } from '../audit/auditLog.js';
import { sessionFolderName } from '../core/accession.js';
import { MAX_TEXT_FILE_BYTES, readTextFile } from '../core/identifiers/index.js';
import { describeSystemError } from '../errors.js';
import { writeFileAtomicSync } from '../io/durableWrite.js';
import { folderSessionKey, sourceLayout } from './layout.js';
import type { PathPlan } from './pathPlan.js';
import type { WriteFailure } from './sessionNotes.js';
import type { SessionNumbers } from './sessionNumbers.js';

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

/** What placing the run's non-DICOM files needs. */
export interface OtherFilesContext {
  inputDir: string;
  outputDir: string;
  copyOtherFiles: boolean;
  /** Patient folder -> the research IDs of its de-identified files. */
  researchIdsOfPatientFolder: ReadonlyMap<string, ReadonlySet<string>>;
  plan: PathPlan;
  sessions: SessionNumbers;
}

/**
 * Where one non-DICOM file goes: left out (`why`; null without --copy-other-files, `message` its
 * audit row's words) or copied.
 */
export type OtherFilePlan =
  | { kind: 'left-out'; why: string | null; message: string }
  /** `outRel`: relative to the output folder, '/'-separated; `bytes`: the bytes checked. */
  | { kind: 'copy'; researchId: string; outRel: string; bytes: Buffer };

/**
 * Decides where the non-DICOM file `rel` goes, its session folder included, writing nothing.
 * Rejects only when the state cannot give its session a number.
 */
export async function planOtherFile(rel: string, ctx: OtherFilesContext): Promise<OtherFilePlan> {
  const misnamed = dicomNamedProblem(ctx.inputDir, rel);
  if (misnamed !== null) return { kind: 'left-out', why: misnamed, message: `${misnamed}: left out` };
  if (!ctx.copyOtherFiles) return { kind: 'left-out', why: null, message: 'not DICOM: left out' };
  const d = decideOtherFile(ctx.inputDir, rel, ctx.researchIdsOfPatientFolder, ctx.plan);
  if (d.kind === 'left-out') return { kind: 'left-out', why: d.why, message: `not DICOM: left out (${d.why})` };
  const l = sourceLayout(rel);
  const parts = [d.researchId];
  if (l.patientFolder !== null && l.sessionFolder !== null) {
    const key = folderSessionKey(l.patientFolder, l.sessionFolder);
    const n =
      ctx.sessions.known(d.researchId, key) ??
      (await ctx.sessions.index({ researchId: d.researchId, patientFolder: l.patientFolder, key }));
    parts.push(sessionFolderName(d.researchId, n));
  }
  parts.push(...d.dirs, d.fileName);
  return { kind: 'copy', researchId: d.researchId, outRel: parts.join('/'), bytes: d.bytes };
}

/** File name endings that say DICOM (compared without case: `.DCM`, `.IMA` from Siemens). */
const DICOM_NAMES = ['.dcm', '.dicom', '.ima'];

/**
 * Why a file whose name says DICOM, but which is not (a zero-byte file, a text file, a transfer
 * cut short), is left out whatever --copy-other-files says: `named .dcm but not DICOM`, with
 * `(empty)` for a zero-byte file. Null for any other name. Never copied: its name promises an
 * image that is not there, and a text under it (a dump of a header?) is no text file anyone
 * meant to share.
 */
function dicomNamedProblem(inputDir: string, rel: string): string | null {
  const lower = rel.slice(rel.lastIndexOf('/') + 1).toLowerCase();
  const ending = DICOM_NAMES.find((e) => lower.endsWith(e) && lower.length > e.length);
  if (ending === undefined) return null;
  let empty = false;
  try {
    empty = fs.statSync(path.join(inputDir, ...rel.split('/'))).size === 0;
  } catch {
    // gone since the walk: said as the other files are
  }
  return `named ${ending} but not DICOM${empty ? ' (empty)' : ''}`;
}

/**
 * Places one non-DICOM file: copies it (atomically, the bytes that were checked, not the file
 * again: it could have changed since) or leaves it out. Returns its audit row and, when it was
 * left out for a reason, that reason without details (the summary counts these). A failed copy
 * is a row too, and its `failure` (the run's exit status is then 1), never a throw.
 */
export async function placeOtherFile(
  rel: string,
  ctx: OtherFilesContext,
): Promise<{ row: AuditRow; leftOutReason?: string; failure?: WriteFailure }> {
  const p = await planOtherFile(rel, ctx);
  let why = p.kind === 'left-out' ? p.why : null;
  let failure: WriteFailure | undefined;
  if (p.kind === 'copy') {
    try {
      writeFileAtomicSync(path.join(ctx.outputDir, ...p.outRel.split('/')), p.bytes);
      const message = 'not DICOM: a text file without identifiers, copied (--copy-other-files)';
      return { row: { sourcePath: rel, status: 'not-dicom', researchId: p.researchId, outputPath: p.outRel, message } };
    } catch (err) {
      failure = { outputPath: p.outRel, why: describeSystemError(err) };
      why = `copy failed: ${failure.why}`;
    }
  }
  const message = p.kind === 'left-out' ? p.message : `not DICOM: left out (${why})`;
  if (why === null) return { row: { sourcePath: rel, status: 'not-dicom', message } };
  // The kinds of identifier found are for the audit log; the summary counts the reasons.
  const row: AuditRow = { sourcePath: rel, status: 'not-dicom', message };
  return { row, leftOutReason: reasonWithoutDetails(why), failure };
}
