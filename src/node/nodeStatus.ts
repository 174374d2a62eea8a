// The node's status: its long-running parts' ComponentStatus (src/status.ts), gathered, with one
// overall state. Plain, JSON-serialisable data without identifiers; the HTTP status page and
// /metrics (next issue) serve it as it is.
import type { ComponentState, ComponentStatus } from '../status.js';

/** The node's components by name; a part not started (or not configured) is absent. */
export interface NodeComponents {
  receiver?: ComponentStatus;
  spool?: ComponentStatus;
  processing?: ComponentStatus;
  mapping?: ComponentStatus;
  /** Only when forward destinations are configured. */
  forwarder?: ComponentStatus;
  /** Retrieve jobs run by the node (src/retrieve/retrieveService.ts). */
  retrieve?: ComponentStatus;
}

export interface NodeStatus {
  /** The node's overall state, from its components' (see overallState). */
  state: ComponentState;
  /** ISO 8601 times: the node was created; this status was taken. */
  startedAt: string;
  at: string;
  components: NodeComponents;
}

/**
 * One state for the node: 'failed' when any component failed, else 'degraded' when any is
 * degraded; 'stopping' while any is stopping or some (not all) have stopped; 'starting' while any
 * is starting (or none reported yet); 'stopped' when all have stopped; else 'running'.
 */
export function overallState(components: readonly ComponentStatus[]): ComponentState {
  const states = new Set(components.map((c) => c.state));
  if (states.has('failed')) return 'failed';
  if (states.has('degraded')) return 'degraded';
  if (states.has('stopping') || (states.has('stopped') && states.size > 1)) return 'stopping';
  if (states.has('starting') || states.size === 0) return 'starting';
  if (states.has('stopped')) return 'stopped';
  return 'running';
}

/** Gathers the components' statuses into the node's (`now`: for tests). */
export function nodeStatus(components: NodeComponents, startedAt: string, now = new Date()): NodeStatus {
  const present = Object.values(components).filter((c): c is ComponentStatus => c !== undefined);
  return { state: overallState(present), startedAt, at: now.toISOString(), components };
}
