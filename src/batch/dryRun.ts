// `batch --dry-run`: what a run would do, with nothing written: not the output tree, not the
// audit log, not even the state (read only when it exists). It checks the options and the CSV
// as a run does, walks the tree, reads every file's keys, numbers the sessions as a run would
// (sessionPreview.ts), decides the files that are not DICOM, and prints the plan (dryRunReport.ts).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sessionFolderName } from '../core/accession.js';
import { burnedInVerdict } from '../core/burnedIn.js';
import { readInstanceKeys } from '../core/deidentify.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { DicomFormatError, type MatchedBy } from '../core/types.js';
import { describeSystemError, UsageError } from '../errors.js';
import { escapeControlCharacters } from '../printable.js';
import { FileByteSource } from '../io/fileByteSource.js';
import { claimOutputTree } from '../io/projectMarker.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { markerNames, prepareBatch, type BatchOptions } from './batchOptions.js';
import { printDryRun, type PlannedFile } from './dryRunReport.js';
import { inventoryTree } from './inventory.js';
import { folderSessionKey, sourceLayout, studySessionKey } from './layout.js';
import { planOtherFile } from './otherFiles.js';
import { SessionNumbers } from './sessionNumbers.js';
import { SessionPreview } from './sessionPreview.js';
import { previewStudyOwners } from './studyOwners.js';
import { surveyTree } from './survey.js';
import { walkTree } from './walk.js';

/** What reading one file's keys says a run would do with it, before session numbers. */
type Classified =
  | { status: 'not-dicom' }
  | { status: 'error' | 'no-mapping' | 'dicomdir'; message: string }
  /** `held`: why a run would hold it for its burned-in annotation. */
  | { status: 'ok'; researchId: string; matchedBy: MatchedBy; studyKey: string; held?: string };

/** Reads one file's keys and matches them, as a worker does (worker.ts), writing nothing. */
function classify(abs: string, table: MappingTable, allowBurnedIn: boolean): Classified {
  let fd: number;
  try {
    fd = fs.openSync(abs, 'r');
  } catch (err) {
    return { status: 'error', message: `unreadable: ${describeSystemError(err)}` };
  }
  try {
    const source = new FileByteSource(fd);
    if (!source.isDicom()) return { status: 'not-dicom' };
    const keys = readInstanceKeys(source);
    if (keys.isMediaIndex) return { status: 'dicomdir', message: 'a DICOMDIR (the index of a CD or DVD): left out' };
    const match = table.match({ patientId: keys.patientId, accessionNumber: keys.accessionNumber });
    if (!match) {
      const note = table.unmatchedNote(keys);
      return {
        status: 'no-mapping',
        message: 'no row matches PatientID or AccessionNumber' + (note ? `; ${note.text}` : ''),
      };
    }
    const burnedIn = burnedInVerdict(keys);
    return {
      status: 'ok',
      researchId: match.row.researchId,
      matchedBy: match.matchedBy,
      studyKey: studySessionKey(keys.accessionNumber, keys.studyInstanceUid),
      held:
        burnedIn?.kind === 'declared' && !allowBurnedIn
          ? `held: ${burnedIn.reason} (--allow-burned-in writes it)`
          : undefined,
    };
  } catch (err) {
    const message =
      err instanceof DicomFormatError ? err.message.split('\n')[0]! : `unreadable: ${describeSystemError(err)}`;
    return { status: 'error', message };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Prints the plan of a run with these options and returns the exit status the run would have
 * (0 every DICOM file would be de-identified, 1 not). Throws UsageError or MappingError (exit 2)
 * as a run does. Writes nothing.
 */
export async function dryRunBatch(opts: BatchOptions): Promise<{ exitCode: 0 | 1 }> {
  const print = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  // Source paths may hold control characters (a folder named with a newline, ESC): shown as \x0a, \x1b.
  const out = (line: string) => print(escapeControlCharacters(line));
  const { paths, rows } = prepareBatch(opts);
  const walked = await walkTree(paths.input, [paths.output, paths.logDir, path.dirname(paths.db)], opts.signal);
  const files = walked.files;
  if (files.length === 0 && walked.errors.length === 0) {
    throw new UsageError(`--input ${opts.input} holds no files: nothing to de-identify`);
  }
  let state: StateStore | null = null;
  if (fs.existsSync(paths.db)) state = await openStateStore(paths.db, { create: false, readOnly: true });
  try {
    // A state without a secret yet gets a new one in the run: as a new state, refused by an output
    // tree made with another secret (the run would refuse it too). Nothing is written here.
    const stateSecret = state ? await state.uidSecret().catch(() => null) : null;
    claimOutputTree(paths.output, stateSecret, markerNames(opts, paths), false);
    // The secret only names replaced folders (not shown).
    const secret = stateSecret ?? randomBytes(32);
    const table = new MappingTable(rows);
    const { plan, studies } = await surveyTree(paths.input, files, table, rows, secret, opts.signal);
    const studyOwners = await previewStudyOwners(state, studies, secret);
    const inventory = inventoryTree(files);
    const preview = new SessionPreview(state);
    const sessions = new SessionNumbers(preview, paths.input, inventory);

    const planned = new Map<string, PlannedFile>();
    // In a run's order: session folders first, then files outside them (numbered by study).
    for (const rel of [...inventory.foldered, ...inventory.loose]) {
      if (opts.signal?.aborted) return { exitCode: 1 };
      const c = classify(path.join(paths.input, ...rel.split('/')), table, opts.allowBurnedIn === true);
      if (c.status !== 'ok') {
        planned.set(rel, { rel, status: c.status, message: 'message' in c ? c.message : undefined });
        continue;
      }
      // In a worker's order: the study's owner first, then the burned-in annotation.
      const owner = studyOwners.get(rel);
      if (owner !== undefined && owner !== c.researchId) {
        const message = `held: its study belongs to research patient ${owner}, but this file matched ${c.researchId}`;
        planned.set(rel, { rel, status: 'conflict', message });
        continue;
      }
      if (c.held !== undefined) {
        planned.set(rel, { rel, status: 'held', message: c.held });
        continue;
      }
      const l = sourceLayout(rel);
      const key =
        l.patientFolder !== null && l.sessionFolder !== null
          ? folderSessionKey(l.patientFolder, l.sessionFolder)
          : c.studyKey;
      const n = await sessions.index({ researchId: c.researchId, patientFolder: l.patientFolder, key });
      const dicomPath = plan.dicomPath(rel);
      const renamed =
        dicomPath !== null && (dicomPath.fileName === null || dicomPath.dirs.join('/') !== l.deeperDirs.join('/'));
      planned.set(rel, {
        rel,
        status: 'ok',
        researchId: c.researchId,
        matchedBy: c.matchedBy,
        session: sessionFolderName(c.researchId, n),
        newSession: preview.isNew(c.researchId, n),
        renamed,
      });
    }
    const idsOfPatientFolder = new Map<string, Set<string>>();
    for (const f of planned.values()) {
      const pf = sourceLayout(f.rel).patientFolder;
      if (f.status !== 'ok' || pf === null) continue;
      const set = idsOfPatientFolder.get(pf) ?? new Set<string>();
      set.add(f.researchId!);
      idsOfPatientFolder.set(pf, set);
    }
    for (const f of planned.values()) {
      if (f.status !== 'not-dicom') continue;
      const d = await planOtherFile(f.rel, {
        inputDir: paths.input,
        outputDir: paths.output,
        copyOtherFiles: opts.copyOtherFiles === true,
        researchIdsOfPatientFolder: idsOfPatientFolder,
        plan,
        sessions,
      });
      if (d.kind === 'copy') f.copiedTo = d.outRel;
      else f.message = d.message;
    }
    const walkErrors = walked.errors.map((e) => ({ rel: e.rel, status: 'error' as const, message: e.message }));
    const all = [...walkErrors, ...files.map((rel) => planned.get(rel)!)];
    return {
      exitCode: printDryRun(all, { input: paths.input, state: state ? paths.db : null, dbPath: paths.db }, out),
    };
  } finally {
    await state?.close();
  }
}
