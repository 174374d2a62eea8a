// The batch command's engine, as a short orchestration of its parts: check the options and the
// CSV (batchOptions.ts), walk the input tree (walk.ts), survey every file's identifiers for the
// names below the session folders (survey.ts, pathPlan.ts), de-identify every DICOM file on the
// worker pool (workerPool.ts, worker.ts) with session numbers from the state (sessionNumbers.ts),
// then place the files that are not DICOM (otherFiles.ts), write the notes (sessionNotes.ts),
// the audit log (batchAuditLog.ts) and the summary (runResults.ts, summary.ts). A journal
// (resumeJournal.ts) lets the same command continue a run that was interrupted.
import fs from 'node:fs';
import path from 'node:path';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { escapeControlCharacters } from '../printable.js';
import { claimOutputTree } from '../io/projectMarker.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { BatchAuditLog } from './batchAuditLog.js';
import {
  checkOutputWritable,
  makeKeyMaterialFolders,
  markerNames,
  nearestExisting,
  prepareBatch,
  removeEmptyFoldersUpTo,
  stateOpenError,
  type BatchOptions,
  type BatchPaths,
} from './batchOptions.js';
import { inventoryTree } from './inventory.js';
import { placeOtherFile } from './otherFiles.js';
import type { PathPlan } from './pathPlan.js';
import { Progress } from './progress.js';
import type { FileOutcome } from './protocol.js';
import { fileSha256, ResumeJournal, type EarlierRuns } from './resumeJournal.js';
import { RunResults } from './runResults.js';
import { writeSessionNotes, type WriteFailure } from './sessionNotes.js';
import { SessionNumbers } from './sessionNumbers.js';
import { exitCodeOf, printSummary, type BatchSummary } from './summary.js';
import { claimStudyOwners } from './studyOwners.js';
import { surveyTree } from './survey.js';
import { walkTree } from './walk.js';
import { WorkerPool } from './workerPool.js';

export { defaultLogDir, defaultStatePath, type BatchOptions } from './batchOptions.js';
export type { BatchSummary } from './summary.js';

/** A run stopped by `opts.signal` (Ctrl-C, SIGTERM): exit status 130. */
export interface BatchInterrupted {
  exitCode: 130;
  /** Files with an outcome (this run's and those of the runs it continued), of `total`. */
  done: number;
  total: number;
  /** The audit log of this run, if it got as far as writing one. */
  auditLog?: string;
}

/**
 * Runs a batch: de-identifies every DICOM file of `opts.input` into `opts.output`, writes the
 * audit log, prints the summary (unless quiet) and returns it. Throws UsageError or
 * MappingError (exit 2) before anything is written (removing the folders it made); exitCode 1
 * when some DICOM file was not de-identified, or a notes.txt or copied file could not be
 * written. Throws an Error in words when the audit log cannot be written (the files in flight
 * are finished first). When `opts.signal` aborts, no file is started any more, the files in flight
 * are finished, their audit rows written, and it resolves with BatchInterrupted; running the
 * same command again continues from there.
 */
export async function runBatch(opts: BatchOptions): Promise<BatchSummary | BatchInterrupted> {
  const print = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  // Paths may hold control characters (a folder named with a newline, ESC): shown as \x0a, \x1b.
  const out = (line: string) => print(escapeControlCharacters(line));
  const say = opts.quiet ? () => {} : out;
  const signal = opts.signal;
  const { paths, rows, workerCount, guard } = prepareBatch(opts);

  const walked = await walkTree(paths.input, [paths.output, paths.logDir, path.dirname(paths.db)], opts.signal);
  const files = walked.files;
  if (files.length === 0 && walked.errors.length === 0) {
    throw new UsageError(`--input ${opts.input} holds no files: nothing to de-identify`);
  }
  if (signal?.aborted) return { exitCode: 130, done: 0, total: files.length };
  // A refusal from here to the run (a state that cannot be opened, an output tree of another
  // project...) removes the folders it made, while they are empty: nothing is left behind.
  const made = [paths.output, paths.logDir, path.dirname(paths.db)].map((dir) => ({
    dir,
    existing: nearestExisting(dir),
  }));
  let state: StateStore;
  let uidSecret: Buffer;
  try {
    ({ state, uidSecret } = await openRun(paths, opts));
  } catch (e) {
    for (const { dir, existing } of made) removeEmptyFoldersUpTo(dir, existing);
    throw e;
  }
  // The workers start now: while they load the core (~100 ms), the main thread starts the
  // survey alone; they join it as soon as they are up.
  const pool = new WorkerPool(
    {
      rows,
      uidSecret: new Uint8Array(uidSecret),
      inputDir: paths.input,
      outputDir: paths.output,
      allowBurnedIn: opts.allowBurnedIn === true,
      ...guard,
    },
    Math.min(workerCount, files.length),
  );
  let audit: BatchAuditLog | undefined;
  let journal: ResumeJournal | undefined;
  let completed = false;
  let progress: Progress | undefined;
  const stop = () => pool.stop();
  signal?.addEventListener('abort', stop);
  try {
    // Every file's identifiers first: a folder's new name must hold for all the files in it.
    const { plan, studies } = await surveyTree(paths.input, files, new MappingTable(rows), rows, uidSecret, signal, {
      count: pool.waiting,
      ready: (i) => pool.ready(i),
      surveyOn: (i, rels) => pool.surveyOn(i, rels),
    });
    if (signal?.aborted) return { exitCode: 130, done: 0, total: files.length };
    pool.setCohort(plan.cohortEntries);
    const studyOwners = await claimStudyOwners(state, studies, uidSecret);
    const inventory = inventoryTree(files);
    const sessions = new SessionNumbers(state, paths.input, inventory);

    journal = ResumeJournal.for(paths.logDir, {
      input: paths.input,
      output: paths.output,
      db: paths.db,
      csvSha256: fileSha256(paths.csv),
      copyOtherFiles: opts.copyOtherFiles === true,
    });
    const earlier = journal.read();
    if (earlier?.stale) {
      process.stderr.write(
        'dicom-deid: warning: an interrupted run from this input to this output had another mapping CSV ' +
          'or other options: this run starts from the beginning\n',
      );
    }
    const continued = earlier && !earlier.stale ? earlier : undefined;
    audit = new BatchAuditLog(paths.logDir);
    opts.onAuditLog?.(audit.file);
    journal.start(audit.file, continued !== undefined);
    const log: Logger | undefined = opts.logger ?? opts.createLog?.(paths.logDir);
    const started = Date.now();
    log?.info('batch started', { files: files.length, workers: workerCount, mappingRows: rows.length });

    const results = new RunResults(rows, log);
    const carried = continued ? carriedOutcomes(continued, files, plan, paths.output) : new Map();
    // Their audit rows are in the logs of the runs that did them; their lines stay in the journal.
    for (const [rel, outcome] of carried) results.record(rel, outcome);

    progress = new Progress(files.length, (opts.progress ?? process.stderr.isTTY === true) && !opts.quiet);
    let done = carried.size;
    const bar = progress;
    // Files inside session folders first, then files outside any session folder (whose session
    // numbers are assigned by study, in order of arrival, after every session folder got its own).
    const order = [...inventory.foldered, ...inventory.loose].filter((rel) => !carried.has(rel));
    const barrier = inventory.foldered.filter((rel) => !carried.has(rel)).length;
    await pool.run(order, barrier, {
      planned: (rel) => plan.dicomPath(rel) ?? undefined,
      studyOwner: (rel) => studyOwners.get(rel),
      sessionIndex: (q) => sessions.index(q),
      done: (rel, outcome) => {
        const row = results.record(rel, outcome);
        if (row) audit!.buffer(row);
        journal!.record(rel, outcome);
        done++;
        bar.update(done, results.counts);
      },
      // The rows before the journal lines: a crash between them repeats those files, never loses one.
      settled: () => {
        audit!.flush();
        journal!.flush();
      },
      log,
    });
    // Studies found in session folders keep their numbers in the node too.
    for (const [researchId, links] of results.studyLinks) await state.linkSessionKeys(researchId, links);
    if (signal?.aborted) {
      log?.info('batch interrupted', { done, files: files.length });
      return { exitCode: 130, done, total: files.length, auditLog: audit.file };
    }

    for (const e of walked.errors) {
      results.recordWalkError();
      audit.write({ sourcePath: e.rel, status: 'error', message: e.message });
    }
    // Files of the output other than the instances that could not be written (a full disk): the
    // run goes on, the summary lists them and the exit status is 1.
    const notWritten: WriteFailure[] = [];
    for (const rel of results.notDicom) {
      const { row, leftOutReason, failure } = await placeOtherFile(rel, {
        inputDir: paths.input,
        outputDir: paths.output,
        copyOtherFiles: opts.copyOtherFiles === true,
        researchIdsOfPatientFolder: results.researchIdsOfPatientFolder,
        plan,
        sessions,
      });
      results.recordOther(row, leftOutReason);
      audit.write(row);
      if (failure) notWritten.push(failure);
    }
    notWritten.push(...writeSessionNotes(paths.output, results.notesBySession));
    for (const f of notWritten) log?.warn('a file of the output could not be written', { ...f });
    completed = true;

    const c = results.counts;
    const summary: BatchSummary = {
      counts: c,
      otherFilesLeftOut: c['not-dicom'] - results.otherCopied,
      otherFilesCopied: results.otherCopied,
      otherFilesLeftOutBy: results.otherFilesLeftOutBy,
      review: results.review,
      leakGuardWarned: results.leakGuardWarned,
      sessions: results.sessions,
      auditLog: audit.file,
      state: paths.db,
      notWritten,
      exitCode: notWritten.length > 0 ? 1 : exitCodeOf(c),
      written: [...results.outputs.keys()].map((rel) => path.join(paths.output, ...rel.split('/'))),
      lostLeadingZeros: results.lostLeadingZeros,
      continued: continued && { files: carried.size, auditLogs: continued.auditLogs },
    };
    progress.finish();
    const secs = (Date.now() - started) / 1000;
    log?.info('batch finished', {
      ...c,
      otherLeftOut: summary.otherFilesLeftOut,
      seconds: secs,
      leakGuardMs: Math.round(results.timing.guardMs),
      workerMs: Math.round(results.timing.jobMs),
    });
    printSummary(summary, secs, say);
    return summary;
  } finally {
    signal?.removeEventListener('abort', stop);
    pool.close();
    progress?.finish();
    try {
      audit?.close(); // throws again when its disk is full: the state is closed all the same
    } finally {
      journal?.close(completed);
      await state.close();
    }
  }
}

/**
 * Makes the folders of the run and opens its state: the folders of the key material first (a
 * --log-dir or --db that cannot be made fails before the output is made and marked), then the
 * output folder; an output tree made with another project secret is refused before anything is
 * written in it (projectMarker.ts), and a state that does not exist yet is not created for that
 * refusal. Throws UsageError (exit 2) for each refusal.
 */
async function openRun(paths: BatchPaths, opts: BatchOptions): Promise<{ state: StateStore; uidSecret: Buffer }> {
  makeKeyMaterialFolders(paths, opts);
  checkOutputWritable(paths, opts);
  const names = markerNames(opts, paths);
  if (!fs.existsSync(paths.db)) claimOutputTree(paths.output, null, names, false);
  const state = await openStateStore(paths.db, { create: true }).catch((e: unknown) => {
    throw stateOpenError(e, paths.db);
  });
  try {
    const uidSecret = await state.uidSecret();
    claimOutputTree(paths.output, uidSecret, names, true);
    return { state, uidSecret };
  } catch (e) {
    await state.close();
    throw e;
  }
}

/**
 * The outcomes of earlier, interrupted runs that still hold: of files still in the tree, and for
 * a written file, only while its output is there, where this run's plan puts it.
 */
function carriedOutcomes(
  earlier: EarlierRuns,
  files: readonly string[],
  plan: PathPlan,
  outputDir: string,
): Map<string, FileOutcome> {
  const carried = new Map<string, FileOutcome>();
  for (const rel of files) {
    const o = earlier.outcomes.get(rel);
    if (!o) continue;
    if (o.status === 'ok') {
      const planned = plan.dicomPath(rel);
      const below = o.outRel?.split('/').slice(2) ?? [];
      const samePlace =
        planned !== null &&
        planned.researchId === o.researchId &&
        below.slice(0, -1).join('/') === planned.dirs.join('/') &&
        (planned.fileName === null || below[below.length - 1] === planned.fileName);
      if (!samePlace || !fs.existsSync(path.join(outputDir, ...o.outRel!.split('/')))) continue;
    }
    carried.set(rel, o);
  }
  return carried;
}
