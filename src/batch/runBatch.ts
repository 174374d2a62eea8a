// The batch command's engine: validate the CSV, walk the input tree, de-identify every DICOM
// file on a pool of worker threads, write the audit log and the summary.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { sessionFolderName, studySessionKey } from '../core/accession.js';
import { readInstanceKeys } from '../core/deidentify.js';
import { FileByteSource } from '../io/fileByteSource.js';
import { readMappingFile } from '../io/mappingFile.js';
import { openStateStore } from '../state/openStateStore.js';
import { describeSystemError, UsageError } from '../errors.js';
import { decideOtherFile, reasonWithoutDetails } from './otherFiles.js';
import { claimStudyOwners } from './studyOwners.js';
import type { Logger } from '../log.js';
import { AuditLog, type AuditRow } from '../audit/auditLog.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { folderSessionKey, sourceLayout } from './layout.js';
import { surveyTree } from './survey.js';
import { Progress } from './progress.js';
import type {
  FileStatus,
  JobMessage,
  JobResult,
  MainToWorker,
  SessionRequest,
  WorkerInit,
  WorkerToMain,
} from './protocol.js';
import { walkTree } from './walk.js';

export interface BatchOptions {
  csv: string;
  input: string;
  output: string;
  /** SQLite state; default `<csv dir>/dicom-deid-state.sqlite`. */
  db?: string;
  /** Audit log directory; default `<csv dir>/dicom-deid-logs`. */
  logDir?: string;
  copyOtherFiles?: boolean;
  /** Write instances whose Burned In Annotation is YES (default: hold them, status `held`). */
  allowBurnedIn?: boolean;
  workers?: number;
  quiet?: boolean;
  /** Progress bar (default: when stderr is a TTY and not quiet). */
  progress?: boolean;
  logger?: Logger;
  /** Makes the logger once the options are validated (nothing is written before). */
  createLog?: (logDir: string) => Logger;
  /** Where the summary goes (default stdout). */
  out?: (line: string) => void;
}

export interface BatchSummary {
  counts: Record<FileStatus, number>;
  otherFilesLeftOut: number;
  otherFilesCopied: number;
  /** Why non-DICOM files were left out (with --copy-other-files): reason -> count. */
  otherFilesLeftOutBy: Map<string, number>;
  /** Written files whose pixels may hold burned-in text: output path (relative) and why. */
  review: { outputPath: string; reason: string }[];
  /** researchId -> session folder name -> number of files written. */
  sessions: Map<string, Map<string, number>>;
  auditLog: string;
  exitCode: 0 | 1;
  /** Absolute paths of the de-identified files written by this run. */
  written: string[];
  /** Unmatched files whose PatientID/AccessionNumber is a CSV value with leading zeros added. */
  lostLeadingZeros: { files: number; csvLines: Set<number> };
}

/** Jobs sent to one worker before its earlier ones finish (bounds memory: ~2 files/worker). */
const IN_FLIGHT_PER_WORKER = 2;

export function defaultStatePath(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-state.sqlite');
}

export function defaultLogDir(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-logs');
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export async function runBatch(opts: BatchOptions): Promise<BatchSummary> {
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const say = opts.quiet ? () => {} : out;
  let log = opts.logger;
  const csv = path.resolve(opts.csv);
  const input = path.resolve(opts.input);
  const output = path.resolve(opts.output);
  const dbPath = path.resolve(opts.db ?? defaultStatePath(csv));
  const logDir = path.resolve(opts.logDir ?? defaultLogDir(csv));

  // --- Everything that can be a usage error, before any file is touched. ---
  let inputStat: fs.Stats;
  try {
    inputStat = fs.statSync(input);
  } catch {
    throw new UsageError(`input folder not found: ${opts.input}`);
  }
  if (!inputStat.isDirectory()) throw new UsageError(`--input is not a folder: ${opts.input}`);
  if (isInside(output, input)) throw new UsageError('--output must not be inside --input');
  if (fs.existsSync(output) && !fs.statSync(output).isDirectory()) {
    throw new UsageError(`--output exists and is not a folder: ${opts.output}`);
  }
  const workerCount = Math.max(1, Math.floor(opts.workers ?? os.availableParallelism()));
  // An unreadable CSV is a usage error; one that does not validate, a MappingError (both exit 2).
  const rows = readMappingFile(
    csv,
    (message) => new UsageError(message),
    (warning) => process.stderr.write(`dicom-deid: warning: ${warning}\n`),
  );
  if (isInside(logDir, output) || isInside(dbPath, output)) {
    // Key material inside the shareable tree: allowed (the user asked) but loudly.
    process.stderr.write(
      'dicom-deid: warning: the audit log or state database is inside the output folder; ' +
        'they hold identifiers: remove them before sharing the output\n',
    );
  }

  const state = await openStateStore(dbPath, { create: true });
  // The workers start now: their start-up (~100 ms, loading the core) overlaps the walk. Until the
  // pool takes one, it does not keep the process alive (a set-up error still ends the run).
  const init: WorkerInit = {
    rows,
    uidSecret: new Uint8Array(await state.uidSecret()),
    inputDir: input,
    outputDir: output,
    allowBurnedIn: opts.allowBurnedIn === true,
  };
  const spawn = () => new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
  const prestarted = Array.from({ length: workerCount }, () => {
    const w = spawn();
    w.unref();
    return w;
  });

  const walked = await walkTree(input);
  const files = walked.files;
  // More workers than files: the extra ones go.
  for (const w of prestarted.splice(Math.min(workerCount, walked.files.length))) void w.terminate();
  // Every file's identifiers first: a folder's new name must hold for all the files in it.
  const secret = Buffer.from(init.uidSecret);
  const { plan, studies } = surveyTree(input, files, new MappingTable(rows), rows, secret);
  const studyOwners = await claimStudyOwners(state, studies, secret);
  const sessionFolders = new Map<string, string[]>();
  /** The files of each session folder (`patient/session`), in walk order. */
  const filesOfSession = new Map<string, string[]>();
  // Files inside session folders go to the workers first, then the others (see the pool below).
  const foldered: string[] = [];
  const loose: string[] = [];
  for (const rel of files) {
    const l = sourceLayout(rel);
    (l.sessionFolder !== null ? foldered : loose).push(rel);
    if (l.patientFolder !== null && l.sessionFolder !== null) {
      const list = sessionFolders.get(l.patientFolder) ?? [];
      if (list[list.length - 1] !== l.sessionFolder && !list.includes(l.sessionFolder)) list.push(l.sessionFolder);
      sessionFolders.set(l.patientFolder, list);
      const sessionRel = `${l.patientFolder}/${l.sessionFolder}`;
      const inSession = filesOfSession.get(sessionRel) ?? [];
      inSession.push(rel);
      filesOfSession.set(sessionRel, inSession);
    }
  }
  // Alphabetical (code point) order: N is assigned in this order the first time a folder is seen.
  for (const list of sessionFolders.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const audit = new AuditLog(logDir);
  if (!log && opts.createLog) log = opts.createLog(logDir);
  const started = Date.now();
  log?.info('batch started', { files: files.length, workers: workerCount, mappingRows: rows.length });

  const counts: Record<FileStatus, number> = {
    ok: 0,
    'no-mapping': 0,
    'not-dicom': 0,
    error: 0,
    dicomdir: 0,
    held: 0,
    conflict: 0,
  };
  const review: BatchSummary['review'] = [];
  const sessions = new Map<string, Map<string, number>>();
  const notesBySession = new Map<string, Set<string>>();
  const rowsByLine = new Map(rows.map((r) => [r.line, r]));
  const researchIdsOfPatientFolder = new Map<string, Set<string>>();
  const outputs = new Map<string, string>();
  const notDicom: string[] = [];

  // --- Session numbers: the main thread is the only user of the state. ---
  const sessionCache = new Map<string, number>();
  const initialisedPatientFolders = new Set<string>();
  /** The session key of the study in a session folder: that of its first readable DICOM file. */
  function studyKeyOfSession(patientFolder: string, sessionFolder: string): string | undefined {
    for (const rel of (filesOfSession.get(`${patientFolder}/${sessionFolder}`) ?? []).slice(0, 5)) {
      let fd: number | undefined;
      try {
        fd = fs.openSync(path.join(input, ...rel.split('/')), 'r');
        const source = new FileByteSource(fd); // read up to the pixel data and after it only
        if (!source.isDicom()) continue;
        const keys = readInstanceKeys(source);
        return studySessionKey(keys.accessionNumber, keys.studyInstanceUid);
      } catch {
        // unreadable or not de-identifiable: its worker reports it; try the next file
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
    return undefined;
  }
  async function assignSession(req: SessionRequest): Promise<number> {
    const ck = (k: string) => req.researchId + '\0' + k;
    if (req.patientFolder !== null) {
      const pk = req.researchId + '\0' + req.patientFolder;
      if (!initialisedPatientFolders.has(pk)) {
        initialisedPatientFolders.add(pk);
        const folders = sessionFolders.get(req.patientFolder) ?? [];
        const keys = folders.map((s) => folderSessionKey(req.patientFolder!, s));
        // A folder not numbered yet may hold a study the node numbered first: it takes that number.
        const sameAs = new Map<string, string>();
        for (const [i, s] of folders.entries()) {
          if ((await state.knownSessionIndex(req.researchId, keys[i]!)) !== undefined) continue;
          const study = studyKeyOfSession(req.patientFolder!, s);
          if (study !== undefined) sameAs.set(keys[i]!, study);
        }
        if (keys.length > 0) {
          for (const [k, n] of await state.sessionIndices(req.researchId, keys, sameAs)) sessionCache.set(ck(k), n);
        }
      }
    }
    let n = sessionCache.get(ck(req.key));
    if (n === undefined) {
      n = (await state.sessionIndices(req.researchId, [req.key])).get(req.key);
      if (n === undefined) throw new Error('state database returned no session index');
      sessionCache.set(ck(req.key), n);
    }
    return n;
  }
  // One request at a time, in the order they came: a patient folder's numbers are all assigned
  // (in folder order) before any other request of that patient is looked at.
  let sessionQueue: Promise<unknown> = Promise.resolve();
  function sessionIndex(req: SessionRequest): Promise<number> {
    const n = sessionQueue.then(() => assignSession(req));
    sessionQueue = n.catch(() => undefined);
    return n;
  }

  for (const e of walked.errors) {
    counts.error++;
    audit.write({ sourcePath: e.rel, status: 'error', message: e.message });
  }

  const progress = new Progress(files.length, (opts.progress ?? process.stderr.isTTY === true) && !opts.quiet);
  let done = 0;

  const studyLinks = new Map<string, Map<string, number>>();
  const lostLeadingZeros = { files: 0, csvLines: new Set<number>() };
  function record(rel: string, r: Omit<JobResult, 'type' | 'jobId'>): void {
    if (r.note?.kind === 'lost-leading-zeros') {
      lostLeadingZeros.files++;
      for (const line of r.note.lines) lostLeadingZeros.csvLines.add(line);
    }
    if (r.status === 'not-dicom') {
      notDicom.push(rel);
      return; // audited after the copy decision
    }
    counts[r.status]++;
    let message = r.message;
    if (r.status === 'ok' && r.researchId && r.studyKey && r.sessionN !== undefined) {
      // The node later gives a re-sent study of this folder the same session number.
      const links = studyLinks.get(r.researchId) ?? new Map<string, number>();
      if (!links.has(r.studyKey)) links.set(r.studyKey, r.sessionN);
      studyLinks.set(r.researchId, links);
    }
    if (r.status === 'ok' && r.outRel && r.review) review.push({ outputPath: r.outRel, reason: r.review });
    if (r.status === 'ok' && r.outRel && r.researchId && r.sessionName) {
      const previous = outputs.get(r.outRel);
      if (previous !== undefined && previous !== rel) {
        message = [`same output path as ${previous}: one of them was overwritten`, message].filter(Boolean).join('; ');
        log?.warn('two input files were written to the same output path');
      }
      outputs.set(r.outRel, rel);
      const s = sessions.get(r.researchId) ?? new Map<string, number>();
      s.set(r.sessionName, (s.get(r.sessionName) ?? 0) + 1);
      sessions.set(r.researchId, s);
      const notes = r.rowLine !== undefined ? (rowsByLine.get(r.rowLine)?.notes ?? '') : '';
      const sessionRel = `${r.researchId}/${r.sessionName}`;
      if (notes.trim() !== '') {
        const set = notesBySession.get(sessionRel) ?? new Set<string>();
        set.add(notes.trim());
        notesBySession.set(sessionRel, set);
      }
      const pf = sourceLayout(rel).patientFolder;
      if (pf !== null) {
        const set = researchIdsOfPatientFolder.get(pf) ?? new Set<string>();
        set.add(r.researchId);
        researchIdsOfPatientFolder.set(pf, set);
      }
    }
    const row: AuditRow = {
      sourcePath: rel,
      status: r.status,
      matchedBy: r.matchedBy,
      researchId: r.researchId,
      newAccession: r.accessionNumber,
      dayOffset: r.dayOffset,
      outputPath: r.status === 'ok' ? r.outRel : undefined,
      message,
    };
    audit.write(row);
  }

  // --- The worker pool. ---
  // Files inside session folders first, then files outside any session folder (whose session
  // numbers are assigned by study, in order of arrival, after every session folder got its own).
  const order = [...foldered, ...loose];
  const barrier = foldered.length;
  let next = 0;
  let inFlightTotal = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      if (order.length === 0) return resolve();
      const poolSize = Math.min(workerCount, order.length);
      const feeders = new Set<() => void>();
      let live = 0;
      let finished = false;
      const feedAll = (): void => {
        for (const f of [...feeders]) f();
      };

      const startWorker = (): void => {
        const worker = prestarted.shift() ?? spawn();
        worker.ref();
        const inFlight = new Map<number, string>();
        live++;
        const feed = (): void => {
          while (inFlight.size < IN_FLIGHT_PER_WORKER && next < order.length) {
            if (next === barrier && inFlightTotal > 0) break; // wait for the session folders
            const jobId = next++;
            inFlight.set(jobId, order[jobId]!);
            inFlightTotal++;
            const rel = order[jobId]!;
            const msg: JobMessage = {
              type: 'job',
              jobId,
              rel,
              planned: plan.dicomPath(rel) ?? undefined,
              studyOwner: studyOwners.get(rel),
            };
            worker.postMessage(msg);
          }
          if (inFlight.size === 0 && next >= order.length) {
            feeders.delete(feed);
            void worker.terminate();
          }
        };
        feeders.add(feed);
        const settle = (jobId: number, r: Omit<JobResult, 'type' | 'jobId'>): void => {
          const rel = inFlight.get(jobId);
          if (rel === undefined) return;
          inFlight.delete(jobId);
          inFlightTotal--;
          record(rel, r);
          done++;
          progress.update(done, counts);
        };
        worker.on('message', (msg: WorkerToMain) => {
          if (msg.type === 'session') {
            void sessionIndex(msg).then(
              (n) => worker.postMessage({ type: 'session', reqId: msg.reqId, n } satisfies MainToWorker),
              (err: unknown) =>
                worker.postMessage({
                  type: 'session',
                  reqId: msg.reqId,
                  error: err instanceof Error ? err.message : String(err),
                } satisfies MainToWorker),
            );
            return;
          }
          settle(msg.jobId, msg);
          if (next === barrier && inFlightTotal === 0) feedAll();
          else feed();
        });
        let failed = false;
        worker.on('error', (err) => {
          failed = true;
          feeders.delete(feed);
          log?.error('batch worker crashed', { error: err.message });
          for (const jobId of [...inFlight.keys()]) {
            settle(jobId, { status: 'error', message: `worker crashed: ${err.message.split('\n')[0]}` });
          }
        });
        worker.on('exit', () => {
          live--;
          feeders.delete(feed);
          if (finished) return;
          if (failed && next < order.length) {
            // Replace a crashed worker; give up if the very first ones cannot even start.
            if (done === 0 && live === 0) {
              finished = true;
              reject(new Error('batch workers failed to start'));
              return;
            }
            startWorker();
            return;
          }
          if (live === 0) {
            finished = true;
            resolve();
          } else feedAll();
        });
        feed();
      };
      for (let i = 0; i < poolSize; i++) startWorker();
    });

    // --- Non-DICOM files: left out, unless --copy-other-files and they are text that was
    // searched for the patient's identifiers and placed where no name gives one away. ---
    let otherCopied = 0;
    const otherFilesLeftOutBy = new Map<string, number>();
    for (const rel of notDicom) {
      counts['not-dicom']++;
      let message = 'not DICOM: left out';
      let outRel: string | undefined;
      let researchId: string | undefined;
      if (opts.copyOtherFiles) {
        const d = decideOtherFile(input, rel, researchIdsOfPatientFolder, plan);
        let why = d.kind === 'left-out' ? d.why : null;
        if (d.kind === 'copy') {
          const l = sourceLayout(rel);
          const parts = [d.researchId];
          if (l.patientFolder !== null && l.sessionFolder !== null) {
            const key = folderSessionKey(l.patientFolder, l.sessionFolder);
            const n =
              sessionCache.get(d.researchId + '\0' + key) ??
              (await sessionIndex({
                type: 'session',
                reqId: 0,
                researchId: d.researchId,
                patientFolder: l.patientFolder,
                key,
              }));
            parts.push(sessionFolderName(d.researchId, n));
          }
          parts.push(...d.dirs, d.fileName);
          try {
            // The bytes that were checked, not the file again (it could have changed since).
            writeAtomic(path.join(output, ...parts), d.bytes);
            outRel = parts.join('/');
            researchId = d.researchId;
            message = 'not DICOM: a text file without identifiers, copied (--copy-other-files)';
            otherCopied++;
          } catch (err) {
            why = `copy failed: ${describeSystemError(err)}`;
          }
        }
        if (why !== null) {
          message = `not DICOM: left out (${why})`;
          // The summary counts reasons; the kinds of identifier found are for the audit log.
          const reason = reasonWithoutDetails(why);
          otherFilesLeftOutBy.set(reason, (otherFilesLeftOutBy.get(reason) ?? 0) + 1);
        }
      }
      audit.write({ sourcePath: rel, status: 'not-dicom', researchId, outputPath: outRel, message });
    }

    // --- Studies found in session folders keep their numbers in the node too. ---
    for (const [researchId, links] of studyLinks) await state.linkSessionKeys(researchId, links);

    // --- notes.txt in each session folder whose row has Notes. ---
    for (const [sessionRel, notes] of notesBySession) {
      const file = path.join(output, ...sessionRel.split('/'), 'notes.txt');
      writeAtomic(file, [...notes].join('\n') + '\n');
    }

    const summary: BatchSummary = {
      counts,
      otherFilesLeftOut: counts['not-dicom'] - otherCopied,
      otherFilesCopied: otherCopied,
      otherFilesLeftOutBy,
      review,
      sessions,
      auditLog: audit.file,
      // A DICOMDIR is not an instance: leaving it out is no failure.
      exitCode: counts['no-mapping'] + counts.error + counts.held + counts.conflict > 0 ? 1 : 0,
      written: [...outputs.keys()].map((rel) => path.join(output, ...rel.split('/'))),
      lostLeadingZeros,
    };
    progress.finish();
    const secs = (Date.now() - started) / 1000;
    log?.info('batch finished', { ...counts, otherLeftOut: summary.otherFilesLeftOut, seconds: secs });
    printSummary(summary, secs, say);
    return summary;
  } finally {
    for (const w of prestarted.splice(0)) void w.terminate();
    progress.finish();
    audit.close();
    await state.close();
  }
}

function writeAtomic(file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** The summary never shows source paths (they may hold names): those are in the audit log. */
function printSummary(s: BatchSummary, secs: number, say: (line: string) => void): void {
  const c = s.counts;
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  say(`Processed ${total} files in ${secs.toFixed(1)} s`);
  say(`  de-identified (ok): ${c.ok}`);
  say(`  no mapping row:     ${c['no-mapping']}`);
  say(`  errors:             ${c.error}`);
  if (c.held > 0)
    say(`  held (burned-in):   ${c.held} (Burned In Annotation YES: not written; --allow-burned-in writes them)`);
  if (c.conflict > 0)
    say(`  held (conflict):    ${c.conflict} (their study belongs to another research patient: not written)`);
  if (c.dicomdir > 0) say(`  DICOMDIR:           ${c.dicomdir} (media indexes, left out)`);
  say(
    `  not DICOM:          ${c['not-dicom']} (${s.otherFilesLeftOut} left out${s.otherFilesCopied ? `, ${s.otherFilesCopied} copied` : ''})`,
  );
  for (const [why, n] of [...s.otherFilesLeftOutBy].sort((a, b) => b[1] - a[1])) say(`    left out, ${why}: ${n}`);
  const ids = [...s.sessions.keys()].sort();
  if (ids.length > 0) say(`Research patients: ${ids.length}`);
  for (const id of ids) {
    const sess = [...s.sessions.get(id)!.entries()].sort(([a], [b]) => sessionOrder(a, b));
    say(
      `  ${id}: ${sess.length} session${sess.length === 1 ? '' : 's'}: ${sess.map(([n, k]) => `${n} (${k} files)`).join(', ')}`,
    );
  }
  if (s.review.length > 0) {
    // Output paths are de-identified: they can be shown.
    say(`Check for text burned into the pixels (${s.review.length} written file(s); the audit log says why):`);
    for (const r of s.review.slice(0, 20)) say(`  ${r.outputPath}`);
    if (s.review.length > 20) say(`  ... and ${s.review.length - 20} more`);
  }
  if (s.lostLeadingZeros.files > 0) {
    const lines = [...s.lostLeadingZeros.csvLines].sort((a, b) => a - b);
    say(
      `${s.lostLeadingZeros.files} unmatched file(s) would match the MRN or Accession on CSV line(s) ${lines.join(', ')} with leading zeros put back: ` +
        'Excel drops them; if they are the same, format that column as Text in Excel, type the zeros again, and run again',
    );
  }
  say(`Audit log (contains identifiers, do not share): ${s.auditLog}`);
  if (c['no-mapping'] + c.error + c.held + c.conflict > 0)
    say('Some DICOM files were not de-identified: see the audit log.');
}

function sessionOrder(a: string, b: string): number {
  const na = Number(a.slice(a.lastIndexOf('_') + 1));
  const nb = Number(b.slice(b.lastIndexOf('_') + 1));
  return na - nb || (a < b ? -1 : a > b ? 1 : 0);
}
