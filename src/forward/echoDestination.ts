// C-ECHO to a forward destination (PS3.7 9.1.5): "is the research PACS there, and does it accept
// us?" through the shared SCU (src/dimse/scu), with the same AE titles and address the forwarder
// uses, so a success here means the forwarder's associations will be accepted too.
import { echo } from '../dimse/scu/cEcho.js';
import { destinationLabel, type Destination } from './destination.js';

export interface EchoOutcome {
  ok: boolean;
  /** C-ECHO-RSP status (0x0000 = success), when an answer came. */
  status?: number;
  /** Round trip from connecting to the answer (ms). */
  ms?: number;
  /** Why it failed, in words: the association's reason (refused, rejected, timed out...). */
  error?: string;
}

/**
 * Sends one C-ECHO to `dest` as `dest.callingAeTitle ?? callingAet`; never throws. Timeouts:
 * connect 10 s, association answer 10 s, overall 20 s (a person is waiting for the answer).
 */
export async function echoDestination(dest: Destination, callingAet: string): Promise<EchoOutcome> {
  try {
    const { status, ms } = await echo({
      host: dest.host,
      port: dest.port,
      callingAeTitle: dest.callingAeTitle ?? callingAet,
      calledAeTitle: dest.aeTitle,
      peerLabel: destinationLabel(dest),
      timeouts: { connectMs: 10_000, associateMs: 10_000, silenceMs: 10_000, overallMs: 20_000 },
    });
    return { ok: status === 0, status, ms: Math.round(ms * 10) / 10 };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0] };
  }
}
