// Builds the Part 10 preamble + File Meta Information (group 0002) for a received data set.
//
// DIMSE carries the data set only; the receiver writes its own meta in front of the received
// bytes (which are stored untouched). Group 0002 is always Explicit VR Little Endian (PS3.10 7.1).

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

/** Even-length value: UIDs are padded with NUL, other strings with a space. */
function padded(value: string, padByte: number): Buffer {
  const raw = Buffer.from(value, 'latin1');
  if (raw.length % 2 === 0) return raw;
  const out = Buffer.allocUnsafe(raw.length + 1);
  raw.copy(out);
  out[raw.length] = padByte;
  return out;
}

/** Element with a 2-byte length (UL, UI, SH, AE...). */
function shortElement(element: number, vr: string, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError('file meta value too long');
  const b = Buffer.allocUnsafe(8 + value.length);
  b.writeUInt16LE(0x0002, 0);
  b.writeUInt16LE(element, 2);
  b.write(vr, 4, 'latin1');
  b.writeUInt16LE(value.length, 6);
  value.copy(b, 8);
  return b;
}

/** Element with a 4-byte length (OB). */
function longElement(element: number, vr: string, value: Buffer): Buffer {
  const b = Buffer.allocUnsafe(12 + value.length);
  b.writeUInt16LE(0x0002, 0);
  b.writeUInt16LE(element, 2);
  b.write(vr, 4, 'latin1');
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(value.length, 8);
  value.copy(b, 12);
  return b;
}

/** 128-byte zero preamble, "DICM", and the complete group 0002 with its group length. */
export function buildFileMeta(f: FileMetaFields): Buffer {
  const elements: Buffer[] = [
    longElement(0x0001, 'OB', Buffer.from([0x00, 0x01])),
    shortElement(0x0002, 'UI', padded(f.sopClassUid, 0)),
    shortElement(0x0003, 'UI', padded(f.sopInstanceUid, 0)),
    shortElement(0x0010, 'UI', padded(f.transferSyntaxUid, 0)),
    shortElement(0x0012, 'UI', padded(IMPLEMENTATION_CLASS_UID, 0)),
    shortElement(0x0013, 'SH', padded(IMPLEMENTATION_VERSION_NAME, 0x20)),
  ];
  if (f.sourceAeTitle) elements.push(shortElement(0x0016, 'AE', padded(f.sourceAeTitle, 0x20)));
  const groupLength = elements.reduce((n, e) => n + e.length, 0);
  const lengthValue = Buffer.allocUnsafe(4);
  lengthValue.writeUInt32LE(groupLength, 0);
  const header = Buffer.alloc(132);
  header.write('DICM', 128, 'latin1');
  return Buffer.concat([header, shortElement(0x0000, 'UL', lengthValue), ...elements]);
}
