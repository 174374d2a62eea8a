// Which transfer syntaxes a filed instance may be sent in (src/forward/syntaxChoice.ts): the
// stored one first, then the conversions; a destination's transferSyntaxes orders and limits.
import { describe, expect, it } from 'vitest';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { parseDestination } from '../../src/forward/destination.js';
import { candidateSyntaxes, noCandidateReason, preferenceWarning } from '../../src/forward/syntaxChoice.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import { memoryLogger } from '../helpers/forward-helpers.js';

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

describe('preferenceWarning', () => {
  it('warns about a list that rules out every conversion, and only about that', () => {
    expect(preferenceWarning(undefined)).toBeUndefined();
    expect(preferenceWarning([J2K_LOSSLESS, IMPLICIT_VR_LE])).toBeUndefined();
    expect(preferenceWarning([EXPLICIT_VR_LE])).toBeUndefined();
    expect(preferenceWarning([J2K_LOSSLESS, EXPLICIT_VR_BE])).toBe(
      'transferSyntaxes (Jpeg2000Lossless (1.2.840.10008.1.2.4.90), ExplicitVRBigEndian (1.2.840.10008.1.2.2)) ' +
        'name none of the syntaxes files are converted to (ExplicitVRLittleEndian (1.2.840.10008.1.2.1), ' +
        'ImplicitVRLittleEndian (1.2.840.10008.1.2); nothing is compressed): only files stored in a listed ' +
        'syntax can be sent, the others will go dead',
    );
  });

  it('the forwarder logs it once per such destination when it starts', async () => {
    const state = await openStateStore(':memory:', { create: true });
    const logger = memoryLogger();
    const fwd = new Forwarder({
      state,
      destinations: [
        { ...parseDestination('J2K@127.0.0.1:1'), name: 'j2k-only', transferSyntaxes: [J2K_LOSSLESS] },
        { ...parseDestination('LE@127.0.0.1:2'), name: 'le', transferSyntaxes: [IMPLICIT_VR_LE] },
        parseDestination('ANY@127.0.0.1:3'),
      ],
      callingAet: 'DEID',
      logger,
      send: async () => ({ associations: 0, outcomes: [] }),
    });
    await fwd.start();
    await fwd.stop();
    await state.close();
    const warns = logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(/^forward j2k-only.*name none of the syntaxes files are converted to/);
  });
});
