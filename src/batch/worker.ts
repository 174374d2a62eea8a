// Batch worker thread: read a file, match it, de-identify it, write it atomically.
// Session numbers come from the main thread (the only one that talks to SQLite).
// A file is read only up to its pixel data and after it (the core judges those elements); the
// pixel data is copied from the source file to the output by range, so memory stays small
// whatever the size of an instance.
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { burnedInVerdict } from '../core/burnedIn.js';
import { deidentifySource, readInstanceKeys } from '../core/deidentify.js';
import { describeLeakHits, scanOutput } from '../core/leakGuard/index.js';
import { DicomFormatError } from '../core/types.js';
import { describeSystemError } from '../errors.js';
import { writeFileAtomicSync } from '../io/durableWrite.js';
import { FileByteSource } from '../io/fileByteSource.js';
import { newAccessionNumber, sessionFolderName } from '../core/accession.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { CohortMatcher } from '../core/identifiers/index.js';
import { folderSessionKey, sourceLayout, studySessionKey } from './layout.js';
import { surveyFile } from './survey.js';
import type {
  JobMessage,
  JobResult,
  MainToWorker,
  ResultBatch,
  SessionRequest,
  SurveyReply,
  WorkerInit,
  WorkerReady,
} from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const secret = Buffer.from(init.uidSecret);
const table = new MappingTable(init.rows);
/** Every patient's identifiers for the leak guard: the CSV's, then the whole tree's (a 'cohort' message). */
let cohort: CohortMatcher = table.cohort();
const warnOnly = new Set(init.leakGuardWarnOnly);
const deidOptions = init.testOnlyKeep.length > 0 ? { testOnlyKeep: new Set(init.testOnlyKeep) } : undefined;

const sessionCache = new Map<string, number>();
const pendingSessions = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void }>();
let nextReqId = 1;

function sessionIndex(researchId: string, patientFolder: string | null, key: string): Promise<number> | number {
  const cacheKey = researchId + '\0' + key;
  const cached = sessionCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const reqId = nextReqId++;
  return new Promise<number>((resolve, reject) => {
    pendingSessions.set(reqId, {
      resolve: (n) => {
        sessionCache.set(cacheKey, n);
        resolve(n);
      },
      reject,
    });
    const msg: SessionRequest = { type: 'session', reqId, researchId, patientFolder, key };
    port.postMessage(msg);
  });
}

function errorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.trim();
}

async function processJob(job: JobMessage): Promise<JobResult> {
  const abs = path.join(init.inputDir, ...job.rel.split('/'));
  let fd: number;
  try {
    fd = openSync(abs, 'r');
  } catch (err) {
    return { type: 'result', jobId: job.jobId, status: 'error', message: `unreadable: ${describeSystemError(err)}` };
  }
  const started = performance.now();
  try {
    const result = await processSource(job, new FileByteSource(fd));
    result.jobMs = performance.now() - started;
    return result;
  } finally {
    closeSync(fd);
  }
}

/** A message for a file that cannot be read: the core's for bad DICOM, else plain words. */
function failure(err: unknown): string {
  return err instanceof DicomFormatError ? errorMessage(err) : `unreadable: ${describeSystemError(err)}`;
}

async function processSource(job: JobMessage, source: FileByteSource): Promise<JobResult> {
  const base = { type: 'result' as const, jobId: job.jobId };
  let keys;
  try {
    if (!source.isDicom()) return { ...base, status: 'not-dicom' };
    keys = readInstanceKeys(source);
  } catch (err) {
    return { ...base, status: 'error', message: failure(err) };
  }
  if (keys.isMediaIndex) {
    return { ...base, status: 'dicomdir', message: 'a DICOMDIR (the index of a CD or DVD), not an image: left out' };
  }
  const match = table.match({ patientId: keys.patientId, accessionNumber: keys.accessionNumber });
  if (!match) {
    const note = table.unmatchedNote(keys);
    const message = 'no row matches PatientID or AccessionNumber' + (note ? `; ${note.text}` : '');
    return { ...base, status: 'no-mapping', message, note };
  }
  const { row, matchedBy, note } = match;
  const info = {
    ...base,
    matchedBy,
    researchId: row.researchId,
    rowLine: row.line,
    dayOffset: row.dayOffset,
    note,
  };
  // The names below the session folder were decided before any file was written (pathPlan.ts).
  const planned = job.planned;
  if (!planned || planned.researchId !== row.researchId) {
    return { ...info, status: 'error', message: 'the file changed while the run read it: its path was not planned' };
  }
  // A study belongs to one patient (PS3.3 C.7.2.1): an instance of a study another research
  // patient owns would give that research PACS one study under two patients.
  if (job.studyOwner !== undefined && job.studyOwner !== row.researchId) {
    return {
      ...info,
      status: 'conflict',
      message:
        `held, not written: its study belongs to research patient ${job.studyOwner}, but this instance ` +
        `matched ${row.researchId} (CSV line ${row.line}); a study belongs to one patient`,
    };
  }
  const burnedIn = burnedInVerdict(keys);
  if (burnedIn?.kind === 'declared' && !init.allowBurnedIn) {
    return {
      ...info,
      status: 'held',
      message: `held, not written: ${burnedIn.reason}, so its pixels may show who the patient is (--allow-burned-in writes such instances)`,
    };
  }
  const review =
    burnedIn === null
      ? undefined
      : burnedIn.kind === 'review'
        ? burnedIn.reason
        : `${burnedIn.reason} (--allow-burned-in)`;

  try {
    const layout = sourceLayout(job.rel);
    const studyKey = studySessionKey(keys.accessionNumber, keys.studyInstanceUid);
    const key =
      layout.patientFolder !== null && layout.sessionFolder !== null
        ? folderSessionKey(layout.patientFolder, layout.sessionFolder)
        : studyKey;
    const n = await sessionIndex(row.researchId, layout.patientFolder, key);
    const sessionName = sessionFolderName(row.researchId, n);
    const accessionNumber = newAccessionNumber(row.researchId, n);

    const supplied = { researchId: row.researchId, accessionNumber, dayOffset: row.dayOffset, notes: row.notes };
    const result = deidentifySource(source, { ...supplied, uidSecret: secret }, deidOptions);

    const fileName = planned.fileName ?? `${result.sopInstanceUid}.dcm`;
    const outParts = [row.researchId, sessionName, ...planned.dirs, fileName];
    // The leak guard reads what would be written (the pixel data aside) before it is, and the
    // notes.txt this file's row adds to its session folder (written by the main thread).
    const guardStarted = performance.now();
    const hits = scanOutput({
      head: result.head,
      pixelData: result.pixelData,
      tail: result.tail,
      path: outParts.join('/'),
      sidecars:
        row.notes.trim() !== '' ? [{ path: `${row.researchId}/${sessionName}/notes.txt`, text: row.notes.trim() }] : [],
      source: result.sourceValues,
      supplied,
      warnOnly,
      cohort,
    });
    const guardMs = performance.now() - guardStarted;
    const held = hits.filter((h) => h.action === 'hold');
    const warned = hits.filter((h) => h.action === 'warn');
    const warning = warned.length > 0 ? `leak guard warning: ${describeLeakHits(warned)}` : undefined;
    if (held.length > 0) {
      const message = [`held by the leak guard, not written: ${describeLeakHits(held)}`, warning, note?.text];
      return { ...info, status: 'leak-guard', accessionNumber, guardMs, message: message.filter(Boolean).join('; ') };
    }
    const pixelData = result.pixelData ? [source.fileRange(result.pixelData)] : [];
    writeFileAtomicSync(path.join(init.outputDir, ...outParts), [...result.head, ...pixelData, ...result.tail]);
    return {
      ...info,
      status: 'ok',
      accessionNumber,
      sessionName,
      sessionN: n,
      studyKey,
      outRel: outParts.join('/'),
      guardMs,
      ...(warned.length > 0 ? { leakGuardWarned: true } : {}),
      review,
      message:
        [warning, note?.text, review && `review: ${review}`, ...result.notices].filter(Boolean).join('; ') || undefined,
    };
  } catch (err) {
    // A failed system call (the output's folder or disk) in words, never a raw EACCES.
    const system = typeof (err as NodeJS.ErrnoException).syscall === 'string';
    return {
      ...info,
      status: 'error',
      message: system ? `not written: ${describeSystemError(err)}` : errorMessage(err),
    };
  }
}

// Jobs run one at a time per worker (the main thread keeps a few in flight: workerPool.ts).
// Results go back a few per message (protocol.ts JobBatch): when RESULTS_PER_MESSAGE are ready,
// or when no job is left to run (the main thread then sends more).
const RESULTS_PER_MESSAGE = 4;
const queue: JobMessage[] = [];
let running = false;

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  let ready: JobResult[] = [];
  try {
    while (queue.length > 0) {
      const job = queue.shift()!;
      let result: JobResult;
      try {
        result = await processJob(job);
      } catch (err) {
        result = { type: 'result', jobId: job.jobId, status: 'error', message: errorMessage(err) };
      }
      ready.push(result);
      if (ready.length >= RESULTS_PER_MESSAGE || queue.length === 0) {
        port.postMessage({ type: 'results', results: ready } satisfies ResultBatch);
        ready = [];
      }
    }
  } finally {
    if (ready.length > 0) port.postMessage({ type: 'results', results: ready } satisfies ResultBatch);
    running = false;
  }
}

port.on('message', (msg: MainToWorker) => {
  if (msg.type === 'jobs') {
    queue.push(...msg.jobs);
    void drain();
  } else if (msg.type === 'survey') {
    const values = msg.rels.map((rel) => surveyFile(path.join(init.inputDir, ...rel.split('/'))));
    port.postMessage({ type: 'surveyed', reqId: msg.reqId, values } satisfies SurveyReply);
  } else if (msg.type === 'cohort') {
    cohort = CohortMatcher.of(msg.entries);
  } else if (msg.type === 'session') {
    const pending = pendingSessions.get(msg.reqId);
    if (!pending) return;
    pendingSessions.delete(msg.reqId);
    if (msg.error !== undefined || msg.n === undefined) pending.reject(new Error(msg.error ?? 'no session index'));
    else pending.resolve(msg.n);
  }
});

// Every module is loaded by now (ES modules load before the body runs): the survey may ask.
port.postMessage({ type: 'ready' } satisfies WorkerReady);
