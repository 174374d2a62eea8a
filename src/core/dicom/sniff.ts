// Is a file DICOM, and in which form? By content, never by name. PS3.10 7.1 wants a 128-byte
// preamble, 'DICM' and the file meta (group 0002), but files are found without them: 'DICM' at
// byte 0 (no preamble), the file meta with neither preamble nor 'DICM', or a bare data set (what
// a modality's export or an old ACR-NEMA-era tool writes: no preamble, no meta, often implicit
// VR). dcmtk (dcmdump) and pydicom (force=True) read all of these, so all of them are DICOM here:
// de-identified when they can be read, refused otherwise, and never copied as "not DICOM".
//
// A bare data set is recognised by its first element header: an even group from 0002 to 0028
// (a data set starts with its lowest tags: file meta, DICOMDIR group 0004, identification group
// 0008...), and either a VR of PS3.5 (explicit VR, little or big endian) or a 4-byte length
// (implicit VR little endian). Text never starts like that (its first bytes are printable), and
// whether the rest really is DICOM is for the parser to find out.
import type { ByteSource } from './byteSource.js';
import { ALL_VRS } from './constants.js';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from './transferSyntax.js';

/** How a file holds its DICOM data set. */
export type DicomForm =
  /** PS3.10: preamble, 'DICM', file meta (group 0002 from byte 132), data set. */
  | { kind: 'part10'; metaStart: 132 }
  /** 'DICM' at byte 0, then the file meta: the preamble left out. */
  | { kind: 'no-preamble'; metaStart: 4 }
  /** The file meta from byte 0: neither preamble nor 'DICM'. */
  | { kind: 'no-preamble'; metaStart: 0 }
  /** A data set from byte 0, in the transfer syntax its first element header shows. */
  | { kind: 'data-set'; transferSyntaxUid: string };

/** Bytes of a file's start that dicomFormOf needs to decide (fewer when the file is shorter). */
export const SNIFF_BYTES = 132;

function plausibleFirstGroup(group: number): boolean {
  return group % 2 === 0 && group >= 0x0002 && group <= 0x0028;
}

/**
 * The form of the file whose first bytes are `first` (at least SNIFF_BYTES of them, or the whole
 * file when it is shorter), or null when it is not DICOM in any form. Pure.
 */
export function dicomFormOf(first: Buffer): DicomForm | null {
  if (first.length >= 132 && first.toString('latin1', 128, 132) === 'DICM') return { kind: 'part10', metaStart: 132 };
  if (first.length >= 12 && first.toString('latin1', 0, 4) === 'DICM' && first.readUInt16LE(4) === 0x0002) {
    return { kind: 'no-preamble', metaStart: 4 };
  }
  if (first.length < 8) return null;
  const vr = first.toString('latin1', 4, 6);
  const explicit = ALL_VRS.has(vr);
  const groupLE = first.readUInt16LE(0);
  if (groupLE === 0x0002 && explicit) return { kind: 'no-preamble', metaStart: 0 };
  if (plausibleFirstGroup(groupLE)) {
    if (explicit) return { kind: 'data-set', transferSyntaxUid: EXPLICIT_VR_LE };
    // Implicit VR: a 4-byte length no larger than a data set could be (and not undefined, which
    // only a sequence or encapsulated pixel data has, never a first element).
    const length = first.readUInt32LE(4);
    if (length < 0x01000000) return { kind: 'data-set', transferSyntaxUid: IMPLICIT_VR_LE };
    return null;
  }
  if (plausibleFirstGroup(first.readUInt16BE(0)) && explicit) {
    return { kind: 'data-set', transferSyntaxUid: EXPLICIT_VR_BE };
  }
  return null;
}

/** dicomFormOf over the first bytes of `source` (reads at most SNIFF_BYTES). */
export function dicomFormOfSource(source: ByteSource): DicomForm | null {
  return dicomFormOf(source.read(0, Math.min(source.size, SNIFF_BYTES)));
}
