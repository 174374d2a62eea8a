// The Part 10 preamble + File Meta Information (group 0002), always Explicit VR Little Endian
// (PS3.10 7.1). Written in front of every de-identified data set, and by the receiver in front of
// every received one.
import { encodeRaw, encodeText } from './encoder.js';
import { EXPLICIT_LE } from './transferSyntax.js';

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  implementationClassUid: string;
  /** SH: at most 16 characters. */
  implementationVersionName: string;
  /** (0002,0016) Source Application Entity Title (omitted when empty or absent). */
  sourceAeTitle?: string;
}

/** 128-byte zero preamble, "DICM", and the complete group 0002 with its group length. */
export function buildFileMeta(f: FileMetaFields): Buffer {
  const elements: Buffer[] = [
    encodeRaw(0x00020001, 'OB', Buffer.from([0, 1]), EXPLICIT_LE),
    encodeText(0x00020002, 'UI', f.sopClassUid, EXPLICIT_LE),
    encodeText(0x00020003, 'UI', f.sopInstanceUid, EXPLICIT_LE),
    encodeText(0x00020010, 'UI', f.transferSyntaxUid, EXPLICIT_LE),
    encodeText(0x00020012, 'UI', f.implementationClassUid, EXPLICIT_LE),
    encodeText(0x00020013, 'SH', f.implementationVersionName, EXPLICIT_LE),
  ];
  if (f.sourceAeTitle) elements.push(encodeText(0x00020016, 'AE', f.sourceAeTitle, EXPLICIT_LE));
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(elements.reduce((n, e) => n + e.length, 0));
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    encodeRaw(0x00020000, 'UL', groupLength, EXPLICIT_LE),
    ...elements,
  ]);
}
