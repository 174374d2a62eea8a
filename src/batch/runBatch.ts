// The batch command's engine, as a short orchestration of its parts: check the options and the
// CSV (batchOptions.ts), walk the input tree (walk.ts), survey every file's identifiers for the
// names below the session folders (survey.ts, pathPlan.ts), de-identify every DICOM file on the
// worker pool (workerPool.ts, worker.ts) with session numbers from the state (sessionNumbers.ts),
// then place the files that are not DICOM (otherFiles.ts), write the notes (sessionNotes.ts),
// the audit log and the summary (runResults.ts, summary.ts).
import path from 'node:path';
import { AuditLog } from '../audit/auditLog.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import type { Logger } from '../log.js';
import { openStateStore } from '../state/openStateStore.js';
import { prepareBatch, type BatchOptions } from './batchOptions.js';
import { inventoryTree } from './inventory.js';
import { placeOtherFile } from './otherFiles.js';
import { Progress } from './progress.js';
import { RunResults } from './runResults.js';
import { writeSessionNotes } from './sessionNotes.js';
import { SessionNumbers } from './sessionNumbers.js';
import { printSummary, type BatchSummary } from './summary.js';
import { surveyTree } from './survey.js';
import { walkTree } from './walk.js';
import { WorkerPool } from './workerPool.js';

export { defaultLogDir, defaultStatePath, type BatchOptions } from './batchOptions.js';
export type { BatchSummary } from './summary.js';

/**
 * Runs a batch: de-identifies every DICOM file of `opts.input` into `opts.output`, writes the
 * audit log, prints the summary (unless quiet) and returns it. Throws UsageError or
 * MappingError (exit 2) before anything is written; exitCode 1 when some DICOM file was not
 * de-identified.
 */
export async function runBatch(opts: BatchOptions): Promise<BatchSummary> {
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const say = opts.quiet ? () => {} : out;
  const { paths, rows, workerCount } = prepareBatch(opts);

  const state = await openStateStore(paths.db, { create: true });
  const uidSecret = await state.uidSecret();
  const pool = new WorkerPool(
    { rows, uidSecret: new Uint8Array(uidSecret), inputDir: paths.input, outputDir: paths.output },
    workerCount,
  );
  let audit: AuditLog | undefined;
  let bar: Progress | undefined;
  try {
    const walked = await walkTree(paths.input);
    const files = walked.files;
    pool.shrinkTo(files.length); // more workers than files: the extra ones go
    // Every file's identifiers first: a folder's new name must hold for all the files in it.
    const plan = surveyTree(paths.input, files, new MappingTable(rows), rows, uidSecret);
    const inventory = inventoryTree(files);
    const sessions = new SessionNumbers(state, paths.input, inventory);

    audit = new AuditLog(paths.logDir);
    const log: Logger | undefined = opts.logger ?? opts.createLog?.(paths.logDir);
    const started = Date.now();
    log?.info('batch started', { files: files.length, workers: workerCount, mappingRows: rows.length });

    const results = new RunResults(rows, log);
    for (const e of walked.errors) {
      results.recordWalkError();
      audit.write({ sourcePath: e.rel, status: 'error', message: e.message });
    }

    const progress = new Progress(files.length, (opts.progress ?? process.stderr.isTTY === true) && !opts.quiet);
    bar = progress;
    let done = 0;
    // Files inside session folders first, then files outside any session folder (whose session
    // numbers are assigned by study, in order of arrival, after every session folder got its own).
    await pool.run([...inventory.foldered, ...inventory.loose], inventory.foldered.length, {
      planned: (rel) => plan.dicomPath(rel) ?? undefined,
      sessionIndex: (q) => sessions.index(q),
      done: (rel, outcome) => {
        const row = results.record(rel, outcome);
        if (row) audit!.write(row);
        done++;
        progress.update(done, results.counts);
      },
      log,
    });

    for (const rel of results.notDicom) {
      const row = await placeOtherFile(rel, {
        inputDir: paths.input,
        outputDir: paths.output,
        copyOtherFiles: opts.copyOtherFiles === true,
        researchIdsOfPatientFolder: results.researchIdsOfPatientFolder,
        plan,
        sessions,
      });
      results.recordOther(row);
      audit.write(row);
    }
    // Studies found in session folders keep their numbers in the node too.
    for (const [researchId, links] of results.studyLinks) await state.linkSessionKeys(researchId, links);
    writeSessionNotes(paths.output, results.notesBySession);

    const c = results.counts;
    const summary: BatchSummary = {
      counts: c,
      otherFilesLeftOut: c['not-dicom'] - results.otherCopied,
      otherFilesCopied: results.otherCopied,
      sessions: results.sessions,
      auditLog: audit.file,
      exitCode: c['no-mapping'] + c.error > 0 ? 1 : 0,
      written: [...results.outputs.keys()].map((rel) => path.join(paths.output, ...rel.split('/'))),
      lostLeadingZeros: results.lostLeadingZeros,
    };
    progress.finish();
    const secs = (Date.now() - started) / 1000;
    log?.info('batch finished', { ...c, otherLeftOut: summary.otherFilesLeftOut, seconds: secs });
    printSummary(summary, secs, say);
    return summary;
  } finally {
    pool.close();
    bar?.finish();
    audit?.close();
    await state.close();
  }
}
