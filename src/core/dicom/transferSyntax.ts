// How a transfer syntax encodes the data set (pixel data encoding does not matter to us:
// encapsulated pixel data is copied byte for byte).

export const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
export const DEFLATED_EXPLICIT_VR_LE = '1.2.840.10008.1.2.1.99';
export const EXPLICIT_VR_BE = '1.2.840.10008.1.2.2';

export interface Encoding {
  explicitVr: boolean;
  littleEndian: boolean;
}

export const IMPLICIT_LE: Encoding = { explicitVr: false, littleEndian: true };
export const EXPLICIT_LE: Encoding = { explicitVr: true, littleEndian: true };
export const EXPLICIT_BE: Encoding = { explicitVr: true, littleEndian: false };

export interface TransferSyntaxInfo {
  encoding: Encoding;
  deflated: boolean;
}

/**
 * How the data set of transfer syntax `uid` is encoded (PS3.5 Annex A): implicit VR little endian, explicit
 * VR big endian (retired), deflated explicit VR little endian (and the two JPIP Referenced Deflate syntaxes),
 * else explicit VR little endian (every encapsulated syntax, and any UID not known here). Never throws.
 */
export function transferSyntaxInfo(uid: string): TransferSyntaxInfo {
  switch (uid) {
    case IMPLICIT_VR_LE:
      return { encoding: IMPLICIT_LE, deflated: false };
    case EXPLICIT_VR_BE:
      return { encoding: EXPLICIT_BE, deflated: false };
    case DEFLATED_EXPLICIT_VR_LE:
    case '1.2.840.10008.1.2.8.1': // JPIP HTJ2K Referenced Deflate
    case '1.2.840.10008.1.2.4.95': // JPIP Referenced Deflate
      return { encoding: EXPLICIT_LE, deflated: true };
    default:
      // Every other standard transfer syntax (JPEG family, JPEG-LS, JPEG 2000, HTJ2K, RLE,
      // MPEG, HEVC, ...) is explicit VR little endian with encapsulated pixel data.
      return { encoding: EXPLICIT_LE, deflated: false };
  }
}
