// The pure parts of retrieve: a CSV row's queries and the rules its answers must pass, date
// windows and their split, the daily time window, the C-FIND/C-MOVE statuses, the identifier
// codec (read back by dcmtk's dcmdump and pydicom) and the job settings.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  inWindow,
  judgeAnswers,
  rowQueries,
  splitWindow,
  studyDateRange,
  studyDateWindow,
  unsafeMatchingValue,
  type StudyAnswer,
} from '../../src/core/retrieve/rowQueries.js';
import { insideTimeWindow, nextWindowOpening, parseTimeWindow } from '../../src/core/retrieve/timeWindow.js';
import { buildFileMeta } from '../../src/core/dicom/fileMeta.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { decodeIdentifier, encodeIdentifier, QueryTag } from '../../src/dimse/queryIdentifier.js';
import { retrieveStatusMeaning } from '../../src/dimse/status.js';
import { checkSettings, DEFAULT_SETTINGS, planKeyOf } from '../../src/retrieve/jobSettings.js';

const answer = (a: Partial<StudyAnswer> & { studyInstanceUid: string }): StudyAnswer => ({
  patientId: 'P1',
  accessionNumber: 'A1',
  studyDate: '20230301',
  modalities: ['CT'],
  ...a,
});

describe('a row is queried in the lookup order of the CSV rules', () => {
  it('MRN, accession, then the swapped columns, each with the patient its answers must have', () => {
    expect(rowQueries({ mrn: 'M1', accession: 'A1' })).toEqual([
      { step: 'mrn', key: 'PatientID', value: 'M1', patientId: 'M1' },
      { step: 'accession', key: 'AccessionNumber', value: 'A1', patientId: 'M1' },
      { step: 'mrn-in-accession-column', key: 'PatientID', value: 'A1', patientId: 'A1' },
      { step: 'accession-in-mrn-column', key: 'AccessionNumber', value: 'M1', patientId: 'A1' },
    ]);
    // No MRN: the accession's answers are checked for one patient (patientId null).
    expect(rowQueries({ mrn: null, accession: 'A1' })).toEqual([
      { step: 'accession', key: 'AccessionNumber', value: 'A1', patientId: null },
      { step: 'mrn-in-accession-column', key: 'PatientID', value: 'A1', patientId: 'A1' },
    ]);
    expect(rowQueries({ mrn: 'M1', accession: null }).map((q) => [q.step, q.patientId])).toEqual([
      ['mrn', 'M1'],
      ['accession-in-mrn-column', null],
    ]);
    // The same value in both columns: the swapped steps would repeat the same queries.
    expect(rowQueries({ mrn: 'X', accession: 'X' }).map((q) => q.step)).toEqual(['mrn', 'accession']);
    expect(rowQueries({ mrn: null, accession: null })).toEqual([]);
  });

  it('values that a PACS would read as wildcards or lists are not sent', () => {
    expect(unsafeMatchingValue('12345')).toBeNull();
    expect(unsafeMatchingValue('A-12 34')).toBeNull();
    expect(unsafeMatchingValue('123*')).toMatch(/wildcards/);
    expect(unsafeMatchingValue('12?4')).toMatch(/wildcards/);
    expect(unsafeMatchingValue('1\\2')).toMatch(/list of values/);
    expect(unsafeMatchingValue('1\t2')).toMatch(/control/);
  });
});

describe('answers are taken by exact strings, the MRN, one patient, the window and modalities', () => {
  const [byMrn, byAcc] = rowQueries({ mrn: '00123', accession: 'A1' });
  const [accOnly] = rowQueries({ mrn: null, accession: 'A1' });

  it('compares exactly: leading zeros, case and implicit wildcards of a PACS do not match', () => {
    const j = judgeAnswers(byMrn!, [
      answer({ studyInstanceUid: '1.1', patientId: '00123' }),
      answer({ studyInstanceUid: '1.2', patientId: '123' }),
      answer({ studyInstanceUid: '1.3', patientId: '001234' }),
      answer({ studyInstanceUid: '1.1', patientId: '00123' }), // the same study twice: taken once
    ]);
    expect(j.taken.map((a) => a.studyInstanceUid)).toEqual(['1.1']);
    expect(j.inexact).toBe(2);
    expect(
      judgeAnswers(byAcc!, [answer({ studyInstanceUid: '2.1', patientId: '00123', accessionNumber: 'a1' })]),
    ).toMatchObject({ taken: [], inexact: 1 });
  });

  it('with an MRN, a study of another PatientID is not taken (and lost zeros are named)', () => {
    const j = judgeAnswers(byAcc!, [
      answer({ studyInstanceUid: '2.1', patientId: '00123' }),
      answer({ studyInstanceUid: '2.2', patientId: 'P9' }),
    ]);
    expect(j.taken.map((a) => a.studyInstanceUid)).toEqual(['2.1']);
    expect(j).toMatchObject({ otherPatient: 1, lostLeadingZeros: false, ambiguous: false });
    const [, byAcc2] = rowQueries({ mrn: '123', accession: 'A1' });
    expect(judgeAnswers(byAcc2!, [answer({ studyInstanceUid: '2.1', patientId: '00123' })])).toMatchObject({
      taken: [],
      otherPatient: 1,
      lostLeadingZeros: true,
    });
  });

  it('without an MRN, answers of several patients make the row ambiguous: nothing is taken', () => {
    const two = judgeAnswers(accOnly!, [
      answer({ studyInstanceUid: '3.1', patientId: 'P1' }),
      answer({ studyInstanceUid: '3.2', patientId: 'P2' }),
    ]);
    expect(two).toMatchObject({ ambiguous: true, taken: [], patients: 2 });
    const one = judgeAnswers(accOnly!, [
      answer({ studyInstanceUid: '3.1', patientId: 'P1' }),
      answer({ studyInstanceUid: '3.3', patientId: 'P1' }),
    ]);
    expect(one.ambiguous).toBe(false);
    expect(one.taken).toHaveLength(2);
  });

  it('drops studies outside the window (or without a date) and without a wanted modality', () => {
    const w = studyDateWindow('2023-03-01', 10, 0)!;
    const j = judgeAnswers(
      byMrn!,
      [
        answer({ studyInstanceUid: '4.1', patientId: '00123', studyDate: '20230219' }),
        answer({ studyInstanceUid: '4.2', patientId: '00123', studyDate: '20230218' }),
        answer({ studyInstanceUid: '4.3', patientId: '00123', studyDate: '20230302' }),
        answer({ studyInstanceUid: '4.4', patientId: '00123', studyDate: '' }),
        answer({ studyInstanceUid: '4.5', patientId: '00123', studyDate: '20230301', modalities: ['SR'] }),
        answer({ studyInstanceUid: '4.6', patientId: '00123', studyDate: '20230301', modalities: [] }),
        answer({ studyInstanceUid: '', patientId: '00123', studyDate: '20230301' }),
      ],
      w,
      ['ct', 'MR'],
    );
    // 4.6: no ModalitiesInStudy: kept for the caller to check at series level.
    expect(j.taken.map((a) => a.studyInstanceUid)).toEqual(['4.1', '4.6']);
    expect(j).toMatchObject({ outsideWindow: 3, otherModality: 1, noStudyUid: 1 });
  });
});

describe('date windows', () => {
  it('are Surgery_Date minus/plus days, inclusive; a side not given stays open', () => {
    expect(studyDateWindow('2023-03-01')).toBeNull();
    expect(studyDateWindow('2023-03-01', 30, 365)).toEqual({ from: '2023-01-30', to: '2024-02-29' });
    expect(studyDateWindow('2023-03-01', undefined, 0)).toEqual({ from: null, to: '2023-03-01' });
    expect(() => studyDateWindow('2023-03-01', -1)).toThrow(RangeError);
    expect(studyDateRange(null)).toBe('');
    expect(studyDateRange({ from: '2023-01-30', to: '2024-02-29' })).toBe('20230130-20240229');
    expect(studyDateRange({ from: null, to: '2023-03-01' })).toBe('-20230301');
    expect(studyDateRange({ from: '2023-03-01', to: null })).toBe('20230301-');
    expect(studyDateRange({ from: '2023-03-01', to: '2023-03-01' })).toBe('20230301');
    expect(inWindow('20230130', { from: '2023-01-30', to: null })).toBe(true);
    expect(inWindow('20230129', { from: '2023-01-30', to: null })).toBe(false);
    expect(inWindow('2023013', { from: null, to: null })).toBe(false);
  });

  it('split in halves that cover the window exactly, down to single days', () => {
    expect(splitWindow({ from: '2023-01-01', to: '2023-01-04' }, '2024-01-01')).toEqual([
      { from: '2023-01-01', to: '2023-01-02' },
      { from: '2023-01-03', to: '2023-01-04' },
    ]);
    expect(splitWindow({ from: '2023-01-01', to: '2023-01-02' }, '2024-01-01')).toEqual([
      { from: '2023-01-01', to: '2023-01-01' },
      { from: '2023-01-02', to: '2023-01-02' },
    ]);
    expect(splitWindow({ from: '2023-01-01', to: '2023-01-01' }, '2024-01-01')).toBeNull();
    // Open sides are closed at 1900-01-01 and the latest day given.
    const [a, b] = splitWindow(null, '2024-12-31')!;
    expect(a.from).toBe('1900-01-01');
    expect(b.to).toBe('2024-12-31');
    expect(b.from! > a.to!).toBe(true);
    // Every day of a window is in exactly one leaf of a full split.
    const leaves: { from: string; to: string }[] = [];
    const walk = (w: { from: string; to: string }): void => {
      const h = splitWindow(w, '2099-01-01');
      if (!h) leaves.push(w);
      else h.forEach((x) => walk(x as { from: string; to: string }));
    };
    walk({ from: '2023-02-25', to: '2023-03-06' });
    expect(leaves.map((l) => l.from)).toEqual([
      '2023-02-25',
      '2023-02-26',
      '2023-02-27',
      '2023-02-28',
      '2023-03-01',
      '2023-03-02',
      '2023-03-03',
      '2023-03-04',
      '2023-03-05',
      '2023-03-06',
    ]);
  });
});

describe('the daily time window', () => {
  const at = (h: number, m = 0) => new Date(2024, 5, 15, h, m);
  it('parses HH:MM-HH:MM and spans midnight', () => {
    const night = parseTimeWindow('19:00-07:00');
    expect([at(18, 59), at(19), at(23, 59), at(0), at(6, 59), at(7)].map((d) => insideTimeWindow(night, d))).toEqual([
      false,
      true,
      true,
      true,
      true,
      false,
    ]);
    const day = parseTimeWindow(' 9:30 - 17:00 ');
    expect([at(9, 29), at(9, 30), at(16, 59), at(17)].map((d) => insideTimeWindow(day, d))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect(nextWindowOpening(night, at(8))).toEqual(at(19));
    expect(nextWindowOpening(night, at(20))).toEqual(at(20));
    expect(nextWindowOpening(day, at(18))).toEqual(new Date(2024, 5, 16, 9, 30));
    for (const bad of ['19-07', '25:00-07:00', '19:00-19:00', '19:60-07:00']) {
      expect(() => parseTimeWindow(bad), bad).toThrow(RangeError);
    }
  });
});

describe('C-FIND and C-MOVE statuses', () => {
  it('map to what the job does', () => {
    const c = (s: number) => retrieveStatusMeaning(s).category;
    expect(
      [
        0x0000, 0xff00, 0xff01, 0xfe00, 0xb000, 0x0001, 0xa700, 0xa701, 0xa702, 0xa801, 0xa900, 0xc000, 0xc123, 0x0122,
      ].map(c),
    ).toEqual([
      'success',
      'pending',
      'pending',
      'cancel',
      'warning',
      'warning',
      'busy',
      'busy',
      'busy',
      'unknown-destination',
      'failure',
      'failure',
      'failure',
      'failure',
    ]);
    expect(retrieveStatusMeaning(0xa801).text).toBe('refused 0xA801: move destination unknown');
    expect(retrieveStatusMeaning(0xb000).text).toMatch(/sub-operations complete with failures/);
  });
});

describe('query identifiers', () => {
  const keys = [
    { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'STUDY' },
    { tag: QueryTag.PatientId, vr: 'LO', value: '00123' },
    { tag: QueryTag.StudyDate, vr: 'DA', value: '20230101-20230201' },
    { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: '' },
    { tag: QueryTag.AccessionNumber, vr: 'SH', value: 'Ä1' },
  ];

  it('round-trip in both transfer syntaxes, with ISO_IR 192 only for values beyond ASCII', () => {
    for (const ts of [IMPLICIT_VR_LE, EXPLICIT_VR_LE]) {
      const bytes = encodeIdentifier(keys, ts);
      const back = decodeIdentifier(bytes, ts);
      expect(back.get(QueryTag.SpecificCharacterSet)).toBe('ISO_IR 192');
      expect(back.get(QueryTag.PatientId)).toBe('00123');
      expect(back.get(QueryTag.AccessionNumber)).toBe('Ä1');
      expect(back.get(QueryTag.StudyDate)).toBe('20230101-20230201');
      expect(back.get(QueryTag.StudyInstanceUid)).toBe('');
      const ascii = decodeIdentifier(encodeIdentifier(keys.slice(0, 4), ts), ts);
      expect(ascii.has(QueryTag.SpecificCharacterSet)).toBe(false);
    }
    expect(() => encodeIdentifier(keys, '1.2.840.10008.1.2.2')).toThrow(/Little Endian/);
  });

  it('is what dcmdump and pydicom read (tag order, even lengths, UTF-8)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qid-'));
    try {
      const ds = encodeIdentifier(keys, EXPLICIT_VR_LE);
      const file = join(dir, 'q.dcm');
      const meta = buildFileMeta({
        sopClassUid: '1.2.840.10008.5.1.4.1.2.2.1',
        sopInstanceUid: '2.25.1',
        transferSyntaxUid: EXPLICIT_VR_LE,
      });
      writeFileSync(file, Buffer.concat([meta, ds]));
      const dump = execFileSync('dcmdump', ['+U8', file], { encoding: 'utf8' });
      expect(dump).toMatch(/\(0008,0005\) CS \[ISO_IR 192\]/);
      expect(dump).toMatch(/\(0008,0050\) SH \[Ä1 ?\]/);
      expect(dump).toMatch(/\(0010,0020\) LO \[00123 ?\]/);
      expect(dump).not.toMatch(/[Ee]rror|[Ww]arn/);
      const py = execFileSync(
        '/usr/bin/python3',
        [
          '-c',
          'import sys,pydicom; d=pydicom.dcmread(sys.argv[1]); print(d.AccessionNumber, d.PatientID, d.StudyDate)',
          file,
        ],
        { encoding: 'utf8' },
      );
      expect(py.trim()).toBe('Ä1 00123 20230101-20230201');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('job settings', () => {
  const base = { ...DEFAULT_SETTINGS, modalities: [], dryRun: false };
  it('are checked, one line naming the option', () => {
    expect(checkSettings({ ...base, concurrency: 2, window: '19:00-07:00' })).toMatchObject({ concurrency: 2 });
    expect(() => checkSettings({ ...base, concurrency: 0 })).toThrow(
      /--concurrency must be a whole number of at least 1/,
    );
    expect(() => checkSettings({ ...base, daysBefore: -3 })).toThrow(/--days-before/);
    expect(() => checkSettings({ ...base, window: '7pm-7am' })).toThrow(/time window "7pm-7am"/);
    expect(() => checkSettings({ ...base, modalities: ['C*'] })).toThrow(/not a modality code/);
  });
  it('name a job by its plan, not its pace', () => {
    const a = planKeyOf({ ...base, modalities: ['MR', 'CT'], daysAfter: 10 });
    expect(planKeyOf({ ...base, modalities: ['CT', 'MR'], daysAfter: 10, concurrency: 4, window: '19:00-07:00' })).toBe(
      a,
    );
    expect(planKeyOf({ ...base, modalities: ['CT', 'MR'], daysAfter: 11 })).not.toBe(a);
    expect(planKeyOf({ ...base, modalities: ['CT', 'MR'], daysAfter: 10, dryRun: true })).not.toBe(a);
  });
});
