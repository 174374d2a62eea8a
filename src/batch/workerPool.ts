// The batch worker pool: worker threads (worker.ts) that each read, de-identify and write one
// file at a time, fed by the main thread a few files ahead so memory stays bounded whatever the
// tree size. Workers ask the main thread for session numbers (it alone talks to the state).
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { PlannedPath } from './pathPlan.js';
import type { CohortEntry, IdentifyingValues } from '../core/identifiers/index.js';
import type { FileOutcome, JobMessage, MainToWorker, SurveyRequest, WorkerInit, WorkerToMain } from './protocol.js';
import type { SessionQuestion } from './sessionNumbers.js';

/**
 * Jobs sent to one worker before its earlier ones finish. A worker reads one file at a time, so
 * this bounds no memory but the tiny job messages; it is how many files still finish after
 * `stop` (Ctrl-C), and it lets jobs and results travel a few per message (protocol.ts JobBatch).
 */
const IN_FLIGHT_PER_WORKER = 8;

/** What the pool asks of the run. */
export interface PoolHandlers {
  /** The path the survey planned for a file (pathPlan.ts), if any. */
  planned(rel: string): PlannedPath | undefined;
  /** The research ID the file's study belongs to (studyOwners.ts), if the survey found it. */
  studyOwner(rel: string): string | undefined;
  /** A worker's question for a session number. */
  sessionIndex(q: SessionQuestion): Promise<number>;
  /** The outcome of one file, in the order they finish. */
  done(rel: string, outcome: FileOutcome): void;
  /** After the outcomes of one message of results (a few files): write what `done` buffered. */
  settled?(): void;
  /** Where a crashed worker is logged. */
  log?: Logger;
}

/**
 * The batch worker pool (see above): node:worker_threads running worker.ts, started at once, used first by
 * the survey (surveyOn) and then by run(). A worker that crashes is logged, its files get an error
 * outcome and it is replaced; stop() lets the jobs already sent finish.
 */
export class WorkerPool {
  private readonly idle: Worker[];
  private stopping = false;
  /** Wakes the running pool's workers (each feeds itself or ends). */
  private wake: () => void = () => {};

  /**
   * Starts `size` workers at once: their start-up (~100 ms, loading the core) overlaps the walk
   * and the survey. Until `run` takes one, it does not keep the process alive (a set-up error
   * still ends the run).
   */
  constructor(
    private readonly init: WorkerInit,
    private readonly size: number,
  ) {
    this.idle = Array.from({ length: size }, () => {
      const w = this.spawn();
      w.unref();
      // One that ends before `run` takes it (a crash while surveying) is not handed out.
      w.once('exit', () => {
        const at = this.idle.indexOf(w);
        if (at >= 0) this.idle.splice(at, 1);
      });
      const ready = new Promise<void>((resolve, reject) => {
        const onMessage = (msg: WorkerToMain): void => {
          if (msg.type !== 'ready') return;
          w.off('message', onMessage);
          resolve();
        };
        w.on('message', onMessage);
        w.once('exit', () => reject(new Error('the worker ended before it was ready')));
      });
      ready.catch(() => {}); // a worker ended unasked (closed before it loaded) is no error
      this.readiness.set(w, ready);
      return w;
    });
  }

  /** When each worker started by the constructor has loaded its modules (its 'ready' message). */
  private readonly readiness = new Map<Worker, Promise<void>>();

  /**
   * Resolves when waiting worker `i` has loaded its modules and can take work (SurveyHelpers);
   * rejects when there is no such worker or it ended first. Does not keep the process alive.
   */
  ready(i: number): Promise<void> {
    const worker = this.idle[i];
    const ready = worker && this.readiness.get(worker);
    return ready ?? Promise.reject(new Error('no waiting worker'));
  }

  /** Workers not yet taken by `run` (survey.ts asks them by index: SurveyHelpers). */
  get waiting(): number {
    return this.idle.length;
  }

  private nextSurveyReq = 1;

  /**
   * The identifying values of files `rels` (relative to the input, '/' separated), read by the
   * waiting worker `i` (survey.ts's SurveyHelpers.surveyOn). Rejects when there is no such
   * worker or it ends before it answers.
   */
  surveyOn(i: number, rels: string[]): Promise<(IdentifyingValues | null)[]> {
    const worker = this.idle[i];
    if (!worker) return Promise.reject(new Error('no waiting worker'));
    const reqId = this.nextSurveyReq++;
    return new Promise((resolve, reject) => {
      const onMessage = (msg: WorkerToMain): void => {
        if (msg.type !== 'surveyed' || msg.reqId !== reqId) return;
        done();
        resolve(msg.values);
      };
      const onGone = (): void => {
        done();
        reject(new Error('the worker ended'));
      };
      const done = (): void => {
        worker.off('message', onMessage).off('error', onGone).off('exit', onGone);
        const left = this.surveying.get(worker)! - 1;
        this.surveying.set(worker, left);
        if (left === 0) worker.unref();
      };
      // Referenced while it answers: the main thread may have nothing else to wait for.
      this.surveying.set(worker, (this.surveying.get(worker) ?? 0) + 1);
      worker.ref();
      worker.on('message', onMessage).on('error', onGone).on('exit', onGone);
      worker.postMessage({ type: 'survey', reqId, rels } satisfies SurveyRequest);
    });
  }

  /** The run's patients' identifiers, sent to each worker before its jobs (setCohort). */
  private cohort: CohortEntry[] | undefined;

  /** The identifiers every worker's leak guard looks for besides its file's own (the survey's, PathPlan.cohortEntries). */
  setCohort(entries: CohortEntry[]): void {
    this.cohort = entries;
  }

  /** Survey requests each waiting worker has not answered yet. */
  private readonly surveying = new Map<Worker, number>();

  private spawn(): Worker {
    return new Worker(new URL('./worker.js', import.meta.url), { workerData: this.init });
  }

  /** Ends the workers beyond `n` (more workers than files). */
  shrinkTo(n: number): void {
    for (const w of this.idle.splice(Math.max(0, n))) void w.terminate();
  }

  /**
   * Processes `order` (relative paths): the files before `barrier` first, all of them finished
   * before any file from `barrier` on is sent (session folders are numbered before the studies
   * outside them). Resolves when every file has an outcome, or after `stop`, when the files in
   * flight have theirs; a crashed worker's files are errors and it is replaced. Rejects when the
   * first workers cannot even start.
   */
  run(order: readonly string[], barrier: number, handlers: PoolHandlers): Promise<void> {
    let next = 0;
    let inFlightTotal = 0;
    let done = 0;
    return new Promise<void>((resolve, reject) => {
      if (order.length === 0 || this.stopping) return resolve();
      const poolSize = Math.min(this.size, order.length);
      const feeders = new Set<() => void>();
      let live = 0;
      let finished = false;
      const feedAll = (): void => {
        for (const f of [...feeders]) f();
      };

      const startWorker = (): void => {
        const worker = this.idle.shift() ?? this.spawn();
        worker.ref();
        if (this.cohort) worker.postMessage({ type: 'cohort', entries: this.cohort } satisfies MainToWorker);
        const inFlight = new Map<number, string>();
        live++;
        const feed = (): void => {
          const jobs: JobMessage[] = [];
          while (!this.stopping && inFlight.size < IN_FLIGHT_PER_WORKER && next < order.length) {
            if (next === barrier && inFlightTotal > 0) break; // wait for the session folders
            const jobId = next++;
            const rel = order[jobId]!;
            inFlight.set(jobId, rel);
            inFlightTotal++;
            jobs.push({
              type: 'job',
              jobId,
              rel,
              planned: handlers.planned(rel),
              studyOwner: handlers.studyOwner(rel),
            });
          }
          if (jobs.length > 0) worker.postMessage({ type: 'jobs', jobs } satisfies MainToWorker);
          if (inFlight.size === 0 && (next >= order.length || this.stopping)) {
            feeders.delete(feed);
            void worker.terminate();
          }
        };
        feeders.add(feed);
        const settle = (jobId: number, outcome: FileOutcome): void => {
          const rel = inFlight.get(jobId);
          if (rel === undefined) return;
          inFlight.delete(jobId);
          inFlightTotal--;
          done++;
          handlers.done(rel, outcome);
        };
        worker.on('message', (msg: WorkerToMain) => {
          if (msg.type === 'session') {
            void handlers.sessionIndex(msg).then(
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
          if (msg.type !== 'results') return; // a survey's answer (surveyOn)
          for (const { type: _type, jobId, ...outcome } of msg.results) settle(jobId, outcome);
          handlers.settled?.();
          if (next === barrier && inFlightTotal === 0) feedAll();
          else feed();
        });
        let failed = false;
        worker.on('error', (err) => {
          failed = true;
          feeders.delete(feed);
          handlers.log?.error('batch worker crashed', { error: err.message });
          for (const jobId of [...inFlight.keys()]) {
            settle(jobId, { status: 'error', message: `worker crashed: ${err.message.split('\n')[0]}` });
          }
          handlers.settled?.();
        });
        worker.on('exit', () => {
          live--;
          feeders.delete(feed);
          if (finished) return;
          if (failed && next < order.length && !this.stopping) {
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
      this.wake = feedAll;
      for (let i = 0; i < poolSize; i++) startWorker();
    });
  }

  /**
   * Stops taking files: no file is sent to a worker any more, those in flight finish (each is
   * written whole, or not at all: durableWrite.ts), and `run` resolves once they have.
   */
  stop(): void {
    this.stopping = true;
    this.wake();
  }

  /** Ends the workers `run` did not take. */
  close(): void {
    this.shrinkTo(0);
  }
}
