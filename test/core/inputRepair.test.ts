// Input no well-behaved writer produces, and what the core makes of it (issue 10, "Input to
// refuse or repair, never to pass on invalid"; "Files we copy"): DICOM without preamble or file
// meta is DICOM all the same; elements out of order or repeated, odd lengths and values outside
// their VR's rules are repaired when that is safe and refused otherwise with one line a PACS
// administrator can act on. Every output is read back by dcmdump and pydicom, which must not
// warn. Names and IDs are made up.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { burnedInVerdict } from '../../src/core/burnedIn.js';
import { deidentify, deidentifySource, readInstanceKeys } from '../../src/core/deidentify.js';
import { bufferSource } from '../../src/core/dicom/byteSource.js';
import { dicomFormOf } from '../../src/core/dicom/sniff.js';
import { checkValue } from '../../src/core/dicom/valueRules.js';
import { DicomFormatError, type DeidPlan } from '../../src/core/types.js';
import { el, part10, seq, UIDS, ui, us, type Enc } from '../helpers/dicomBytes.js';

const PY = '/usr/bin/python3';
const READ_CLEAN = join(__dirname, '..', 'fixtures', 'read_clean.py');
let dir: string;
const plan: DeidPlan = {
  researchId: 'RS_07',
  accessionNumber: 'RS_07_1',
  dayOffset: 10,
  notes: '',
  uidSecret: Buffer.alloc(32, 7),
};
const SOP = '1.2.826.0.1.3680043.9.7777.1.1';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'deid-input-'));
});

interface Read {
  values: Record<string, string>;
  ts: string;
  warnings: string[];
  error?: string;
}

/** Writes `bytes`, reads them back with dcmdump and pydicom (which may warn only as `warnings` says). */
function readBack(name: string, bytes: Buffer, warnings: RegExp[] = []): Read {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  const d = spawnSync('dcmdump', ['-dc', file], { encoding: 'utf8' });
  expect(d.status, d.stderr).toBe(0);
  expect(d.stderr, `dcmdump on ${name}`).toBe('');
  const r = (JSON.parse(execFileSync(PY, [READ_CLEAN, file], { encoding: 'utf8' })) as Record<string, Read>)[file]!;
  expect(r.error).toBeUndefined();
  expect(r.warnings.length, `pydicom on ${name}: ${r.warnings.join('; ')}`).toBe(warnings.length);
  warnings.forEach((w, i) => expect(r.warnings[i]).toMatch(w));
  return r;
}

/** dcmdump's warnings on `bytes` (to show an input really is what a test says it is). */
function dcmdumpWarnings(bytes: Buffer): string {
  const file = join(dir, `input-${Math.random().toString(36).slice(2)}.dcm`);
  writeFileSync(file, bytes);
  return spawnSync('dcmdump', ['-dc', file], { encoding: 'utf8' }).stderr;
}

/** The top-level tags of a Part 10 file's data set, in file order (a tiny explicit LE walker). */
function topLevelTags(bytes: Buffer): number[] {
  let pos = 132 + 12 + bytes.readUInt32LE(140);
  const tags: number[] = [];
  while (pos + 8 <= bytes.length) {
    const tag = ((bytes.readUInt16LE(pos) << 16) | bytes.readUInt16LE(pos + 2)) >>> 0;
    tags.push(tag);
    const vr = bytes.toString('latin1', pos + 4, pos + 6);
    if (['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR', 'OF', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr)) {
      const len = bytes.readUInt32LE(pos + 8);
      if (len === 0xffffffff) {
        const end = bytes.indexOf(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]), pos);
        pos = end + 8;
      } else pos += 12 + len;
    } else pos += 8 + bytes.readUInt16LE(pos + 6);
  }
  return tags;
}

/** A small MR data set holding made-up identifiers, in the order given (explicit VR LE unless said). */
function mrElements(enc: Enc = 'explicit'): Buffer[] {
  return [
    el(0x00080005, 'CS', 'ISO_IR 100', enc),
    el(0x00080016, 'UI', ui(UIDS.mrStorage), enc),
    el(0x00080018, 'UI', ui(SOP), enc),
    el(0x00080020, 'DA', '20240301', enc),
    el(0x00080050, 'SH', 'ACC5150 ', enc),
    el(0x00080060, 'CS', 'MR', enc),
    el(0x00100010, 'PN', 'Testpat^Upsilon ', enc),
    el(0x00100020, 'LO', 'MRN2121 ', enc),
    el(0x0020000d, 'UI', ui('1.2.826.0.1.3680043.9.7777.2'), enc),
    el(0x00280010, 'US', us(2), enc),
    el(0x00280011, 'US', us(2), enc),
    el(0x00280100, 'US', us(8), enc),
    el(0x7fe00010, 'OB', Buffer.from([1, 2, 3, 4]), enc),
  ];
}

function noIdentifiers(bytes: Buffer): void {
  const text = bytes.toString('latin1');
  for (const id of ['Testpat', 'Upsilon', 'MRN2121', 'ACC5150', '20240301', SOP]) expect(text).not.toContain(id);
}

describe('DICOM in any form is read as DICOM', () => {
  it('a bare data set (no preamble, no file meta), implicit or explicit VR, is de-identified into Part 10', () => {
    for (const enc of ['implicit', 'explicit'] as const) {
      const raw = Buffer.concat(mrElements(enc));
      expect(dicomFormOf(raw)).toEqual({
        kind: 'data-set',
        transferSyntaxUid: enc === 'implicit' ? UIDS.implicitLE : UIDS.explicitLE,
      });
      const keys = readInstanceKeys(raw);
      expect(keys.patientId).toBe('MRN2121');
      const r = deidentify(raw, plan);
      expect(r.notices).toContain('read as a bare data set (no preamble, no file meta): written as a Part 10 file');
      expect(r.bytes.toString('latin1', 128, 132)).toBe('DICM');
      noIdentifiers(r.bytes);
      const back = readBack(`bare-${enc}.dcm`, r.bytes);
      expect(back.ts).toBe(enc === 'implicit' ? UIDS.implicitLE : UIDS.explicitLE);
      expect(back.values['00100020']).toBe('RS_07');
      expect(back.values['00080020']).toBe('20240311');
    }
  });

  it("'DICM' at byte 0 (no preamble) and a file meta at byte 0 are read too", () => {
    const withMeta = part10(Buffer.concat(mrElements()), {
      sopClass: UIDS.mrStorage,
      sopInstance: SOP,
      ts: UIDS.explicitLE,
    });
    for (const [name, bytes] of [
      ['dicm-at-0', withMeta.subarray(128)],
      ['meta-at-0', withMeta.subarray(132)],
    ] as const) {
      expect(dicomFormOf(bytes)?.kind).toBe('no-preamble');
      const r = deidentify(bytes, plan);
      noIdentifiers(r.bytes);
      expect(readBack(`${name}.dcm`, r.bytes).values['00100010']).toBe('RS_07');
    }
  });

  it('text and other files are not DICOM', () => {
    for (const text of ['Report for DOE^JOHN MRN1001\n', '\uFEFFnotes', '%PDF-1.4', 'PK\u0003\u0004']) {
      expect(dicomFormOf(Buffer.from(text, 'utf8'))).toBeNull();
    }
    expect(dicomFormOf(Buffer.alloc(3))).toBeNull();
  });

  it('a DICOMDIR is known as a media index, in Part 10 form or bare', () => {
    const dicomdir = readFileSync('/usr/lib/python3/dist-packages/pydicom/data/test_files/dicomdirtests/DICOMDIR');
    expect(readInstanceKeys(dicomdir).isMediaIndex).toBe(true);
    const bare = Buffer.concat([
      el(0x00041130, 'CS', 'MEDIA1'),
      el(0x00041200, 'UL', Buffer.alloc(4)),
      seq(0x00041220, [[el(0x00041430, 'CS', 'PATIENT ')]]),
    ]);
    expect(readInstanceKeys(bare).isMediaIndex).toBe(true);
    expect(() => deidentify(bare, plan)).toThrow(/DICOMDIR is an index/);
    expect(readInstanceKeys(Buffer.concat(mrElements())).isMediaIndex).toBe(false);
  });
});

describe('invalid encodings are repaired when safe', () => {
  it('elements out of ascending order (PatientID and PatientName before StudyDate) come out sorted, each once', () => {
    const e = mrElements();
    // Swap StudyDate/AccessionNumber/Modality after PatientName and PatientID.
    const disordered = Buffer.concat([e[0]!, e[1]!, e[2]!, e[6]!, e[7]!, e[3]!, e[4]!, e[5]!, ...e.slice(8)]);
    const input = part10(disordered, { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE });
    expect(dcmdumpWarnings(input)).toMatch(/not in ascending tag order/);
    // The keys are found wherever they are (matching and dates rely on them).
    const keys = readInstanceKeys(input);
    expect([keys.studyDate, keys.accessionNumber, keys.patientId]).toEqual(['20240301', 'ACC5150', 'MRN2121']);
    const r = deidentify(input, plan);
    expect(r.notices).toContain('repaired: elements put into ascending tag order (PS3.5 7.1)');
    const tags = topLevelTags(r.bytes);
    expect(tags).toEqual([...tags].sort((a, b) => a - b));
    expect(new Set(tags).size).toBe(tags.length);
    expect(tags.filter((t) => t === 0x00080050 || t === 0x00100010)).toHaveLength(2);
    noIdentifiers(r.bytes);
    const back = readBack('disordered.dcm', r.bytes);
    expect(back.values['00080050']).toBe('RS_07_1');
    expect(back.values['00100010']).toBe('RS_07');
  });

  it('elements after the pixel data that belong before it move before it (ranged output too)', () => {
    const e = mrElements();
    const input = part10(Buffer.concat([...e.slice(0, 6), e[12]!, ...e.slice(6, 12)]), {
      sopClass: UIDS.mrStorage,
      sopInstance: SOP,
      ts: UIDS.explicitLE,
    });
    const ranged = deidentifySource(bufferSource(input), plan);
    expect(ranged.pixelData).not.toBeNull();
    const joined = Buffer.concat([
      ...ranged.head,
      input.subarray(ranged.pixelData!.offset, ranged.pixelData!.offset + ranged.pixelData!.length),
      ...ranged.tail,
    ]);
    expect(joined.equals(deidentify(input, plan).bytes)).toBe(true);
    const tags = topLevelTags(joined);
    expect(tags[tags.length - 1]).toBe(0x7fe00010);
    noIdentifiers(joined);
    readBack('pixel-first.dcm', joined);
  });

  it('a repeated element: identical copies or one the output replaces are written once; differing kept copies are refused', () => {
    const e = mrElements();
    const make = (extra: Buffer[]) =>
      part10(Buffer.concat([...e.slice(0, 8), ...extra, ...e.slice(8)]), {
        sopClass: UIDS.mrStorage,
        sopInstance: SOP,
        ts: UIDS.explicitLE,
      });
    // PatientName again, different: replaced by the research ID anyway.
    const r1 = deidentify(make([el(0x00100010, 'PN', 'Testpat^Other ')]), plan);
    expect(r1.notices.join('\n')).toContain('repeated element(s) written once: (0010,0010)');
    noIdentifiers(r1.bytes);
    readBack('repeated-name.dcm', r1.bytes);
    // Modality again, the same: once.
    const r2 = deidentify(make([el(0x00080060, 'CS', 'MR')]), plan);
    expect(topLevelTags(r2.bytes).filter((t) => t === 0x00080060)).toHaveLength(1);
    readBack('repeated-same.dcm', r2.bytes);
    // Modality again, different: which is right cannot be told.
    expect(() => deidentify(make([el(0x00080060, 'CS', 'CT')]), plan)).toThrow(
      /\(0008,0060\) appears twice with different values/,
    );
  });

  it('odd lengths (BodyPartExamined KNE, 15 bytes of pixel data) are padded with the VR padding', () => {
    const ds = Buffer.concat([
      ...mrElements().slice(0, 8),
      el(0x00180015, 'CS', 'KNE'),
      el(0x0020000d, 'UI', ui('1.2.826.0.1.3680043.9.7777.2')),
      el(0x00280010, 'US', us(1)),
      el(0x00280011, 'US', us(15)),
      el(0x00280100, 'US', us(8)),
      el(0x7fe00010, 'OB', Buffer.alloc(15, 9)),
    ]);
    const input = part10(ds, { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE });
    expect(dcmdumpWarnings(input)).toMatch(/Length of element \(0018,0015\) is odd/);
    const ranged = deidentifySource(bufferSource(input), plan);
    // The pixel data's value stays in the source; its new header ends head, the pad starts tail.
    expect(ranged.pixelData?.length).toBe(15);
    expect(ranged.tail[0]![0]).toBe(0);
    const r = deidentify(input, plan);
    expect(r.notices.join('\n')).toContain('padded to even length (PS3.5 7.1.1): (0018,0015) (7FE0,0010)');
    const back = readBack('odd.dcm', r.bytes);
    expect(back.values['00180015']).toBe('KNE');
    expect(back.values['7FE00010']).toBe('<bytes 16>');
    expect(r.bytes.subarray(r.bytes.length - 16).equals(Buffer.concat([Buffer.alloc(15, 9), Buffer.of(0)]))).toBe(true);
  });

  it('values outside their VR: a lower-case Code String is upper-cased, a broken Integer String kept with a notice', () => {
    const e = mrElements();
    const make = (extra: Buffer) =>
      part10(Buffer.concat([...e.slice(0, 8), extra, ...e.slice(8)]), {
        sopClass: UIDS.mrStorage,
        sopInstance: SOP,
        ts: UIDS.explicitLE,
      });
    const r = deidentify(make(el(0x00180015, 'CS', 'knee')), plan);
    expect(r.notices.join('\n')).toContain('Code String in lower case upper-cased');
    expect(readBack('lower-cs.dcm', r.bytes).values['00180015']).toBe('KNEE');
    // Kept as received (no repair keeps its meaning; refusing would lose a valid instance), and said.
    const broken = deidentify(make(el(0x00200013, 'IS', '1A')), plan);
    expect(broken.notices.join('\n')).toContain(
      'kept as received, although it has a value that is not a valid IS (PS3.5 Table 6.2-1): (0020,0013)',
    );
    expect(readBack('broken-is.dcm', broken.bytes, [/Invalid value for VR IS: '1A'/]).values['00200013']).toBe('1A');
    const spine = deidentify(make(el(0x00180015, 'CS', 'L-SPINE')), plan);
    expect(readBack('spine.dcm', spine.bytes).values['00180015']).toBe('L-SPINE');
  });

  it('encapsulated pixel data labelled OW is written OB; a fragment of odd length is refused', () => {
    const fragment = (n: number) => {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0xfffe, 0);
      h.writeUInt16LE(0xe000, 2);
      h.writeUInt32LE(n, 4);
      return Buffer.concat([h, Buffer.alloc(n, 0xff)]);
    };
    const make = (vr: string, n: number) => {
      const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, ...Buffer.from(vr), 0, 0, 0xff, 0xff, 0xff, 0xff]);
      const end = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
      return part10(Buffer.concat([...mrElements().slice(0, 12), header, fragment(0), fragment(n), end]), {
        sopClass: UIDS.mrStorage,
        sopInstance: SOP,
        ts: '1.2.840.10008.1.2.4.70',
      });
    };
    const ow = make('OW', 16);
    expect(dcmdumpWarnings(ow)).toMatch(/not a multiple of 2 \(VR=OW\)/);
    const r = deidentify(ow, plan);
    expect(r.notices.join('\n')).toContain('labelled OW written as OB (PS3.5 A.4): (7FE0,0010)');
    readBack('encapsulated-ow.dcm', r.bytes);
    expect(dcmdumpWarnings(make('OB', 15))).toMatch(/Length of item in sequence PixelData \(7fe0,0010\) is odd/);
    expect(() => deidentify(make('OB', 15), plan)).toThrow(/has a fragment of odd length/);
  });
});

describe('what cannot be repaired is refused in words', () => {
  it('a data set mixing explicit and implicit VR names the element and says what is wrong', () => {
    // Labelled explicit, first element implicit (so read as implicit), PatientName explicit.
    const e = mrElements();
    const mixed1 = part10(
      Buffer.concat([
        el(0x00080005, 'CS', 'ISO_IR 100', 'implicit'),
        el(0x00080016, 'UI', ui(UIDS.mrStorage), 'implicit'),
        e[6]!,
        e[7]!,
      ]),
      { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE },
    );
    const mixed2 = part10(
      Buffer.concat([e[0]!, e[1]!, e[2]!, el(0x00100010, 'PN', 'Testpat^Upsilon ', 'implicit'), e[7]!]),
      { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE },
    );
    for (const [bytes, what] of [
      [mixed1, /\(0010,0010\) at byte \d+ is written with its VR \(PN\) in a data set whose other elements have none/],
      [mixed2, /\(0010,0010\) at byte \d+ is written without a VR in a data set whose other elements have one/],
    ] as const) {
      let message = '';
      try {
        deidentify(bytes, plan);
      } catch (err) {
        expect(err).toBeInstanceOf(DicomFormatError);
        message = (err as Error).message;
      }
      expect(message).toMatch(/^the data set mixes explicit and implicit VR encoding: /);
      expect(message).toMatch(what);
      expect(message).not.toContain('\n');
      expect(message).not.toMatch(/Testpat|MRN2121/);
    }
  });

  it('a value reaching past the end says the file was cut short', () => {
    const bytes = part10(Buffer.concat(mrElements()), {
      sopClass: UIDS.mrStorage,
      sopInstance: SOP,
      ts: UIDS.explicitLE,
    });
    expect(() => deidentify(bytes.subarray(0, bytes.length - 2), plan)).toThrow(
      /^truncated: \(7FE0,0010\) declares a value of 4 bytes but only 2 follow \(the file was cut short or is damaged\)$/,
    );
  });
});

describe("notes in the data set's character set (issue 11)", () => {
  const withCharset = (charset: string | null, seriesDescription: Buffer) =>
    part10(
      Buffer.concat([
        ...(charset === null ? [] : [el(0x00080005, 'CS', charset.length % 2 ? charset + ' ' : charset)]),
        ...mrElements().slice(1, 6),
        el(
          0x0008103e,
          'LO',
          seriesDescription.length % 2 ? Buffer.concat([seriesDescription, Buffer.from(' ')]) : seriesDescription,
        ),
        ...mrElements().slice(6),
      ]),
      { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE },
    );
  const withNotes = (notes: string): DeidPlan => ({ ...plan, notes });

  it('GB18030: Chinese notes are written exactly, in GB18030', () => {
    const r = deidentify(withCharset('GB18030', Buffer.from('头部 MR')), withNotes('左侧，翻修手术'));
    expect(r.notices).toEqual([]);
    const back = readBack('gb18030.dcm', r.bytes);
    expect(back.values['00080005']).toBe('GB18030');
    expect(back.values['00104000']).toBe('IMPORT_NOTES: 左侧，翻修手术');
  });

  it('ISO_IR 100: notes it can hold stay in it; a dash it lacks moves the data set to UTF-8, its text intact', () => {
    const series = Buffer.from('Hüfte links', 'latin1');
    const exact = deidentify(withCharset('ISO_IR 100', series), withNotes('Hüfte rechts'));
    expect(exact.notices).toEqual([]);
    const a = readBack('latin1-exact.dcm', exact.bytes);
    expect(a.values['00080005']).toBe('ISO_IR 100');
    expect(a.values['00104000']).toBe('IMPORT_NOTES: Hüfte rechts');

    const moved = deidentify(withCharset('ISO_IR 100', series), withNotes('Hüfte – revision'));
    expect(moved.notices).toEqual([
      "the notes have 1 character(s) that the data set's character set ISO_IR 100 lacks: the data set's text was re-encoded as UTF-8 (ISO_IR 192)",
    ]);
    const b = readBack('latin1-moved.dcm', moved.bytes);
    expect(b.values['00080005']).toBe('ISO_IR 192');
    expect(b.values['00104000']).toBe('IMPORT_NOTES: Hüfte – revision');
    expect(b.values['0008103E']).toBe('Hüfte links');
  });

  it('no Specific Character Set: ASCII text moves to UTF-8; text of unknown encoding keeps the set and says so', () => {
    const ascii = deidentify(withCharset(null, Buffer.from('Knee left')), withNotes('Genou – révision'));
    const a = readBack('none-ascii.dcm', ascii.bytes);
    expect(a.values['00080005']).toBe('ISO_IR 192');
    expect(a.values['00104000']).toBe('IMPORT_NOTES: Genou – révision');

    const unknown = deidentify(withCharset(null, Buffer.from('Genou gauche é', 'latin1')), withNotes('révision'));
    expect(unknown.notices).toEqual([
      "the notes have 1 character(s) that the default repertoire (the data set has no Specific Character Set) lacks: they were written as '?' (the data set cannot move to UTF-8: it has text beyond ASCII but no Specific Character Set saying which)",
    ]);
    expect(unknown.bytes.toString('latin1')).toContain('IMPORT_NOTES: r?vision');
  });
});

describe('burned-in annotation: the standard signal and the image kinds that carry text', () => {
  /** Elements in ascending tag order (their first 4 bytes, little endian). */
  const sorted = (elements: Buffer[]) =>
    [...elements].sort((a, b) => a.readUInt16LE(0) - b.readUInt16LE(0) || a.readUInt16LE(2) - b.readUInt16LE(2));
  const instance = (sopClass: string, extra: Buffer[], pixels = true) =>
    part10(
      Buffer.concat(
        sorted([
          el(0x00080016, 'UI', ui(sopClass)),
          el(0x00080018, 'UI', ui(SOP)),
          ...extra,
          ...(pixels ? [el(0x7fe00010, 'OB', Buffer.alloc(4))] : []),
        ]),
      ),
      { sopClass, sopInstance: SOP, ts: UIDS.explicitLE },
    );
  const verdict = (bytes: Buffer) => burnedInVerdict(readInstanceKeys(bytes));

  it('BurnedInAnnotation YES is declared; NO clears any image kind', () => {
    expect(verdict(instance(UIDS.ctStorage, [el(0x00280301, 'CS', 'YES ')]))?.kind).toBe('declared');
    expect(verdict(instance(UIDS.usStorage, [el(0x00080060, 'CS', 'US'), el(0x00280301, 'CS', 'NO')]))).toBeNull();
  });

  it('ultrasound, secondary and screen captures, OT, XC, ES without NO are listed for review; CT is not', () => {
    expect(verdict(instance(UIDS.usStorage, [el(0x00080060, 'CS', 'US')]))).toEqual({
      kind: 'review',
      reason: 'ultrasound without Burned In Annotation (0028,0301) = NO: check the pixels for text',
      imageKind: 'ultrasound',
    });
    expect(verdict(instance(UIDS.scStorage, [el(0x00080060, 'CS', 'OT')]))?.reason).toMatch(/^secondary capture/);
    expect(verdict(instance(UIDS.ctStorage, [el(0x00080060, 'CS', 'ES')]))?.reason).toMatch(/^endoscopy/);
    expect(verdict(instance(UIDS.ctStorage, [el(0x00080064, 'CS', 'WSD ')]))?.reason).toMatch(
      /^screen or document capture/,
    );
    expect(verdict(instance(UIDS.ctStorage, [el(0x00080008, 'CS', 'DERIVED\\SECONDARY\\SCREEN SAVE ')]))?.kind).toBe(
      'review',
    );
    expect(verdict(instance(UIDS.ctStorage, [el(0x00080060, 'CS', 'CT')]))).toBeNull();
    // No pixels, nothing to read text from.
    expect(verdict(instance(UIDS.scStorage, [el(0x00080060, 'CS', 'SC')], false))).toBeNull();
  });
});

describe('value rules by VR (PS3.5 Table 6.2-1, as pydicom checks them)', () => {
  it('accepts valid values with their padding, repairs lower-case CS and HH:MM:SS, refuses the rest', () => {
    expect(checkValue('DS', '-1.5\\2.25e3 \\ 7 ')).toEqual({ ok: true });
    expect(checkValue('UI', '1.2.840.10008.5.1.4.1.1.4\0')).toEqual({ ok: true });
    expect(checkValue('CS', ' ORIGINAL\\PRIMARY ')).toEqual({ ok: true });
    expect(checkValue('LO', 'é'.repeat(64))).toEqual({ ok: true }); // characters, not bytes
    expect(checkValue('CS', 'axial ')).toEqual({
      ok: 'repaired',
      text: 'AXIAL',
      repair: 'Code String in lower case upper-cased',
    });
    expect(checkValue('TM', '07:27:31')).toMatchObject({ ok: 'repaired', text: '072731' });
    expect(checkValue('LO', 'x'.repeat(65))).toEqual({
      ok: false,
      problem: 'has a value of 65 characters, more than the 64 a LO may hold',
    });
    expect(checkValue('UI', '1.02.3')).toMatchObject({ ok: false });
    expect(checkValue('CS', 'T1-WEIGHTED')).toMatchObject({ ok: false });
    expect(checkValue('PN', 'A=B=C=D')).toMatchObject({ ok: false });
    expect(checkValue('ST', 'free\\text')).toEqual({ ok: true });
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dates that cannot be shifted are emptied, and the notices say so', () => {
  /** An MR instance with StudyDate 20240301, a ContentDate and an AcquisitionDateTime as given. */
  const withDates = (contentDate: string, acquisitionDateTime: string): Buffer => {
    const els = mrElements();
    return part10(
      Buffer.concat([
        ...els.slice(0, 4), // ... StudyDate (0008,0020)
        el(0x00080023, 'DA', contentDate),
        el(0x0008002a, 'DT', acquisitionDateTime),
        ...els.slice(4),
      ]),
      { sopClass: UIDS.mrStorage, sopInstance: SOP, ts: UIDS.explicitLE },
    );
  };

  it('a day offset that takes dates beyond the year 9999 (Anchor_Date 9999-12-31): emptied, with the tags', () => {
    // Surgery 2025-01-01 -> anchor 9999-12-31: what comes after the surgery goes beyond 9999.
    const r = deidentify(withDates('20260101', '20260101120000'), { ...plan, dayOffset: 2_912_807 });
    expect(r.notices).toEqual([
      'emptied: date(s) the day offset moves outside the years 0000-9999 (check Surgery_Date and Anchor_Date in the mapping CSV): (0008,0023) (0008,002A)',
    ]);
    const back = readBack('dates-beyond-9999.dcm', r.bytes);
    expect(back.values['00080023']).toBe('');
    expect(back.values['0008002A']).toBe('');
    expect(back.values['00080020']).toBe('99990228'); // 306 days before the surgery: 306 days before 9999-12-31
  });

  it('a date value that is not a date: emptied, with the tag; valid dates give no notice', () => {
    const r = deidentify(withDates('20241399', '2024030112'), plan);
    expect(r.notices).toEqual(['emptied: value(s) that are not a valid date (PS3.5 Table 6.2-1): (0008,0023)']);
    const back = readBack('dates-invalid.dcm', r.bytes);
    expect(back.values['00080023']).toBe('');
    expect(back.values['00080020']).toBe('20240311');
    expect(back.values['0008002A']).toBe('2024031112');
    expect(deidentify(withDates('20240229', '20240301'), plan).notices).toEqual([]);
  });
});
