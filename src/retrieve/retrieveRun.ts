// One run of a retrieve job (issue 17): pre-flight, the CSV rows' queries, then each planned
// study's C-MOVE to our own receiver and the wait until its instances are filed. Everything it
// learns goes to the state as it goes (retrieveRecords.ts), so a run that stops (Ctrl-C, a
// crash, the PACS down, a cancel) leaves a job that the next run continues: rows already queried
// are not asked again, studies complete or already filed are not moved again.
//
// The run needs the receiving side to be up under the job's move destination (the node: in this
// process, standalone or inside `serve`), and sees arrivals through the state (filed instances per
// original study) and through the node's counters (instances received and processed, associations
// open: they move while a large study is still arriving and not yet filed).
//
// What counts as done, after docs/research/retrieve-and-scale.md: a C-MOVE Success proves nothing
// (a PACS may answer before its sub-operations finish, or with wrong counts), so a study is done
// when as many of its instances are filed here as the PACS said it holds, or, short of that, when
// nothing has arrived for `quietMs` (every arrival restarts that clock); then it is complete, or
// moved again (at most `maxAttempts` moves), or reported incomplete.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { formatTimeWindow, insideTimeWindow, nextWindowOpening, parseTimeWindow } from '../core/retrieve/timeWindow.js';
import { QueryTag } from '../dimse/queryIdentifier.js';
import { retrieveStatusMeaning, statusHex } from '../dimse/status.js';
import type { CMoveResult } from '../dimse/scu/cMove.js';
import type { StateStore } from '../state/stateStore.js';
import type { RetrieveJob, RetrieveJobState, RetrieveStudy } from '../state/retrieveRecords.js';
import { PacsError, type PacsClient } from './pacsClient.js';
import { settingsFromParams, type RetrieveSettings } from './jobSettings.js';
import { PacsBusyError, countStudyInstances, queryRow } from './studyQueries.js';

/** Where a run is, for a progress bar and the node's status page (no identifiers). */
export interface RetrieveProgress {
  jobId: number;
  phase: 'preflight' | 'query' | 'move' | 'waiting-window' | 'finished';
  rowsTotal: number;
  rowsQueried: number;
  studiesTotal: number;
  /** Studies complete, already filed, incomplete or failed. */
  studiesDone: number;
  /** Studies being moved now. */
  moving: number;
  /** Instances filed of the studies being moved and done (at the last count). */
  instancesFiled: number;
  /** Instances the PACS holds for the job's studies, where it said. */
  instancesExpected: number;
  /** What the run waits for, in words (a closed time window, the PACS), when it waits. */
  waitingFor?: string;
}

/** Counters of the receiving side (the node), increasing. */
export interface Arrivals {
  /** Instances received (acknowledged). */
  received: number;
  /** Instances done processing: filed, quarantined or failed. */
  processed: number;
  /** Associations open at the receiver now (a PACS still sending). */
  receiving: number;
}

/** How a run ended; `state` is what the job is left in. */
export interface RetrieveRunOutcome {
  state: Extract<RetrieveJobState, 'done' | 'paused' | 'failed' | 'cancelled'>;
  /** Why, in words; log-safe (AE titles, host, port, counts; no identifier). */
  message: string;
}

export interface RetrieveRunOptions {
  state: StateStore;
  /** The job, already claimed by `runner` (StateStore.claimRetrieveJob). */
  job: RetrieveJob;
  runner: string;
  pacs: PacsClient;
  /** Where the PACS must send to, for messages: our AE title, host and port. */
  destination: { aeTitle: string; host: string; port: number };
  /** The receiving side's counters (the node's arrivals()). */
  arrivals: () => Arrivals;
  logger: Logger;
  onProgress?: (p: RetrieveProgress) => void;
  /** How often the run tells the state it is alive and checks for a cancel (ms, default 5000). */
  heartbeatMs?: number;
  /** How often arrivals are counted while a study is moved (ms, default 100). */
  pollMs?: number;
}

/** Why a run stops before its work is done. */
class Stop extends Error {
  constructor(readonly outcome: RetrieveRunOutcome) {
    super(outcome.message);
  }
}

const BACKOFF_START_MS = 2000;
const BACKOFF_MAX_MS = 60_000;
/**
 * After a move's final response, the PACS is taken to be done sending once no association is
 * open at the receiver, or nothing has been received for this long (ms; other senders may hold
 * associations open); the next move may then start while this study is still being filed.
 */
const SENDING_DONE_QUIET_MS = 300;
/** Studies that may wait for their filing, beyond those being moved. */
const STUDIES_FILING = 4;

/**
 * The PACS's move slots: at most `concurrency` C-MOVEs at a time (a study waiting only for its
 * instances to be filed holds none). Waiters are woken by close() when the run stops.
 */
class MoveSlots {
  private readonly waiters: (() => void)[] = [];
  private closed = false;

  constructor(private free: number) {}

  /** Resolves true with a slot, or false when the slots were closed (the run stops). */
  acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiters.push(() => resolve(!this.closed)));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Runs one claimed job until it is done, paused, failed or cancelled. */
export class RetrieveRun {
  private readonly settings: RetrieveSettings;
  private readonly controller = new AbortController();
  private stopOutcome: RetrieveRunOutcome | undefined;
  /** Set once a move has delivered something: the PACS knows and reaches our AE title. */
  private destinationVerified = false;
  private readonly progress: RetrieveProgress;
  private readonly moving = new Map<string, number>();
  private readonly slots: MoveSlots;

  /**
   * `o.job`: the job as claimed. Its stored settings are read here (jobSettings.ts): throws
   * SyntaxError when they are not JSON, RangeError (naming the option) when one is out of range.
   */
  constructor(private readonly o: RetrieveRunOptions) {
    this.settings = settingsFromParams(o.job.params);
    this.slots = new MoveSlots(this.settings.concurrency);
    this.progress = {
      jobId: o.job.id,
      phase: 'preflight',
      rowsTotal: 0,
      rowsQueried: 0,
      studiesTotal: 0,
      studiesDone: 0,
      moving: 0,
      instancesFiled: 0,
      instancesExpected: 0,
    };
  }

  /** The run's progress now. */
  get current(): RetrieveProgress {
    let filed = this.progress.instancesFiled;
    for (const n of this.moving.values()) filed += n;
    return { ...this.progress, moving: this.moving.size, instancesFiled: filed };
  }

  /**
   * Stops the run from outside (Ctrl-C, the node stopping): moves under way are cancelled, and
   * the job is left paused with `message` (or `state`).
   */
  stop(message = 'interrupted', state: RetrieveRunOutcome['state'] = 'paused'): void {
    this.halt({ state, message });
  }

  private halt(outcome: RetrieveRunOutcome): void {
    if (this.stopOutcome) return;
    this.stopOutcome = outcome;
    this.slots.close();
    this.controller.abort(new Stop(outcome));
  }

  private get signal(): AbortSignal {
    return this.controller.signal;
  }

  private checkStopped(): void {
    if (this.stopOutcome) throw new Stop(this.stopOutcome);
  }

  private emit(patch: Partial<RetrieveProgress> = {}): void {
    Object.assign(this.progress, patch);
    this.o.onProgress?.(this.current);
  }

  /** Runs the job; never throws for the PACS's or the job's problems (they are the outcome). */
  async run(): Promise<RetrieveRunOutcome> {
    const { state, job } = this.o;
    const heartbeat = setInterval(() => void this.beat(), this.o.heartbeatMs ?? 5000);
    heartbeat.unref();
    try {
      await this.preflight();
      await this.queryRows();
      if (this.settings.dryRun) {
        // The plan says what is filed already (by a push, a batch, an earlier job).
        const studies = await state.retrieveStudies(job.id);
        const filed = await state.filedCountsByStudy(studies.map((st) => st.studyUid));
        for (const st of studies)
          await state.updateRetrieveStudy(job.id, st.studyUid, { filed: filed.get(st.studyUid) ?? 0 });
        const c = await state.retrieveJobCounts(job.id);
        return this.finished({
          state: 'done',
          message: `dry run: ${c.rows.found + c.rows.query_incomplete} of ${this.progress.rowsTotal} rows found, ${this.progress.studiesTotal} studies planned, nothing moved`,
        });
      }
      await this.moveStudies();
      return this.finished({ state: 'done', message: await this.summary() });
    } catch (e) {
      const outcome = e instanceof Stop ? e.outcome : this.stopOutcome;
      if (outcome) return this.finished(outcome);
      throw e;
    } finally {
      clearInterval(heartbeat);
      await this.o.pacs.close();
    }
  }

  private finished(outcome: RetrieveRunOutcome): RetrieveRunOutcome {
    this.emit({ phase: 'finished', waitingFor: undefined });
    return outcome;
  }

  private async beat(): Promise<void> {
    try {
      const hb = await this.o.state.heartbeatRetrieveJob(this.o.job.id, this.o.runner);
      if (!hb.owned) this.halt({ state: 'paused', message: 'another runner took the job over' });
      else if (hb.cancelRequested) this.halt({ state: 'cancelled', message: 'cancelled' });
    } catch {
      // the state is busy: the next beat tries again
    }
  }

  // ------------------------------------------------------------------------------------------
  // Waiting

  /** Sleeps `ms`, waking early when the run is stopped. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.signal.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Runs `fn`, and while the PACS is unreachable, drops the association or is out of resources,
   * waits (2 s doubling up to 1 min) and runs it again, for at most `pacsWaitMs` from the first
   * failure; then the job pauses. A refusal (our AE title unknown) fails the job at once.
   */
  private async withPacs<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let firstFailure: number | undefined;
    let delay = BACKOFF_START_MS;
    for (;;) {
      this.checkStopped();
      try {
        const r = await fn();
        if (firstFailure !== undefined) {
          this.o.logger.info(`retrieve job ${this.o.job.id}: the PACS ${this.o.pacs.label} answers again`);
          this.emit({ waitingFor: undefined });
        }
        return r;
      } catch (e) {
        this.checkStopped();
        if (e instanceof PacsError && (e.kind === 'refused' || e.kind === 'not-supported')) {
          throw new Stop({ state: 'failed', message: this.refusalMessage(e) });
        }
        if (!(e instanceof PacsError) && !(e instanceof PacsBusyError)) throw e;
        const now = Date.now();
        if (firstFailure === undefined) {
          firstFailure = now;
          this.o.logger.warn(`retrieve job ${this.o.job.id}: ${what}: ${e.message}; trying again`);
        }
        if (now - firstFailure >= this.settings.pacsWaitMs) {
          throw new Stop({
            state: 'paused',
            message: `${what}: ${e.message} (for ${Math.round((now - firstFailure) / 1000)} s); resume the job when the PACS is back`,
          });
        }
        this.emit({ waitingFor: `the PACS (${e.message})` });
        await this.sleep(Math.min(delay, this.settings.pacsWaitMs - (now - firstFailure)));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private destinationWords(): string {
    const d = this.o.destination;
    const host = d.host === '0.0.0.0' || d.host === '::' ? "this machine's address" : `host ${d.host}`;
    return `AE title ${d.aeTitle}, ${host}, port ${d.port}`;
  }

  private refusalMessage(e: PacsError): string {
    const pacs = this.o.pacs.label;
    if (e.kind === 'not-supported') return `${e.message}: it cannot be retrieved from`;
    const why = e.callingAeRejected ? 'it does not know our AE title' : 'it refused the association';
    return `the PACS ${pacs} refused us (${e.message}): ${why}; its administrator must add us as a DICOM node allowed to query and retrieve (${this.destinationWords()})`;
  }

  // ------------------------------------------------------------------------------------------
  // Pre-flight

  /**
   * C-ECHO, then one C-FIND (a Study Instance UID that matches nothing): the PACS answers and
   * lets us query. Orthanc accepts an association from an AE title it does not know and aborts
   * it at the first C-FIND; dcmqrscp rejects it. The test that the PACS knows our AE title as a
   * move destination is the first move (moveStudies): a move of nothing proves nothing (Orthanc
   * answers 0xC000 and dcmqrscp Success, whatever the destination).
   */
  private async preflight(): Promise<void> {
    this.emit({ phase: 'preflight' });
    const status = await this.withPacs('C-ECHO', () => this.o.pacs.echo());
    if (status !== 0) {
      this.o.logger.warn(`retrieve job ${this.o.job.id}: the PACS answered C-ECHO with ${statusHex(status)}`);
    }
    // Answering C-ECHO, then aborting the association at the first query, twice in a row: the
    // PACS most likely does not let our calling AE title query it.
    let aborted = 0;
    const nowhere = `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`)}`;
    await this.withPacs('C-FIND', async () => {
      try {
        return await this.o.pacs.find(
          [
            { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'STUDY' },
            { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: nowhere },
          ],
          () => undefined,
          1,
        );
      } catch (e) {
        if (e instanceof PacsError && e.kind === 'dropped' && ++aborted >= 2) {
          throw new Stop({
            state: 'failed',
            message: `the PACS ${this.o.pacs.label} answers C-ECHO but drops the association at our first query (${e.message}): it most likely does not let AE title ${this.o.pacs.callingAeTitle} query it (Orthanc does so for an AE title missing from its DicomModalities); its administrator must add us as a DICOM node allowed to query and retrieve (${this.destinationWords()})`,
          });
        }
        throw e;
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Queries

  private async queryRows(): Promise<void> {
    const { state, job } = this.o;
    const rows = await state.retrieveRows(job.id);
    this.emit({
      phase: 'query',
      rowsTotal: rows.length,
      rowsQueried: rows.filter((r) => r.status !== 'pending').length,
    });
    const today = isoDay(new Date());
    for (const row of rows) {
      if (row.status !== 'pending') continue;
      const result = await this.withPacs('querying the PACS', () => queryRow(this.o.pacs, row, this.settings, today));
      await state.recordRetrieveRow(job.id, row.line, result);
      this.emit({ rowsQueried: this.progress.rowsQueried + 1 });
    }
    const studies = await state.retrieveStudies(job.id);
    this.emit({
      studiesTotal: studies.length,
      studiesDone: studies.filter((s) => isFinal(s.status)).length,
      instancesExpected: studies.reduce((n, s) => n + (s.expected ?? 0), 0),
      instancesFiled: studies.reduce((n, s) => n + s.filed, 0),
    });
    this.destinationVerified = studies.some((s) => s.status === 'complete');
  }

  // ------------------------------------------------------------------------------------------
  // Moves

  private async moveStudies(): Promise<void> {
    const { state, job } = this.o;
    const planned = await state.retrieveStudies(job.id, 'planned');
    this.emit({ phase: 'move' });
    if (planned.length === 0) return;
    // The first move is the test that the PACS knows our AE title as a destination: alone, and of
    // the smallest study (fewest instances, where the PACS said).
    const queue = [...planned];
    if (!this.destinationVerified) {
      queue.sort((a, b) => (a.expected ?? Infinity) - (b.expected ?? Infinity));
      const first = queue.shift()!;
      queue.sort((a, b) => planned.indexOf(a) - planned.indexOf(b));
      await this.retrieveStudy(first);
    }
    // More studies under way than move slots: while some wait for their instances to be filed
    // (half a second or more for a study of a few dozen instances), the next ones' moves go on.
    const workers = Array.from(
      { length: Math.min(this.settings.concurrency + STUDIES_FILING, queue.length) },
      async () => {
        for (let st = queue.shift(); st && !this.stopOutcome; st = queue.shift()) {
          try {
            await this.retrieveStudy(st);
          } catch (e) {
            // One worker's stop (the destination refused, the PACS gone) stops the others' moves.
            this.halt(e instanceof Stop ? e.outcome : { state: 'paused', message: 'stopped by an unexpected error' });
            if (!(e instanceof Stop)) throw e;
          }
        }
      },
    );
    const results = await Promise.allSettled(workers);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    this.checkStopped();
  }

  private async waitForWindow(): Promise<void> {
    if (this.settings.window === undefined) return;
    const w = parseTimeWindow(this.settings.window);
    while (!insideTimeWindow(w, new Date())) {
      this.checkStopped();
      const opens = nextWindowOpening(w, new Date());
      const words = `the time window ${formatTimeWindow(w)} (opens at ${opens.toTimeString().slice(0, 5)})`;
      if (this.progress.phase !== 'waiting-window') {
        this.o.logger.info(`retrieve job ${this.o.job.id}: waiting for ${words}`);
        this.emit({ phase: 'waiting-window', waitingFor: words });
      }
      await this.sleep(Math.min(30_000, Math.max(1000, opens.getTime() - Date.now())));
    }
    if (this.progress.phase === 'waiting-window') this.emit({ phase: 'move', waitingFor: undefined });
  }

  private async filedOf(studyUid: string): Promise<number> {
    return (await this.o.state.filedCountsByStudy([studyUid])).get(studyUid) ?? 0;
  }

  /** Moves one study until it is complete, incomplete, failed or already filed. */
  private async retrieveStudy(study: RetrieveStudy): Promise<void> {
    const { state, job } = this.o;
    const uid = study.studyUid;
    let attempts = study.attempts;
    let expected = study.expected;
    for (;;) {
      this.checkStopped();
      await this.waitForWindow();
      if (expected === null) {
        expected = await this.withPacs('counting a study', () => countStudyInstances(this.o.pacs, uid));
        if (expected !== null) {
          await state.updateRetrieveStudy(job.id, uid, { expected });
          this.emit({ instancesExpected: this.progress.instancesExpected + expected });
        }
      }
      const filedBefore = await this.filedOf(uid);
      if (expected !== null && expected > 0 && filedBefore >= expected) {
        // Filed already: by a push, a batch, an earlier job, or this job's earlier move.
        await this.finishStudy(study, attempts > 0 ? 'complete' : 'already_filed', filedBefore, {
          message: attempts > 0 ? null : `all ${expected} instances were filed before this job moved it`,
        });
        return;
      }
      if (expected === 0) {
        await this.finishStudy(study, 'complete', filedBefore, { message: 'the PACS holds no instance of it' });
        return;
      }
      if (!(await this.slots.acquire())) this.checkStopped();
      let slotHeld = true;
      const releaseSlot = (): void => {
        if (slotHeld) this.slots.release();
        slotHeld = false;
      };
      try {
        const outcome = await this.moveOnce(study, ++attempts, expected, filedBefore, releaseSlot);
        if (outcome === 'done') return;
        if (outcome === 'again-not-counted') attempts--;
      } finally {
        releaseSlot();
      }
    }
  }

  /**
   * One C-MOVE of a study and the wait for its instances (attempt `attempts`): 'done' when the
   * study reached its final status, 'again' to move it again, 'again-not-counted' to move it again
   * without spending an attempt (the PACS was out of resources and sent nothing). Throws Stop.
   * `releaseSlot` is called once the PACS is done sending.
   */
  private async moveOnce(
    study: RetrieveStudy,
    attempts: number,
    expected: number | null,
    filedBefore: number,
    releaseSlot: () => void,
  ): Promise<'done' | 'again' | 'again-not-counted'> {
    const { state, job } = this.o;
    const uid = study.studyUid;
    await state.updateRetrieveStudy(job.id, uid, { status: 'moving', attempts, startedAt: Date.now() });
    this.moving.set(uid, filedBefore);
    this.emit();
    let result: CMoveResult | undefined;
    let dropped: PacsError | undefined;
    let lastProgress = Date.now();
    let arrivals = this.o.arrivals();
    let lastReceived = Date.now();
    const moveStart = Date.now();
    try {
      result = await this.withPacs('moving a study', async () => {
        try {
          return await this.o.pacs.move(uid, this.o.destination.aeTitle, {
            signal: this.signal,
            onProgress: () => (lastProgress = Date.now()),
          });
        } catch (e) {
          // Dropped under way: part of the study may have come; count it below, not again here.
          if (e instanceof PacsError && e.kind === 'dropped') {
            dropped = e;
            return undefined;
          }
          throw e;
        }
      });
    } catch (e) {
      this.moving.delete(uid);
      // The PACS could not be reached (no move was made), or the run stopped: the study is
      // planned again for the next run, and this attempt does not count.
      await state.updateRetrieveStudy(job.id, uid, { status: 'planned', attempts: attempts - 1 });
      throw e;
    }
    const verdict = result ? retrieveStatusMeaning(result.status) : undefined;
    const subOps = result?.subOperations;
    const statusWords = verdict
      ? `${verdict.text}${subOps ? `; sub-operations ${subOps.completed ?? '?'} completed, ${subOps.failed ?? '?'} failed, ${subOps.warning ?? '?'} warning` : ''}`
      : `the association dropped: ${dropped?.message ?? 'unknown'}`;
    await state.updateRetrieveStudy(job.id, uid, {
      lastStatus: result?.status ?? null,
      completed: subOps?.completed ?? null,
      failed: subOps?.failed ?? null,
      warning: subOps?.warning ?? null,
    });

    if (verdict?.category === 'unknown-destination') {
      this.moving.delete(uid);
      await state.updateRetrieveStudy(job.id, uid, { status: 'planned', message: statusWords });
      throw new Stop({ state: 'failed', message: this.destinationMessage(result!.status, 'does not know') });
    }

    // Arrivals: until every expected instance is filed, or nothing arrived for quietMs. A
    // refusal that reports no sub-operation done sends nothing: no wait then.
    let filed = await this.filedOf(uid);
    const filedAtResponse = filed;
    const sentNothing =
      (verdict?.category === 'failure' || verdict?.category === 'busy') &&
      (subOps?.completed ?? 0) + (subOps?.warning ?? 0) + (subOps?.remaining ?? 0) === 0;
    if (sentNothing || dropped) releaseSlot();
    lastReceived = Date.now();
    for (;;) {
      if (sentNothing) break;
      if (expected !== null && filed >= expected) break;
      const now = Date.now();
      // The PACS is done sending: the next move may start while this study is being filed.
      if (arrivals.receiving === 0 || now - lastReceived >= SENDING_DONE_QUIET_MS) releaseSlot();
      if (now - lastProgress >= this.settings.quietMs) break;
      if (now - moveStart >= this.settings.studyTimeoutMs) break;
      if (this.stopOutcome) break;
      await this.sleep(Math.min(this.o.pollMs ?? 100, SENDING_DONE_QUIET_MS));
      const f = await this.filedOf(uid);
      const a = this.o.arrivals();
      if (a.received !== arrivals.received) lastReceived = Date.now();
      if (f !== filed || a.received !== arrivals.received || a.processed !== arrivals.processed) {
        lastProgress = Date.now();
      }
      filed = f;
      arrivals = a;
      this.moving.set(uid, filed);
    }
    releaseSlot();
    this.moving.delete(uid);
    const arrived = filed > filedBefore;
    if (arrived) this.destinationVerified = true;
    const enough = expected !== null ? filed >= expected : arrived && filed >= (subOps?.completed ?? 0);
    if (enough) {
      const notes: string[] = [];
      if (verdict && verdict.category !== 'success') notes.push(`the PACS answered ${statusWords}`);
      if (result && expected !== null && filedAtResponse < expected) {
        // A PACS that answers before its sub-operations are done, or a node still filing.
        notes.push(
          `${filedAtResponse - filedBefore} of ${expected - filedBefore} instances were filed when the PACS gave its final answer; the rest arrived after`,
        );
      }
      await this.finishStudy(study, 'complete', filed, { message: notes.length > 0 ? notes.join('; ') : null });
      return 'done';
    }
    if (this.stopOutcome) {
      await state.updateRetrieveStudy(job.id, uid, { status: 'planned', filed, message: statusWords });
      this.checkStopped();
    }
    const nothing = !arrived && (subOps?.completed ?? 0) === 0 && (subOps?.warning ?? 0) === 0;
    if (!this.destinationVerified && nothing && verdict !== undefined) {
      if (verdict.category === 'failure') {
        // Orthanc answers 0xC000 with no sub-operation when it does not know the destination
        // or cannot connect to it (measured): the first move tells the administrator which.
        await state.updateRetrieveStudy(job.id, uid, { status: 'planned', filed, message: statusWords });
        throw new Stop({ state: 'failed', message: this.destinationMessage(result!.status, 'cannot send to') });
      }
    }
    if (verdict?.category === 'busy') {
      // Out of resources: wait as for a PACS that is down, without spending an attempt while
      // it has sent nothing (dcmqrscp answers 0xA702 with every sub-operation failed when it
      // cannot reach us, so the wait is bounded by pacsWaitMs all the same).
      await state.updateRetrieveStudy(job.id, uid, {
        attempts: arrived ? attempts : attempts - 1,
        filed,
        message: statusWords,
      });
      releaseSlot();
      await this.backoffBusy(result!.status, subOps);
      return arrived ? 'again' : 'again-not-counted';
    }
    if (attempts < this.settings.maxAttempts) {
      this.o.logger.info(
        `retrieve job ${this.o.job.id}: a study is incomplete after move ${attempts} (${filed} of ${expected ?? '?'} filed); moving it again`,
      );
      await state.updateRetrieveStudy(job.id, uid, { filed, message: statusWords });
      return 'again';
    }
    const final = verdict?.category === 'failure' && !arrived ? 'failed' : 'incomplete';
    await this.finishStudy(study, final, filed, {
      message: `${filed} of ${expected ?? '?'} instances filed after ${attempts} moves; last: ${statusWords}; any that arrived but could not be filed are in the quarantine (dicom-deid quarantine list)`,
    });
    return 'done';
  }

  private busySince: number | undefined;
  private busyDelay = BACKOFF_START_MS;

  /** Waits after an out-of-resources answer; pauses (or fails, for the first move) after pacsWaitMs. */
  private async backoffBusy(status: number, subOps: CMoveResult['subOperations']): Promise<void> {
    const now = Date.now();
    this.busySince ??= now;
    if (now - this.busySince >= this.settings.pacsWaitMs) {
      const h = statusHex(status);
      if (!this.destinationVerified && (subOps?.completed ?? 0) === 0) {
        throw new Stop({
          state: 'failed',
          message: `the PACS ${this.o.pacs.label} answers our moves with ${h} (out of resources)${subOps?.failed ? `, all ${subOps.failed} sub-operations failed` : ''}, for ${Math.round((now - this.busySince) / 1000)} s: it may not reach us (${this.destinationWords()}: check that its administrator entered these and that this machine accepts connections on that port), or be overloaded`,
        });
      }
      throw new Stop({
        state: 'paused',
        message: `the PACS ${this.o.pacs.label} has answered ${h} (out of resources) for ${Math.round((now - this.busySince) / 1000)} s; resume the job later`,
      });
    }
    this.emit({ waitingFor: `the PACS (out of resources, ${statusHex(status)})` });
    await this.sleep(Math.min(this.busyDelay, BACKOFF_MAX_MS));
    this.busyDelay = Math.min(this.busyDelay * 2, BACKOFF_MAX_MS);
    this.emit({ waitingFor: undefined });
  }

  private destinationMessage(status: number, verb: string): string {
    const { text } = retrieveStatusMeaning(status);
    return `the PACS ${this.o.pacs.label} ${verb} our move destination (it answered ${text} and sent nothing): its administrator must enter us as a C-MOVE destination with ${this.destinationWords()}, and this machine must accept connections from it on that port`;
  }

  private async finishStudy(
    study: RetrieveStudy,
    status: RetrieveStudy['status'],
    filed: number,
    extra: { message?: string | null },
  ): Promise<void> {
    if (status === 'complete' || status === 'already_filed') this.busySince = undefined;
    if (status === 'complete' || status === 'already_filed') this.busyDelay = BACKOFF_START_MS;
    await this.o.state.updateRetrieveStudy(this.o.job.id, study.studyUid, {
      status,
      filed,
      finishedAt: Date.now(),
      ...(extra.message !== undefined ? { message: extra.message } : {}),
    });
    this.emit({
      studiesDone: this.progress.studiesDone + 1,
      instancesFiled: this.progress.instancesFiled + filed,
    });
  }

  private async summary(): Promise<string> {
    const c = await this.o.state.retrieveJobCounts(this.o.job.id);
    return `${this.progress.rowsTotal} rows (${c.rows.found} found, ${c.rows.not_found} not found, ${c.rows.ambiguous} ambiguous, ${c.rows.query_incomplete} incomplete answers, ${c.rows.query_failed} query failed); ${c.studies.complete + c.studies.already_filed + c.studies.incomplete + c.studies.failed} studies (${c.studies.complete} moved, ${c.studies.already_filed} already filed, ${c.studies.incomplete} incomplete, ${c.studies.failed} failed); ${c.filedInstances} instances filed`;
  }
}

function isFinal(s: RetrieveStudy['status']): boolean {
  return s === 'complete' || s === 'already_filed' || s === 'incomplete' || s === 'failed';
}

function isoDay(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}
