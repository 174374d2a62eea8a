// Forwarding with transfer syntax conversion (issue 14), against dcmtk's storescp as the research
// PACS: files the peer does not accept as stored are converted on the way out, on the conversion
// thread (the built worker, dist/). Checked by others: every element the peer received equals the
// source's (pydicom), dcmdump reads it without a warning, and its pixel samples equal an
// independent decode of the source (gdcmconv --raw, dcmdjpeg, pydicom: compare_converted.py),
// exactly for lossless sources. Then what cannot go: dead letters naming SOP class and syntaxes,
// a corrupt frame that aborts its association without holding back the files after it, and a
// destination's `transferSyntaxes` preference.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildFileMeta, readFileMeta } from '../../src/core/dicom/fileMeta.js';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { readP10Header } from '../../src/dimse/part10.js';
import { parseDestination, type Destination } from '../../src/forward/destination.js';
import { sendFiles, type SendReport } from '../../src/forward/storeScu.js';
import type { Converter } from '../../src/transcode/converter.js';
import {
  compareConverted,
  freePort,
  receivedBySopInstance,
  rmrf,
  startStorescp,
  stopAllPeers,
  tempDir,
  testConverter,
  TEST_FILES,
  writeCorruptSecondFrame,
} from '../helpers/forward-helpers.js';
import { ensureBuilt, makeSamples } from '../helpers/serve-helpers.js';

const UNCOMPRESSED = new Set([EXPLICIT_VR_LE, IMPLICIT_VR_LE, EXPLICIT_VR_BE]);
const LOSSY = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.91']);
const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';
const MPEG2 = '1.2.840.10008.1.2.4.100';

let work = '';
/** The study: pydicom's files in 11 transfer syntaxes (make_node_samples.py ... all). */
let study: string[] = [];
let converter: Converter;

beforeAll(() => {
  ensureBuilt();
  work = tempDir('convert');
  study = makeSamples(join(work, 'in'), 'MRN14', 'ACC14', '1.2.826.0.1.3680043.8.498.14', 'c', true);
  converter = testConverter();
});
afterEach(() => stopAllPeers());
afterAll(async () => {
  await converter.close();
  rmrf(work);
});

const ts = (file: string): string => readP10Header(file).transferSyntaxUid;

/** Starts storescp with `args`, sends `files` to it; returns the report and the received files by SOP Instance UID. */
async function forward(args: string[], files: string[], dest?: Partial<Destination>) {
  const port = await freePort();
  const out = tempDir('scp');
  await startStorescp([...args, '-aet', 'RESEARCH'], port, out);
  const destination = { ...parseDestination(`RESEARCH@127.0.0.1:${port}`), ...dest };
  const report = await sendFiles(files, destination, {
    callingAet: 'DEID',
    converter,
    overallTimeoutMs: 60_000,
  });
  await stopAllPeers();
  const received = receivedBySopInstance(out);
  return { report, received, out };
}

/** Every file delivered and received once; returns [source, received path, received syntax] per file. */
function delivered(files: string[], report: SendReport, received: Map<string, { path: string; ts: string }[]>) {
  expect(report.outcomes.map((o) => o.outcome.kind)).toEqual(files.map(() => 'delivered'));
  return files.map((f) => {
    const got = received.get(readP10Header(f).sopInstanceUid);
    expect(got, f).toHaveLength(1);
    return { source: f, path: got![0]!.path, ts: got![0]!.ts };
  });
}

/** The received files hold the source's elements and its pixel samples (exactly unless lossy). */
function expectFaithful(pairs: { source: string; path: string }[]): void {
  const results = compareConverted(pairs.map((p) => ({ source: p.source, converted: p.path })));
  for (const [i, r] of results.entries()) {
    const name = pairs[i]!.source;
    expect(r.error, name).toBeUndefined();
    expect(r.dcmdump, name).toEqual([]);
    // Data Set Trailing Padding (FFFC,FFFC) may be dropped by any application (PS3.10 7.2);
    // storescp drops it.
    expect(
      r.elements.filter((e) => !e.startsWith('(fffc, fffc)')),
      name,
    ).toEqual([]);
    expect(r.reference, name).toBeTruthy();
    const lossy = LOSSY.has(ts(pairs[i]!.source));
    expect(r.pixels?.max_diff, name).toBeLessThanOrEqual(lossy ? 1 : 0);
  }
}

const dump = (path: string, tag: string): string =>
  execFileSync('dcmdump', ['-q', '+P', tag, path], { encoding: 'utf8' }).trim();

describe('forwarding converts what the peer does not accept as stored', () => {
  it('covers every transfer syntax of the issue', () => {
    expect(new Set(study.map(ts))).toEqual(
      new Set([
        EXPLICIT_VR_LE,
        IMPLICIT_VR_LE,
        EXPLICIT_VR_BE,
        '1.2.840.10008.1.2.1.99', // deflate
        '1.2.840.10008.1.2.4.50', // JPEG baseline
        '1.2.840.10008.1.2.4.51', // JPEG extended
        '1.2.840.10008.1.2.4.70', // JPEG lossless SV1
        '1.2.840.10008.1.2.4.80', // JPEG-LS lossless
        J2K_LOSSLESS,
        '1.2.840.10008.1.2.4.91', // JPEG 2000
        '1.2.840.10008.1.2.5', // RLE
      ]),
    );
  });

  it('storescp with its defaults (uncompressed only): every instance arrives, uncompressed ones as stored', async () => {
    const { report, received } = await forward([], study);
    const got = delivered(study, report, received);
    expect(report.associations).toBe(1);
    for (const g of got) expect(g.ts, g.source).toBe(UNCOMPRESSED.has(ts(g.source)) ? ts(g.source) : EXPLICIT_VR_LE);
    expectFaithful(got);
    // Lossy sources stay marked lossy (PS3.3 C.7.6.1.1.5), with their method.
    for (const g of got.filter((x) => LOSSY.has(ts(x.source)))) {
      expect(dump(g.path, '0028,2110'), g.source).toMatch(/\[01\]/);
      expect(dump(g.path, '0028,2114'), g.source).toMatch(/ISO_10918_1|ISO_15444_1/);
    }
  });

  it('storescp accepting only implicit VR little endian (+xi): every instance arrives in it', async () => {
    const { report, received } = await forward(['+xi'], study);
    const got = delivered(study, report, received);
    for (const g of got) expect(g.ts, g.source).toBe(IMPLICIT_VR_LE);
    expectFaithful(got);
  });
});

describe("a destination's transferSyntaxes", () => {
  it('limit what is sent: [implicit LE] to a peer that accepts everything', async () => {
    const files = study.filter((f) => [EXPLICIT_VR_LE, J2K_LOSSLESS, '1.2.840.10008.1.2.5'].includes(ts(f)));
    expect(files).toHaveLength(3);
    const { report, received } = await forward(['+xa'], files, { transferSyntaxes: [IMPLICIT_VR_LE] });
    const got = delivered(files, report, received);
    for (const g of got) expect(g.ts, g.source).toBe(IMPLICIT_VR_LE);
    expectFaithful(got);
  });

  it('order it: [explicit LE, JPEG 2000 lossless] sends JPEG 2000 converted, though it is accepted as stored', async () => {
    const files = study.filter((f) => [J2K_LOSSLESS, IMPLICIT_VR_LE].includes(ts(f)));
    const { report, received } = await forward(['+xa'], files, { transferSyntaxes: [EXPLICIT_VR_LE, J2K_LOSSLESS] });
    for (const g of delivered(files, report, received)) expect(g.ts, g.source).toBe(EXPLICIT_VR_LE);
    // With JPEG 2000 first, the same file goes as stored, byte for byte.
    const j2k = files.filter((f) => ts(f) === J2K_LOSSLESS);
    const second = await forward(['+xa'], j2k, { transferSyntaxes: [J2K_LOSSLESS, EXPLICIT_VR_LE] });
    expect(delivered(j2k, second.report, second.received)[0]!.ts).toBe(J2K_LOSSLESS);
  });

  it('a file they allow no syntax for goes dead before any association, saying why', async () => {
    const ct = study.find((f) => ts(f) === EXPLICIT_VR_LE)!;
    const { report } = await forward(['+xa'], [ct], { transferSyntaxes: [J2K_LOSSLESS] });
    expect(report.associations).toBe(0);
    expect(report.outcomes[0]!.outcome).toEqual({
      kind: 'permanent-failure',
      reason:
        "the destination's transferSyntaxes (Jpeg2000Lossless (1.2.840.10008.1.2.4.90)) allow neither the " +
        'stored transfer syntax ExplicitVRLittleEndian (1.2.840.10008.1.2.1) nor a conversion of it ' +
        '(ImplicitVRLittleEndian (1.2.840.10008.1.2))',
    });
  });
});

describe('what cannot be converted', () => {
  /** `file` under a file meta that says transfer syntax `uid` (the data set as it was). */
  function relabelled(file: string, uid: string, name: string): string {
    const bytes = readFileSync(file);
    const meta = readFileMeta(bytes, bytes.length);
    if (meta === 'need-more') throw new Error('short file');
    const out = join(work, name);
    writeFileSync(
      out,
      Buffer.concat([
        buildFileMeta({ sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid, transferSyntaxUid: uid }),
        bytes.subarray(meta.dataSetOffset),
      ]),
    );
    return out;
  }

  /** MR_small_jp2klossless.dcm with Rows 65 where the codestream says 64. */
  function rowsContradicted(): string {
    const bytes = Buffer.from(readFileSync(join(TEST_FILES, 'MR_small_jp2klossless.dcm')));
    const rows = bytes.indexOf(Buffer.from([0x28, 0x00, 0x10, 0x00, 0x55, 0x53, 0x02, 0x00]));
    expect(bytes.readUInt16LE(rows + 8)).toBe(64);
    bytes.writeUInt16LE(65, rows + 8);
    const out = join(work, 'rows-contradicted.dcm');
    writeFileSync(out, bytes);
    return out;
  }

  it('dead letters with their reason; a corrupt frame aborts its association and the files after it go on a new one', async () => {
    const ct = join(TEST_FILES, 'CT_small.dcm');
    const files = [
      ct,
      writeCorruptSecondFrame(work),
      join(TEST_FILES, 'MR_small_RLE.dcm'),
      rowsContradicted(),
      relabelled(ct, MPEG2, 'mpeg2.dcm'),
      join(TEST_FILES, 'JPEG2000.dcm'),
    ];
    const { report, received } = await forward([], files);
    const outcomes = report.outcomes.map((o) => o.outcome);
    expect(outcomes.map((o) => o.kind)).toEqual([
      'delivered',
      'permanent-failure',
      'delivered',
      'permanent-failure',
      'permanent-failure',
      'delivered',
    ]);
    expect(report.associations).toBe(2); // the one the corrupt frame aborted, and the rest's
    expect(report.connectionProblem).toBeUndefined();
    const reason = (i: number) => (outcomes[i] as { reason: string }).reason;
    expect(reason(1)).toMatch(
      /^conversion of SecondaryCaptureImageStorage \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.7\) from RleLossless \(1\.2\.840\.10008\.1\.2\.5\) to ExplicitVRLittleEndian \(1\.2\.840\.10008\.1\.2\.1\) failed part way: frame 2 of 2: rle data cannot be decoded \(.+\)$/,
    );
    expect(reason(3)).toBe(
      'conversion of MrImageStorage (1.2.840.10008.5.1.4.1.1.4) from Jpeg2000Lossless (1.2.840.10008.1.2.4.90) ' +
        'to ExplicitVRLittleEndian (1.2.840.10008.1.2.1) failed: the first frame is 64x64x1 (columns x rows x ' +
        'samples) but the data set says 64x65x1',
    );
    // On the second association, where no other CT image asked for an uncompressed context.
    expect(reason(4)).toBe(
      'peer does not accept transfer syntax 1.2.840.10008.1.2.4.100 for SOP class CtImageStorage ' +
        '(1.2.840.10008.5.1.4.1.1.2) (presentation context rejected: transfer syntaxes not supported); ' +
        '1.2.840.10008.1.2.4.100 cannot be converted',
    );
    // What was delivered arrived whole; nothing of the dead ones did.
    const sops = [...received.keys()].sort();
    expect(sops).toEqual([...new Set([0, 2, 5].map((i) => readP10Header(files[i]!).sopInstanceUid))].sort());
    expectFaithful(
      [0, 2, 5].map((i) => ({
        source: files[i]!,
        path: received.get(readP10Header(files[i]!).sopInstanceUid)![0]!.path,
      })),
    );
  });
});
