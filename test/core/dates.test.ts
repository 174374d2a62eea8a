import { describe, expect, it } from 'vitest';
import { addDaysIso, daysBetweenIso, isValidIsoDate, shiftDA, shiftDT } from '../../src/core/dates.js';

describe('ISO date helpers', () => {
  it('addDaysIso across month, year and leap-day boundaries', () => {
    expect(addDaysIso('2024-01-31', 1)).toBe('2024-02-01');
    expect(addDaysIso('2024-02-28', 1)).toBe('2024-02-29');
    expect(addDaysIso('2023-02-28', 1)).toBe('2023-03-01');
    expect(addDaysIso('2024-12-31', 1)).toBe('2025-01-01');
    expect(addDaysIso('2024-03-01', -1)).toBe('2024-02-29');
    expect(addDaysIso('1900-02-28', 1)).toBe('1900-03-01'); // 1900 not a leap year
    expect(addDaysIso('2000-02-28', 1)).toBe('2000-02-29'); // 2000 is
    expect(addDaysIso('0050-01-01', 0)).toBe('0050-01-01'); // no 19xx mapping of small years
    expect(() => addDaysIso('2024-02-30', 1)).toThrow(RangeError);
  });

  it('daysBetweenIso', () => {
    expect(daysBetweenIso('2024-06-01', '2024-06-15')).toBe(14);
    expect(daysBetweenIso('2024-06-15', '2024-06-01')).toBe(-14);
    expect(daysBetweenIso('2023-01-01', '2024-01-01')).toBe(365);
    expect(daysBetweenIso('2024-01-01', '2025-01-01')).toBe(366);
    // DST changes never matter (UTC arithmetic).
    expect(daysBetweenIso('2024-03-01', '2024-04-01')).toBe(31);
  });

  it('isValidIsoDate', () => {
    expect(isValidIsoDate('2024-02-29')).toBe(true);
    expect(isValidIsoDate('2023-02-29')).toBe(false);
    expect(isValidIsoDate('2024-04-31')).toBe(false);
    expect(isValidIsoDate('2024-4-01')).toBe(false);
    expect(isValidIsoDate('20240401')).toBe(false);
  });
});

describe('shiftDA', () => {
  it('shifts across month/leap boundaries', () => {
    expect(shiftDA('20240228', 1)).toBe('20240229');
    expect(shiftDA('20230228', 1)).toBe('20230301');
    expect(shiftDA('20240101', -1)).toBe('20231231');
    expect(shiftDA('20200615', 1461)).toBe('20240615');
    expect(shiftDA('20240615', 0)).toBe('20240615');
  });

  it('trims padding, keeps empty empty', () => {
    expect(shiftDA('20240101 ', 10)).toBe('20240111');
    expect(shiftDA('', 10)).toBe('');
    expect(shiftDA('  ', 10)).toBe('');
  });

  it('multi-valued', () => {
    expect(shiftDA('20240101\\20240229', 1)).toBe('20240102\\20240301');
    expect(shiftDA('20240101\\\\bogus', 1)).toBe('20240102\\\\');
  });

  it('legacy ACR-NEMA YYYY.MM.DD is written back as YYYYMMDD', () => {
    expect(shiftDA('2024.02.28', 2)).toBe('20240301');
  });

  it('unparseable values become empty', () => {
    for (const bad of ['2024-01-01', '20241301', '20230229', 'yesterday', '2024010', '2024.0101']) {
      expect(shiftDA(bad, 1)).toBe('');
    }
  });

  it('query ranges shift both ends', () => {
    expect(shiftDA('20240101-20240131', 1)).toBe('20240102-20240201');
    expect(shiftDA('-20240131', 1)).toBe('-20240201');
  });

  it('results outside 0000..9999 become empty', () => {
    expect(shiftDA('99991231', 1)).toBe('');
  });
});

describe('shiftDT', () => {
  it('shifts the date part and keeps time and offset', () => {
    expect(shiftDT('20240228235959.123456+0100', 1)).toBe('20240229235959.123456+0100');
    expect(shiftDT('20231231120000', 1)).toBe('20240101120000');
    expect(shiftDT('2024022812', 2)).toBe('2024030112');
    expect(shiftDT('202402281230-0500', -28)).toBe('202401311230-0500');
    expect(shiftDT('20240228', 1)).toBe('20240229');
  });

  it('year-only and year-month keep their precision (shifted from the 1st)', () => {
    expect(shiftDT('2024', 10)).toBe('2024');
    expect(shiftDT('2024', -1)).toBe('2023');
    expect(shiftDT('202401', 31)).toBe('202402');
    expect(shiftDT('202403', -1)).toBe('202402');
    expect(shiftDT('2024+0000', 366)).toBe('2025+0000');
  });

  it('multi-valued, padding and empty', () => {
    expect(shiftDT('20240101000000 \\2024', 1)).toBe('20240102000000\\2024');
    expect(shiftDT('', 5)).toBe('');
  });

  it('unparseable values become empty', () => {
    for (const bad of [
      '2024-01-01T00:00',
      '20241301',
      '20240230',
      'abc',
      '20240101+99',
      '20240101+1500',
      '2024010124',
      '202401011260',
      '20240101235961',
    ]) {
      expect(shiftDT(bad, 1)).toBe('');
    }
  });
});
