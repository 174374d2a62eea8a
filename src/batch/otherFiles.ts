// Files that are not DICOM (reports, protocols, exports): left out, because they may hold
// identifiers, unless --copy-other-files and the file can be placed safely: inside a patient
// folder whose de-identified DICOM all went to one research ID, under a name with no identifier.
// Decided after the pool, when every DICOM file's research ID is known.
import fs from 'node:fs';
import path from 'node:path';
import type { AuditRow } from '../audit/auditLog.js';
import { sessionFolderName } from '../core/accession.js';
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

/**
 * Decides (and with --copy-other-files, copies) one file that is not DICOM; returns its audit
 * row, whose message says why it was left out. A failed copy is a row too, never a throw;
 * rejects only when the state cannot give its session a number.
 */
export async function placeOtherFile(rel: string, ctx: OtherFilesContext): Promise<AuditRow> {
  const row = (message: string): AuditRow => ({ sourcePath: rel, status: 'not-dicom', message });
  if (!ctx.copyOtherFiles) return row('not DICOM: left out');
  const l = sourceLayout(rel);
  if (l.patientFolder === null) return row('not DICOM: left out (outside any patient folder)');
  const ids = ctx.researchIdsOfPatientFolder.get(l.patientFolder);
  if (!ids) return row('not DICOM: left out (no de-identified DICOM in its patient folder)');
  if (ids.size !== 1) return row('not DICOM: left out (patient folder maps to several research IDs)');
  const researchId = [...ids][0]!;
  const planned = ctx.plan.otherPath(rel, researchId);
  if (planned.fileName === null) return row('not DICOM: left out (its name contains an identifier)');
  const parts: string[] = [researchId];
  if (l.sessionFolder !== null) {
    const key = folderSessionKey(l.patientFolder, l.sessionFolder);
    const n =
      ctx.sessions.known(researchId, key) ??
      (await ctx.sessions.index({ researchId, patientFolder: l.patientFolder, key }));
    parts.push(sessionFolderName(researchId, n));
  }
  parts.push(...planned.dirs, planned.fileName);
  try {
    copyFileAtomic(path.join(ctx.inputDir, ...rel.split('/')), path.join(ctx.outputDir, ...parts));
  } catch (err) {
    return row(`not DICOM: copy failed: ${(err as Error).message.split('\n')[0]}`);
  }
  return {
    sourcePath: rel,
    status: 'not-dicom',
    researchId,
    outputPath: parts.join('/'),
    message: 'not DICOM: copied (--copy-other-files)',
  };
}
