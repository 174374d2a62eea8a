// Main-thread side of the processing workers: hands them spooled instances (journal records or
// spool files: a SpoolRef, spool/spoolRef.ts) to the least busy one, tracks each until the spool
// lets it go (onReleased), restarts a worker that dies (the spool still holds whatever it had not
// finished).
//
// Receive first: while instances keep arriving (one came less than HOLD_MS ago), spooled files
// are held back, up to MAX_HELD files or MAX_HELD_BYTES, and handed over when the senders pause.
// De-identifying and filing in parallel with receiving made every acknowledgement wait longer
// (600 CT slices on one association: ~1.9 s to acknowledge all without processing, ~2.7 s with
// it), mostly through the file system's journal, which a lower thread priority did not change.
// Re-measured with the spool journal (scripts/bench-node.sh, 3 rounds): without holding,
// acknowledgements fell from 0.75-0.96x storescp +B to 0.49-0.63x (both cores busy), for filing
// only a little sooner (0.48-0.61x of storescp's time against 0.43-0.52x).
// Held files are already durable in the spool, so holding them risks nothing; the bounds keep
// the backlog (and the work a restart would redo) small under a sender that never pauses.
//
// Checkpoints (see processingWorker.ts) are started from here once no worker has work left: a
// worker fsyncing its outputs while another still creates files slowed those creations ~5x
// (each fsync is a journal commit).
import { Worker } from 'node:worker_threads';
import type { AuditRow } from '../audit/auditLog.js';
import { StatusTracker, type ComponentStatus, type StatusReporter } from '../status.js';
import type { MappingRow } from '../core/types.js';
import type { Outcome } from './instanceProcessor.js';
import type { QuarantineReason } from './quarantine.js';
import type { FromWorker, ProcessingInit, ToWorker } from './processingWorker.js';
import { spoolRefId, type SpoolRef } from './spool/spoolRef.js';

export interface ProcessingEvents {
  /** Audit rows, always before the 'done' of the instances they describe. */
  onAudit(rows: AuditRow[]): void;
  /** `source`: when the instance was received (epoch ms, for the processing latency) and from whom. */
  onDone(ref: SpoolRef, outcome: Outcome, source: { receivedAt: number; callingAet: string }): void;
  /** The spool no longer needs the instance: its output is durable, or it went to quarantine. */
  onReleased(ref: SpoolRef): void;
  onFailed(ref: SpoolRef, error: string): void;
  onCrash(error: Error): void;
}

/** Instances arriving less than this many milliseconds apart are held back (see above). */
const HOLD_MS = 100;
/** Most files and bytes held back; beyond, they are handed over even while instances keep arriving. */
const MAX_HELD = 2000;
const MAX_HELD_BYTES = 1024 ** 3;
/**
 * Instances a worker has at most (two of its commit groups, processingWorker.ts): the rest wait
 * here and go to whichever worker finishes first. Split evenly at once, a 600-slice burst
 * finished on the slower worker ~1 s after the other (on a loaded machine their speeds differ).
 */
const MAX_PER_WORKER = 32;

interface Job {
  ref: SpoolRef;
  callingAet: string;
  receivedAt: Date;
}

/**
 * Where an instance is: held here (receive first), queued here for a worker, being processed by a
 * worker, or filed and awaiting a checkpoint.
 */
interface Flight {
  ref: SpoolRef;
  state: 'held' | 'queued' | 'processing' | 'unsynced';
  worker: number;
  /** When it was received (epoch ms), and the calling AE title it came from ('spool' when recovered). */
  receivedAt: number;
  callingAet: string;
}

/**
 * The node's processing workers (node:worker_threads running processingWorker.js), driven from the main
 * thread as described above. Reports status 'processing' (outcomes, in-flight count, per-reason quarantine
 * counts). A worker that dies is restarted and its instances are processed again from the spool; its methods
 * do not throw.
 */
export class ProcessingThread implements StatusReporter {
  private readonly workers: Worker[] = [];
  private readonly tracker = new StatusTracker('processing', 'running');
  /** Outcomes since start, and workers restarted after they died. */
  private readonly outcomes = { filed: 0, quarantined: 0, failed: 0, restarts: 0, reviewListed: 0, leakGuardWarned: 0 };
  /** Quarantined instances by reason, and filed ones listed for review by kind of image (no identifier). */
  private readonly quarantinedByReason: Record<string, number> = {};
  private readonly reviewByImageKind: Record<string, number> = {};
  /** Every instance from process() until the spool lets it go (or it failed), by spoolRefId. */
  private readonly inFlight = new Map<string, Flight>();
  private held: Job[] = [];
  private heldBytes = 0;
  /** Handed over, waiting for a worker with room (MAX_PER_WORKER). */
  private queued: Job[] = [];
  private lastArrival = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  /** Per worker: files being processed, and files filed but not yet checkpointed. */
  private readonly load: number[] = [];
  private readonly unsynced: number[] = [];
  /** Per worker: a checkpoint was asked for and has not reported yet. */
  private readonly checkpointing: boolean[] = [];
  private idleWaiters: (() => void)[] = [];
  private closing = false;

  /**
   * `threads` workers (config processingThreads, default 2). Processing mostly runs while
   * receiving pauses (see above), when both cores are free: a second worker files a 600-slice
   * burst ~0.5-0.8 s sooner, for ~40 MB more RSS.
   */
  constructor(
    private init: ProcessingInit,
    private readonly events: ProcessingEvents,
    threads = 1,
  ) {
    for (let i = 0; i < threads; i++) {
      this.load.push(0);
      this.unsynced.push(0);
      this.checkpointing.push(false);
      this.spawn(i);
    }
  }

  private spawn(i: number): void {
    const w = new Worker(new URL('./processingWorker.js', import.meta.url), { workerData: this.init });
    w.on('message', (msg: FromWorker) => {
      if (msg.type === 'audit') {
        this.events.onAudit(msg.rows);
      } else if (msg.type === 'done') {
        if (msg.outcome.status === 'filed') {
          this.outcomes.filed++;
          if (msg.outcome.leakGuardWarnings) this.outcomes.leakGuardWarned++;
          if (msg.outcome.review !== undefined) {
            this.outcomes.reviewListed++;
            this.reviewByImageKind[msg.outcome.review] = (this.reviewByImageKind[msg.outcome.review] ?? 0) + 1;
          }
        } else if (msg.outcome.status === 'quarantined') this.recordQuarantined(msg.outcome.reason);
        const flight = this.inFlight.get(spoolRefId(msg.ref));
        const source = { receivedAt: flight?.receivedAt ?? Date.now(), callingAet: flight?.callingAet ?? '' };
        if (msg.outcome.status === 'filed') this.move(msg.ref, 'unsynced');
        else this.end(msg.ref);
        this.feed();
        this.report(() => {
          this.events.onDone(msg.ref, msg.outcome, source);
          if (msg.outcome.status === 'quarantined') this.events.onReleased(msg.ref);
        });
      } else if (msg.type === 'retired') {
        this.checkpointing[i] = false;
        for (const ref of msg.refs) this.end(ref);
        this.report(() => msg.refs.forEach((ref) => this.events.onReleased(ref)));
      } else if (msg.type === 'failed') {
        this.failed(msg.error);
        if (this.inFlight.get(spoolRefId(msg.ref))?.state === 'unsynced') this.checkpointing[i] = false;
        this.end(msg.ref);
        this.feed();
        this.report(() => this.events.onFailed(msg.ref, msg.error));
      }
    });
    w.on('error', (e) => {
      this.tracker.error(`processing thread crashed (${e.name})`);
      this.events.onCrash(e);
    });
    w.on('exit', () => {
      if (this.closing) return;
      this.outcomes.restarts++;
      // Whatever it held is still in the spool; the node rescans it.
      for (const { ref, state, worker } of [...this.inFlight.values()]) {
        if (state !== 'held' && worker === i) {
          this.failed('WorkerExited');
          this.end(ref);
          this.report(() => this.events.onFailed(ref, 'WorkerExited'));
        }
      }
      this.checkpointing[i] = false;
      this.spawn(i);
      this.feed();
    });
    this.workers[i] = w;
  }

  private failed(error: string): void {
    this.outcomes.failed++;
    this.tracker.error(`processing failed (${error})`);
  }

  /** Counts a quarantined instance (also one the node quarantined itself after failures: see DeidNode). */
  recordQuarantined(reason: QuarantineReason): void {
    this.outcomes.quarantined++;
    this.quarantinedByReason[reason] = (this.quarantinedByReason[reason] ?? 0) + 1;
  }

  /**
   * The processing pool's status: instances held back (receive first), being processed, filed
   * and awaiting a checkpoint; workers and their restarts; outcomes since start (filed,
   * quarantined, failed attempts, filed but listed for review: pixels that may hold burned-in
   * text, filed with leak guard warnings in warn-only attributes: `leakGuardWarned`). Details:
   * quarantined by reason (`leak-guard`: held by the leak guard), listed for review by kind of
   * image. Backlog = every instance handed over and not yet released.
   */
  status(): ComponentStatus {
    let held = 0;
    let processing = 0;
    let awaitingCheckpoint = 0;
    for (const flight of this.inFlight.values()) {
      if (flight.state === 'held') held++;
      else if (flight.state === 'processing' || flight.state === 'queued') processing++;
      else awaitingCheckpoint++;
    }
    return this.tracker.report(
      {
        held,
        heldBytes: this.heldBytes,
        processing,
        awaitingCheckpoint,
        workers: this.workers.length,
        restarts: this.outcomes.restarts,
        filed: this.outcomes.filed,
        quarantined: this.outcomes.quarantined,
        failed: this.outcomes.failed,
        reviewListed: this.outcomes.reviewListed,
        leakGuardWarned: this.outcomes.leakGuardWarned,
      },
      {
        backlog: this.inFlight.size,
        details: {
          quarantinedByReason: { ...this.quarantinedByReason },
          reviewByImageKind: { ...this.reviewByImageKind },
        },
      },
    );
  }

  /** Moves an instance to another state, keeping the per-worker counts. */
  private move(ref: SpoolRef, state: Flight['state'], worker?: number, source?: Job): void {
    const id = spoolRefId(ref);
    const flight = this.inFlight.get(id);
    if (flight) this.count(flight, -1);
    const next: Flight = {
      ref,
      state,
      worker: worker ?? flight?.worker ?? -1,
      receivedAt: source?.receivedAt.getTime() ?? flight?.receivedAt ?? Date.now(),
      callingAet: source?.callingAet ?? flight?.callingAet ?? '',
    };
    this.inFlight.set(id, next);
    this.count(next, +1);
  }

  private end(ref: SpoolRef): void {
    const id = spoolRefId(ref);
    const flight = this.inFlight.get(id);
    if (!flight) return;
    this.count(flight, -1);
    this.inFlight.delete(id);
  }

  private count(f: Flight, d: number): void {
    if (f.state === 'processing') this.load[f.worker]! += d;
    else if (f.state === 'unsynced') this.unsynced[f.worker]! += d;
  }

  /** Runs an event callback, then checkpoints or wakes idle waiters as the new state allows. */
  private report(event: () => void): void {
    try {
      event();
    } finally {
      if (this.held.length === 0 && this.queued.length === 0 && this.load.every((n) => n === 0)) {
        this.unsynced.forEach((n, i) => {
          if (n === 0 || this.checkpointing[i]) return;
          this.checkpointing[i] = true;
          this.workers[i]!.postMessage({ type: 'checkpoint' } satisfies ToWorker);
        });
      }
      if (this.inFlight.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Whether this spooled instance is in flight here (from process() until the spool releases it). */
  has(ref: SpoolRef): boolean {
    return this.inFlight.has(spoolRefId(ref));
  }

  /** Queues a spooled instance of `bytes` bytes (held back while instances keep arriving). */
  process(ref: SpoolRef, callingAet: string, receivedAt: Date, bytes: number): void {
    if (this.has(ref) || this.closing) return;
    this.move(ref, 'held', undefined, { ref, callingAet, receivedAt });
    this.held.push({ ref, callingAet, receivedAt });
    this.heldBytes += bytes;
    this.lastArrival = Date.now();
    this.release();
  }

  /** Hands the held files over once arrivals pause (or too many are held); else checks again later. */
  private release(force = false): void {
    if (this.held.length === 0) return;
    const quietFor = Date.now() - this.lastArrival;
    if (!force && quietFor < HOLD_MS && this.held.length < MAX_HELD && this.heldBytes < MAX_HELD_BYTES) {
      this.holdTimer ??= setTimeout(() => {
        this.holdTimer = undefined;
        this.release();
      }, HOLD_MS - quietFor);
      return;
    }
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.heldBytes = 0;
    for (const job of this.held.splice(0)) {
      this.move(job.ref, 'queued');
      this.queued.push(job);
    }
    this.feed();
  }

  /** Hands queued instances to the least busy workers, each up to MAX_PER_WORKER. */
  private feed(): void {
    while (this.queued.length > 0 && !this.closing) {
      let i = 0;
      for (let k = 1; k < this.workers.length; k++) if (this.load[k]! < this.load[i]!) i = k;
      if (this.load[i]! >= MAX_PER_WORKER) return;
      this.dispatch(this.queued.shift()!, i);
    }
  }

  private dispatch({ ref, callingAet, receivedAt }: Job, i: number): void {
    this.move(ref, 'processing', i);
    this.workers[i]!.postMessage({
      type: 'process',
      ref,
      callingAet,
      receivedAt: receivedAt.getTime(),
    } satisfies ToWorker);
  }

  /**
   * Sends new mapping rows to every worker (after a reload); workers started later get them too. Instances
   * already handed over may still use the previous rows.
   */
  setMapping(rows: MappingRow[]): void {
    this.init = { ...this.init, rows };
    for (const w of this.workers) w.postMessage({ type: 'mapping', rows } satisfies ToWorker);
  }

  /** Resolves when every instance handed over is filed and checkpointed (or failed). */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Hands over what is held, waits for in-flight work, then closes the workers' databases. */
  async close(): Promise<void> {
    this.tracker.set('stopping');
    this.release(true);
    await this.whenIdle();
    this.closing = true;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.postMessage({ type: 'close' } satisfies ToWorker);
          }),
      ),
    );
    this.tracker.set('stopped');
  }
}
