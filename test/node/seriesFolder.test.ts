// The node's series folder name (instanceProcessor.seriesFolderName): its 8-character hash, in
// hex, can spell a patient's number by chance ('CT_S1_0002a784' for PatientID P0002: the leak guard
// then held the series, a false hold the full suite met once). The consonant form of the same hash
// has no digit and no vowel, so no number, date or name in it.
import { describe, expect, it } from 'vitest';
import { IdentifierMatcher } from '../../src/core/identifiers/index.js';
import { seriesFolderName } from '../../src/node/instanceProcessor.js';
import type { DeidInstanceInfo } from '../../src/core/types.js';

const info = (seriesInstanceUid: string) =>
  ({ seriesInstanceUid, sopInstanceUid: '2.25.1', modality: 'CT', seriesNumber: '1' }) as DeidInstanceInfo;

describe('series folder name', () => {
  it('is the hex hash, or the same hash in consonants', () => {
    const hex = seriesFolderName(info('2.25.42'));
    const consonants = seriesFolderName(info('2.25.42'), true);
    expect(hex).toMatch(/^CT_S1_[0-9a-f]{8}$/);
    expect(consonants).toMatch(/^CT_S1_[bcdfghjklmnpqrst]{8}$/);
    // The same hash: position by position, hex digit i is the i-th consonant.
    const h = hex.slice(-8);
    expect(consonants.slice(-8)).toBe([...h].map((c) => 'bcdfghjklmnpqrst'[parseInt(c, 16)]).join(''));
    expect(seriesFolderName(info('2.25.42'))).toBe(hex); // stable
  });

  it("a hex hash can hold a patient's number; the consonant form cannot", () => {
    const p0002 = new IdentifierMatcher([{ kind: 'patient-id', value: 'P0002' }]);
    expect(p0002.find('RES001/RES001_1/CT_S1_0002a784/2.25.1.dcm')).toEqual(['patient-id']);
    for (let i = 0; i < 2000; i++) {
      const name = seriesFolderName(info(`2.25.${i}`), true);
      expect(p0002.find(`RES001/RES001_1/${name}/2.25.1.dcm`)).toEqual([]);
    }
  });
});
