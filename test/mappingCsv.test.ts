import { describe, expect, it } from 'vitest';
import { isNoInformation, isValidResearchId, parseMappingCsv } from '../src/core/mapping/mappingCsv.js';
import { MappingError } from '../src/core/types.js';

const HEADER = 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes';

function expectError(text: string, ...parts: (string | RegExp)[]): MappingError {
  let caught: unknown;
  try {
    parseMappingCsv(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MappingError);
  const e = caught as MappingError;
  expect(e.message).not.toContain('\n');
  for (const p of parts) {
    if (typeof p === 'string') expect(e.message).toContain(p);
    else expect(e.message).toMatch(p);
  }
  return e;
}

describe('parseMappingCsv: parsing', () => {
  it('parses a plain file and computes the day offset', () => {
    const rows = parseMappingCsv(`${HEADER}\n12345,A100,R001,2024-06-01,2024-06-15,first\n`);
    expect(rows).toEqual([
      {
        line: 2,
        mrn: '12345',
        accession: 'A100',
        researchId: 'R001',
        surgeryDate: '2024-06-01',
        anchorDate: '2024-06-15',
        dayOffset: 14,
        notes: 'first',
      },
    ]);
  });

  it('uses columns 1 and 2 whatever their header names; others by name, case-insensitive, trimmed, any order', () => {
    const rows = parseMappingCsv(
      ' Patient MRN ,Acc #, notes ,  surgery_date ,NEW_PATIENT_ID\n777,X9,hello,2020-02-28,P-7\n',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ mrn: '777', accession: 'X9', researchId: 'P-7', notes: 'hello' });
    // Anchor_Date column absent: default 2024-06-15.
    expect(rows[0]!.anchorDate).toBe('2024-06-15');
    expect(rows[0]!.dayOffset).toBe(1569); // 2020-02-28 -> 2024-06-15 (2020 and 2024 leap days)
  });

  it('accepts what Excel writes: BOM, CRLF, quoted commas/doubled quotes/line breaks, blank rows, trailing lines', () => {
    const text =
      '\uFEFF' +
      [
        HEADER,
        '"00123","A,1","R_1",2024-01-01,,"said ""hi"", left"',
        ',,,,,',
        '',
        ' 00456 , A2 , R_2 , 2024-01-02 , 2024-01-03 ,"multi',
        'line note"',
        '777,_____,R_3,2024-02-29,,',
        '',
        '',
      ].join('\r\n');
    const rows = parseMappingCsv(text);
    expect(rows.map((r) => [r.line, r.mrn, r.accession, r.researchId, r.dayOffset, r.notes])).toEqual([
      [2, '00123', 'A,1', 'R_1', 166, 'said "hi", left'],
      [5, '00456', 'A2', 'R_2', 1, 'multi\r\nline note'],
      [7, '777', null, 'R_3', 107, ''],
    ]);
  });

  it('treats empty and 5+ underscore values as no information (null)', () => {
    const rows = parseMappingCsv(
      `${HEADER}\n__________,ACC1,R1,2024-01-01,,\n,ACC2,R2,2024-01-01,,\nM3,   ,R3,2024-01-01,,\nM4,____,R4,2024-01-01,,\n`,
    );
    expect(rows.map((r) => [r.mrn, r.accession])).toEqual([
      [null, 'ACC1'],
      [null, 'ACC2'],
      ['M3', null],
      ['M4', '____'], // only 4 underscores: a real value
    ]);
    expect(isNoInformation('x_____y')).toBe(true);
    expect(isNoInformation('a_b_c_d_e_f')).toBe(false);
  });

  it('allows one MRN with the same research ID on several rows (several accessions)', () => {
    const rows = parseMappingCsv(`${HEADER}\nM1,A1,R1,2024-01-01,,\nM1,A2,R1,2024-03-01,,\n`);
    expect(rows).toHaveLength(2);
  });

  it('counts lines in LF and lone-CR files too', () => {
    expect(parseMappingCsv(`${HEADER}\n\nM1,A1,R1,2024-01-01,,\n\n\nM2,A2,R2,2024-01-01,,`).map((r) => r.line)).toEqual(
      [3, 6],
    );
    expect(parseMappingCsv(`${HEADER}\r\rM1,A1,R1,2024-01-01,,\r`).map((r) => r.line)).toEqual([3]);
    expect(() => parseMappingCsv(`${HEADER}\r\rM1,A1,R1,2024-01-32,,`)).toThrow(/^line 3: /);
  });

  it('refuses a header-only file: "no rows"', () => {
    expectError(`${HEADER}\r\n\r\n`, 'no rows');
  });

  it('prefixes the source name when given', () => {
    expect(() => parseMappingCsv(`${HEADER}\nM1,A1,R1,2023-13-01,,`, 'mapping.csv')).toThrow(
      'mapping.csv line 2: Surgery_Date "2023-13-01" is not a valid YYYY-MM-DD date',
    );
  });
});

describe('parseMappingCsv: validation errors', () => {
  it('bad Surgery_Date (month 13, Feb 29 in a non-leap year, other formats, empty)', () => {
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,R2,2024-01-01,,\nM3,A3,R3,2023-13-01,,`,
      'line 4: Surgery_Date "2023-13-01" is not a valid YYYY-MM-DD date',
    );
    expectError(`${HEADER}\nM1,A1,R1,2023-02-29,,`, 'line 2', '"2023-02-29"');
    expectError(`${HEADER}\nM1,A1,R1,6/15/2024,,`, 'line 2', '"6/15/2024"');
    expectError(`${HEADER}\nM1,A1,R1,,,`, 'line 2', 'Surgery_Date is empty');
  });

  it('bad Anchor_Date', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,2024-02-30,`, 'line 2: Anchor_Date "2024-02-30"');
  });

  it('missing required columns', () => {
    expectError('MRN,Accession,Surgery_Date\nM1,A1,2024-01-01', 'line 1', 'the header has no New_Patient_ID column');
    expectError('MRN,Accession,New_Patient_ID\nM1,A1,R1', 'line 1', 'the header has no Surgery_Date column');
  });

  it('fewer than 2 columns / empty file', () => {
    expectError('MRN\n1', 'line 1', 'header has 1 column');
    expectError('', 'the file is empty');
  });

  it('empty New_Patient_ID', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,  ,2024-01-01,,`, 'line 3: New_Patient_ID is empty');
  });

  it('research IDs that cannot be a folder name / LO value', () => {
    for (const bad of ['a/b', 'a\\\\b', '..', '.', '.hidden', 'x'.repeat(65), 'has space', 'é', 'CON', 'trail.']) {
      const csvValue = bad.includes(',') || bad.includes('"') ? `"${bad}"` : bad;
      const e = expectError(`${HEADER}\nM1,A1,${csvValue},2024-01-01,,`, 'line 2', 'New_Patient_ID');
      expect(e.message).toContain(JSON.stringify(bad.length > 80 ? bad.slice(0, 77) + '...' : bad));
    }
    expect(isValidResearchId('x'.repeat(64))).toBe(true);
    expect(isValidResearchId('R.1_a-B')).toBe(true);
  });

  it('research ID equal to the MRN or accession (would leak the identifier)', () => {
    expectError(`${HEADER}\nM1,A1,M1,2024-01-01,,`, 'line 2', '"M1"', 'MRN');
  });

  it('same MRN or Accession mapped to two research IDs', () => {
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A2,R2,2024-01-01,,\nM1,A3,R9,2024-01-01,,`,
      'line 4',
      'MRN "M1"',
      '"R9"',
      'line 2',
      '"R1"',
    );
    expectError(
      `${HEADER}\nM1,A1,R1,2024-01-01,,\nM2,A1,R2,2024-01-01,,`,
      'line 3',
      'Accession "A1"',
      '"R2"',
      'line 2',
    );
  });

  it('row where both MRN and Accession are no information', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,\n_____, ,R2,2024-01-01,,`, 'line 3', 'can never match', '"_____"');
  });

  it('values beyond the header columns', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,,oops`, 'line 2', '"oops"', 'column 7');
  });

  it('malformed quoting', () => {
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,"unterminated`, /^line 2: a quoted value .* never closed/);
    expectError(`${HEADER}\nM1,A1,R1,2024-01-01,,Left 5" cut`, /^line 2: a quote mark/);
  });
});
