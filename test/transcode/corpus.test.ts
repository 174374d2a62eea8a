// The conversion engine over files nobody here wrote: every file of Debian's pydicom test data
// (every transfer syntax pydicom ships: implicit/explicit LE, explicit BE, deflate, JPEG
// baseline, extended 12-bit, lossless SV1, JPEG-LS, JPEG 2000 and RLE), plus multi-frame
// instances that dcmtk and GDCM compressed (signed 12-bit, 16-bit, 8-bit, RGB, YBR_FULL_422,
// multi-fragment frames, empty offset tables, JPEG-LS near-lossless, interleaved or not).
// Each is converted to explicit and to implicit VR little endian, then checked by others:
// dcmdump reads it without a warning; pydicom finds every non-pixel element equal to the
// source's; the pixel samples equal an independent decode of the source (gdcmconv --raw,
// dcmdjpeg +cn, or pydicom: see compare_converted.py), and the native original when there is
// one: exactly for lossless sources, within NEAR for JPEG-LS near-lossless.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { ConversionError, convertInstance, writeConvertedFile } from '../../src/transcode/convertInstance.js';

const DATA = '/usr/lib/python3/dist-packages/pydicom/data';
const PY = '/usr/bin/python3';
const TARGETS = { ele: EXPLICIT_VR_LE, ile: IMPLICIT_VR_LE } as const;

/** Files refused, and why: not Part 10 or without the meta UIDs a filed instance always has,
 *  truncated, or a JPEG 2000 header GDCM and pydicom refuse too (width 3722445056). */
const REFUSED: Record<string, RegExp> = {
  'ExplVR_BigEndNoMeta.dcm': /not a DICOM Part 10 file/,
  'ExplVR_LitEndNoMeta.dcm': /not a DICOM Part 10 file/,
  'no_meta.dcm': /not a DICOM Part 10 file/,
  'rtstruct.dcm': /not a DICOM Part 10 file/,
  'meta_missing_tsyntax.dcm': /no TransferSyntaxUID/,
  'empty_charset_LEI.dcm': /no MediaStorageSOPClassUID/,
  'nested_priv_SQ.dcm': /no MediaStorageSOPClassUID/,
  'MR_truncated.dcm': /truncated: \(7FE0,0010\)/,
  'rtplan_truncated.dcm': /truncated: \(300A,012C\)/,
  'JPEG2000-embedded-sequence-delimiter.dcm': /first frame is 3722445056x1024x1/,
};
/** Generated near-lossless JPEG-LS and the NEAR it was encoded with (dcmcjpls +md, default 2). */
const NEAR: Record<string, number> = {
  'jpls_near_rgb_line.dcm': 3,
  'jpls_near_rgb_none.dcm': 2,
  'jpls_near_8u.dcm': 2,
};
/** Generated compressed file -> the native instance it was made from. */
const ORIGIN: [RegExp, string][] = [
  [/_16s/, 'native_16s_3f.dcm'],
  [/_16u/, 'native_16u_2f.dcm'],
  [/_8u/, 'native_8u_3f.dcm'],
  [/_rgb|ybr422/, 'native_rgb_3f.dcm'],
  [/12bit/, 'native_16s_3f.dcm'],
];
const LOSSY =
  /693_J2KI|JPEG-lossy|JPGExtended|JPEG2000\.dcm|SC_jpeg|SC_rgb_dcmtk_\+eb|SC_rgb_gdcm_KY|SC_rgb_jpeg(_app14_dcmd|_dcmtk|_lossy_gdcm)?\.dcm|SC_rgb_small_odd_jpeg|jpeg_baseline|jpeg_extended|jpls_near|j2k_lossy/;

interface Result {
  source: string;
  target: string;
  error?: string;
  dcmdump: string[];
  elements: string[];
  pixel_module: { tag: string; source: string | null; converted: string | null }[];
  reference?: string | null;
  pixels?: { equal: boolean; max_diff: number | null; samples: number };
  original_pixels?: { equal: boolean; max_diff: number | null; samples: number };
  ts: string;
}

const work = mkdtempSync(join(tmpdir(), 'transcode-corpus-'));
const samplesDir = join(work, 'samples');
const sources: string[] = [];
interface Outcome {
  sourceTs?: string;
  converted?: Record<string, string>;
  error?: ConversionError;
}
const outcomes = new Map<string, Outcome>();
const results = new Map<string, Result>();

function list(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.dcm'))
    .map((f) => join(dir, f));
}

beforeAll(async () => {
  const made = execFileSync(PY, ['test/fixtures/make_transcode_samples.py', samplesDir], { encoding: 'utf8' });
  expect(made).not.toMatch(/skipped:/); // every encoder produced its file
  sources.push(...list(join(DATA, 'test_files')), ...list(join(DATA, 'charset_files')), ...list(samplesDir));
  const cases: { source: string; converted: string; target: string; original?: string }[] = [];
  for (const source of sources) {
    const name = basename(source);
    const outcome: Outcome = {};
    outcomes.set(source, outcome);
    try {
      for (const [key, ts] of Object.entries(TARGETS)) {
        const out = join(work, `${name}.${key}.dcm`);
        const converted = await convertInstance(source, ts);
        outcome.sourceTs = converted.sourceTransferSyntaxUid;
        await writeConvertedFile(converted, out);
        (outcome.converted ??= {})[key] = out;
        const origin = source.startsWith(samplesDir) ? ORIGIN.find(([re]) => re.test(name))?.[1] : undefined;
        cases.push({ source, converted: out, target: key, original: origin && join(samplesDir, origin) });
      }
    } catch (e) {
      if (!(e instanceof ConversionError)) throw e;
      outcome.error = e;
      outcome.converted = undefined;
    }
  }
  const casesFile = join(work, 'cases.json');
  writeFileSync(casesFile, JSON.stringify(cases.filter((c) => outcomes.get(c.source)?.converted)));
  const out = execFileSync(PY, ['test/fixtures/compare_converted.py', casesFile], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  for (const r of JSON.parse(out) as Result[]) results.set(`${r.source}|${r.target}`, r);
}, 300_000);

describe('conversion of every test file to explicit and implicit VR little endian', () => {
  it('covers every transfer syntax the issue names', () => {
    const converted = sources.filter((s) => outcomes.get(s)?.converted);
    const syntaxes = new Set(converted.map((s) => outcomes.get(s)!.sourceTs));
    for (const ts of [
      '1.2.840.10008.1.2.1', // explicit VR little endian
      '1.2.840.10008.1.2', // implicit VR little endian
      '1.2.840.10008.1.2.2', // explicit VR big endian
      '1.2.840.10008.1.2.1.99', // deflated explicit VR little endian
      '1.2.840.10008.1.2.4.50', // JPEG baseline
      '1.2.840.10008.1.2.4.51', // JPEG extended (12-bit)
      '1.2.840.10008.1.2.4.57', // JPEG lossless, process 14
      '1.2.840.10008.1.2.4.70', // JPEG lossless, process 14 SV1
      '1.2.840.10008.1.2.4.80', // JPEG-LS lossless
      '1.2.840.10008.1.2.4.81', // JPEG-LS near-lossless
      '1.2.840.10008.1.2.4.90', // JPEG 2000 lossless
      '1.2.840.10008.1.2.4.91', // JPEG 2000
      '1.2.840.10008.1.2.5', // RLE lossless
    ]) {
      expect(syntaxes, ts).toContain(ts);
    }
    expect(converted.length).toBeGreaterThan(80);
  });

  it.each(Object.keys(REFUSED))('%s is refused with a one-line ConversionError', (name) => {
    const source = sources.find((s) => basename(s) === name)!;
    const outcome = outcomes.get(source)!;
    expect(outcome.error, name).toBeInstanceOf(ConversionError);
    expect(outcome.error!.message).toMatch(REFUSED[name]!);
    expect(outcome.error!.message).not.toContain('\n');
  });

  it('every other file converts and passes dcmdump, pydicom and the pixel comparison', () => {
    const failures: string[] = [];
    let comparedPixels = 0;
    for (const source of sources) {
      const name = basename(source);
      const outcome = outcomes.get(source)!;
      if (REFUSED[name]) continue;
      if (!outcome.converted) {
        failures.push(`${name}: ${outcome.error?.message}`);
        continue;
      }
      for (const [key, ts] of Object.entries(TARGETS)) {
        const r = results.get(`${source}|${key}`);
        const where = `${name} -> ${key}`;
        if (!r) {
          failures.push(`${where}: not compared`);
          continue;
        }
        if (r.error) failures.push(`${where}: comparison failed: ${r.error}`);
        if (r.ts !== ts) failures.push(`${where}: transfer syntax ${r.ts}`);
        if (r.dcmdump.length) failures.push(`${where}: dcmdump: ${r.dcmdump.join('; ')}`);
        if (r.elements.length) failures.push(`${where}: elements differ: ${r.elements.slice(0, 3).join('; ')}`);
        if (r.reference === null) failures.push(`${where}: no independent decode of the source`);
        if (r.pixels) {
          comparedPixels += 1;
          // Lossy sources: decoders may round the inverse DCT/wavelet differently by one; the
          // independent decoders measured 0 here.
          const tolerance = LOSSY.test(name) ? 1 : 0;
          if (r.pixels.max_diff === null || r.pixels.max_diff > tolerance) {
            failures.push(`${where}: pixels differ from ${r.reference} by ${r.pixels.max_diff}`);
          }
        }
        if (r.original_pixels) {
          const tolerance = NEAR[name] ?? (LOSSY.test(name) ? Infinity : 0);
          if (r.original_pixels.max_diff === null || r.original_pixels.max_diff > tolerance) {
            failures.push(`${where}: pixels differ from the native original by ${r.original_pixels.max_diff}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(comparedPixels).toBeGreaterThan(100);
  });

  it('updates the pixel module as PS3.5 8.2 requires and keeps lossy sources marked lossy', () => {
    /** The converted (explicit VR) file's value of `tag`, as dcmdump prints it ('' when absent). */
    const value = (name: string, tag: string): string => {
      const source = sources.find((s) => basename(s) === name)!;
      const out = execFileSync('dcmdump', ['-q', '+P', tag, outcomes.get(source)!.converted!.ele!], {
        encoding: 'utf8',
      });
      return (/^\S+ \S+ (\S+)/.exec(out.trim())?.[1] ?? '').replace(/^\[(.*)\]$/, '$1');
    };
    // YBR_FULL_422 JPEG decodes (without colour conversion) to full-resolution YBR_FULL.
    expect(value('SC_rgb_dcmtk_+eb+cy+np.dcm', '0028,0004')).toBe('YBR_FULL');
    expect(value('jpeg_baseline_ybr422.dcm', '0028,0004')).toBe('YBR_FULL');
    expect(value('jpeg_baseline_ybr422.dcm', '0028,0006')).toBe('0');
    // JPEG 2000 with a reversible component transform (YBR_RCT) decodes to RGB; GDCM writes RGB
    // (not YBR_ICT) for its own colour JPEG 2000, which stays RGB.
    expect(value('GDCMJ2K_TextGBR.dcm', '0028,0004')).toBe('RGB');
    expect(value('j2k_lossy_rgb.dcm', '0028,0004')).toBe('RGB');
    // A 16-bit JPEG 2000 codestream in 14 bits stored: Bits Stored and High Bit follow it.
    expect([value('693_J2KI.dcm', '0028,0101'), value('693_J2KI.dcm', '0028,0102')]).toEqual(['16', '15']);
    // Lossy sources: LossyImageCompression 01 with a method, kept when the source had them...
    for (const name of ['jpeg_baseline_ybr422.dcm', 'SC_rgb_dcmtk_+eb+cy+np.dcm', 'JPEG-lossy.dcm']) {
      expect(value(name, '0028,2110'), name).toBe('01');
      expect(value(name, '0028,2114'), name).toBe('ISO_10918_1');
    }
    // ...and added (with the ratio of the native to the compressed size) when it had none.
    expect(value('SC_jpeg_no_color_transform.dcm', '0028,2112')).toBe('56.43');
    expect(value('693_J2KI.dcm', '0028,2114')).toBe('ISO_15444_1');
    expect(value('jpls_near_8u.dcm', '0028,2110')).toBe('01');
    // Lossless sources get no lossy flag; native pixel data has no Extended Offset Table.
    expect(value('jpls_lossless_16s.dcm', '0028,2110')).toBe('');
    expect(value('MR_small_jp2klossless.dcm', '0028,2110')).toBe('');
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(work, { recursive: true, force: true }));
