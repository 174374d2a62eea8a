// Identifiers of ANOTHER patient of the run, through the built CLI (found by a new-user trial:
// Doe's file with SeriesDescription 'prior of ROE JANE 7654321', a folder 'compare with Roe Jane
// 7654321' and a text file naming Roe all reached the shared output, the checks looking only for
// each file's own patient). The other patient's MRN comes from the mapping CSV, the name from
// Roe's own files in the tree; Tan's name is of a file no row matches. Made-up patients only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLogs, auditRows, listTree, runBatch, writeNamedTree, type AuditRow } from '../helpers/batch-helpers.js';

const CSV = [
  'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
  'MRN1001,ACC1001,RES001,2023-01-10,2024-06-15',
  '7654321,ACC2002,RES002,2023-01-10,2024-06-15',
].join('\n');
const LATIN1 = 'ISO_IR 100';
const doe = { patientId: 'MRN1001', accession: 'ACC1001', patientName: 'DOE^JOHN', charset: LATIN1 };
const roe = { patientId: '7654321', accession: 'ACC2002', patientName: 'ROE^JANE', charset: LATIN1 };
const tan = { patientId: 'MRN9009', accession: 'ACC9009', patientName: 'TAN^MEI', charset: LATIN1 };

let tmp: string;
let rows: AuditRow[];
let written: string[];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-others-'));
  const root = path.join(tmp, 'Raw');
  writeNamedTree(tmp, {
    root,
    files: [
      ['Doe_John/S1/ct/IM1.dcm', { ...doe, seriesDescription: 'knee left' }],
      ['Doe_John/S1/ct/IM2.dcm', { ...doe, seriesDescription: 'prior 7654321' }],
      ['Doe_John/S1/ct/IM3.dcm', { ...doe, seriesDescription: 'compare Jane Roe' }],
      ['Doe_John/S1/ct/IM4.dcm', { ...doe, seriesDescription: 'as Mei Tan MRN9009' }],
      ['Doe_John/S1/ct/IM7.dcm', { ...doe, seriesDescription: 'T1 DIXON WATER' }],
      ['Phantom/S1/qa/IM1.dcm', { patientId: 'WATER', accession: '', patientName: 'QA^WATER', charset: LATIN1 }],
      ['Doe_John/S1/compare with Roe Jane/IM5.dcm', { ...doe, seriesDescription: 'knee left' }],
      ['Doe_John/S1/compare 7654321/IM6.dcm', { ...doe, seriesDescription: 'knee left' }],
      ['Roe_Jane/S1/ct/IM1.dcm', { ...roe, seriesDescription: 'knee right' }],
      ['Unknown/S1/ct/IM1.dcm', tan],
    ].map(([rel, f]) => ({ rel, ...(f as object) })),
  });
  fs.writeFileSync(path.join(root, 'Doe_John', 'S1', 'note_roe.txt'), 'Compare with Roe Jane, prior CT\n');
  fs.writeFileSync(path.join(root, 'Doe_John', 'S1', 'note_plain.txt'), 'left knee, follow-up\n');
  fs.writeFileSync(path.join(tmp, 'map.csv'), CSV + '\n');
  const out = path.join(tmp, 'Out');
  const r = runBatch([
    '--csv',
    path.join(tmp, 'map.csv'),
    '--input',
    root,
    '--output',
    out,
    '--db',
    path.join(tmp, 'state', 'state.sqlite'),
    '--log-dir',
    path.join(tmp, 'logs'),
    '--copy-other-files',
  ]);
  expect(r.status, r.stderr).toBe(1); // the held files and the unmatched one
  rows = auditRows(auditLogs(path.join(tmp, 'logs'))[0]!);
  written = listTree(out);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function row(rel: string): AuditRow {
  const found = rows.find((r) => r.source_path === rel);
  expect(found, `no audit row for ${rel}`).toBeDefined();
  return found!;
}

describe("batch: another patient's identifiers", () => {
  it("holds a file whose kept SeriesDescription names another patient (the CSV's MRN, the tree's names)", () => {
    expect(row('Doe_John/S1/ct/IM1.dcm').status).toBe('ok'); // the guard had something to pass
    expect(row('Doe_John/S1/ct/IM2.dcm')).toMatchObject({ status: 'leak-guard' });
    expect(row('Doe_John/S1/ct/IM2.dcm').message).toContain('mrn of another patient in (0008,103E) SeriesDescription');
    expect(row('Doe_John/S1/ct/IM3.dcm').message).toContain(
      'patient-name of another patient in (0008,103E) SeriesDescription',
    );
    // Tan is in no row: the ID of a file that is not written counts as well; its name does not
    // (such files are most often phantoms and QA scans named with words: 'QA^WATER').
    expect(row('Doe_John/S1/ct/IM4.dcm').message).toContain(
      'patient-id of another patient in (0008,103E) SeriesDescription',
    );
    expect(row('Doe_John/S1/ct/IM7.dcm').status).toBe('ok'); // 'T1 DIXON WATER' with a phantom 'QA^WATER' in the tree
    expect(row('Roe_Jane/S1/ct/IM1.dcm').status).toBe('ok'); // Roe's own file is Roe's
    // No held file, and no value, in the output.
    const all = written.join('\n');
    for (const v of ['7654321', 'Roe Jane', 'ROE', 'MRN9009']) expect(all).not.toContain(v);
  });

  it('renames a folder naming another patient, and leaves out a text naming another patient', () => {
    const doeFolders = written.filter((f) => f.startsWith('RES001/')).map((f) => f.split('/')[2]);
    expect(doeFolders).toContain('ct');
    expect(doeFolders.filter((d) => d!.startsWith('folder_')).length).toBe(2); // both 'compare' folders
    expect(row('Doe_John/S1/note_roe.txt').status).not.toBe('ok');
    expect(row('Doe_John/S1/note_roe.txt').message).toMatch(/identifier of another patient/);
    expect(written.some((f) => f.endsWith('note_plain.txt'))).toBe(true);
  });
});
