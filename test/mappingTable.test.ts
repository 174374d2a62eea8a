import { describe, expect, it } from 'vitest';
import { parseMappingCsv } from '../src/core/mapping/mappingCsv.js';
import { MappingTable } from '../src/core/mapping/mappingTable.js';

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
