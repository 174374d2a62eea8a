// The status contract: every long-running part of the node (receiver, spool, processing pool,
// forwarder, mapping watcher) reports its state as plain data, and the node aggregates them
// (in the spirit of CTP's per-stage status). Nothing reads logs to learn the state: the HTTP
// status page, /metrics and the CLI read this.
//
// No identifier ever goes into a status: counts, durations, AE titles of peers, destination
// names, error codes and reasons written for logs only.

/** The health of one component. */
export type ComponentState = 'starting' | 'running' | 'degraded' | 'stopping' | 'stopped' | 'failed';

/** The last error a component saw, in log-safe words. */
export interface LastError {
  /** One line, no identifier (an error code, a reason like "connection refused"). */
  message: string;
  /** ISO 8601 time it happened. */
  at: string;
  /** How many times it happened in a row (the same message), at least 1. */
  count: number;
}

/** One component's status: plain, JSON-serialisable data. */
export interface ComponentStatus {
  /** Stable name: 'receiver', 'spool', 'processing', 'forwarder', 'mapping'... */
  name: string;
  state: ComponentState;
  /** ISO 8601 time the component entered `state`. */
  since: string;
  /** Monotonic counters and current gauges (instances, bytes, associations...). Units in the key: `bytesReceived`, `ackLatencyMs`. */
  counts: Record<string, number>;
  /** Work accepted but not finished (instances waiting, items queued), when the component has any. */
  backlog?: number;
  lastError?: LastError;
  /** Component-specific plain data (per-destination states, paths...). No identifiers. */
  details?: Record<string, unknown>;
}

/** Anything that can report its status (see ComponentStatus). Must be cheap: called per HTTP request. */
export interface StatusReporter {
  status(): ComponentStatus;
}

/**
 * Keeps a component's state, since-time and last error: components hold one and build their
 * ComponentStatus from it.
 */
export class StatusTracker {
  private current: ComponentState;
  private sinceIso: string;
  private last: LastError | undefined;

  /**
   * `name`: the component's name in ComponentStatus; `initial`: its state until set() (default 'starting');
   * `now`: the clock for since-times (tests).
   */
  constructor(
    readonly name: string,
    initial: ComponentState = 'starting',
    private readonly now: () => Date = () => new Date(),
  ) {
    this.current = initial;
    this.sinceIso = now().toISOString();
  }

  get state(): ComponentState {
    return this.current;
  }

  /** Enters `state` (the since-time changes only when the state does). */
  set(state: ComponentState): void {
    if (state === this.current) return;
    this.current = state;
    this.sinceIso = this.now().toISOString();
  }

  /** Records an error (log-safe message); repeats of the same message count up. */
  error(message: string): void {
    const at = this.now().toISOString();
    this.last =
      this.last?.message === message ? { message, at, count: this.last.count + 1 } : { message, at, count: 1 };
  }

  /** Builds the ComponentStatus with this tracker's state, since and last error. */
  report(
    counts: Record<string, number>,
    extra: { backlog?: number; details?: Record<string, unknown> } = {},
  ): ComponentStatus {
    return {
      name: this.name,
      state: this.current,
      since: this.sinceIso,
      counts,
      ...(extra.backlog !== undefined ? { backlog: extra.backlog } : {}),
      ...(this.last ? { lastError: { ...this.last } } : {}),
      ...(extra.details ? { details: extra.details } : {}),
    };
  }
}
