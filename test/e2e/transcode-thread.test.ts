// The conversion thread (src/transcode/conversionThread.ts) the forwarder converts on: the same
// bytes as converting on the calling thread, the engine's errors as they were (ConversionError
// and its kind, fs codes), a conversion abandoned part way or a worker that dies never breaking
// the next one, and a process that exits by itself with the thread started. Runs the built
// worker (dist/).
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { ConversionError } from '../../src/core/transcode/conversionError.js';
import { conversionThread } from '../../src/transcode/conversionThread.js';
import { inlineConverter, type Converter, type ConvertingSource } from '../../src/transcode/converter.js';
import { rmrf, tempDir, TEST_FILES, writeCorruptSecondFrame } from '../helpers/forward-helpers.js';
import { ensureBuilt, REPO } from '../helpers/serve-helpers.js';

ensureBuilt();
const workerUrl = new URL('../../dist/transcode/conversionWorker.js', import.meta.url);
const work = tempDir('thread');
afterAll(() => rmrf(work));

async function readAll(source: ConvertingSource): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source.chunks(1 << 20)) parts.push(c);
  return Buffer.concat(parts);
}

/** The error `promise` rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const e = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

describe('the conversion thread', () => {
  const converters: Converter[] = [];
  afterAll(async () => Promise.all(converters.map((c) => c.close())));
  const thread = (chunkBytes?: number): Converter => {
    const c = conversionThread({ workerUrl, chunkBytes });
    converters.push(c);
    return c;
  };

  it('yields the bytes the engine yields on the calling thread, in chunks of at most the size asked', async () => {
    const t = thread(64 * 1024);
    const inline = inlineConverter();
    for (const [file, ts] of [
      ['MR_small_RLE.dcm', EXPLICIT_VR_LE],
      ['MR_small_jp2klossless.dcm', IMPLICIT_VR_LE],
      ['SC_rgb_jpeg_dcmtk.dcm', EXPLICIT_VR_LE],
      ['MR_small_bigendian.dcm', IMPLICIT_VR_LE],
      ['image_dfl.dcm', EXPLICIT_VR_LE],
    ] as const) {
      const path = join(TEST_FILES, file);
      const source = await t.open(path, ts);
      expect(source.transferSyntaxUid).toBe(ts);
      expect(source.kind, file).toBe(/RLE|jp2k|jpeg/.test(file) ? 'decode' : 'byte-level');
      const chunks: Buffer[] = [];
      for await (const c of source.chunks(1 << 20)) chunks.push(c);
      expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(64 * 1024);
      const expected = await readAll(await inline.open(path, ts));
      expect(expected.length, file).toBeGreaterThan(1000);
      expect(Buffer.concat(chunks).equals(expected), file).toBe(true);
    }
  });

  it('rejects as the engine does: ConversionError with its kind, fs errors with their code', async () => {
    const t = thread();
    const unsupported = await rejection(t.open(join(TEST_FILES, 'CT_small.dcm'), '1.2.840.10008.1.2.4.50'));
    expect(unsupported).toBeInstanceOf(ConversionError);
    expect((unsupported as ConversionError).kind).toBe('unsupported');
    expect(unsupported.message).toMatch(/^cannot convert to 1\.2\.840\.10008\.1\.2\.4\.50/);

    const missing = await rejection(t.open(join(work, 'gone.dcm'), EXPLICIT_VR_LE));
    expect(missing).not.toBeInstanceOf(ConversionError);
    expect((missing as NodeJS.ErrnoException).code).toBe('ENOENT');

    // A corrupt frame: open() succeeds (the headers are fine), reading fails part way.
    const source = await t.open(writeCorruptSecondFrame(work), EXPLICIT_VR_LE);
    const partWay = await rejection(readAll(source));
    expect(partWay).toBeInstanceOf(ConversionError);
    expect((partWay as ConversionError).kind).toBe('corrupt');
    expect(partWay.message).toMatch(/^frame 2 of 2: rle data cannot be decoded \(.+\)$/);

    // The thread goes on.
    expect((await readAll(await t.open(join(TEST_FILES, 'MR_small_RLE.dcm'), EXPLICIT_VR_LE))).length).toBeGreaterThan(
      8192,
    );
  });

  it('a conversion abandoned part way, or under way when the converter closes, leaves the next one whole', async () => {
    const t = thread(4096);
    const expected = await readAll(await inlineConverter().open(join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE));
    const abandoned = await t.open(join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE);
    let n = 0;
    for await (const c of abandoned.chunks(4096)) {
      expect(c.length).toBeGreaterThan(0);
      if (++n === 3) break; // as the SCU does when the association fails
    }
    expect(await readAll(await t.open(join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE))).toEqual(expected);

    const underWay = await t.open(join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE);
    const it = underWay.chunks(4096)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await t.close();
    const stopped = await rejection(
      (async () => {
        for (;;) if ((await it.next()).done) return;
      })(),
    );
    expect(stopped).not.toBeInstanceOf(ConversionError); // not the file's fault: retryable
    expect(await readAll(await t.open(join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE))).toEqual(expected);
  });

  it('a worker that dies fails the conversion under way with a plain Error; the next one starts a new worker', async () => {
    const t = conversionThread({ workerUrl: new URL('../fixtures/crashingConversionWorker.mjs', import.meta.url) });
    converters.push(t);
    const crash = join(work, 'crash-me.dcm');
    copyFileSync(join(TEST_FILES, 'MR_small_RLE.dcm'), crash);
    const e = await rejection(t.open(crash, EXPLICIT_VR_LE));
    expect(e).not.toBeInstanceOf(ConversionError);
    expect(e.message).toBe('the conversion thread exited (code 3)');
    const again = await readAll(await t.open(join(TEST_FILES, 'MR_small_RLE.dcm'), EXPLICIT_VR_LE));
    expect(again.length).toBeGreaterThan(8192);
  });

  it('does not keep a process alive once no reply is awaited, even with a source and the converter left open', () => {
    const out = execFileSync(
      process.execPath,
      [join(REPO, 'test', 'fixtures', 'convertAndLeave.mjs'), join(TEST_FILES, 'JPEG2000.dcm'), EXPLICIT_VR_LE],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(out).toMatch(/^done \d+\n$/); // it exited on its own (before the timeout)
  });
});
