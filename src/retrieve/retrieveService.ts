// The node's retrieve jobs: it runs them inside the node, where the moved instances arrive (the
// node's receiver, processing and forwarder), so each study is de-identified, filed and forwarded
// exactly as a pushed one. The same service serves `dicom-deid retrieve` standalone (it starts
// the node's receiving side in its own process) and a running node (through its HTTP API).
//
// A job is taken with StateStore.claimRetrieveJob (one runner at a time, across processes), run
// (retrieveRun.ts), then released in the state it ended in, with its report written beside the
// audit log. Reports its status through the status contract: running jobs and their progress.
import { hostname } from 'node:os';
import type { Logger } from '../log.js';
import { StatusTracker, type ComponentStatus, type StatusReporter } from '../status.js';
import { parseDestination } from '../forward/destination.js';
import type { SocketFactory } from '../dimse/scu/socketFactory.js';
import type { StateStore } from '../state/stateStore.js';
import type { RetrieveJob } from '../state/retrieveRecords.js';
import { PacsClient } from './pacsClient.js';
import { writeRetrieveReport } from './retrieveReport.js';
import { RetrieveRun, type Arrivals, type RetrieveProgress, type RetrieveRunOutcome } from './retrieveRun.js';

/** The node as the PACS must know it, and where reports go. */
export interface RetrieveNodeInfo {
  /** Our AE title: the move destination. */
  aeTitle: string;
  /** The receiver's host and (actual) port, for messages to the PACS administrator. */
  host: string;
  port: number;
  /** Our calling AE title towards the PACS. */
  callingAet: string;
  /** Where reports are written (the node's log folder: key material). */
  reportDir: string;
}

export interface RetrieveServiceOptions {
  state: StateStore;
  node: RetrieveNodeInfo;
  /** The node's counters of instances received and processed (RetrieveRun's Arrivals). */
  arrivals: () => Arrivals;
  logger: Logger;
  /** How this process names itself as a job's runner (default `node:<host>:<pid>`). */
  runner?: string;
  /** How connections to the PACS are made (default plain TCP); for DICOM TLS. */
  socketFactory?: SocketFactory;
  /** Passed to each run (tests): heartbeat and arrival polling periods (ms). */
  heartbeatMs?: number;
  pollMs?: number;
  /** Called with each run's progress (a progress bar). */
  onProgress?: (p: RetrieveProgress) => void;
}

/** How a job's run ended. */
export interface RetrieveJobResult {
  job: RetrieveJob;
  outcome: RetrieveRunOutcome;
  /** The report written for it (null when it could not be written: see the log). */
  reportPath: string | null;
}

/** Thrown when a job cannot be started: its message says why (done, cancelled, run elsewhere). */
export class RetrieveJobBusyError extends Error {
  override name = 'RetrieveJobBusyError';
}

interface Running {
  run: RetrieveRun;
  done: Promise<RetrieveJobResult>;
}

/**
 * Runs retrieve jobs in this process (see above): PS3.4 C-FIND at the PACS, then C-MOVE of each study to the
 * node's AE title, each job claimed in the StateStore under this process's runner name and released with its
 * report. Reports status 'retrieve': job counts, running jobs' progress, backlog = studies not yet done.
 * Refusals to start reject with RetrieveJobBusyError.
 */
export class RetrieveService implements StatusReporter {
  private readonly running = new Map<number, Running>();
  private readonly finished = new Map<number, RetrieveJobResult>();
  private readonly tracker = new StatusTracker('retrieve', 'running');
  private readonly runner: string;
  private counts = { jobsStarted: 0, jobsDone: 0, jobsPaused: 0, jobsFailed: 0, jobsCancelled: 0 };
  private stopping = false;

  /**
   * `o`: the state, the node's AE title, address and report folder, its arrival counters and logger;
   * `o.runner` names this process as a job's runner (default `node:<hostname>:<pid>`).
   */
  constructor(private readonly o: RetrieveServiceOptions) {
    this.runner = o.runner ?? `node:${hostname()}:${process.pid}`;
  }

  /**
   * Takes job `id` and runs it in the background; resolves with the job as taken. `params`
   * replaces its settings (a resume with other pace or timers). Throws RetrieveJobBusyError when
   * the job does not exist, is done or cancelled, or is run by another live runner.
   */
  async start(id: number, params?: string): Promise<RetrieveJob> {
    if (this.stopping) throw new RetrieveJobBusyError('the node is stopping');
    if (this.running.has(id)) throw new RetrieveJobBusyError(`retrieve job ${id} is already running here`);
    const { state } = this.o;
    const known = await state.retrieveJob(id);
    if (known && known.moveDestination !== this.o.node.aeTitle) {
      // The PACS was set up to send to the job's AE title; this node would not be where it sends.
      throw new RetrieveJobBusyError(
        `retrieve job ${id} moves studies to AE title ${known.moveDestination}, but this node is ${this.o.node.aeTitle}: run it with that node's config`,
      );
    }
    const job = await state.claimRetrieveJob(id, this.runner, params !== undefined ? { params } : {});
    if (!job) {
      const j = await state.retrieveJob(id);
      if (!j) throw new RetrieveJobBusyError(`there is no retrieve job ${id}`);
      if (j.state === 'done' || j.state === 'cancelled') {
        throw new RetrieveJobBusyError(`retrieve job ${id} is ${j.state}: there is nothing to resume`);
      }
      if (j.cancelRequested) throw new RetrieveJobBusyError(`retrieve job ${id} is being cancelled`);
      throw new RetrieveJobBusyError(
        `retrieve job ${id} is being run by ${j.runner ?? 'another process'} (alive ${Math.round((Date.now() - (j.heartbeatAt ?? 0)) / 1000)} s ago)`,
      );
    }
    this.finished.delete(id);
    const d = parseDestination(job.pacs);
    const pacs = new PacsClient({
      pacs: { aeTitle: d.aeTitle, host: d.host, port: d.port },
      callingAeTitle: this.o.node.callingAet,
      socketFactory: this.o.socketFactory,
    });
    const run = new RetrieveRun({
      state,
      job,
      runner: this.runner,
      pacs,
      destination: { aeTitle: this.o.node.aeTitle, host: this.o.node.host, port: this.o.node.port },
      arrivals: this.o.arrivals,
      logger: this.o.logger,
      onProgress: this.o.onProgress,
      heartbeatMs: this.o.heartbeatMs,
      pollMs: this.o.pollMs,
    });
    this.counts.jobsStarted++;
    this.o.logger.info(`retrieve job ${id}: started from ${job.pacs}`, { runner: this.runner });
    const done = this.runToEnd(job, run);
    this.running.set(id, { run, done });
    return job;
  }

  private async runToEnd(job: RetrieveJob, run: RetrieveRun): Promise<RetrieveJobResult> {
    const { state, logger } = this.o;
    let outcome: RetrieveRunOutcome;
    try {
      outcome = await run.run();
    } catch (e) {
      // A fault of ours or of the state (disk full...): the job stays resumable.
      const why = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e);
      logger.error(`retrieve job ${job.id}: stopped by an unexpected error`, { error: why });
      this.tracker.error(`job ${job.id}: unexpected error`);
      outcome = {
        state: 'paused',
        message: `stopped by an unexpected error (${e instanceof Error ? e.name : 'error'})`,
      };
    }
    let reportPath: string | null = null;
    try {
      reportPath = await writeRetrieveReport(state, job, this.o.node.reportDir);
    } catch (e) {
      logger.error(`retrieve job ${job.id}: cannot write its report`, { code: (e as { code?: string }).code });
    }
    try {
      await state.releaseRetrieveJob(job.id, this.runner, { ...outcome, reportPath });
    } catch (e) {
      logger.error(`retrieve job ${job.id}: cannot record its end`, { code: (e as { code?: string }).code });
    }
    const key = `jobs${outcome.state[0]!.toUpperCase()}${outcome.state.slice(1)}` as keyof typeof this.counts;
    this.counts[key]++;
    const log = outcome.state === 'done' ? logger.info : outcome.state === 'failed' ? logger.error : logger.warn;
    log.call(logger, `retrieve job ${job.id}: ${outcome.state}: ${outcome.message}`);
    if (outcome.state === 'failed') this.tracker.error(`job ${job.id}: ${outcome.message}`);
    const result = { job: (await state.retrieveJob(job.id).catch(() => undefined)) ?? job, outcome, reportPath };
    this.running.delete(job.id);
    this.finished.set(job.id, result);
    return result;
  }

  /** Resolves when job `id`'s run here ends (undefined when it does not run here). */
  whenFinished(id: number): Promise<RetrieveJobResult | undefined> {
    return this.running.get(id)?.done ?? Promise.resolve(this.finished.get(id));
  }

  /** The progress of job `id` when it runs here. */
  progress(id: number): RetrieveProgress | undefined {
    return this.running.get(id)?.run.current;
  }

  /**
   * Cancels job `id` for good: a run here stops at once (moves under way are cancelled); a job
   * nobody runs is cancelled in the state; a job another process runs is flagged, and its runner
   * stops on its next heartbeat. Resolves with the job as it is then.
   */
  async cancel(id: number): Promise<RetrieveJob | undefined> {
    const here = this.running.get(id);
    if (here) {
      here.run.stop('cancelled', 'cancelled');
      return (await here.done).job;
    }
    return this.o.state.cancelRetrieveJob(id);
  }

  /** Jobs running here. */
  runningJobs(): number[] {
    return [...this.running.keys()];
  }

  /**
   * The 'retrieve' component: job counts since start, running jobs with their progress in `details`, backlog
   * = studies left in running jobs.
   */
  status(): ComponentStatus {
    const jobs = [...this.running.values()].map((r) => r.run.current);
    return this.tracker.report(
      { ...this.counts, jobsRunning: jobs.length },
      { backlog: jobs.reduce((n, j) => n + (j.studiesTotal - j.studiesDone), 0), details: { jobs } },
    );
  }

  /** Pauses every job running here (the node stops) and waits until each is released. */
  async stop(message = 'the node stopped'): Promise<void> {
    this.stopping = true;
    this.tracker.set('stopping');
    const all = [...this.running.values()];
    for (const r of all) r.run.stop(message);
    await Promise.allSettled(all.map((r) => r.done));
    this.tracker.set('stopped');
  }
}
