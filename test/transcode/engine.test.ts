// The conversion engine's contract for the forwarder: what it offers, bounded chunks, typed
// one-line failures (before any byte for what the headers show, part way for a corrupt frame),
// and a codec that recovers after a failure.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFileMeta, readFileMeta } from '../../src/core/dicom/fileMeta.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import {
  ConversionError,
  conversionsFor,
  convertInstance,
  writeConvertedFile,
} from '../../src/transcode/convertInstance.js';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const work = mkdtempSync(join(tmpdir(), 'transcode-engine-'));
const samples = join(work, 'samples');

async function collect(path: string, ts: string, chunkBytes?: number): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of (await convertInstance(path, ts, { chunkBytes })).dataSet()) chunks.push(c);
  return chunks;
}

/** The error `promise` rejects with (fails the test when it resolves). */
async function failure(promise: Promise<unknown>): Promise<ConversionError> {
  const e = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConversionError);
  return e as ConversionError;
}

beforeAll(() => {
  execFileSync('/usr/bin/python3', ['test/fixtures/make_transcode_samples.py', samples]);
}, 120_000);

describe('conversionsFor', () => {
  it('offers explicit then implicit VR little endian for what we can read, never the source itself', () => {
    expect(conversionsFor('1.2.840.10008.1.2.4.50')).toEqual([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    expect(conversionsFor('1.2.840.10008.1.2.2')).toEqual([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    expect(conversionsFor('1.2.840.10008.1.2.1.99')).toEqual([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    expect(conversionsFor(EXPLICIT_VR_LE)).toEqual([IMPLICIT_VR_LE]);
    expect(conversionsFor(IMPLICIT_VR_LE)).toEqual([EXPLICIT_VR_LE]);
    // MPEG-2, HEVC, HTJ2K: nothing (sent as stored, or dead-lettered by the forwarder).
    expect(conversionsFor('1.2.840.10008.1.2.4.100')).toEqual([]);
    expect(conversionsFor('1.2.840.10008.1.2.4.201')).toEqual([]);
  });
});

describe('convertInstance', () => {
  it('yields chunks no larger than asked, whose bytes do not depend on the chunk size', async () => {
    const file = join(samples, 'jpeg_sv1_16s_fragments_no_bot.dcm');
    const small = await collect(file, EXPLICIT_VR_LE, 4096);
    const large = await collect(file, EXPLICIT_VR_LE);
    expect(small.length).toBeGreaterThan(5);
    expect(Math.max(...small.map((c) => c.length))).toBeLessThanOrEqual(4096);
    expect(Buffer.concat(small).equals(Buffer.concat(large))).toBe(true);
  });

  it('implicit -> explicit -> implicit gives back the same bytes, at every depth', async () => {
    // Implicit VR drops private VRs (they come back as UN), so the round trip starts implicit.
    for (const file of [
      `${TEST_FILES}/rtplan.dcm`, // nested sequences, defined and undefined lengths
      `${TEST_FILES}/priv_SQ.dcm`,
      join(samples, 'implicit_rgb.dcm'),
      join(samples, 'big_endian_16s.dcm'),
      join(samples, 'rle_16s.dcm'),
    ]) {
      const implicit = Buffer.concat(await collect(file, IMPLICIT_VR_LE));
      const explicitFile = join(work, 'roundtrip.ele.dcm');
      await writeConvertedFile(await convertInstance(file, EXPLICIT_VR_LE), explicitFile);
      const back = Buffer.concat(await collect(explicitFile, IMPLICIT_VR_LE));
      expect(back.equals(implicit), file).toBe(true);
    }
  });

  it('refuses an unsupported target and an unsupported source with a one-line reason', async () => {
    const jpeg = await failure(convertInstance(`${TEST_FILES}/CT_small.dcm`, '1.2.840.10008.1.2.4.50'));
    expect(jpeg.kind).toBe('unsupported');
    expect(jpeg.message).toMatch(/^cannot convert to 1\.2\.840\.10008\.1\.2\.4\.50/);
    // A file stored in a syntax we do not decode (MPEG-2 label on a copy of CT_small).
    const mpeg = join(work, 'mpeg.dcm');
    writeFileSync(mpeg, relabel(readFileSync(`${TEST_FILES}/CT_small.dcm`), '1.2.840.10008.1.2.4.100'));
    const e = await failure(convertInstance(mpeg, EXPLICIT_VR_LE));
    expect(e.kind).toBe('unsupported');
    expect(e.message).toBe('cannot convert from transfer syntax 1.2.840.10008.1.2.4.100');
  });

  it('fails part way on a corrupt frame with a reason naming it, and the codec recovers', async () => {
    // Frame 2 of 3 of a JPEG-LS instance overwritten with noise (after its SOI marker).
    const file = join(samples, 'jpls_lossless_16s.dcm');
    const bytes = Buffer.from(readFileSync(file));
    const fragments = fragmentOffsets(bytes);
    expect(fragments.length).toBe(3);
    const [start, length] = fragments[1]!;
    for (let i = start + 2; i < start + length; i++) bytes[i] = (i * 73) & 0xff;
    const damaged = join(work, 'damaged.dcm');
    writeFileSync(damaged, bytes);
    const converted = await convertInstance(damaged, EXPLICIT_VR_LE); // the headers are fine
    const chunks: Buffer[] = [];
    const e = await failure(
      (async () => {
        for await (const c of converted.dataSet()) chunks.push(c);
      })(),
    );
    expect(e.kind).toBe('corrupt');
    expect(e.message).toMatch(/^frame 2 of 3: jpeg-ls data cannot be decoded \(.+\)$/);
    expect(chunks.length).toBeGreaterThan(0); // frame 1 was already on its way
    // The next instance decodes (the WebAssembly module was reloaded).
    const next = Buffer.concat(await collect(join(samples, 'jpls_lossless_16u.dcm'), EXPLICIT_VR_LE));
    expect(next.length).toBeGreaterThan(50 * 40 * 2 * 2);
  });

  it('refuses before any byte when the first frame contradicts the data set', async () => {
    // Rows says 65 where the codestream says 64.
    const file = join(samples, 'j2k_lossless_16s.dcm');
    const bytes = Buffer.from(readFileSync(file));
    const rows = bytes.indexOf(Buffer.from([0x28, 0x00, 0x10, 0x00, 0x55, 0x53, 0x02, 0x00]));
    expect(rows).toBeGreaterThan(0);
    bytes.writeUInt16LE(65, rows + 8);
    const bad = join(work, 'rows.dcm');
    writeFileSync(bad, bytes);
    const e = await failure(convertInstance(bad, IMPLICIT_VR_LE));
    expect(e.kind).toBe('corrupt');
    expect(e.message).toBe('the first frame is 72x64x1 (columns x rows x samples) but the data set says 72x65x1');
  });
});

/** `file` with its data set under a file meta that says transfer syntax `uid`. */
function relabel(file: Buffer, uid: string): Buffer {
  const meta = readFileMeta(file, file.length);
  if (meta === 'need-more') throw new Error('short file');
  return Buffer.concat([
    buildFileMeta({ sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid, transferSyntaxUid: uid }),
    file.subarray(meta.dataSetOffset),
  ]);
}

/** [offset, length] of each fragment after the Basic Offset Table of the top-level Pixel Data. */
function fragmentOffsets(file: Buffer): [number, number][] {
  let pos = file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42]));
  pos += 12;
  pos += 8 + file.readUInt32LE(pos + 4); // Basic Offset Table
  const out: [number, number][] = [];
  while (file.readUInt32LE(pos) === 0xe000fffe) {
    const len = file.readUInt32LE(pos + 4);
    out.push([pos + 8, len]);
    pos += 8 + len;
  }
  return out;
}

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(work, { recursive: true, force: true }));
