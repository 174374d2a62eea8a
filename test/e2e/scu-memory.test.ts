// Memory while forwarding a large instance (issue 15): the C-STORE SCU reads the data set in
// bounded chunks while it sends, so a process sending a 64 MiB instance must not grow by anything
// near 64 MiB. Measured in a child process (its peak resident set, /proc/self/status VmHWM),
// against storescp as the receiver, which must get the data set byte for byte.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { readP10Header } from '../../src/dimse/part10.js';
import {
  F,
  freePort,
  TEST_FILES,
  receivedBySopInstance,
  rmrf,
  startStorescp,
  stopAllPeers,
  tempDir,
  writeLargeInstance,
} from '../helpers/forward-helpers.js';
import { ensureBuilt, REPO } from '../helpers/serve-helpers.js';

const MiB = 1 << 20;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await stopAllPeers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** SHA-256 of a file's bytes from `offset` on, streamed. */
async function hashFrom(path: string, offset: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: offset })) h.update(chunk as Buffer);
  return h.digest('hex');
}

it('sending a 64 MiB instance raises the peak RSS by far less than the instance', async () => {
  ensureBuilt();
  const dir = tempDir('scu-mem');
  cleanups.push(() => rmrf(dir));
  const out = join(dir, 'received');
  execFileSync('mkdir', ['-p', out]);
  const large = join(dir, 'large.dcm');
  const uid = writeLargeInstance(large, 64 * MiB, '1.2.826.0.1.3680043.8.498.6464.1');
  const port = await freePort();
  await startStorescp(['+B', '-aet', 'RESEARCH'], port, out);

  const line = execFileSync(
    process.execPath,
    [join(REPO, 'test', 'fixtures', 'scuMemoryChild.mjs'), String(port), F.ctExplicit, large],
    { encoding: 'utf8', timeout: 120_000 },
  );
  const r = JSON.parse(line) as {
    warm: string;
    sent: string;
    rssBefore: number;
    peakBefore: number;
    peakAfterSend: number;
    peakAfterControl: number;
    controlBytes: number;
  };
  expect(r.warm).toBe('delivered');
  expect(r.sent).toBe('delivered');

  // It arrived whole: the received data set is the file's, byte for byte.
  const got = receivedBySopInstance(out).get(uid);
  expect(got).toHaveLength(1);
  const sentFrom = readP10Header(large).dataSetOffset;
  const gotFrom = readP10Header(got![0]!.path).dataSetOffset;
  expect(await hashFrom(got![0]!.path, gotFrom)).toBe(await hashFrom(large, sentFrom));

  // The measurement can see an instance held in memory: the control (the file read whole) lifts
  // the peak by at least the instance's size.
  expect(r.controlBytes).toBeGreaterThan(64 * MiB);
  expect(r.peakAfterControl - r.rssBefore).toBeGreaterThanOrEqual(64 * MiB);
  // Sending it did not: the peak rose by less than a quarter of the instance (a few chunks of
  // 256 KiB and the socket's buffer are expected).
  const growth = r.peakAfterSend - r.rssBefore;
  console.log(`peak RSS growth while sending 64 MiB: ${(growth / MiB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(16 * MiB);
});

it('sending a 128 MiB multi-frame RLE instance decoded on the way raises the peak RSS by far less than it', async () => {
  ensureBuilt();
  const dir = tempDir('scu-mem-convert');
  cleanups.push(() => rmrf(dir));
  const out = join(dir, 'received');
  execFileSync('mkdir', ['-p', out]);
  // 256 frames of 512x512x16 bits of noise (128 MiB), compressed by dcmtk (the RLE is as large).
  const native = join(dir, 'native.dcm');
  const rle = join(dir, 'rle.dcm');
  execFileSync(process.execPath, [join(REPO, 'scripts', 'make-multiframe.mjs'), native, '--frames', '256']);
  execFileSync('dcmcrle', [native, rle]);
  const port = await freePort();
  await startStorescp(['+B', '+xi', '-aet', 'RESEARCH'], port, out); // implicit VR LE only
  const line = execFileSync(
    process.execPath,
    [
      join(REPO, 'test', 'fixtures', 'scuMemoryChild.mjs'),
      String(port),
      join(TEST_FILES, 'MR_small_RLE.dcm'),
      rle,
      'convert',
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  const r = JSON.parse(line) as {
    warm: string;
    sent: string;
    sentReason?: string;
    rssBefore: number;
    peakAfterSend: number;
  };
  expect(r.warm).toBe('delivered');
  expect(r.sent, r.sentReason).toBe('delivered');

  // It arrived decoded, in implicit VR LE: the pixel data received is the native original's.
  const uid = readP10Header(rle).sopInstanceUid;
  const got = receivedBySopInstance(out).get(uid);
  expect(got).toHaveLength(1);
  expect(got![0]!.ts).toBe('1.2.840.10008.1.2');
  const same = execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      'import sys, pydicom; a, b = (pydicom.dcmread(p).PixelData for p in sys.argv[1:]); print(len(a), a == b)',
      native,
      got![0]!.path,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  expect(same.trim()).toBe(`${128 * MiB} True`);

  // The process (main thread and conversion worker) grew by a fraction of the instance: a frame
  // being decoded, a few 1 MiB chunks, the codec's heap, and chunk buffers the garbage collector
  // has not freed yet (measured: 37 MiB for 32 MiB, 42 MiB for 128 MiB, 57 MiB for 1 GiB).
  const growth = r.peakAfterSend - r.rssBefore;
  console.log(`peak RSS growth while converting and sending 128 MiB: ${(growth / MiB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MiB);
});
