// The progress bar of `dicom-deid retrieve` on a terminal: one line on stderr, redrawn at most
// five times a second, for a job run here or followed on a running node.
import type { RetrieveProgress } from '../retrieve/retrieveRun.js';

/** A one-line progress bar on stderr (a terminal only). */
export function progressBar(enabled: boolean): { update(p: RetrieveProgress): void; finish(): void } {
  let last = 0;
  let shown = false;
  return {
    update(p) {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 200 && p.phase !== 'finished') return;
      last = now;
      const width = 24;
      const [done, total, what] =
        p.phase === 'query' || p.phase === 'preflight'
          ? [p.rowsQueried, p.rowsTotal, 'rows queried']
          : [p.studiesDone, p.studiesTotal, 'studies'];
      const frac = total === 0 ? 0 : done / total;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '-');
      const inst = p.instancesExpected > 0 ? `, instances ${p.instancesFiled}/${p.instancesExpected}` : '';
      const wait = p.waitingFor ? ` | waiting for ${p.waitingFor}` : p.moving > 0 ? ` | moving ${p.moving}` : '';
      const line = `[${bar}] ${what} ${done}/${total}${inst}${wait}`;
      process.stderr.write('\r' + line.slice(0, (process.stderr.columns || 100) - 1) + '\x1b[K');
      shown = true;
    },
    finish() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}
