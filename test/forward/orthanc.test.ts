// Forwarding to a real Orthanc server as the research PACS, verified through its REST API.
// Skipped only when the Orthanc binary is absent.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDestination } from '../../src/forward/destination.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { readP10Header } from '../../src/dimse/part10.js';
import {
  dataSetBytes,
  F,
  memoryLogger,
  ORTHANC_BIN,
  rmrf,
  startOrthanc,
  stopAllPeers,
  tempDir,
  waitFor,
} from '../helpers/forward-helpers.js';

dimse.log.setLevel('silent');

/** dcmdump of the data set, full values, without length annotations and SQ/item framing lines. */
function normalizedDump(path: string): string[] {
  const out = execFileSync('dcmdump', ['+L', path], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out
    .split('\n')
    .filter((l) => /^\s*\(/.test(l) && !/^\s*\(0002,/.test(l))
    .filter((l) => !/\(fffe,e0dd\)|\(fffe,e00d\)/.test(l))
    .map((l) => l.replace(/\s*#.*$/, '').replace(/(Sequence|Item) with (explicit|undefined) length/, '$1'));
}

describe.skipIf(!ORTHANC_BIN)(
  `forwarding to Orthanc${ORTHANC_BIN ? '' : ' (skipped: Orthanc binary not installed)'}`,
  () => {
    let dir = '';
    let httpPort = 0;
    let dicomPort = 0;

    beforeAll(async () => {
      dir = tempDir('orthanc');
      ({ httpPort, dicomPort } = await startOrthanc(dir));
    });

    afterAll(async () => {
      await stopAllPeers();
      if (dir) rmrf(dir);
    });

    it('delivers queued files; Orthanc lists them with identical data sets', async () => {
      const db = await openStateStore(':memory:', { create: true });
      const dest = parseDestination(`ORTHANC@127.0.0.1:${dicomPort}`);
      const key = dest.name;
      const files = [F.ctExplicit, F.mrImplicit, F.jpeg2000];
      await db.enqueueForwards(files.map((f) => ({ filePath: f, destination: key })));
      // pydicom's rtplan.dcm has a file-meta SOP Instance UID different from the data set's: Orthanc
      // refuses it with 0xA900, which must end the item dead at once (permanent), not retried.
      const [bad] = (await db.enqueueForwards([{ filePath: F.rtplanImplicit, destination: key }])).map((r) => r.id);
      const logger = memoryLogger();
      const fwd = new Forwarder({
        state: db,
        destinations: [dest],
        callingAet: 'DEID',
        logger,
        backoff: { initialMs: 200, maxMs: 1000 },
      });
      try {
        await fwd.start();
        fwd.kick();
        const done = async () =>
          (await db.forwardCounts())[0]?.delivered === files.length && (await db.forwardItem(bad!))?.state === 'dead';
        await waitFor(done, 30_000, 'delivered to Orthanc').catch(async (e: Error) => {
          const rows = await db.forwardItems(key);
          throw new Error(`${e.message}: ${JSON.stringify({ rows, log: logger.lines })}`);
        });
        await fwd.stop();
        expect(await db.forwardItem(bad!)).toMatchObject({ state: 'dead', attempts: 1, lastStatus: 0xa900 });
        expect((await db.forwardItem(bad!))!.lastError).toMatch(/0xA900/);
      } finally {
        await fwd.stop();
        await db.close();
      }

      const base = `http://127.0.0.1:${httpPort}`;
      const ids = (await (await fetch(`${base}/instances`)).json()) as string[];
      expect(ids).toHaveLength(files.length);
      const bySop = new Map<string, string>();
      for (const id of ids) {
        const tags = (await (await fetch(`${base}/instances/${id}/simplified-tags`)).json()) as Record<string, string>;
        bySop.set(tags['SOPInstanceUID']!, id);
      }
      for (const f of files) {
        const h = readP10Header(f);
        const id = bySop.get(h.sopInstanceUid);
        expect(id, f).toBeDefined();
        const stored = Buffer.from(await (await fetch(`${base}/instances/${id}/file`)).arrayBuffer());
        const p = join(dir, `got-${id}.dcm`);
        writeFileSync(p, stored);
        expect(readP10Header(p).transferSyntaxUid, f).toBe(h.transferSyntaxUid);
        if (f === F.jpeg2000) {
          // Orthanc (DCMTK) re-encodes sequences with explicit lengths when it stores; compare the
          // content element by element instead (byte identity on the wire is proven by the storescp +B test).
          expect(normalizedDump(f).length).toBeGreaterThan(40);
          expect(normalizedDump(p), f).toEqual(normalizedDump(f));
        } else {
          expect(dataSetBytes(p).equals(dataSetBytes(f)), `data set bytes of ${f}`).toBe(true);
        }
      }
      const warnings = logger.lines.filter((l) => l.level === 'warn' || l.level === 'error');
      expect(warnings).toHaveLength(1); // the dead rtplan item, once
      expect(warnings[0]!.msg).toMatch(/rtplan\.dcm\) is dead: error 0xA900/);
    });
  },
);
