// "Log it once per peer": a peer that keeps failing the same way (a modality retrying a TLS
// handshake with the wrong CA every few seconds, a scanner) gets one log line, then one line an
// hour saying how many more there were, so the log stays readable and cannot be flooded.

/** What to do with one event: log it or not, and how many like it were not logged since the last. */
export interface PeerLogDecision {
  log: boolean;
  /** Events with this key that were counted and not logged since the previous logged one. */
  suppressed: number;
}

/** Keys kept at most; beyond, the oldest are forgotten (and would be logged again). */
const MAX_KEYS = 1024;

/**
 * Rate-limits log lines per key (see above): the first event of a key is logged, repeats within `windowMs`
 * are counted, and the next logged one carries that count. At most 1024 keys are kept (the least recently
 * logged is forgotten first). In memory only; throws nothing.
 */
export class OncePerPeer {
  private readonly seen = new Map<string, { loggedAt: number; suppressed: number }>();

  /** `windowMs`: how long repeats of a key stay silent after it was logged (default 1 h). */
  constructor(
    private readonly windowMs = 3_600_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records an event with `key` (e.g. address + reason) and says whether to log it. */
  note(key: string): PeerLogDecision {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry && t - entry.loggedAt < this.windowMs) {
      entry.suppressed++;
      return { log: false, suppressed: entry.suppressed };
    }
    const suppressed = entry?.suppressed ?? 0;
    this.seen.delete(key); // re-insert: the map's order is the order of last logging
    this.seen.set(key, { loggedAt: t, suppressed: 0 });
    if (this.seen.size > MAX_KEYS) this.seen.delete(this.seen.keys().next().value!);
    return { log: true, suppressed };
  }
}
