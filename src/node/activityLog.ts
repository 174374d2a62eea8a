// What the console says about the node's work: one line per study filed, per study delivered to
// a destination and per group of quarantined instances, not one per instance; and repeated
// failures said once per cause, with a count, and once when they clear.
//
//   RES001_2: 120 instances filed
//   RES001_2 delivered to RESEARCH (120 instances)
//   24 instances quarantined (no-mapping) from PACS1, see /api/quarantine
//   processing failed, will retry: the disk is full (ENOSPC); further failures of this cause are counted, not logged
//   processing recovered: 1 540 failures of ENOSPC over 3 min
//
// A line is written once its group has been quiet for QUIET_MS (a study arrives as a burst), or
// when the node stops. Lines name research IDs, session folders, AE titles, destinations and
// reasons: no original identifier.
import { describeSystemError } from '../errors.js';
import type { Logger } from '../log.js';
import { plural } from '../words.js';

/** A group's line is written after this long without news of it (ms). */
const QUIET_MS = 2000;
/** A cause still failing is recalled this often (ms), with its count. */
const REMIND_MS = 10 * 60_000;

interface Group {
  count: number;
  timer: NodeJS.Timeout;
}

interface Failure {
  count: number;
  since: number;
  remindedAt: number;
}

/**
 * Folds the node's per-instance events into the console lines above: a group's line is written after
 * `quietMs` (ms, default 2000) without news of it; a failing cause is logged once, recalled every 10 min with
 * its count, and once when it clears. Takes research IDs, session folders, AE titles and reasons, never an
 * original identifier. Throws nothing.
 */
export class ActivityLog {
  private readonly groups = new Map<string, Group & { line: (n: number) => string; level: 'info' | 'warn' }>();
  private readonly failures = new Map<string, Failure>();

  /**
   * `quarantineHint`: where a person sees the quarantine, named in quarantine lines; `quietMs`: the quiet
   * time before a group's line is written (ms).
   */
  constructor(
    private readonly logger: Logger,
    /** Where a person sees the quarantine ("/api/quarantine" or the CLI command). */
    private readonly quarantineHint: string,
    private readonly quietMs = QUIET_MS,
  ) {}

  /** One instance of `study` (its session folder, {researchId}_{N}) was filed. */
  filed(study: string): void {
    this.bump(`filed\0${study}`, 'info', (n) => `${study}: ${plural(n, 'instance')} filed`);
  }

  /** `count` instances of `study` were delivered to the destination labelled `destination`. */
  delivered(study: string, destination: string, count = 1): void {
    this.bump(
      `delivered\0${study}\0${destination}`,
      'info',
      (n) => `${study} delivered to ${destination} (${plural(n, 'instance')})`,
      count,
    );
  }

  /** One instance from `callingAet` went to quarantine for `reason`. */
  quarantined(callingAet: string, reason: string): void {
    this.bump(
      `quarantined\0${callingAet}\0${reason}`,
      'warn',
      (n) => `${plural(n, 'instance')} quarantined (${reason}) from ${callingAet}, see ${this.quarantineHint}`,
    );
  }

  /**
   * A failure of `cause` (an errno code or an error name) that will be retried: logged the first
   * time, counted after that (recalled every 10 minutes while it lasts). `what` says what failed.
   */
  failure(what: string, cause: string, context: Record<string, unknown> = {}): void {
    const now = Date.now();
    const key = `${what}\0${cause}`;
    const f = this.failures.get(key);
    if (!f) {
      this.failures.set(key, { count: 1, since: now, remindedAt: now });
      this.logger.error(
        `${what} failed, will retry: ${words(cause)}; further failures of this cause are counted, not logged`,
        { code: cause, ...context },
      );
      return;
    }
    f.count++;
    if (now - f.remindedAt >= REMIND_MS) {
      f.remindedAt = now;
      this.logger.error(
        `${what} still failing: ${words(cause)} (${f.count} failures since ${duration(now - f.since)} ago)`,
        {
          code: cause,
        },
      );
    }
  }

  /** `what` worked again: each of its causes that was failing is logged once as cleared. */
  recovered(what: string): void {
    for (const [key, f] of this.failures) {
      const [w, cause] = key.split('\0') as [string, string];
      if (w !== what) continue;
      this.failures.delete(key);
      this.logger.info(
        `${what} recovered: ${plural(f.count, 'failure')} of ${cause} (${words(cause)}) over ${duration(Date.now() - f.since)}`,
      );
    }
  }

  /** Writes every pending line now (at stop). */
  flush(): void {
    for (const [key, g] of this.groups) {
      clearTimeout(g.timer);
      this.groups.delete(key);
      this.logger[g.level](g.line(g.count));
    }
  }

  private bump(key: string, level: 'info' | 'warn', line: (n: number) => string, by = 1): void {
    const g = this.groups.get(key);
    if (g) {
      g.count += by;
      g.timer.refresh();
      return;
    }
    const timer = setTimeout(() => {
      const done = this.groups.get(key);
      if (!done) return;
      this.groups.delete(key);
      this.logger[level](line(done.count));
    }, this.quietMs);
    timer.unref();
    this.groups.set(key, { count: by, timer, line, level });
  }
}

/** An errno code in words with the code ("the disk is full (ENOSPC)"); other causes as they are. */
function words(cause: string): string {
  const w = describeSystemError({ code: cause });
  return w === cause ? cause : `${w} (${cause})`;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m} min` : `${(m / 60).toFixed(1)} h`;
}
