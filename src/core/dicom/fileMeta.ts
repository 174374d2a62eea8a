// The Part 10 preamble + File Meta Information (group 0002), always Explicit VR Little Endian
// (PS3.10 7.1). Written in front of every de-identified data set, and by the receiver in front of
// every received one.
import { DicomFormatError } from '../types.js';
import { encodeRaw, encodeText } from './encoder.js';
import { LONG_VRS } from './constants.js';
import { readUid } from './uid.js';
import { EXPLICIT_LE } from './transferSyntax.js';

/** This project's Implementation Class UID (PS3.7 D.3.3.2; a 2.25 UUID-derived UID, fixed). */
export const IMPLEMENTATION_CLASS_UID = '2.25.284931705384462313129838186547853740817';
/** Implementation Version Name (SH, at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = 'DICOMDEID_0_1';

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Default IMPLEMENTATION_CLASS_UID. */
  implementationClassUid?: string;
  /** SH: at most 16 characters. Default IMPLEMENTATION_VERSION_NAME. */
  implementationVersionName?: string;
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
    encodeText(0x00020012, 'UI', f.implementationClassUid ?? IMPLEMENTATION_CLASS_UID, EXPLICIT_LE),
    encodeText(0x00020013, 'SH', f.implementationVersionName ?? IMPLEMENTATION_VERSION_NAME, EXPLICIT_LE),
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

/** What readFileMeta finds in group 0002. */
export interface FileMeta {
  /** (0002,0002) Media Storage SOP Class UID ('' when absent). */
  sopClassUid: string;
  /** (0002,0003) Media Storage SOP Instance UID ('' when absent). */
  sopInstanceUid: string;
  /** (0002,0010) Transfer Syntax UID (always present: its absence throws). */
  transferSyntaxUid: string;
  /** Byte offset of the first data set element (just after group 0002). */
  dataSetOffset: number;
  /** Total file size in bytes, as given. */
  fileSize: number;
}

const MAX_META = 1 << 20; // a sane upper bound for group 0002

/**
 * Reads the preamble and group 0002 of a Part 10 file (PS3.10 7.1) from `buf`, which may be a
 * prefix of a file of `fileSize` bytes: returns 'need-more' when the prefix ends inside the meta
 * (call again with a longer one; the meta is at most 1 MiB). The group length is not trusted
 * (some writers get it wrong): elements are read until the group changes.
 * `metaStart` (bytes) is where group 0002 starts: 132 (after the preamble and 'DICM', which are
 * checked), or, for files written without them (see sniff.ts), 4 ('DICM' at 0) or 0.
 * Throws DicomFormatError (one line) when the bytes are not a Part 10 file meta.
 */
export function readFileMeta(buf: Buffer, fileSize: number, metaStart = 132): FileMeta | 'need-more' {
  if (buf.length < metaStart) {
    if (fileSize < metaStart) throw new DicomFormatError('not a DICOM Part 10 file (too short)');
    return 'need-more';
  }
  if (metaStart === 132 && buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new DicomFormatError('not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)');
  }
  let pos = metaStart;
  const values = new Map<number, string>();
  for (;;) {
    if (pos + 8 > buf.length) {
      if (buf.length >= fileSize) break; // file ends inside/after meta
      return 'need-more';
    }
    const group = buf.readUInt16LE(pos);
    if (group !== 0x0002) break;
    const element = buf.readUInt16LE(pos + 2);
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    let len: number;
    let valueStart: number;
    if (LONG_VRS.has(vr)) {
      if (pos + 12 > buf.length) return buf.length >= fileSize ? fail() : 'need-more';
      len = buf.readUInt32LE(pos + 8);
      valueStart = pos + 12;
    } else if (/^[A-Z]{2}$/.test(vr)) {
      len = buf.readUInt16LE(pos + 6);
      valueStart = pos + 8;
    } else {
      throw new DicomFormatError(`file meta element (0002,${hex4(element)}) is not explicit VR`);
    }
    if (len === 0xffffffff) {
      throw new DicomFormatError(`undefined length in file meta element (0002,${hex4(element)})`);
    }
    const end = valueStart + len;
    if (end > MAX_META) throw new DicomFormatError('implausibly large file meta information (over 1 MiB)');
    if (end > buf.length) return buf.length >= fileSize ? fail() : 'need-more';
    if (element === 0x0002 || element === 0x0003 || element === 0x0010) {
      values.set(element, readUid(buf, valueStart, len));
    }
    pos = end;
  }
  const sopClassUid = values.get(0x0002);
  const sopInstanceUid = values.get(0x0003);
  const transferSyntaxUid = values.get(0x0010);
  if (!transferSyntaxUid) throw new DicomFormatError('file meta information has no TransferSyntaxUID (0002,0010)');
  return {
    sopClassUid: sopClassUid ?? '',
    sopInstanceUid: sopInstanceUid ?? '',
    transferSyntaxUid,
    dataSetOffset: pos,
    fileSize,
  };

  function fail(): never {
    throw new DicomFormatError('truncated file meta information');
  }
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
