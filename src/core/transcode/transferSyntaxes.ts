// The transfer syntaxes the conversion engine reads, and what it can turn each into (PS3.5 A,
// PS3.5 10; UIDs from PS3.6 A-1). Targets are always uncompressed little endian: we never
// compress, so a destination that takes neither explicit nor implicit VR little endian for a
// SOP class cannot be served by conversion.
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../dicom/transferSyntax.js';

/** The codecs behind encapsulated transfer syntaxes we decode. */
export type PixelCodec = 'jpeg' | 'jpeg-ls' | 'jpeg2000' | 'rle';

export interface SourceSyntax {
  /** How the data set bytes are laid out: 'native' pixel data or 'encapsulated' fragments. */
  pixelData: 'native' | 'encapsulated';
  /** Deflated data set (PS3.5 A.5). */
  deflated: boolean;
  /** Codec of encapsulated pixel data (absent for native). */
  codec?: PixelCodec;
  /** Whether the syntax can only carry lossy data (JPEG DCT processes); 'maybe' when the codestream says. */
  lossy: boolean | 'maybe';
}

const ENCAPSULATED: Record<string, { codec: PixelCodec; lossy: boolean | 'maybe' }> = {
  '1.2.840.10008.1.2.4.50': { codec: 'jpeg', lossy: true }, // JPEG Baseline (Process 1)
  '1.2.840.10008.1.2.4.51': { codec: 'jpeg', lossy: true }, // JPEG Extended (Process 2 & 4)
  '1.2.840.10008.1.2.4.57': { codec: 'jpeg', lossy: false }, // JPEG Lossless (Process 14)
  '1.2.840.10008.1.2.4.70': { codec: 'jpeg', lossy: false }, // JPEG Lossless SV1 (Process 14, SV1)
  '1.2.840.10008.1.2.4.80': { codec: 'jpeg-ls', lossy: false }, // JPEG-LS Lossless
  '1.2.840.10008.1.2.4.81': { codec: 'jpeg-ls', lossy: 'maybe' }, // JPEG-LS Near-Lossless
  '1.2.840.10008.1.2.4.90': { codec: 'jpeg2000', lossy: false }, // JPEG 2000 Lossless Only
  '1.2.840.10008.1.2.4.91': { codec: 'jpeg2000', lossy: 'maybe' }, // JPEG 2000
  '1.2.840.10008.1.2.5': { codec: 'rle', lossy: false }, // RLE Lossless
};

/** The uncompressed targets, in our order of preference. */
export const CONVERSION_TARGETS: readonly string[] = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];

/** How we read `uid`, or undefined when we cannot convert from it (MPEG, HEVC, HTJ2K, JPIP...). */
export function sourceSyntax(uid: string): SourceSyntax | undefined {
  switch (uid) {
    case IMPLICIT_VR_LE:
    case EXPLICIT_VR_LE:
    case EXPLICIT_VR_BE:
      return { pixelData: 'native', deflated: false, lossy: false };
    case DEFLATED_EXPLICIT_VR_LE:
      return { pixelData: 'native', deflated: true, lossy: false };
  }
  const e = ENCAPSULATED[uid];
  return e && { pixelData: 'encapsulated', deflated: false, codec: e.codec, lossy: e.lossy };
}

/**
 * The transfer syntaxes an instance stored in `sourceTs` can be converted to, best first
 * (explicit VR little endian, then implicit), never including `sourceTs` itself. Empty when the
 * source syntax is one we cannot read (then the instance can only be sent as it is).
 */
export function conversionsFor(sourceTs: string): string[] {
  if (!sourceSyntax(sourceTs)) return [];
  return CONVERSION_TARGETS.filter((t) => t !== sourceTs);
}
