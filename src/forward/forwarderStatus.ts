// What the forwarder reports through the status contract (src/status.ts): per destination, up or
// down and since when, its queue (pending, in flight, dead), its last error and last delivery, and
// how many instances it stored, converted or not.
// Plain data, cheap to read: the queue counts are the forwarder's last reading of the state, not
// a query per call. No identifier: destination names and addresses, counts, times, and reasons
// written for logs (statuses, SOP classes, system errors).
import { StatusTracker, type ComponentStatus, type StatusReporter } from '../status.js';
import { formatDestination, type Destination } from './destination.js';

/** One destination as the status shows it. */
export interface DestinationStatus {
  /** The destination's name (its queue key). */
  name: string;
  /** "AET@host:port". */
  address: string;
  /** `unknown` until the first round ends (or while nothing was ever sent). */
  health: 'unknown' | 'up' | 'down';
  /** ISO time `health` last changed (null while unknown). */
  since: string | null;
  /** Queue counts at the forwarder's last reading. */
  pending: number;
  inFlight: number;
  dead: number;
  /** The last failure of a round or a file (transient or dead), log-safe. */
  lastError: { message: string; at: string } | null;
  /** ISO time the destination last stored an instance (null: never, since the start). */
  lastDeliveryAt: string | null;
  /** Instances it stored since the forwarder started. */
  deliveredSinceStart: number;
  /** Of those, the ones sent converted to another transfer syntax (it did not accept the stored one). */
  convertedSinceStart: number;
}

/** Queue counts of one destination, as the state reports them. */
export interface DestinationQueueCounts {
  destination: string;
  pending: number;
  inFlight: number;
  dead: number;
}

/** Tracks the forwarder's status; the forwarder calls the recording methods, anyone calls status(). */
export class ForwarderStatus implements StatusReporter {
  private readonly tracker: StatusTracker;
  private readonly dests = new Map<string, DestinationStatus>();
  private lifecycle: 'starting' | 'running' | 'stopping' | 'stopped' = 'starting';

  /**
   * `destinations`: the configured ones, in order, all 'unknown' until their first round; `now`: the clock
   * for ISO times (tests).
   */
  constructor(
    destinations: readonly Destination[],
    private readonly now: () => Date = () => new Date(),
  ) {
    this.tracker = new StatusTracker('forwarder', 'starting', now);
    for (const d of destinations) {
      this.dests.set(d.name, {
        name: d.name,
        address: formatDestination(d),
        health: 'unknown',
        since: null,
        pending: 0,
        inFlight: 0,
        dead: 0,
        lastError: null,
        lastDeliveryAt: null,
        deliveredSinceStart: 0,
        convertedSinceStart: 0,
      });
    }
  }

  /** The forwarder's lifecycle: starting, running, stopping, stopped. */
  setLifecycle(state: 'starting' | 'running' | 'stopping' | 'stopped'): void {
    this.lifecycle = state;
    this.refreshState();
  }

  /** A round stored `count` instances at `name`, `converted` of them sent converted. */
  delivered(name: string, count: number, converted = 0): void {
    const d = this.dests.get(name);
    if (!d || count <= 0) return;
    d.deliveredSinceStart += count;
    d.convertedSinceStart += converted;
    d.lastDeliveryAt = this.now().toISOString();
  }

  /** A failure at `name` (a round's connection problem, a dead or retried file's reason). */
  error(name: string, message: string): void {
    const d = this.dests.get(name);
    if (!d) return;
    d.lastError = { message, at: this.now().toISOString() };
    this.tracker.error(`${name}: ${message}`);
  }

  /** `name` is reachable (up) or not (down) after a round. */
  health(name: string, health: 'up' | 'down'): void {
    const d = this.dests.get(name);
    if (!d || d.health === health) return;
    d.health = health;
    d.since = this.now().toISOString();
    this.refreshState();
  }

  /** The queue counts the forwarder last read (destinations not listed have none). */
  setCounts(counts: readonly DestinationQueueCounts[]): void {
    const byName = new Map(counts.map((c) => [c.destination, c]));
    for (const d of this.dests.values()) {
      const c = byName.get(d.name);
      d.pending = c?.pending ?? 0;
      d.inFlight = c?.inFlight ?? 0;
      d.dead = c?.dead ?? 0;
    }
  }

  /** Every destination's status, in configuration order (copies). */
  destinations(): DestinationStatus[] {
    return [...this.dests.values()].map((d) => ({ ...d, lastError: d.lastError && { ...d.lastError } }));
  }

  /**
   * The 'forwarder' component: totals over destinations (down, pending, in flight, dead, delivered and
   * converted since start), backlog = pending + in flight, each destination in `details`. Degraded while any
   * destination is down.
   */
  status(): ComponentStatus {
    const list = this.destinations();
    const sum = (k: 'pending' | 'inFlight' | 'dead' | 'deliveredSinceStart' | 'convertedSinceStart'): number =>
      list.reduce((n, d) => n + d[k], 0);
    return this.tracker.report(
      {
        destinations: list.length,
        destinationsDown: list.filter((d) => d.health === 'down').length,
        pending: sum('pending'),
        inFlight: sum('inFlight'),
        dead: sum('dead'),
        deliveredSinceStart: sum('deliveredSinceStart'),
        convertedSinceStart: sum('convertedSinceStart'),
      },
      { backlog: sum('pending') + sum('inFlight'), details: { destinations: list } },
    );
  }

  private refreshState(): void {
    if (this.lifecycle !== 'running') {
      this.tracker.set(this.lifecycle);
      return;
    }
    const anyDown = [...this.dests.values()].some((d) => d.health === 'down');
    this.tracker.set(anyDown ? 'degraded' : 'running');
  }
}
