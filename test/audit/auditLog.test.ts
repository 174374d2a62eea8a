// The audit CSV's rows as Excel and LibreOffice will open them.
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { formatAuditRow } from '../../src/audit/auditLog.js';

function fields(line: string): string[] {
  return (parse(line, { relax_column_count: true }) as string[][])[0]!;
}

describe('formatAuditRow', () => {
  it('quotes what needs quoting and keeps ordinary values as they are', () => {
    const line = formatAuditRow({
      sourcePath: 'P1/S1/IM 1, copy.dcm',
      status: 'ok',
      matchedBy: 'mrn',
      researchId: 'RES001',
      newAccession: 'RES001_1',
      dayOffset: -3,
      outputPath: 'RES001/RES001_1/IM 1, copy.dcm',
      message: 'say "hello"',
    });
    expect(fields(line)).toEqual([
      'P1/S1/IM 1, copy.dcm',
      'ok',
      'mrn',
      'RES001',
      'RES001_1',
      '-3',
      'RES001/RES001_1/IM 1, copy.dcm',
      'say "hello"',
    ]);
  });

  it('never starts a text cell with =, +, - or @ (a spreadsheet would run it as a formula)', () => {
    const line = formatAuditRow({
      sourcePath: '=HYPERLINK("http://example.org","x")/S1/a.dcm',
      status: 'error',
      outputPath: '@SUM(1)',
      message: '+cmd|calc',
      dayOffset: -12,
    });
    const [source, , , , , offset, output, message] = fields(line);
    expect(source).toBe('\'=HYPERLINK("http://example.org","x")/S1/a.dcm');
    expect(output).toBe("'@SUM(1)");
    expect(message).toBe("'+cmd|calc");
    expect(offset).toBe('-12'); // a number stays a number
  });
});
