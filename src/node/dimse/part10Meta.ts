// Builds the Part 10 preamble + File Meta Information (group 0002) for a received data set.
//
// DIMSE carries the data set only; the receiver writes its own meta in front of the received
// bytes (which are stored untouched). The bytes are laid out by core/dicom/fileMeta.ts.
import { buildFileMeta as buildMeta } from '../../core/dicom/fileMeta.js';

/** This node's Implementation Class UID (a 2.25 UUID-derived UID, fixed for the project). */
export const IMPLEMENTATION_CLASS_UID = '2.25.20467375677542217385174924049112616037';
/** Implementation Version Name (SH, at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = 'DICOM_DEID_01';

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** (0002,0016) Source Application Entity Title: the calling AE (omitted when empty). */
  sourceAeTitle?: string;
}

/** 128-byte zero preamble, "DICM", and the complete group 0002 with its group length. */
export function buildFileMeta(f: FileMetaFields): Buffer {
  return buildMeta({
    ...f,
    implementationClassUid: IMPLEMENTATION_CLASS_UID,
    implementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
}
