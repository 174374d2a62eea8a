// Identifiers in paths (issue 10), through the built CLI: folders and file names below the
// session folder holding a patient's identifiers are renamed, in every script; a folder is
// judged against every patient whose files it holds; dates in kept names are moved by the day
// offset. The DICOM files are written by pydicom in real character sets (ISO 2022 IR 87 and
// IR 149, GB18030, UTF-8, Latin-1). All names are made up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLogs, auditRows, runBatch, writeNamedTree } from '../helpers/batch-helpers.js';

const CSV = [
  'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
  'MRN1717,ACC1717,R01,2023-07-10,2024-06-15',
  'MRN2001,ACC2001,R02,2023-01-10,2024-06-15',
  'MRN2002,ACC2002,R03,2023-01-10,2024-06-15',
  'MRN2003,ACC2003,R04,2023-01-10,2024-06-15',
  'MRN3001,ACC3001,R05,2023-01-10,2024-06-15',
  'MRN3002,ACC3002,R06,2023-01-10,2024-06-15',
  'MRN3003,ACC3003,R07,2023-01-10,2024-06-15',
  'MRN3004,ACC3004,R08,2023-01-10,2024-06-15',
  'MRN3005,ACC3005,R09,2023-01-10,2024-06-15',
  'MRN4001,ACC4001,R10,2024-10-01,2024-06-15',
  'MRN4002,ACC4002,R11,2024-01-01,2024-06-15',
].join('\n');

const LATIN1 = 'ISO_IR 100';
const rho = { patientId: 'MRN1717', accession: 'ACC1717', patientName: 'Testpat^Rho', charset: LATIN1 };
const smith = { patientId: 'MRN2001', accession: 'ACC2001', patientName: 'SMITH^ANNA', charset: LATIN1 };
const kept = { patientId: 'MRN2002', accession: 'ACC2002', patientName: 'KEPT^ONE', charset: LATIN1 };
const jones = { patientId: 'MRN2003', accession: 'ACC2003', patientName: 'JONES^BOB', charset: LATIN1 };
// check: bytes the raw PatientName must hold, so each file really is in its character set.
const jp = {
  patientId: 'MRN3001',
  accession: 'ACC3001',
  patientName: 'Yamada^Tarou=山田^太郎=やまだ^たろう',
  charset: ['', 'ISO 2022 IR 87'],
  check: '1b2442', // ESC $ B
};
const cn = {
  patientId: 'MRN3002',
  accession: 'ACC3002',
  patientName: 'Wang^XiaoDong=王^小东',
  charset: 'GB18030',
  check: 'cdf5', // 王
};
const kr = {
  patientId: 'MRN3003',
  accession: 'ACC3003',
  patientName: 'Kim^Heejung=金^熙中=김^희중',
  charset: ['', 'ISO 2022 IR 149'],
  check: '1b242943', // ESC $ ) C
};
const utf8 = {
  patientId: 'MRN3004',
  accession: 'ACC3004',
  patientName: 'Tanaka^Hanako=田中^花子=たなか^はなこ',
  charset: 'ISO_IR 192',
  check: 'e794b0e4b8ad', // 田中
};
const mu = { patientId: 'MRN3005', accession: 'ACC3005', patientName: 'Müller^Jürgen', charset: LATIN1, check: 'fc' };
const brown = { patientId: 'MRN4001', accession: 'ACC4001', patientName: 'BROWN^CARL', charset: LATIN1 };
const green = { patientId: 'MRN4002', accession: 'ACC4002', patientName: 'GREEN^LISA', charset: LATIN1 };

const FILES: [string, object][] = [
  ['MRN1717/2023-07-17_CT/Testpat_Rho_localizer/IM1', rho],
  ['MRN1717/2023-07-17_CT/Rho, Testpat/IM2', rho],
  ['MRN1717/2023-07-17_CT/series2/Rho_2.dcm', { ...rho, patientName: '' }],
  ['MRN1717/2023-07-17_CT/localizer/IM3', rho],
  ['Smith_Anna/S1/SMITH^ANNA/IM1', smith],
  ['Smith_Anna/S1/Smith/IM1', smith],
  ['Smith_Anna/S1/ANNA/IM1', smith],
  ['Smith_Anna/S1/20241103_Smith scout/IM_2024-11-03.dcm', smith],
  ['Shared/S1/JONES_extra/a.dcm', kept],
  ['Shared/S1/JONES_extra/b.dcm', jones],
  ['Shared/S1/plain/c.dcm', kept],
  ['JP/S1/山田太郎.dcm', jp],
  ['JP/S1/ヤマダ/IM1', jp],
  ['JP/S1/ﾀﾛｳ_scan/IM2', jp],
  ['JP/S1/scan/IM3', jp],
  ['CN/S1/王小东_cr.dcm', cn],
  ['CN/S1/xiaodong/IM1', cn],
  ['KR/S1/김희중.dcm', kr],
  ['UTF/S1/田中花子.dcm', utf8],
  ['UTF/S1/タナカ/IM1', utf8],
  ['DE/S1/MULLER/IM1', mu],
  ['DE/S1/Mueller_Juergen.dcm', mu],
  ['BR/2024-11-03_CT/20241103_Smith scout/IM_2024-11-03.dcm', brown],
  ['BR/2024-11-03_CT/03.11.2024 recon/IM2', brown],
  ['BR/2024-11-03_CT/03-04-2024/IM3', brown],
  ['BR/2024-11-03_CT/mixed_20241103/x.dcm', brown],
  ['BR/2024-11-03_CT/mixed_20241103/y.dcm', green],
];

let tmp: string;
let out: string;
const outputOf = new Map<string, string>();
const statusOf = new Map<string, string>();

/** `YYYY-MM-DD` plus `days`, computed here (not by the code under test). */
function plusDays(iso: string, days: number): Date {
  return new Date(Date.parse(`${iso}T00:00:00Z`) + days * 86_400_000);
}
const daysBetween = (a: string, b: string) => Math.round((Date.parse(b) - Date.parse(a)) / 86_400_000);
const ymd = (d: Date) => d.toISOString().slice(0, 10);

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-path-ids-'));
  const raw = path.join(tmp, 'RAW');
  fs.writeFileSync(path.join(tmp, 'mapping.csv'), CSV + '\n');
  writeNamedTree(tmp, { root: raw, files: FILES.map(([rel, p]) => ({ rel, ...p })) });
  out = path.join(tmp, 'OUT');
  const csv = path.join(tmp, 'mapping.csv');
  const r = runBatch(['--csv', csv, '--input', raw, '--output', out, '--workers', '2', '--quiet']);
  if (r.status !== 0) throw new Error(`batch exited ${r.status}: ${r.stderr}`);
  const rows = auditRows(auditLogs(path.join(tmp, 'dicom-deid-logs'))[0]!);
  for (const row of rows) {
    outputOf.set(row.source_path!, row.output_path!);
    statusOf.set(row.source_path!, row.status!);
  }
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The output path below the session folder. */
function below(src: string): string {
  expect({ src, status: statusOf.get(src) }).toEqual({ src, status: 'ok' });
  return outputOf.get(src)!.split('/').slice(2).join('/');
}

const HASHED = /^folder_[0-9a-f]{10}$/;
const SOP_NAME = /^2\.25\.\d+\.dcm$/;

describe('identifiers in paths (real CLI, real character sets)', () => {
  it('de-identified every file', () => {
    expect([...statusOf.values()].filter((s) => s === 'ok')).toHaveLength(FILES.length);
  });

  it('renames folders holding a part of the PatientName: Testpat^Rho', () => {
    expect(below('MRN1717/2023-07-17_CT/Testpat_Rho_localizer/IM1')).toMatch(/^folder_[0-9a-f]{10}\/IM1$/);
    expect(below('MRN1717/2023-07-17_CT/Rho, Testpat/IM2')).toMatch(/^folder_[0-9a-f]{10}\/IM2$/);
    expect(below('MRN1717/2023-07-17_CT/localizer/IM3')).toBe('localizer/IM3');
  });

  it("renames a file named after the patient even when that file's own PatientName is empty", () => {
    const [dir, file] = below('MRN1717/2023-07-17_CT/series2/Rho_2.dcm').split('/');
    expect(dir).toBe('series2');
    expect(file).toMatch(SOP_NAME);
  });

  it('renames SMITH^ANNA, Smith and ANNA for a patient SMITH^ANNA', () => {
    for (const d of ['SMITH^ANNA', 'Smith', 'ANNA']) {
      expect(below(`Smith_Anna/S1/${d}/IM1`).split('/')[0]).toMatch(HASHED);
    }
  });

  it('judges a folder against every patient whose files it holds, the same way for each file', () => {
    const a = below('Shared/S1/JONES_extra/a.dcm');
    const b = below('Shared/S1/JONES_extra/b.dcm');
    expect(a.split('/')[0]).toMatch(HASHED);
    expect(b.split('/')[0]).toBe(a.split('/')[0]);
    expect(outputOf.get('Shared/S1/JONES_extra/a.dcm')!.startsWith('R03/')).toBe(true);
    expect(below('Shared/S1/plain/c.dcm')).toBe('plain/c.dcm');
  });

  it('recognises names in ISO 2022 IR 87, GB18030, ISO 2022 IR 149 and UTF-8 files', () => {
    expect(below('JP/S1/山田太郎.dcm')).toMatch(SOP_NAME);
    expect(below('JP/S1/ヤマダ/IM1').split('/')[0]).toMatch(HASHED);
    expect(below('JP/S1/ﾀﾛｳ_scan/IM2').split('/')[0]).toMatch(HASHED);
    expect(below('JP/S1/scan/IM3')).toBe('scan/IM3');
    expect(below('CN/S1/王小东_cr.dcm')).toMatch(SOP_NAME);
    expect(below('CN/S1/xiaodong/IM1').split('/')[0]).toMatch(HASHED);
    expect(below('KR/S1/김희중.dcm')).toMatch(SOP_NAME);
    expect(below('UTF/S1/田中花子.dcm')).toMatch(SOP_NAME);
    expect(below('UTF/S1/タナカ/IM1').split('/')[0]).toMatch(HASHED);
  });

  it('ignores accents: a folder MULLER names Müller, a file Mueller_Juergen too', () => {
    expect(below('DE/S1/MULLER/IM1').split('/')[0]).toMatch(HASHED);
    expect(below('DE/S1/Mueller_Juergen.dcm')).toMatch(SOP_NAME);
  });

  it('moves the dates in kept names by the day offset, in their own form', () => {
    const offset = daysBetween('2024-10-01', '2024-06-15');
    const moved = plusDays('2024-11-03', offset);
    const compact = ymd(moved).replace(/-/g, '');
    expect(below('BR/2024-11-03_CT/20241103_Smith scout/IM_2024-11-03.dcm')).toBe(
      `${compact}_Smith scout/IM_${ymd(moved)}.dcm`,
    );
    const [y, m, d] = ymd(moved).split('-');
    expect(below('BR/2024-11-03_CT/03.11.2024 recon/IM2')).toBe(`${d}.${m}.${y} recon/IM2`);
  });

  it('renames a folder whose date cannot be moved: day and month ambiguous, or several offsets', () => {
    expect(below('BR/2024-11-03_CT/03-04-2024/IM3').split('/')[0]).toMatch(HASHED);
    const x = below('BR/2024-11-03_CT/mixed_20241103/x.dcm');
    expect(x.split('/')[0]).toMatch(HASHED);
    expect(below('BR/2024-11-03_CT/mixed_20241103/y.dcm').split('/')[0]).toBe(x.split('/')[0]);
  });

  it("renames a folder named after the patient and moves the date in its file's name", () => {
    const offset = daysBetween('2023-01-10', '2024-06-15');
    const [dir, file] = below('Smith_Anna/S1/20241103_Smith scout/IM_2024-11-03.dcm').split('/');
    expect(dir).toMatch(HASHED);
    expect(file).toBe(`IM_${ymd(plusDays('2024-11-03', offset))}.dcm`);
  });

  it("leaves none of a patient's names, nor any MRN, accession or original date, in its output paths", () => {
    const all = [...outputOf.entries()].filter(([, p]) => p !== '');
    expect(all.length).toBe(FILES.length);
    const forbidden: Record<string, string[]> = {
      R01: ['Testpat', 'Rho'],
      R02: ['SMITH', 'ANNA'],
      R03: ['JONES'], // a folder holding Jones's files, in the tree of another patient
      R04: ['JONES', 'BOB'],
      R05: ['Yamada', 'Tarou', '山田', '太郎', 'ヤマダ', 'ﾀﾛｳ'],
      R06: ['Wang', 'xiaodong', '王', '小东'],
      R07: ['Kim', 'Heejung', '김', '희중'],
      R08: ['Tanaka', 'Hanako', '田中', '花子', 'タナカ'],
      R09: ['Müller', 'MULLER', 'Mueller', 'Jürgen', 'Juergen'],
      R10: ['BROWN', 'CARL'],
      R11: ['GREEN', 'LISA'],
    };
    const everywhere = ['MRN', 'ACC', '1717', '20241103', '2024-11-03', '03.11.2024', '03-04-2024'];
    // The names below the session folder, except the generated ones (random hex and digits).
    const kept = (p: string) =>
      p
        .split('/')
        .slice(2)
        .filter((seg) => !HASHED.test(seg) && !SOP_NAME.test(seg))
        .join('/')
        .toLowerCase();
    const leaks = all.flatMap(([src, p]) =>
      [...(forbidden[p.split('/')[0]!] ?? []), ...everywhere]
        .filter((f) => kept(p).includes(f.toLowerCase()))
        .map((f) => `${f} in ${p} (from ${src})`),
    );
    expect(leaks).toEqual([]);
  });
});
