// AE titles outside their repertoire (PS3.5 6.2: the Default Character Repertoire without
// backslash and control characters) from a raw A-ASSOCIATE-RQ against a running node: rejected
// as "calling AE title not recognized" (A-ASSOCIATE-RJ, permanent, service user, reason 3), and
// logged escaped (printable ASCII, others as \xNN), never with the peer's raw bytes. Found by a
// new-user trial: such titles were accepted and their C1 control bytes reached the log.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../helpers/forward-helpers.js';
import { CT_STORAGE, EXPLICIT_LE, associateRq, pdu, rawClient } from '../helpers/raw-dicom.js';
import { startNode, stopAllNodes, writeMappingCsv, type NodeProc } from '../helpers/serve-helpers.js';

let node: NodeProc;

beforeAll(async () => {
  const root = tempDir('aet');
  const csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN7101', accession: 'ACC7101', researchId: 'RS_71' }]);
  node = await startNode({ dir: join(root, 'node'), csv });
}, 60_000);

afterAll(async () => {
  await stopAllNodes();
});

/** Sends an A-ASSOCIATE-RQ (titles as latin1 bytes) and returns the answer PDU; releases an AC. */
async function associate(calling: string, called = 'DEID'): Promise<Buffer> {
  const c = rawClient(node.port);
  c.sock.write(associateRq(calling, called, CT_STORAGE, EXPLICIT_LE));
  await c.waitBytes(6);
  await c.waitBytes(6 + c.received().readUInt32BE(2));
  const answer = c.received();
  if (answer[0] === 0x02) c.sock.write(pdu(0x05, Buffer.alloc(4)));
  else c.sock.end();
  await c.closed;
  return answer;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The A-ASSOCIATE-RJ's result, source and reason (PS3.8 9.3.4). */
function rejection(answer: Buffer): { type: number; result: number; source: number; reason: number } {
  return { type: answer[0]!, result: answer[7]!, source: answer[8]!, reason: answer[9]! };
}

/** The node's log file lines (JSON), besides its console (node.logs()). */
function logFile(): string {
  const dir = node.paths.logDir;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

describe('calling AE titles outside the AE repertoire', () => {
  it('a printable ASCII title is accepted (A-ASSOCIATE-AC)', async () => {
    expect((await associate('GOOD_SCU'))[0]).toBe(0x02);
    await node.waitForLog(/association accepted.*GOOD_SCU/);
  });

  it('C1 control bytes, non-ASCII letters and a backslash: rejected, permanent, reason 3; logged escaped', async () => {
    const titles: [string, string][] = [
      ['CT\x85\x9b31m1', 'CT\\x85\\x9b31m1'], // NEL and CSI: C1 controls
      ['CT_\xc9TAGE', 'CT_\\xc9TAGE'], // É in latin1
      ['A\\B', 'A\\x5cB'], // the value separator
      ['MR\x07ONE', 'MR\\x07ONE'], // BEL: a C0 control
    ];
    for (const [title, escaped] of titles) {
      expect({ title: escaped, rj: rejection(await associate(title)) }).toEqual({
        title: escaped,
        rj: { type: 0x03, result: 1, source: 1, reason: 3 },
      });
      await node.waitForLog(
        new RegExp(
          escapeRegExp(
            'warn: association rejected reason="calling AE title not recognized: characters outside the DICOM ' +
              `default repertoire" callingAet=${escaped} calledAet=DEID remoteAddress=127.0.0.1`,
          ),
        ),
      );
      // The log file (JSON lines: the backslash escaped once more).
      await waitFor(
        () => logFile().includes(`"callingAet":${JSON.stringify(escaped)}`),
        5000,
        `${escaped} in the log file`,
      );
    }
    // Neither the console nor the log file carries a control byte or the non-ASCII letter.
    for (const text of [node.logs(), logFile()]) {
      expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
      expect(text).not.toContain('\xc9');
    }
  });

  it('a called AE title with control bytes is rejected as not recognized (reason 7), logged escaped', async () => {
    expect(rejection(await associate('GOOD_SCU', 'DE\x9bID'))).toEqual({ type: 0x03, result: 1, source: 1, reason: 7 });
    await node.waitForLog(
      /association rejected reason="called AE title not recognized" callingAet=GOOD_SCU calledAet=DE\\x9bID /,
    );
    expect(node.logs()).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  });
});
