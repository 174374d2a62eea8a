// Which transfer syntaxes a filed instance may be sent in (src/forward/syntaxChoice.ts): the
// stored one first, then the conversions; a destination's transferSyntaxes orders and limits.
import { describe, expect, it } from 'vitest';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../src/core/dicom/transferSyntax.js';
import { candidateSyntaxes, noCandidateReason } from '../src/forward/syntaxChoice.js';

const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';
const MPEG2 = '1.2.840.10008.1.2.4.100';

describe('candidateSyntaxes', () => {
  it('without a preference: stored first, then explicit and implicit VR LE (never twice)', () => {
    expect(candidateSyntaxes(J2K_LOSSLESS)).toEqual([J2K_LOSSLESS, EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    expect(candidateSyntaxes(EXPLICIT_VR_BE)).toEqual([EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    expect(candidateSyntaxes(IMPLICIT_VR_LE)).toEqual([IMPLICIT_VR_LE, EXPLICIT_VR_LE]);
    expect(candidateSyntaxes(MPEG2)).toEqual([MPEG2]); // not decoded: as stored or not at all
  });

  it('with one: its entries that the stored syntax is or converts to, in its order, nothing else', () => {
    expect(candidateSyntaxes(J2K_LOSSLESS, [IMPLICIT_VR_LE])).toEqual([IMPLICIT_VR_LE]);
    expect(candidateSyntaxes(J2K_LOSSLESS, [EXPLICIT_VR_LE, J2K_LOSSLESS])).toEqual([EXPLICIT_VR_LE, J2K_LOSSLESS]);
    expect(candidateSyntaxes(J2K_LOSSLESS, [J2K_LOSSLESS, J2K_LOSSLESS])).toEqual([J2K_LOSSLESS]);
    // A syntax we would have to compress to is never a candidate.
    expect(candidateSyntaxes(EXPLICIT_VR_LE, [J2K_LOSSLESS, IMPLICIT_VR_LE])).toEqual([IMPLICIT_VR_LE]);
    expect(candidateSyntaxes(EXPLICIT_VR_LE, [J2K_LOSSLESS])).toEqual([]);
    expect(candidateSyntaxes(MPEG2, [EXPLICIT_VR_LE])).toEqual([]);
  });

  it('says why a file has none', () => {
    expect(noCandidateReason(MPEG2, [EXPLICIT_VR_LE])).toBe(
      "the destination's transferSyntaxes (ExplicitVRLittleEndian (1.2.840.10008.1.2.1)) do not include the " +
        'stored transfer syntax 1.2.840.10008.1.2.4.100, which cannot be converted',
    );
  });
});
