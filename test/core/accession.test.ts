// The AccessionNumber rule: two research IDs never share an AccessionNumber for any session
// number up to MAX_SESSION_NUMBER exactly when their first ACCESSION_DISTINCT_LENGTH characters
// differ. Checked by brute force against newAccessionNumber over every n, not just n = 1..9.
import { describe, expect, it } from 'vitest';
import {
  ACCESSION_DISTINCT_LENGTH,
  MAX_SESSION_NUMBER,
  firstAccessionCollision,
  newAccessionNumber,
} from '../../src/core/accession.js';

/** Pairs built to sit on every boundary: equal up to position p, for p around every cut length. */
function pairs(): [string, string][] {
  const base = 'TRIAL2025_SITEA_0001_EXTRA_LONG_ID';
  const out: [string, string][] = [
    ['TRIAL2025_SITEA_0001', 'TRIAL2025_SITEA_0002'],
    ['RES001', 'RES002'],
    ['A', 'A_1'],
    ['A_1', 'A_12'],
    ['R1', 'R10'],
    ['ABCDEFGHIJK', 'ABCDEFGHIJKL'], // one is a prefix of the other, 11 vs 12 characters
    ['ABCDEFGHIJ', 'ABCDEFGHIJK'],
  ];
  for (let p = 0; p <= 20; p++) {
    const a = base.slice(0, p) + 'X' + base.slice(p + 1);
    const b = base.slice(0, p) + 'Y' + base.slice(p + 1);
    out.push([a, b], [a.slice(0, p + 1), b.slice(0, p + 1)], [base.slice(0, p), base.slice(0, p + 1)]);
  }
  return out.filter(([a, b]) => a !== b && a !== '' && b !== '');
}

describe('AccessionNumber collisions', () => {
  it('the rule holds for every session number 1..MAX_SESSION_NUMBER', () => {
    expect(ACCESSION_DISTINCT_LENGTH).toBe(11);
    for (const [a, b] of pairs()) {
      let first: number | undefined;
      for (let n = 1; n <= MAX_SESSION_NUMBER; n++) {
        const x = newAccessionNumber(a, n);
        if (x.length > 16) throw new Error(`${x} is longer than 16 characters`);
        if (x === newAccessionNumber(b, n)) {
          first = n;
          break;
        }
      }
      const ruleSaysCollide = a.slice(0, ACCESSION_DISTINCT_LENGTH) === b.slice(0, ACCESSION_DISTINCT_LENGTH);
      expect({ a, b, collides: first !== undefined }).toEqual({ a, b, collides: ruleSaysCollide });
      expect({ a, b, first: firstAccessionCollision(a, b) }).toEqual({ a, b, first });
    }
  });

  it('distinct IDs of at most 11 characters never collide', () => {
    const ids = ['A', 'A1', 'RES001', 'RES002', 'ABCDEFGHIJK', 'ABCDEFGHIJ', 'T25_A_0001', 'T25_A_0002'];
    for (let n = 1; n <= MAX_SESSION_NUMBER; n++) {
      const seen = new Set(ids.map((id) => newAccessionNumber(id, n)));
      if (seen.size !== ids.length) throw new Error(`collision at session ${n}`);
    }
  });

  it('two sessions never share an AccessionNumber: the number after the last "_" is the session', () => {
    for (const id of ['R_1', 'R_1_2', 'TRIAL2025_SITEA_0001', '9', 'A-1.2']) {
      for (let n = 1; n <= 99_999; n++) {
        const acc = newAccessionNumber(id, n);
        if (Number(acc.slice(acc.lastIndexOf('_') + 1)) !== n) throw new Error(`${acc} does not end in _${n}`);
      }
    }
  });

  it('beyond MAX_SESSION_NUMBER the guarantee ends (documented limit)', () => {
    const [a, b] = ['ABCDEFGHIJ1_X', 'ABCDEFGHIJ2_X']; // differ at character 11: accepted by the rule
    expect(firstAccessionCollision(a, b)).toBeUndefined();
    expect(newAccessionNumber(a, 10_000)).toBe(newAccessionNumber(b, 10_000));
  });
});
