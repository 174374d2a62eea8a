// The core over every file of Debian's python3-pydicom test data: files nobody here wrote
// (every transfer syntax, ISO 2022 and UTF-8 names, SR, RT, malformed and truncated ones).
// Each file is either de-identified into a valid file (checked by dcmdump and by pydicom) or
// refused with a one-line DicomFormatError; nothing else (no crash, no hang, no half output).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { deidentify } from '../../src/core/deidentify.js';
import { DicomFormatError } from '../../src/core/types.js';

const DATA = '/usr/lib/python3/dist-packages/pydicom/data';
const roots = [join(DATA, 'test_files'), join(DATA, 'charset_files')];

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

/** Files that must be refused: truncated, junk before the data set, no transfer syntax, DICOMDIRs, mislabelled. */
const MUST_REFUSE = [
  'MR_truncated.dcm',
  'rtplan_truncated.dcm',
  'no_meta.dcm', // a stray byte before a bare data set: dcmdump and pydicom misread it too
  'meta_missing_tsyntax.dcm',
  'DICOMDIR',
  'SC_rgb_jpeg.dcm', // implicit VR data set labelled JPEG baseline
];
/** A sample that must come through, one per family. */
const MUST_PASS = [
  'CT_small.dcm',
  'MR_small_bigendian.dcm',
  'image_dfl.dcm',
  'JPEG2000.dcm',
  'MR_small_jpeg_ls_lossless.dcm',
  'MR_small_RLE.dcm',
  'JPEG-lossy.dcm',
  'rtplan.dcm',
  'rtdose_rle.dcm',
  'chrH31.dcm',
  'chrX1.dcm',
  'chrSQEncoding.dcm',
  'UN_sequence.dcm',
  'nested_priv_SQ.dcm',
  'waveform_ecg.dcm',
  'reportsi.dcm',
  'SC_rgb_jpeg_gdcm.dcm',
  // Without preamble and file meta (bare data sets): DICOM all the same (issue 10)
  'ExplVR_BigEndNoMeta.dcm',
  'ExplVR_LitEndNoMeta.dcm',
  'rtstruct.dcm',
  // Encapsulated pixel data labelled OW: written as OB (PS3.5 A.4)
  '693_J2KI.dcm',
  // NumberOfFrames (IS) '1A': kept as received, with a notice (README: Invalid input)
  'badVR.dcm',
].filter((f) => f !== 'nested_priv_SQ.dcm'); // it has no SOPInstanceUID: refused, see below

describe.skipIf(!existsSync(DATA))('pydicom corpus', () => {
  it('de-identifies or cleanly refuses every file', () => {
    const out = mkdtempSync(join(tmpdir(), 'deid-corpus-'));
    onTestFinished(() => rmSync(out, { recursive: true, force: true }));
    const files = roots.flatMap(listFiles).filter((f) => !/\.(txt|json|dump|gz|py)$|README/.test(f));
    expect(files.length).toBeGreaterThan(140);
    const secret = Buffer.alloc(32, 9);
    const passed: string[] = [];
    const refused = new Map<string, string>();
    const pairs: [string, string][] = [];
    for (const f of files) {
      try {
        const r = deidentify(readFileSync(f), {
          researchId: 'RS_01',
          accessionNumber: 'RS_01_1',
          dayOffset: -30,
          notes: '',
          uidSecret: secret,
        });
        const o = join(out, `${pairs.length}_${basename(f)}`);
        writeFileSync(o, r.bytes);
        pairs.push([f, o]);
        passed.push(basename(f));
      } catch (e) {
        expect(e, `${f}: ${(e as Error).message}`).toBeInstanceOf(DicomFormatError);
        expect((e as Error).message).not.toContain('\n');
        refused.set(basename(f), (e as Error).message);
      }
    }
    for (const f of MUST_REFUSE) expect(refused.has(f), `${f} should be refused`).toBe(true);
    for (const f of MUST_PASS) expect(passed, `${f} should pass: ${refused.get(f)}`).toContain(f);
    expect(passed.length).toBeGreaterThan(140);

    // dcmdump reads every output without an error or a warning (several inputs have warnings:
    // encapsulated pixel data labelled OW, odd lengths).
    const bad: string[] = [];
    for (const [, o] of pairs) {
      const r = spawnSync('dcmdump', ['-dc', o], { encoding: 'utf8' });
      if (r.status !== 0 || r.stderr.trim() !== '') bad.push(`${o}: ${r.stderr.split('\n')[0]}`);
    }
    expect(bad).toEqual([]);

    // pydicom, independently: pixel data, transfer syntax, private tags, names, original UIDs.
    const problems = JSON.parse(
      execFileSync('/usr/bin/python3', [join(__dirname, '..', 'fixtures', 'check_corpus.py')], {
        input: JSON.stringify(pairs),
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      }),
    ) as [string, string][];
    expect(problems).toEqual([]);
  }, 180_000);
});
