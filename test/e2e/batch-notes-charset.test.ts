// The mapping CSV's Notes through the built CLI into data sets of other character sets: a CSV as
// Excel saves it ("CSV UTF-8": UTF-8 with a byte order mark) whose notes are Chinese, Japanese or
// carry a character Latin-1 lacks. Each note reaches PatientComments exactly, in the data set's
// own character set when it has the characters (GB18030, ISO 2022 IR 87), else the data set moves
// to UTF-8 and the audit log says so; notes.txt holds the notes in UTF-8. pydicom reads the
// results. All names are made up.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/forward-helpers.js';
import { auditLogs, auditRows, runBatch, writeNamedTree } from '../helpers/batch-helpers.js';
import { ensureBuilt } from '../helpers/serve-helpers.js';

const python = '/usr/bin/python3';
const NOTES = {
  R21: '左侧，翻修手术',
  R22: '術後の再検査',
  R23: 'Zustand nach Revision → Kontrolle',
};
const FILES = [
  { rel: 'CN/S1/a.dcm', patientId: 'MRN2101', accession: 'ACC2101', patientName: 'Li^Na=李^娜', charset: 'GB18030' },
  {
    rel: 'JP/S1/a.dcm',
    patientId: 'MRN2102',
    accession: 'ACC2102',
    patientName: 'Sato^Aiko=佐藤^愛子',
    charset: ['', 'ISO 2022 IR 87'],
  },
  { rel: 'DE/S1/a.dcm', patientId: 'MRN2103', accession: 'ACC2103', patientName: 'Weiß^Jörg', charset: 'ISO_IR 100' },
];

let tmp = '';
let out = '';
let audit: Record<string, string>[] = [];

/** Specific Character Set and PatientComments of `file`, as pydicom decodes them. */
function readBack(file: string): { charset: string[]; comments: string } {
  const code =
    'import json,sys,pydicom\n' +
    'ds=pydicom.dcmread(sys.argv[1])\n' +
    'cs=ds.get("SpecificCharacterSet","")\n' +
    'print(json.dumps({"charset": list(cs) if isinstance(cs, pydicom.multival.MultiValue) else [cs],' +
    ' "comments": str(ds.get("PatientComments",""))}, ensure_ascii=True))';
  return JSON.parse(execFileSync(python, ['-c', code, file], { encoding: 'utf8' })) as {
    charset: string[];
    comments: string;
  };
}

beforeAll(() => {
  ensureBuilt();
  tmp = tempDir('notes-charset');
  const spec = { root: path.join(tmp, 'RAW'), files: FILES };
  writeNamedTree(tmp, spec);
  const lines = [
    'MRN,Accession,New_Patient_ID,Surgery_Date,Notes',
    ...FILES.map((f, i) => {
      const id = `R2${i + 1}` as keyof typeof NOTES;
      return `${f.patientId},${f.accession},${id},2023-01-10,"${NOTES[id]}"`;
    }),
  ];
  fs.writeFileSync(path.join(tmp, 'mapping.csv'), '\ufeff' + lines.join('\r\n') + '\r\n', 'utf8');
  out = path.join(tmp, 'OUT');
  const logs = path.join(tmp, 'logs');
  const where = ['--csv', path.join(tmp, 'mapping.csv'), '--input', spec.root, '--output', out];
  const state = ['--log-dir', logs, '--db', path.join(tmp, 'state.sqlite')];
  const run = runBatch([...where, ...state, '--quiet'], { timeoutMs: 60_000 });
  if (run.status !== 0) throw new Error(`batch exited ${run.status}: ${run.stderr}`);
  audit = auditRows(auditLogs(logs)[0]!);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('Notes from an Excel CSV (UTF-8 with BOM) into data sets of other character sets', () => {
  it('Chinese notes stay in GB18030, exactly', () => {
    const back = readBack(path.join(out, 'R21', 'R21_1', 'a.dcm'));
    expect(back).toEqual({ charset: ['GB18030'], comments: `IMPORT_NOTES: ${NOTES.R21}` });
  });

  it('Japanese notes stay in ISO 2022 IR 87, exactly', () => {
    const back = readBack(path.join(out, 'R22', 'R22_1', 'a.dcm'));
    expect(back).toEqual({ charset: ['', 'ISO 2022 IR 87'], comments: `IMPORT_NOTES: ${NOTES.R22}` });
  });

  it('a character Latin-1 lacks moves the data set to UTF-8, and the audit log says so', () => {
    const back = readBack(path.join(out, 'R23', 'R23_1', 'a.dcm'));
    expect(back).toEqual({ charset: ['ISO_IR 192'], comments: `IMPORT_NOTES: ${NOTES.R23}` });
    const row = audit.find((r) => r.source_path === 'DE/S1/a.dcm');
    expect(row?.status).toBe('ok');
    expect(row?.message).toMatch(/re-encoded as UTF-8 \(ISO_IR 192\)/);
  });

  it("notes.txt holds each row's notes in UTF-8", () => {
    for (const id of Object.keys(NOTES) as (keyof typeof NOTES)[]) {
      expect(fs.readFileSync(path.join(out, id, `${id}_1`, 'notes.txt'), 'utf8').trim()).toBe(NOTES[id]);
    }
  });
});
