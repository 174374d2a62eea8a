// Transfer syntaxes the receiver accepts, and the order it prefers them in.
//
// No transcoding happens: the data set bytes are stored exactly as received, labelled with the
// accepted transfer syntax. So only transfer syntaxes whose data sets are self-contained Part 10
// payloads are accepted (JPIP referenced pixel data, MIME/XML encodings and the SMPTE ST 2110
// real-time syntaxes are refused; the sender can then fall back to another proposal).

import {
  DEFLATED_EXPLICIT_VR_LE,
  EXPLICIT_VR_BE,
  EXPLICIT_VR_LE,
  IMPLICIT_VR_LE,
} from '../../core/dicom/transferSyntax.js';
import { trimUid } from '../../core/dicom/uid.js';

/** Every transfer syntax a storage context may be accepted with. */
export const ACCEPTED_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set([
  IMPLICIT_VR_LE,
  EXPLICIT_VR_LE,
  '1.2.840.10008.1.2.1.98', // Encapsulated Uncompressed Explicit VR Little Endian
  DEFLATED_EXPLICIT_VR_LE,
  EXPLICIT_VR_BE, // retired, still sent by old modalities
  // JPEG family (baseline, extended, lossless, and the retired processes)
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.52',
  '1.2.840.10008.1.2.4.53',
  '1.2.840.10008.1.2.4.54',
  '1.2.840.10008.1.2.4.55',
  '1.2.840.10008.1.2.4.56',
  '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.58',
  '1.2.840.10008.1.2.4.59',
  '1.2.840.10008.1.2.4.60',
  '1.2.840.10008.1.2.4.61',
  '1.2.840.10008.1.2.4.62',
  '1.2.840.10008.1.2.4.63',
  '1.2.840.10008.1.2.4.64',
  '1.2.840.10008.1.2.4.65',
  '1.2.840.10008.1.2.4.66',
  '1.2.840.10008.1.2.4.70',
  // JPEG-LS
  '1.2.840.10008.1.2.4.80',
  '1.2.840.10008.1.2.4.81',
  // JPEG 2000 (Part 1 and Part 2 multi-component)
  '1.2.840.10008.1.2.4.90',
  '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.4.92',
  '1.2.840.10008.1.2.4.93',
  // MPEG2, MPEG-4 AVC/H.264, HEVC/H.265
  '1.2.840.10008.1.2.4.100',
  '1.2.840.10008.1.2.4.101',
  '1.2.840.10008.1.2.4.102',
  '1.2.840.10008.1.2.4.103',
  '1.2.840.10008.1.2.4.104',
  '1.2.840.10008.1.2.4.105',
  '1.2.840.10008.1.2.4.106',
  '1.2.840.10008.1.2.4.107',
  '1.2.840.10008.1.2.4.108',
  // JPEG XL
  '1.2.840.10008.1.2.4.110',
  '1.2.840.10008.1.2.4.111',
  '1.2.840.10008.1.2.4.112',
  // High-Throughput JPEG 2000
  '1.2.840.10008.1.2.4.201',
  '1.2.840.10008.1.2.4.202',
  '1.2.840.10008.1.2.4.203',
  // RLE Lossless
  '1.2.840.10008.1.2.5',
]);

/** Transfer syntaxes allowed for the Verification SOP class (no data set is ever sent). */
const VERIFICATION_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);

/**
 * Picks the transfer syntax to accept among `proposed` (a copy is taken; the caller's list may
 * be the library's live array): the first one we accept, in the proposer's order. A sender lists
 * the syntax its data is in first; taking it means the sender never transcodes, so compressed
 * pixel data arrives as it was stored (preferring explicit LE would make storescu try to
 * decompress JPEG 2000, which it cannot, and fail the store). Returns undefined when none is
 * acceptable.
 */
export function pickTransferSyntax(proposed: readonly string[], verification = false): string | undefined {
  const allowed = verification ? VERIFICATION_TRANSFER_SYNTAXES : ACCEPTED_TRANSFER_SYNTAXES;
  return proposed.map(trimUid).find((ts) => allowed.has(ts));
}
