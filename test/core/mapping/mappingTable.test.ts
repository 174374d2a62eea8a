import { describe, expect, it } from 'vitest';
import { parseMappingCsv } from '../../../src/core/mapping/mappingCsv.js';
import { MappingTable } from '../../../src/core/mapping/mappingTable.js';

const table = new MappingTable(
  parseMappingCsv(
    [
      'MRN,Accession,New_Patient_ID,Surgery_Date',
      'M100,A100,R1,2024-01-01',
      'M200,A200,R2,2024-01-01',
      '_____,A300,R3,2024-01-01',
      'M400,,R4,2024-01-01',
      'M500,A501,R5,2024-01-01',
      'M500,A502,R5,2024-02-01',
    ].join('\n'),
  ),
);

describe('MappingTable.match', () => {
  it('1. PatientID in the MRN column wins first', () => {
    // PatientID matches R1 by MRN, AccessionNumber matches R2: the MRN step comes first.
    const m = table.match({ patientId: 'M100', accessionNumber: 'A200' });
    expect(m?.matchedBy).toBe('mrn');
    expect(m?.row.researchId).toBe('R1');
  });

  it('2. AccessionNumber in the Accession column', () => {
    const m = table.match({ patientId: 'UNKNOWN', accessionNumber: 'A300' });
    expect(m?.matchedBy).toBe('accession');
    expect(m?.row.researchId).toBe('R3');
  });

  it('3. PatientID in the Accession column (swapped)', () => {
    const m = table.match({ patientId: 'A200', accessionNumber: 'nope' });
    expect(m?.matchedBy).toBe('mrn-in-accession-column');
    expect(m?.row.researchId).toBe('R2');
  });

  it('4. AccessionNumber in the MRN column (swapped)', () => {
    const m = table.match({ patientId: 'nope', accessionNumber: 'M400' });
    expect(m?.matchedBy).toBe('accession-in-mrn-column');
    expect(m?.row.researchId).toBe('R4');
  });

  it('step 3 comes before step 4', () => {
    const m = table.match({ patientId: 'A100', accessionNumber: 'M200' });
    expect(m?.matchedBy).toBe('mrn-in-accession-column');
    expect(m?.row.researchId).toBe('R1');
  });

  it('no match', () => {
    expect(table.match({ patientId: 'X', accessionNumber: 'Y' })).toBeNull();
  });

  it('trims DICOM padding (spaces, NULs)', () => {
    expect(table.match({ patientId: 'M100 ', accessionNumber: '' })?.row.researchId).toBe('R1');
    expect(table.match({ patientId: '', accessionNumber: 'A300\0' })?.row.researchId).toBe('R3');
  });

  it('never matches empty or no-information DICOM values', () => {
    // "_____" is in the CSV as no information (null); a DICOM "_____" must not match it.
    expect(table.match({ patientId: '_____', accessionNumber: '' })).toBeNull();
    expect(table.match({ patientId: '  ', accessionNumber: '__________' })).toBeNull();
    expect(table.match({ patientId: '', accessionNumber: '' })).toBeNull();
  });

  it('is case-sensitive', () => {
    expect(table.match({ patientId: 'm100', accessionNumber: 'a100' })).toBeNull();
  });

  it('prefers the row of the same patient whose accession also matches', () => {
    expect(table.match({ patientId: 'M500', accessionNumber: 'A502' })?.row.surgeryDate).toBe('2024-02-01');
    expect(table.match({ patientId: 'M500', accessionNumber: 'A501' })?.row.surgeryDate).toBe('2024-01-01');
    const other = table.match({ patientId: 'M500', accessionNumber: 'A999' });
    expect(other?.matchedBy).toBe('mrn');
    expect(other?.row.line).toBe(6); // first row in file order
  });

  it('exposes the rows', () => {
    expect(table.rows).toHaveLength(6);
  });
});

describe('MappingTable notes', () => {
  const notes = new MappingTable(
    parseMappingCsv(
      [
        'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
        '2002,B1,R3,2023-03-10,2024-06-15', // line 2: 463 days
        '2002,B2,R3,2023-08-08,2024-06-15', // line 3: 312 days
        '12345,98765,R2,2023-01-01,',
        '3003,C1,R4,2023-01-01,',
        '3003,C2,R4,2023-01-01,', // same offset: nothing to note
        '4004,D1,R5,2023-01-01,',
        '4004,D1,R5,2023-02-01,', // both keys match both rows
      ].join('\n'),
    ),
  );

  it('a study matched by MRN alone, whose rows disagree on the day offset, says which row it used', () => {
    const m = notes.match({ patientId: '2002', accessionNumber: 'UNKNOWN' })!;
    expect(m.row.line).toBe(2);
    expect(m.note).toEqual({
      kind: 'day-offset-choice',
      lines: [2, 3],
      text: "matched by PatientID in the MRN column alone; those rows give different day offsets (line 2: 463 days, line 3: 312 days): used line 2's, the first in the file",
    });
  });

  it('no note when the accession picks the row, or the rows agree', () => {
    const byBoth = notes.match({ patientId: '2002', accessionNumber: 'B2' })!;
    expect([byBoth.row.line, byBoth.note]).toEqual([3, undefined]);
    expect(notes.match({ patientId: '3003', accessionNumber: '' })!.note).toBeUndefined();
    expect(notes.match({ patientId: '', accessionNumber: 'B1' })!.note).toBeUndefined();
  });

  it('rows that match both keys but disagree: noted too', () => {
    const m = notes.match({ patientId: '4004', accessionNumber: 'D1' })!;
    expect(m.note?.text).toMatch(
      /^several CSV rows match both keys; those rows give different day offsets \(line 7: .*, line 8: .*\): used line 7's/,
    );
  });

  it('leading zeros: not matched, but noted with the CSV line', () => {
    expect(notes.match({ patientId: '0012345', accessionNumber: 'X' })).toBeNull();
    expect(notes.unmatchedNote({ patientId: '0012345', accessionNumber: 'X' })).toEqual({
      kind: 'lost-leading-zeros',
      lines: [4],
      text: "not matched, but the CSV's MRN on line 4 looks like this PatientID without its leading zeros (Excel drops them): if it is the same, format that column as Text in Excel, type the zeros again, and run again",
    });
    expect(notes.unmatchedNote({ patientId: 'X', accessionNumber: '0098765' })?.text).toMatch(
      /CSV's Accession on line 4 looks like this AccessionNumber without its leading zeros/,
    );
    expect(notes.unmatchedNote({ patientId: '12345', accessionNumber: '' })).toBeUndefined(); // no zeros to lose
    expect(notes.unmatchedNote({ patientId: '000', accessionNumber: '0099' })).toBeUndefined();
    expect(notes.unmatchedNote({ patientId: '0C1', accessionNumber: '' })).toBeUndefined(); // C1 is no number
  });
});
