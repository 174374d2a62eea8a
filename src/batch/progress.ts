// A throttled one-line progress bar on stderr, only when stderr is a TTY.
/**
 * The progress bar: `[####----] done/total pct files/s counts`, redrawn at most every `intervalMs` ms,
 * clipped to the terminal's width. Does nothing when stderr is not a TTY (or `enabled` is false).
 */
export class Progress {
  private last = 0;
  private readonly start = Date.now();
  private shown = false;

  /**
   * `total`: files expected; `enabled`: draw at all (default: stderr is a TTY); `intervalMs`: least time
   * between redraws (default 150 ms).
   */
  constructor(
    private readonly total: number,
    private readonly enabled: boolean = process.stderr.isTTY === true,
    private readonly intervalMs = 150,
  ) {}

  /**
   * Redraws with `done` files of `total` and the non-zero `counts` (status -> files); skipped when the last
   * redraw is under `intervalMs` old unless `force`.
   */
  update(done: number, counts: Record<string, number>, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    const width = 28;
    const frac = this.total === 0 ? 1 : done / this.total;
    const filled = Math.round(frac * width);
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? Math.round(done / secs) : 0;
    const extra = Object.entries(counts)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.total} ${Math.floor(frac * 100)}% ${rate} files/s ${extra}`;
    const cols = process.stderr.columns || 100;
    process.stderr.write('\r' + line.slice(0, cols - 1) + '\x1b[K');
    this.shown = true;
  }

  /** Clears the bar's line, if it was drawn. */
  finish(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }
}
