// Forwarder: drains the persistent forward queue (in the state, src/state) to each destination,
// with capped exponential backoff (with jitter) while a destination is unreachable or answers
// temporary failures.
//
// Per destination, one loop: claim due items (<= maxPerAssociation), send them in one
// association, record every outcome in one transaction, repeat. Permanent refusals go dead at
// once; transient failures are retried until they have been failing for giveUpAfterMs.
// "Destination down" / "destination back" are logged once per transition, never per file.
// Log lines carry queue ids, file paths (de-identified names) and reasons, never patient data.
// The forwarder reports its status (per destination: up or down and since when, queue counts,
// last error, last delivery) through the status contract: forwarderStatus.ts.
// Files a destination does not accept as stored are converted on the way out (storeScu.ts) by
// one Converter shared by every destination: a worker thread by default, so decoding never
// stalls the event loop the node's receiver runs on (transcode/conversionThread.ts).

import { destinationLabel, type Destination } from './destination.js';
import { ForwarderStatus, type DestinationStatus } from './forwarderStatus.js';
import type { Logger } from '../log.js';
import type { ComponentStatus, StatusReporter } from '../status.js';
import type { ForwardOutcome, QueueItem, StateStore } from '../state/stateStore.js';
import { defaultConverter } from '../transcode/conversionThread.js';
import type { Converter } from '../transcode/converter.js';
import { sendFiles, type SendReport, type StoreScuOptions } from './storeScu.js';
import { preferenceWarning } from './syntaxChoice.js';

export interface ForwarderOptions {
  /** The state holding the forward queue (the node's, or the batch run's). */
  state: StateStore;
  /** Destinations; the queue is keyed by their names (a repeated name counts once). */
  destinations: Destination[];
  /** Our calling AE title, unless a destination has its own (Destination.callingAeTitle). */
  callingAet: string;
  logger: Logger;
  /** Instances per association (default 100). */
  maxPerAssociation?: number;
  /** Retry backoff: initialMs (default 2000) doubling up to maxMs (default 300000), jittered. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** A transiently failing item goes dead after failing this long (default 24 h). */
  giveUpAfterMs?: number;
  /** Network timeouts passed to the SCU (defaults in storeScu.ts). */
  scu?: Omit<StoreScuOptions, 'callingAet' | 'maxPerAssociation' | 'converter'>;
  /**
   * Converts files a destination does not accept as stored (default: defaultConverter(), a
   * worker thread started on the first conversion). The forwarder closes it in stop().
   */
  converter?: Converter;
  /** Injectable send function (defaults to storeScu.sendFiles). */
  send?: typeof sendFiles;
  /**
   * An idle destination re-reads the queue this often (default 5000 ms), so items enqueued by
   * another process (quarantine replay, `queue retry`) are sent without a kick().
   */
  idlePollMs?: number;
  /**
   * Dead items are logged once per reason per window (default 60000 ms): the first round with a
   * reason is logged in full, later ones in that window are summed into one "N more" line at its
   * end, so a refused 500-image series arriving file by file does not log 500 lines.
   */
  deadLogWindowMs?: number;
  /** Called after each round with the files it delivered (the node logs them per study). */
  onDelivered?: (destination: Destination, filePaths: string[]) => void;
}

interface DestState {
  dest: Destination;
  /** The destination's name: its queue key. */
  key: string;
  /** How log lines name it (destinationLabel). */
  label: string;
  down: boolean;
  downSince: number;
  downReason: string;
  /** Consecutive failed rounds (for the backoff exponent). */
  failures: number;
  /** No claiming before this time (destination backoff). */
  holdUntil: number;
  loop?: Promise<void>;
  wake?: () => void;
  /** Dead-item log throttling, per reason. */
  deadLog: Map<string, { windowStart: number; suppressed: number }>;
}

/** How often, at most, the queue counts of the status are read again from the state (ms). */
const COUNTS_REFRESH_MS = 1000;

/**
 * Sends the forward queue (StateStore) to the configured destinations as described above, as a
 * PS3.4 Storage SCU (storeScu.ts): start() recovers items left in flight and starts one loop per
 * destination, kick() wakes them, stop() waits for rounds under way and closes the converter.
 * start() rejects with the state's error when recovery cannot read it; delivery failures are
 * recorded in the queue and the status ('forwarder'), never thrown.
 */
export class Forwarder implements StatusReporter {
  private readonly state: StateStore;
  private readonly logger: Logger;
  private readonly callingAet: string;
  private readonly maxPer: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly giveUpAfterMs: number;
  private readonly scu: ForwarderOptions['scu'];
  private readonly send: typeof sendFiles;
  private readonly converter: Converter;
  private readonly idlePollMs: number;
  private readonly deadLogWindowMs: number;
  private readonly onDelivered: ForwarderOptions['onDelivered'];
  private readonly dests: DestState[];
  private running = false;
  private stopping = false;
  /** start()'s recovery and loops, awaited by stop(). */
  private started: Promise<void> | null = null;
  private readonly tracker: ForwarderStatus;
  /** When the queue counts were last read (epoch ms), and the read under way. */
  private countsAt = 0;
  private countsReading: Promise<void> | null = null;

  /**
   * Takes the options' defaults: 100 instances per association, backoff 2 s doubling to 5 min (with jitter),
   * give up after 24 h of failures, idle poll every 5 s, dead items logged once per reason per 60 s.
   * Destinations are keyed by name (a repeated name is ignored). Touches no file or network.
   */
  constructor(opts: ForwarderOptions) {
    this.state = opts.state;
    this.logger = opts.logger;
    this.callingAet = opts.callingAet;
    this.maxPer = Math.max(1, opts.maxPerAssociation ?? 100);
    this.initialMs = Math.max(1, opts.backoff?.initialMs ?? 2000);
    this.maxMs = Math.max(this.initialMs, opts.backoff?.maxMs ?? 300_000);
    this.giveUpAfterMs = opts.giveUpAfterMs ?? 24 * 3600 * 1000;
    this.scu = opts.scu;
    this.send = opts.send ?? sendFiles;
    this.converter = opts.converter ?? defaultConverter();
    this.idlePollMs = Math.max(10, opts.idlePollMs ?? 5000);
    this.deadLogWindowMs = Math.max(0, opts.deadLogWindowMs ?? 60_000);
    this.onDelivered = opts.onDelivered;
    const seen = new Set<string>();
    this.dests = [];
    for (const dest of opts.destinations) {
      const key = dest.name;
      if (seen.has(key)) continue;
      seen.add(key);
      this.dests.push({
        dest,
        key,
        label: destinationLabel(dest),
        down: false,
        downSince: 0,
        downReason: '',
        failures: 0,
        holdUntil: 0,
        deadLog: new Map(),
      });
    }
    this.tracker = new ForwarderStatus(this.dests.map((d) => d.dest));
  }

  /** Names of the destinations this forwarder serves: their queue keys. */
  get destinationKeys(): string[] {
    return this.dests.map((d) => d.key);
  }

  /**
   * Returns interrupted (in_flight) items of its destinations to pending, then starts one loop per
   * destination. Rejects (and starts nothing) when the state cannot be read.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.started = (async () => {
      for (const d of this.dests) {
        // A list that rules out every conversion is legal (a PACS taking only JPEG 2000, fed
        // JPEG 2000) but more often a wish for compression, which we never do: say so up front.
        const warning = preferenceWarning(d.dest.transferSyntaxes);
        if (warning) this.logger.warn(`forward ${d.label}: ${warning}`);
        const n = await this.state.recoverInFlightForwards(d.key);
        if (n > 0)
          this.logger.info(`forward ${d.label}: ${n} interrupted item(s) from a previous run are pending again`);
      }
      if (this.stopping) return;
      await this.refreshCounts(true);
      this.tracker.setLifecycle('running');
      for (const d of this.dests) d.loop = this.runLoop(d);
    })();
    try {
      await this.started;
    } catch (e) {
      this.running = false;
      this.started = null;
      this.tracker.setLifecycle('stopped');
      throw e;
    }
  }

  /** Something new was enqueued: wake idle loops (a destination in backoff keeps waiting). */
  kick(): void {
    for (const d of this.dests) d.wake?.();
  }

  /**
   * A person made items pending again after fixing a destination (`queue retry`, the API): end
   * the backoff of `destination` (or of all) and try now; a destination still down backs off
   * again from its next failure.
   */
  resume(destination?: string): void {
    for (const d of this.dests) {
      if (destination !== undefined && d.key !== destination) continue;
      d.holdUntil = 0;
      d.wake?.();
    }
  }

  /** Lets in-flight associations finish and their results be recorded, then stops. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.tracker.setLifecycle('stopping');
    await this.started?.catch(() => undefined);
    for (const d of this.dests) d.wake?.();
    await Promise.all(this.dests.map((d) => d.loop));
    this.started = null;
    for (const d of this.dests) this.flushDeadLog(d, Infinity);
    await this.converter.close();
    await this.refreshCounts(true);
    this.running = false;
    this.tracker.setLifecycle('stopped');
  }

  /**
   * The forwarder's status (src/status.ts): `degraded` while a destination is down; counts and
   * backlog summed over destinations; `details.destinations` holds each DestinationStatus. The
   * queue counts are those of the last reading (at most COUNTS_REFRESH_MS old while it runs).
   */
  status(): ComponentStatus {
    return this.tracker.status();
  }

  /** Each destination's status (health and since when, queue counts, last error, last delivery). */
  destinationStatus(): DestinationStatus[] {
    return this.tracker.destinations();
  }

  // -------------------------------------------------------------------------------------------

  private sleep(d: DestState, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(t);
        if (d.wake === done) d.wake = undefined;
        resolve();
      }
      d.wake = done;
    });
  }

  private backoffDelay(failures: number): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
    // "Equal jitter": between half and the full delay.
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  private async runLoop(d: DestState): Promise<void> {
    while (!this.stopping) {
      try {
        const now = Date.now();
        this.flushDeadLog(d, now);
        if (now < d.holdUntil) {
          await this.sleepHold(d);
          continue;
        }
        const items = await this.state.claimDueForwards(d.key, this.maxPer, now);
        if (items.length === 0) {
          await this.refreshCounts();
          const next = await this.state.nextForwardDueAt(d.key);
          // Idle: wait for a kick, the next due retry, or a periodic re-check: other processes
          // (quarantine replay, `queue retry`) write the same queue and cannot kick us.
          const poll = this.idlePollMs;
          const wait = next === null ? poll : Math.min(poll, Math.max(0, next - Date.now()));
          await this.sleep(d, wait);
          continue;
        }
        let report: SendReport;
        try {
          report = await this.send(
            items.map((i) => i.filePath),
            d.dest,
            { ...this.scu, callingAet: this.callingAet, maxPerAssociation: this.maxPer, converter: this.converter },
          );
        } catch (err) {
          // sendFiles is not supposed to throw; treat as a transient, destination-level problem.
          report = {
            outcomes: items.map((i) => ({
              filePath: i.filePath,
              outcome: { kind: 'transient-failure', reason: `internal error: ${(err as Error)?.message ?? err}` },
            })),
            connectionProblem: `internal error: ${(err as Error)?.message ?? err}`,
            associations: 0,
          };
        }
        await this.record(d, items, report);
        await this.refreshCounts();
      } catch (err) {
        // State or programming error: do not spin; back off and try again.
        this.logger.error(`forward ${d.label}: loop error: ${(err as Error)?.message ?? err}`);
        await this.sleep(d, this.backoffDelay(3));
      }
    }
  }

  /** Logs the "N more" summary of every dead-log window that ended by `now` (all of them: Infinity). */
  private flushDeadLog(d: DestState, now: number): void {
    for (const [reason, w] of d.deadLog) {
      if (now - w.windowStart < this.deadLogWindowMs) continue;
      d.deadLog.delete(reason);
      if (w.suppressed > 0) {
        const n = w.suppressed === 1 ? '1 more item is dead' : `${w.suppressed} more items are dead`;
        this.logger.warn(`forward ${d.label}: ${n} (since the last such message): ${reason}`);
      }
    }
  }

  private async sleepHold(d: DestState): Promise<void> {
    // A kick must not bypass the backoff; only stop() ends the wait early.
    while (!this.stopping && Date.now() < d.holdUntil) {
      await this.sleep(d, d.holdUntil - Date.now());
    }
  }

  /**
   * Reads the queue counts of the status again, at most every COUNTS_REFRESH_MS (a grouped count
   * over the queue: not per file, not per status() call) unless `force`. A failed read keeps the
   * last counts (the loop reports state errors itself).
   */
  private async refreshCounts(force = false): Promise<void> {
    if (this.countsReading) return this.countsReading;
    if (!force && Date.now() - this.countsAt < COUNTS_REFRESH_MS) return;
    this.countsReading = (async () => {
      try {
        this.tracker.setCounts(await this.state.forwardCounts());
        this.countsAt = Date.now();
      } catch (err) {
        this.logger.debug(`forward: cannot read the queue counts: ${(err as Error)?.message ?? err}`);
      } finally {
        this.countsReading = null;
      }
    })();
    return this.countsReading;
  }

  private async record(d: DestState, items: QueueItem[], report: SendReport): Promise<void> {
    const now = Date.now();
    let delivered = 0;
    let converted = 0;
    let transient = 0;
    let dead = 0;
    const itemOutcomes = items.map((item, i) => ({ item, outcome: report.outcomes[i]!.outcome }));
    const unhealthy = !!report.connectionProblem || itemOutcomes.every((x) => x.outcome.kind === 'transient-failure');
    const anyDelivered = itemOutcomes.some((x) => x.outcome.kind === 'delivered' || x.outcome.kind === 'warning');
    // Destination-level backoff: grows while the destination fails, resets once it delivers.
    const failures = anyDelivered ? 0 : unhealthy ? d.failures + 1 : d.failures;
    const retryDelay = this.backoffDelay(Math.max(1, failures));
    // Dead items are logged grouped by reason (one line per reason per round, not per file).
    const deadByReason = new Map<string, QueueItem[]>();
    const noteDead = (item: QueueItem, reason: string): void => {
      const list = deadByReason.get(reason) ?? [];
      list.push(item);
      deadByReason.set(reason, list);
    };

    const outcomes: ForwardOutcome[] = [];
    for (const { item, outcome } of itemOutcomes) {
      switch (outcome.kind) {
        case 'delivered':
          outcomes.push({ id: item.id, outcome: 'delivered', status: outcome.status, note: null });
          delivered++;
          if (outcome.convertedTo) converted++;
          break;
        case 'warning':
          outcomes.push({ id: item.id, outcome: 'delivered', status: outcome.status, note: outcome.reason });
          delivered++;
          if (outcome.convertedTo) converted++;
          break;
        case 'permanent-failure':
          outcomes.push({ id: item.id, outcome: 'dead', reason: outcome.reason, status: outcome.status ?? null });
          noteDead(item, outcome.reason);
          dead++;
          break;
        case 'transient-failure': {
          const since = item.firstFailureAt ?? now;
          if (now - since >= this.giveUpAfterMs) {
            const reason = `gave up after ${fmtDuration(now - since)} of failures; last: ${outcome.reason}`;
            outcomes.push({ id: item.id, outcome: 'dead', reason, status: outcome.status ?? null });
            noteDead(item, reason);
            dead++;
          } else {
            // Destination unhealthy: the whole batch waits for the destination's backoff (and stays
            // together); otherwise the item backs off on its own attempts.
            const delay = unhealthy ? retryDelay : this.backoffDelay(item.attempts + 1);
            outcomes.push({
              id: item.id,
              outcome: 'retry',
              reason: outcome.reason,
              status: outcome.status ?? null,
              nextAttemptAt: now + delay,
            });
            transient++;
          }
          break;
        }
      }
    }
    // One transaction: every outcome, and the destination's give-up clock.
    await this.state.recordForwardRound({
      destination: d.key,
      outcomes,
      destinationHealth: unhealthy ? 'down' : anyDelivered ? 'up' : undefined,
      now,
    });

    for (const [reason, list] of deadByReason) {
      const window = d.deadLog.get(reason);
      if (window && now - window.windowStart < this.deadLogWindowMs) {
        window.suppressed += list.length;
        continue;
      }
      d.deadLog.set(reason, { windowStart: now, suppressed: 0 });
      const shown = list
        .slice(0, 3)
        .map((i) => `item ${i.id} (${i.filePath})`)
        .join(', ');
      const more = list.length > 3 ? ` and ${list.length - 3} more` : '';
      const what = list.length === 1 ? `${shown} is dead` : `${list.length} items are dead: ${shown}${more}`;
      this.logger.warn(`forward ${d.label}: ${what}: ${reason}`);
    }
    this.logger.debug(
      `forward ${d.label}: ${items.length} sent in ${report.associations} association(s): ` +
        `${delivered} delivered (${converted} converted), ${transient} to retry, ${dead} dead`,
    );

    this.tracker.delivered(d.key, delivered, converted);
    if (delivered > 0 && this.onDelivered) {
      const files = itemOutcomes
        .filter((x) => x.outcome.kind === 'delivered' || x.outcome.kind === 'warning')
        .map((x) => x.item.filePath);
      this.onDelivered(d.dest, files);
    }
    const firstOf = (kind: 'permanent-failure' | 'transient-failure'): string | undefined =>
      (itemOutcomes.find((x) => x.outcome.kind === kind)?.outcome as { reason: string } | undefined)?.reason;
    const problem = report.connectionProblem ?? [...deadByReason.keys()][0] ?? firstOf('transient-failure');
    if (problem) this.tracker.error(d.key, problem);
    this.tracker.health(d.key, unhealthy ? 'down' : 'up');

    d.failures = failures;
    if (unhealthy) {
      d.holdUntil = now + retryDelay;
      if (!d.down) {
        d.down = true;
        d.downSince = now;
        d.downReason =
          report.connectionProblem ??
          (itemOutcomes.find((x) => x.outcome.kind === 'transient-failure')?.outcome as { reason: string } | undefined)
            ?.reason ??
          'temporary failure';
        this.logger.warn(`forward destination ${d.label} is down: ${d.downReason}; retrying with backoff`);
      }
    } else {
      d.holdUntil = 0;
      if (d.down) {
        d.down = false;
        this.logger.info(
          `forward destination ${d.label} is back after ${fmtDuration(now - d.downSince)} ` +
            `(${delivered} delivered in the first round)`,
        );
      }
    }
  }
}

function fmtDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min`;
  return `${(m / 60).toFixed(1)} h`;
}
