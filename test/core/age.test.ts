import { describe, expect, it } from 'vitest';
import { ageFromDates, binAge } from '../../src/core/age.js';

describe('binAge', () => {
  it('bins Y ages down to 5 years', () => {
    expect(binAge('043Y')).toBe('040Y');
    expect(binAge('045Y')).toBe('045Y');
    expect(binAge('089Y')).toBe('085Y');
    expect(binAge('004Y')).toBe('000Y');
    expect(binAge('000Y')).toBe('000Y');
    expect(binAge('017Y ')).toBe('015Y');
  });

  it('caps at 090Y (90 or older)', () => {
    expect(binAge('090Y')).toBe('090Y');
    expect(binAge('094Y')).toBe('090Y');
    expect(binAge('104Y')).toBe('090Y');
  });

  it('converts M/W/D ages to years and bins', () => {
    expect(binAge('011M')).toBe('000Y');
    expect(binAge('071M')).toBe('005Y'); // 5 years 11 months
    expect(binAge('030W')).toBe('000Y');
    expect(binAge('400W')).toBe('005Y'); // 7.66 years
    expect(binAge('364D')).toBe('000Y');
  });

  it('unparseable -> empty', () => {
    for (const bad of ['', '43Y', '043', '043y', '043X', 'abcd', '0043Y']) expect(binAge(bad)).toBe('');
  });
});

describe('ageFromDates', () => {
  it('computes completed years and bins', () => {
    expect(ageFromDates('19800615', '20240614')).toBe('040Y'); // 43
    expect(ageFromDates('19790615', '20240615')).toBe('045Y'); // 45 on the birthday
    expect(ageFromDates('19790616', '20240615')).toBe('040Y'); // 44
    expect(ageFromDates('1930.01.01', '20240101')).toBe('090Y');
  });

  it('Feb 29 birthday', () => {
    expect(ageFromDates('20000229', '20050228')).toBe('000Y'); // 4
    expect(ageFromDates('20000229', '20050301')).toBe('005Y'); // 5
  });

  it('missing/bad dates or study before birth -> empty', () => {
    expect(ageFromDates('', '20240101')).toBe('');
    expect(ageFromDates('19800101', '')).toBe('');
    expect(ageFromDates('19801301', '20240101')).toBe('');
    expect(ageFromDates('20240102', '20240101')).toBe('');
  });
});
