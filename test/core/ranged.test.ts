// The core reading an instance by range (deidentifySource over a ByteSource): the same output as
// the whole-buffer path on every file of pydicom's test data and on instances with elements after
// the pixel data (cut short at many places too), while the pixel data itself is never read.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deidentify, deidentifySource, readInstanceKeys } from '../../src/core/deidentify.js';
import { readIdentifyingValues } from '../../src/core/identifiers/index.js';
import type { ByteSource } from '../../src/core/dicom/byteSource.js';
import { DicomFormatError, type DeidPlan, type RangedDeidResult } from '../../src/core/types.js';

const PY = '/usr/bin/python3';
const DATA = '/usr/lib/python3/dist-packages/pydicom/data';
const plan: DeidPlan = {
  researchId: 'RS_01',
  accessionNumber: 'RS_01_1',
  dayOffset: -30,
  notes: 'left side',
  uidSecret: Buffer.alloc(32, 9),
};
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'deid-ranged-'));
  execFileSync(PY, [join(__dirname, '..', 'fixtures', 'make_ranged_samples.py'), dir]);
});

function listFiles(d: string): string[] {
  return readdirSync(d).flatMap((f) => {
    const p = join(d, f);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

/** A source over `file` that copies what it returns (as a file would) and records every read. */
function recordingSource(file: Buffer): ByteSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    reads,
    size: file.length,
    read(offset, length) {
      expect(offset >= 0 && length >= 0 && offset + length <= file.length, `read ${offset}+${length}`).toBe(true);
      reads.push([offset, length]);
      return Buffer.from(file.subarray(offset, offset + length));
    },
  };
}

function joined(r: RangedDeidResult, file: Buffer): Buffer {
  const px = r.pixelData ? file.subarray(r.pixelData.offset, r.pixelData.offset + r.pixelData.length) : [];
  return Buffer.concat([...r.head, ...(r.pixelData ? [px as Buffer] : []), ...r.tail]);
}

type Outcome = { bytes: Buffer; info: Record<string, unknown> } | { error: string };
function outcome(f: () => { bytes: Buffer; info: Record<string, unknown> }): Outcome {
  try {
    return f();
  } catch (e) {
    expect(e, (e as Error).message).toBeInstanceOf(DicomFormatError);
    return { error: (e as Error).message };
  }
}

describe('deidentifySource', () => {
  it.skipIf(!existsSync(DATA))(
    'gives the whole-buffer output on every file, reading no pixel data (first reads of 132 bytes and 64 KiB)',
    () => {
      const files = [join(DATA, 'test_files'), join(DATA, 'charset_files'), dir]
        .flatMap(listFiles)
        .filter((f) => !/\.(txt|json|dump|gz|py)$|README/.test(f));
      expect(files.length).toBeGreaterThan(300);
      let ranged = 0;
      for (const f of files) {
        const file = readFileSync(f);
        const whole = outcome(() => {
          const { bytes, parts: _parts, ...info } = deidentify(file, plan);
          return { bytes, info };
        });
        for (const firstReadBytes of [132, 64 * 1024]) {
          const src = recordingSource(file);
          let px: RangedDeidResult['pixelData'] = null;
          const got = outcome(() => {
            const r = deidentifySource(src, plan, { firstReadBytes });
            const { head: _h, pixelData, tail: _t, size, ...info } = r;
            px = pixelData;
            const bytes = joined(r, file);
            expect(bytes.length).toBe(size);
            return { bytes, info };
          });
          expect(got, `${f} (first read ${firstReadBytes})`).toEqual(whole);
          if (px === null) continue;
          const { offset, length } = px as { offset: number; length: number };
          if (firstReadBytes === 132) ranged++;
          // Everything read but item headers (8 bytes each) is bounded by what is not pixel data:
          // the first read, the growing reads before the pixel data (each at most doubling), and
          // the elements after it.
          const read = src.reads.filter(([, l]) => l !== 8).reduce((n, [, l]) => n + l, 0);
          const bound = Math.max(firstReadBytes, 2 * (offset + 12)) + (file.length - offset - length);
          expect(read, `${f}: read ${read} bytes of ${file.length}`).toBeLessThanOrEqual(bound);
        }
      }
      expect(ranged).toBeGreaterThan(100);
    },
    300_000,
  );

  it('judges the elements after the pixel data and copies the pixel data element as it is', () => {
    const names = ['CT_small.dcm', 'MR_small_bigendian.dcm', 'JPEG2000.dcm', 'SC_rgb_rle_32bit_2frame.dcm'];
    for (const name of [...names, 'big_encapsulated.dcm']) {
      const file = readFileSync(join(dir, `tail_${name}`));
      expect(file.includes('SECRETPRIVATEVALUE')).toBe(true);
      const src = recordingSource(file);
      const r = deidentifySource(src, plan, { firstReadBytes: 132 });
      expect(r.pixelData, name).not.toBeNull();
      const { offset, length } = r.pixelData!;
      // The range is the whole element: its tag (7FE0,0010) first, the next element after it.
      const tagAt = (o: number) =>
        name.includes('bigendian')
          ? [file.readUInt16BE(o), file.readUInt16BE(o + 2)]
          : [file.readUInt16LE(o), file.readUInt16LE(o + 2)];
      expect(tagAt(offset)).toEqual([0x7fe0, 0x0010]);
      expect(tagAt(offset + length)).toEqual([0x7fe0, 0x0020]);
      const out = joined(r, file);
      expect(out.subarray(Buffer.concat(r.head).length, Buffer.concat(r.head).length + length)).toEqual(
        file.subarray(offset, offset + length),
      );
      // The private group after the pixel data is gone, (7FE0,0020) after it is kept.
      expect(out.includes('SECRETPRIVATEVALUE'), name).toBe(false);
      expect(Buffer.concat(r.tail).length, name).toBeGreaterThan(0);
      const encapsulated = file.readUInt32LE(offset + 8) === 0xffffffff;
      if (encapsulated) {
        // Fragments are skipped by their item headers: every read that starts inside the element
        // is one (small files are read whole by the first reads already).
        const inside = src.reads.filter(([o]) => o >= offset + 12 && o < offset + length);
        expect(inside.every(([, l]) => l === 8)).toBe(true);
        if (name === 'big_encapsulated.dcm') {
          // 14 item headers (offset table, 12 fragments, delimiter), the first ones maybe read
          // with the elements before.
          expect(inside.length).toBeGreaterThanOrEqual(11);
          expect(inside.length).toBeLessThanOrEqual(14);
        }
      }
    }
  });

  it('reads the keys from a source without reading the pixel data, and shares the parse', () => {
    const file = readFileSync(join(dir, 'tail_CT_small.dcm'));
    const src = recordingSource(file);
    const keys = readInstanceKeys(src);
    expect(keys).toEqual(readInstanceKeys(file));
    expect(keys.sopInstanceUid).not.toBe('');
    const reads = src.reads.length;
    deidentifySource(src, plan);
    expect(src.reads.length).toBe(reads);
  });

  it('reads a header survey up to the pixel data only: neither the fragments nor what follows', () => {
    const file = readFileSync(join(dir, 'tail_big_encapsulated.dcm'));
    const full = deidentifySource(recordingSource(file), plan);
    const src = recordingSource(file);
    const values = readIdentifyingValues(src, false)!;
    expect(values).toEqual(readIdentifyingValues(file));
    expect(values.patientIds.length).toBeGreaterThan(0);
    // Every read ends before the first fragment's item header (the first read may reach into it).
    const firstRead = 16 * 1024;
    for (const [o, l] of src.reads) expect(o + l).toBeLessThanOrEqual(Math.max(firstRead, full.pixelData!.offset + 12));
  });

  it('passes an error of the source on as it is (an I/O error is not bad DICOM)', () => {
    const file = readFileSync(join(dir, 'tail_CT_small.dcm'));
    const eio = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    const src: ByteSource = {
      size: file.length,
      read: (offset, length) => {
        if (offset > 0) throw eio;
        return Buffer.from(file.subarray(offset, offset + length));
      },
    };
    expect(() => deidentifySource(src, plan, { firstReadBytes: 132 })).toThrow(eio);
  });

  it.skipIf(!existsSync(DATA))('inflates a deflated data set in memory, up to the limit', () => {
    const file = readFileSync(join(DATA, 'test_files', 'image_dfl.dcm'));
    const r = deidentifySource(recordingSource(file), plan);
    expect(r.pixelData).toBeNull();
    expect(Buffer.concat(r.head)).toEqual(deidentify(file, plan).bytes);
    expect(() => deidentifySource(recordingSource(file), plan, { maxInflatedBytes: 1000 })).toThrow(
      /deflated data set inflates to more than 1000 bytes/,
    );
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(dir, { recursive: true, force: true }));
