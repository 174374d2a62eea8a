// `batch --forward`: after a run, queue every file it wrote for the research PACS (in the same
// SQLite state the node uses) and send them now. What cannot be delivered within the wait stays
// queued: a node on the same state, or the next batch run, sends it later.
import { parseDestination } from '../forward/destination.js';
import { Forwarder } from '../forward/forwarder.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../state/stateStore.js';

export interface BatchForwardResult {
  destination: string;
  pending: number;
  delivered: number;
  dead: number;
}

/**
 * Queues every path of `files` (the written output files, as the queue stores them) for each destination
 * (`AET@host:port`, forward/destination.ts) in `state`, sends them with a Forwarder (PS3.4 Storage SCU) as
 * `callingAet`, and waits up to `waitMs` ms for the destinations' queues to empty. Resolves with the counts
 * of each destination's whole queue afterwards (items of earlier runs included; a destination with no item at
 * all is not listed). Rejects with DestinationError for a malformed destination, and with the state's errors.
 */
export async function forwardBatch(
  state: StateStore,
  files: string[],
  destinations: string[],
  callingAet: string,
  logger: Logger,
  waitMs: number,
): Promise<BatchForwardResult[]> {
  const dests = destinations.map(parseDestination);
  const keys = dests.map((d) => d.name); // queue keys: the normalized strings
  await state.enqueueForwards(files.flatMap((filePath) => keys.map((destination) => ({ filePath, destination }))));
  const forwarder = new Forwarder({ state, destinations: dests, callingAet, logger, idlePollMs: 500 });
  await forwarder.start();
  const deadline = Date.now() + waitMs;
  const open = async () =>
    (await state.forwardCounts())
      .filter((c) => keys.includes(c.destination))
      .reduce((n, c) => n + c.pending + c.inFlight, 0);
  while ((await open()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  await forwarder.stop();
  return (await state.forwardCounts())
    .filter((c) => keys.includes(c.destination))
    .map((c) => ({
      destination: c.destination,
      pending: c.pending + c.inFlight,
      delivered: c.delivered,
      dead: c.dead,
    }));
}
