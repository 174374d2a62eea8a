// The receiver's counters and its status report (the status contract of src/status.ts): what the
// listener, its associations and their C-STORE service count, as plain data. No identifier ever
// goes in: counts, milliseconds, and error codes.
import { StatusTracker, type ComponentStatus } from '../../status.js';
import type { RejectionCode } from './associationPolicy.js';

/** How many recent acknowledgements the latency percentiles are taken over. */
const LATENCY_WINDOW = 1024;

/**
 * The receiver's counters (connections, associations by outcome, rejections by reason, instances and bytes,
 * acknowledgement latencies in ms over the last 1024) and its ComponentStatus 'receiver'. Plain counters: no
 * identifier, nothing thrown.
 */
export class ReceiverStats {
  readonly tracker = new StatusTracker('receiver');
  /** Open TCP connections (associated or not). */
  connections = 0;
  /** Associations accepted and not yet ended. */
  associationsOpen = 0;
  associationsAccepted = 0;
  /** Associations ended by an A-RELEASE. */
  associationsReleased = 0;
  /** Associations that ended without an A-RELEASE (peer abort, our abort, disconnect, timeout). */
  associationsAborted = 0;
  readonly associationsRejected: Record<RejectionCode, number> = {
    calledAeTitle: 0,
    callingAeTitle: 0,
    callingAeAddress: 0,
    stopping: 0,
    associationLimit: 0,
    addressLimit: 0,
  };
  /** Connections a TLS endpoint refused: failed handshakes, client certificates not trusted or absent. */
  tlsRefused = 0;
  /** Associations aborted because the peer sent a message too slowly (the message deadline). */
  slowPeersCutOff = 0;
  /** Connections dropped at once: too many open from one address. */
  connectionsDropped = 0;
  /** Instances made durable and handed to the store handler. */
  instancesStored = 0;
  /** Instances answered with a failure status (write error, refused, handler failure/status), or aborted over the size cap. */
  instancesFailed = 0;
  /** Instances dropped because the association ended before they were answered (partial or not). */
  partialsDiscarded = 0;
  /** Bytes read from the network (PDU headers included). */
  bytesReceived = 0;
  /** C-STOREs whose data set arrived, not answered yet. */
  storesInFlight = 0;
  /** Milliseconds from a data set's last fragment to its C-STORE-RSP, most recent last. */
  private readonly latencies = new Float64Array(LATENCY_WINDOW);
  private latencyCount = 0;

  /** `onAcknowledged`: told each acknowledgement's latency (ms) as it is recorded. */
  constructor(private readonly onAcknowledged?: (ms: number) => void) {}

  /** Records an association rejected for `code`. */
  rejected(code: RejectionCode): void {
    this.associationsRejected[code]++;
  }

  get associationsRejectedTotal(): number {
    return Object.values(this.associationsRejected).reduce((a, b) => a + b, 0);
  }

  /** Records the time (ms) a C-STORE waited from its last data fragment until it was answered. */
  acknowledged(ms: number): void {
    this.latencies[this.latencyCount % LATENCY_WINDOW] = ms;
    this.latencyCount++;
    this.onAcknowledged?.(ms);
  }

  /** Records an error of ours (log-safe words, e.g. an error code), for lastError. */
  error(message: string): void {
    this.tracker.error(message);
  }

  /**
   * The receiver's status: counts (associations by outcome, instances, bytes, and the C-STORE
   * acknowledgement latency over the last 1024 answers: `ackLatencyMsP50`, `ackLatencyMsP95`,
   * `ackLatencyMsMax`), backlog = C-STOREs received and not answered yet.
   */
  report(details: Record<string, unknown>): ComponentStatus {
    const n = Math.min(this.latencyCount, LATENCY_WINDOW);
    const recent = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    const pct = (p: number) => (n === 0 ? 0 : round(recent[Math.min(n - 1, Math.floor(p * n))]!));
    const counts: Record<string, number> = {
      connections: this.connections,
      associationsOpen: this.associationsOpen,
      associationsAccepted: this.associationsAccepted,
      associationsReleased: this.associationsReleased,
      associationsAborted: this.associationsAborted,
      associationsRejected: this.associationsRejectedTotal,
    };
    for (const [code, count] of Object.entries(this.associationsRejected))
      counts[`associationsRejected.${code}`] = count;
    Object.assign(counts, {
      tlsRefused: this.tlsRefused,
      slowPeersCutOff: this.slowPeersCutOff,
      connectionsDropped: this.connectionsDropped,
      instancesStored: this.instancesStored,
      instancesFailed: this.instancesFailed,
      partialsDiscarded: this.partialsDiscarded,
      bytesReceived: this.bytesReceived,
      acknowledgements: this.latencyCount,
      ackLatencyMsP50: pct(0.5),
      ackLatencyMsP95: pct(0.95),
      ackLatencyMsMax: n === 0 ? 0 : round(recent[n - 1]!),
    });
    return this.tracker.report(counts, { backlog: this.storesInFlight, details });
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
