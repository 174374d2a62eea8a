// `batch --forward`: after a run, queue every file it wrote for the research PACS (in the same
// SQLite state the node uses) and send them now. What cannot be delivered within the wait stays
// queued: a node on the same state, or the next batch run, sends it later.
import { counts, enqueue, ensureSchema } from '../forward/forwardQueue.js';
import { formatDestination, parseDestination } from '../forward/destination.js';
import { Forwarder } from '../forward/forwarder.js';
import type { Logger } from '../log.js';
import type { StateDb } from '../state/stateDb.js';

export interface BatchForwardResult {
  destination: string;
  pending: number;
  delivered: number;
  dead: number;
}

export async function forwardBatch(
  state: StateDb,
  files: string[],
  destinations: string[],
  callingAet: string,
  logger: Logger,
  waitMs: number,
): Promise<BatchForwardResult[]> {
  const dests = destinations.map(parseDestination);
  const keys = dests.map(formatDestination);
  const db = state.db;
  ensureSchema(db);
  db.transaction(() => {
    for (const f of files) for (const destination of keys) enqueue(db, { filePath: f, destination });
  }).immediate();
  const forwarder = new Forwarder({ db, destinations: dests, callingAet, logger, idlePollMs: 500 });
  forwarder.start();
  const deadline = Date.now() + waitMs;
  const open = () =>
    counts(db)
      .filter((c) => keys.includes(c.destination))
      .reduce((n, c) => n + c.pending + c.inFlight, 0);
  while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  await forwarder.stop();
  return counts(db)
    .filter((c) => keys.includes(c.destination))
    .map((c) => ({
      destination: c.destination,
      pending: c.pending + c.inFlight,
      delivered: c.delivered,
      dead: c.dead,
    }));
}
