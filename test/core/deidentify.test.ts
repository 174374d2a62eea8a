// The de-identification core on synthetic instances full of identifiers, read back by an
// independent reader (pydicom) and by dcmdump.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deidentify, readInstanceKeys } from '../../src/core/deidentify.js';
import { DicomFormatError, type DeidPlan } from '../../src/core/types.js';

const PY = '/usr/bin/python3';
const FIX = join(__dirname, '..', 'fixtures');
let dir: string;
const secret = Buffer.alloc(32, 42);
const plan: DeidPlan = {
  researchId: 'RS_01',
  accessionNumber: 'RS_01_1',
  dayOffset: 106, // 2024-03-01 + 106 days = 2024-06-15
  notes: 'left side',
  uidSecret: secret,
};

type Json = Record<string, unknown>;
function dump(file: string): { meta: Json; ds: Json; ts: string } {
  return JSON.parse(execFileSync(PY, [join(FIX, 'dump_json.py'), file], { encoding: 'utf8' }));
}
function deid(name: string, p: DeidPlan = plan): { out: string; bytes: Buffer } {
  const bytes = deidentify(readFileSync(join(dir, name)), p).bytes;
  const out = join(dir, `${name}.deid.dcm`);
  writeFileSync(out, bytes);
  return { out, bytes };
}
function allValues(ds: unknown): string[] {
  if (Array.isArray(ds)) return ds.flatMap(allValues);
  if (ds && typeof ds === 'object') return Object.values(ds).flatMap(allValues);
  return [String(ds)];
}

const IDENTIFIERS = [
  'DOE',
  'JOHN',
  'MRN12345',
  'ACC999',
  '19700101',
  'Elm Street',
  'General Hospital',
  'WHO^DOCTOR',
  'OPERATOR',
  'Brain for John',
  'SN-998877',
  'STUDYID42',
  'OTHERID77',
  'REQPROC88',
  'SPS77',
  'SMITH',
  'John Doe',
  'ACME_PRIVATE',
  'SECRETPRIVATEVALUE',
  'PRIVATE^NESTED',
  'OVERLAY BY DOE',
  '1.2.826.0.1.3680043.2.1125.1',
  '20240301',
  '20240229',
  '20240302',
  '20240303',
  'SMITHERS',
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'deid-core-'));
  execFileSync(PY, [join(FIX, 'make_core_samples.py'), dir]);
});

describe('deidentify on synthetic instances', () => {
  for (const name of ['nested_le.dcm', 'nested_implicit.dcm', 'nested_be.dcm', 'deflated.dcm']) {
    it(`${name}: no identifier survives, kept attributes stay, dates shift`, () => {
      const { out, bytes } = deid(name);
      const text = bytes.toString('latin1');
      const { ds, meta, ts } = dump(out);
      const values = allValues(ds).join('\n') + allValues(meta).join('\n');
      for (const id of IDENTIFIERS) {
        expect(values, id).not.toContain(id);
        if (!name.startsWith('deflated')) expect(text, id).not.toContain(id);
      }
      const input = dump(join(dir, name));
      expect(ts).toBe(input.ts);
      // replaced identity
      expect(ds['00100010']).toBe('RS_01');
      expect(ds['00100020']).toBe('RS_01');
      expect(ds['00080050']).toBe('RS_01_1');
      expect(ds['00100030']).toBe('');
      expect(ds['00104000']).toBe('IMPORT_NOTES: left side');
      // kept
      expect(ds['0008103E']).toBe('AX T1 POST');
      expect(ds['00080060']).toBe('MR');
      expect(ds['00180015']).toBe('HEAD');
      expect(ds['00180010']).toBe('GADOLINIUM');
      expect(ds['00200012']).toBe('3');
      expect(ds['00100040']).toBe('M');
      expect(ds['00101010']).toBe('040Y');
      expect(ds['00180050']).toBe('1.500000'); // untouched technical data, same text
      expect(ds['00080070']).toBe('ACME MEDICAL');
      // dates shift, times stay
      expect(ds['00080020']).toBe('20240615');
      expect(ds['00080030']).toBe('101010');
      expect(ds['0008002A']).toBe('20240615101010.123456+0100');
      const content = (ds['0040A730'] as Json[])[0]!;
      expect(content['0040A121']).toBe('20240617'); // Date in an item
      expect(content['0040A160']).toBe('ANONYMIZED'); // SR free text replaced
      const inner = (content['0040A730'] as Json[])[0]!;
      expect(inner['0040A120']).toBe('20240616080000'); // DateTime two levels down
      expect(inner['0040A123']).toBe('ANONYMIZED'); // PersonName (D) two levels down
      expect(ds['00400275']).toBeUndefined(); // RequestAttributesSequence: X
      // removed
      expect(ds['00101040']).toBeUndefined(); // address
      expect(ds['00101002']).toBeUndefined(); // other patient IDs sequence
      expect(Object.keys(ds).filter((k) => parseInt(k.slice(0, 4), 16) & 1)).toEqual([]);
      expect(Object.keys(ds).filter((k) => /^(50|60)/.test(k))).toEqual([]);
      // recorded
      expect(ds['00120062']).toBe('YES');
      expect(ds['00280303']).toBe('MODIFIED');
      const codes = (ds['00120064'] as Json[]).map((i) => i['00080100']);
      expect(codes).toEqual(['113100', '113107']);
      // UIDs remapped, class UIDs kept, meta consistent
      expect(ds['00080016']).toBe('1.2.840.10008.5.1.4.1.1.4');
      expect(String(ds['00080018'])).toMatch(/^2\.25\.\d+$/);
      expect(meta['00020003']).toBe(ds['00080018']);
      expect(meta['00020002']).toBe(ds['00080016']);
      // pixel data byte for byte
      expect(ds['7FE00010']).toBe(input.ds['7FE00010']);
      // dcmdump reads it without complaint
      const r = spawnSync('dcmdump', ['-q', out], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stderr).toBe('');
    });
  }

  it('maps the same UID to the same new UID across instances, encodings and nested references', () => {
    const a = dump(deid('nested_le.dcm').out).ds;
    const b = dump(deid('nested_be.dcm').out).ds;
    const c = dump(deid('second_le.dcm').out).ds;
    expect(b['00080018']).toBe(a['00080018']);
    expect(c['0020000D']).toBe(a['0020000D']);
    expect(c['0020000E']).toBe(a['0020000E']);
    expect(c['00200052']).toBe(a['00200052']);
    expect(c['00080018']).not.toBe(a['00080018']);
    const src = (c['00082112'] as Json[])[0]!;
    expect(src['00081155']).toBe(a['00080018']); // reference follows the referenced instance
    expect(src['00081150']).toBe('1.2.840.10008.5.1.4.1.1.4');
    const otherSecret = deidentify(readFileSync(join(dir, 'nested_le.dcm')), {
      ...plan,
      uidSecret: Buffer.alloc(32, 1),
    });
    expect(otherSecret.sopInstanceUid).not.toBe(a['00080018']);
  });

  it('reads the matching keys', () => {
    const k = readInstanceKeys(readFileSync(join(dir, 'nested_be.dcm')));
    expect(k).toMatchObject({
      patientId: 'MRN12345',
      accessionNumber: 'ACC999',
      studyInstanceUid: '1.2.826.0.1.3680043.2.1125.1.111',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      transferSyntaxUid: '1.2.840.10008.1.2.2',
      patientBirthDate: '19700101',
    });
  });

  it('computes PatientAge from birth and study date when absent, and drops notes when empty', () => {
    execFileSync(PY, [
      '-c',
      `
import pydicom,sys
d=pydicom.dcmread(sys.argv[1]); del d.PatientAge; d.save_as(sys.argv[2])`,
      join(dir, 'nested_le.dcm'),
      join(dir, 'noage.dcm'),
    ]);
    const ds = dump(deid('noage.dcm', { ...plan, notes: '' }).out).ds;
    expect(ds['00101010']).toBe('050Y'); // 1970-01-01 -> 2024-03-01: 54 years
    expect(ds['00104000']).toBeUndefined();
  });

  it('rejects truncated and non-DICOM input with a one-line DicomFormatError', () => {
    const full = readFileSync(join(dir, 'nested_le.dcm'));
    for (const cut of [100, 140, 600, full.length - 7]) {
      const f = () => deidentify(full.subarray(0, cut), plan);
      expect(f).toThrow(DicomFormatError);
      try {
        f();
      } catch (e) {
        expect((e as Error).message).not.toContain('\n');
      }
    }
    expect(() => deidentify(Buffer.from('hello world'), plan)).toThrow(/not DICOM/);
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(dir, { recursive: true, force: true }));
