// Memory stays bounded whatever the instance's size: a 64 MiB multi-frame instance, native big
// endian and RLE (compressed by dcmtk's dcmcrle), converts in a process whose peak RSS is far
// below the instance's size. Runs the built engine (dist/) in a child process per conversion.
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, encodeText, encodeRaw } from '../../src/core/dicom/encoder.js';
import { buildFileMeta } from '../../src/core/dicom/fileMeta.js';
import {
  EXPLICIT_BE,
  EXPLICIT_LE,
  EXPLICIT_VR_BE,
  EXPLICIT_VR_LE,
  IMPLICIT_VR_LE,
  type Encoding,
} from '../../src/core/dicom/transferSyntax.js';

const ROWS = 512;
const COLUMNS = 512;
const FRAMES = 128; // 128 x 512 x 512 x 2 bytes = 64 MiB
const FRAME_BYTES = ROWS * COLUMNS * 2;
const work = mkdtempSync(join(tmpdir(), 'transcode-memory-'));
// 190 MB of instances per run: never left behind (a full disk fails other suites).
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The sample at (frame, i) of the generated image: a pattern RLE cannot shrink much. */
const sample = (f: number, i: number): number => (i * 7 + f * 131 + ((i * i) >>> 9)) & 0xffff;

async function writeInstance(path: string, ts: string, enc: Encoding): Promise<void> {
  const out = createWriteStream(path);
  const us = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    if (enc.littleEndian) b.writeUInt16LE(n);
    else b.writeUInt16BE(n);
    return b;
  };
  const sop = '2.25.1400000000000000000000000000000001';
  out.write(buildFileMeta({ sopClassUid: '1.2.840.10008.5.1.4.1.1.7.3', sopInstanceUid: sop, transferSyntaxUid: ts }));
  for (const b of [
    encodeText(0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.7.3', enc),
    encodeText(0x00080018, 'UI', sop, enc),
    encodeText(0x00100010, 'PN', 'Doe^Big', enc),
    encodeRaw(0x00280002, 'US', us(1), enc),
    encodeText(0x00280004, 'CS', 'MONOCHROME2', enc),
    encodeText(0x00280008, 'IS', String(FRAMES), enc),
    encodeRaw(0x00280010, 'US', us(ROWS), enc),
    encodeRaw(0x00280011, 'US', us(COLUMNS), enc),
    encodeRaw(0x00280100, 'US', us(16), enc),
    encodeRaw(0x00280101, 'US', us(16), enc),
    encodeRaw(0x00280102, 'US', us(15), enc),
    encodeRaw(0x00280103, 'US', us(0), enc),
    encodeHeader(0x7fe00010, 'OW', FRAMES * FRAME_BYTES, enc),
  ]) {
    out.write(b);
  }
  for (let f = 0; f < FRAMES; f++) {
    const frame = Buffer.allocUnsafe(FRAME_BYTES);
    for (let i = 0; i < ROWS * COLUMNS; i++) {
      if (enc.littleEndian) frame.writeUInt16LE(sample(f, i), 2 * i);
      else frame.writeUInt16BE(sample(f, i), 2 * i);
    }
    if (!out.write(frame)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

interface Peak {
  bytes: number;
  chunks: number;
  maxChunk: number;
  sha256: string;
  peakRssMB: number;
}

function convertInChild(file: string, ts: string): Peak {
  const args = ['test/fixtures/convert_peak.mjs', file, ts];
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as Peak;
}

const bigEndian = join(work, 'big-endian.dcm');
const native = join(work, 'native.dcm');
const rle = join(work, 'rle.dcm');
let baseline: Peak;
let reference: Peak;

beforeAll(async () => {
  await writeInstance(bigEndian, EXPLICIT_VR_BE, EXPLICIT_BE);
  await writeInstance(native, EXPLICIT_VR_LE, EXPLICIT_LE);
  execFileSync('dcmcrle', [native, rle]);
  // The same process converting a 8 KiB RLE file: Node, the engine and the codecs loaded.
  baseline = convertInChild('/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small_RLE.dcm', EXPLICIT_VR_LE);
}, 300_000);

describe('a 64 MiB multi-frame instance', () => {
  it('is much larger than the engine buffers', () => {
    expect(statSync(bigEndian).size).toBeGreaterThan(64 << 20);
    expect(statSync(rle).size).toBeGreaterThan(32 << 20); // the pattern stays large under RLE
  });

  it('converts from big endian with peak memory far below its size, and the same bytes as from little endian', () => {
    reference = convertInChild(native, IMPLICIT_VR_LE);
    const r = convertInChild(bigEndian, IMPLICIT_VR_LE);
    expect(r.bytes).toBeGreaterThan(64 << 20);
    expect(r.sha256).toBe(reference.sha256); // byte-swapped exactly: same data set as the LE source gives
    expect(r.maxChunk).toBeLessThanOrEqual(1 << 20);
    // The same bound as for RLE below: each 1 MiB chunk is a new buffer that Node frees in
    // batches, so a loaded machine sees ~24 MB of garbage; holding the instance would be 64+ MB.
    expect(r.peakRssMB - baseline.peakRssMB, JSON.stringify({ r, baseline })).toBeLessThan(40);
  });

  it('converts from RLE frame by frame with peak memory far below its size, to the original samples', () => {
    const r = convertInChild(rle, IMPLICIT_VR_LE);
    expect(r.sha256).toBe(reference.sha256); // decoded exactly to the native original
    // Each decoded frame (512 KiB) is a new buffer handed to the caller; V8 frees them in
    // batches (measured +33 MB here, whatever the frame count), so the bound is looser than
    // for big endian, which allocates nothing per frame.
    expect(r.peakRssMB - baseline.peakRssMB, JSON.stringify({ r, baseline })).toBeLessThan(40);
  });
});
