// Files that are not DICOM (reports, protocols, exports): left out, because they may hold
// identifiers, unless --copy-other-files and the file can be placed safely: inside a patient
// folder whose de-identified DICOM all went to one research ID, under a name with no identifier.
// Decided after the pool, when every DICOM file's research ID is known.
import fs from 'node:fs';
import path from 'node:path';
import type { AuditRow } from '../audit/auditLog.js';
import { sessionFolderName } from '../core/accession.js';
import { describeSystemError } from '../errors.js';
import { writeFileAtomicSync } from '../io/durableWrite.js';
import { folderSessionKey, sourceLayout } from './layout.js';
import type { PathPlan } from './pathPlan.js';
import type { SessionNumbers } from './sessionNumbers.js';

export interface OtherFilesContext {
  inputDir: string;
  outputDir: string;
  copyOtherFiles: boolean;
  /** Patient folder -> the research IDs of its de-identified files. */
  researchIdsOfPatientFolder: ReadonlyMap<string, ReadonlySet<string>>;
  plan: PathPlan;
  sessions: SessionNumbers;
}

/** Copies `src` to `dest` atomically (temporary name, then rename), creating its folder. */
function copyFileAtomic(src: string, dest: string): void {
  const fd = fs.openSync(src, 'r');
  try {
    writeFileAtomicSync(dest, [{ fd, offset: 0, length: fs.fstatSync(fd).size }]);
  } finally {
    fs.closeSync(fd);
  }
}

/** Where a file that is not DICOM goes: left out (and why), or copied to `outRel`. */
export type OtherFileDecision =
  { leftOut: string } | { researchId: string; /** Relative to the output folder, '/'-separated. */ outRel: string };

/**
 * Decides where one file that is not DICOM goes, without writing anything (`batch --dry-run`
 * shows it). Rejects only when the state cannot give its session a number.
 */
export async function decideOtherFile(rel: string, ctx: OtherFilesContext): Promise<OtherFileDecision> {
  if (!ctx.copyOtherFiles) return { leftOut: 'left out' };
  const l = sourceLayout(rel);
  if (l.patientFolder === null) return { leftOut: 'left out (outside any patient folder)' };
  const ids = ctx.researchIdsOfPatientFolder.get(l.patientFolder);
  if (!ids) return { leftOut: 'left out (no de-identified DICOM in its patient folder)' };
  if (ids.size !== 1) return { leftOut: 'left out (patient folder maps to several research IDs)' };
  const researchId = [...ids][0]!;
  const planned = ctx.plan.otherPath(rel, researchId);
  if (planned.fileName === null) return { leftOut: 'left out (its name contains an identifier)' };
  const parts: string[] = [researchId];
  if (l.sessionFolder !== null) {
    const key = folderSessionKey(l.patientFolder, l.sessionFolder);
    const n =
      ctx.sessions.known(researchId, key) ??
      (await ctx.sessions.index({ researchId, patientFolder: l.patientFolder, key }));
    parts.push(sessionFolderName(researchId, n));
  }
  parts.push(...planned.dirs, planned.fileName);
  return { researchId, outRel: parts.join('/') };
}

/**
 * Decides (and with --copy-other-files, copies) one file that is not DICOM; returns its audit
 * row, whose message says why it was left out. A failed copy is a row too, never a throw;
 * rejects only when the state cannot give its session a number.
 */
export async function placeOtherFile(rel: string, ctx: OtherFilesContext): Promise<AuditRow> {
  const decision = await decideOtherFile(rel, ctx);
  if ('leftOut' in decision) return { sourcePath: rel, status: 'not-dicom', message: `not DICOM: ${decision.leftOut}` };
  try {
    copyFileAtomic(path.join(ctx.inputDir, ...rel.split('/')), path.join(ctx.outputDir, ...decision.outRel.split('/')));
  } catch (err) {
    return { sourcePath: rel, status: 'not-dicom', message: `not DICOM: copy failed: ${describeSystemError(err)}` };
  }
  return {
    sourcePath: rel,
    status: 'not-dicom',
    researchId: decision.researchId,
    outputPath: decision.outRel,
    message: 'not DICOM: copied (--copy-other-files)',
  };
}
