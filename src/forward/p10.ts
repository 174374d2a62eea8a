// Minimal Part 10 file-meta reader: where the data set starts, and the three UIDs we need.
// Reads only the header bytes; never parses the data set.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LONG_VRS } from '../core/dicom/parser.js';

export interface P10Header {
  /** (0002,0002) MediaStorageSOPClassUID */
  sopClassUid: string;
  /** (0002,0003) MediaStorageSOPInstanceUID */
  sopInstanceUid: string;
  /** (0002,0010) TransferSyntaxUID */
  transferSyntaxUid: string;
  /** Byte offset of the first data set element (just after group 0002). */
  dataSetOffset: number;
  /** Total file size in bytes. */
  fileSize: number;
}

/** Thrown when a file is not a readable Part 10 file; message is one line. */
export class P10Error extends Error {
  override name = 'P10Error';
}

const MAX_META = 1 << 20; // a sane upper bound for group 0002

function uidValue(buf: Buffer, start: number, len: number): string {
  // UI values are padded with NUL (or, wrongly, space) to even length.
  return buf.toString('latin1', start, start + len).replace(/[\0 ]+$/, '');
}

/** Parses the preamble + group 0002 of a Part 10 file held in `buf` (which may be a prefix of it). */
export function parseP10Header(buf: Buffer, fileSize: number, what = 'file'): P10Header | 'need-more' {
  if (buf.length < 132) {
    if (fileSize < 132) throw new P10Error(`${what} is not a DICOM Part 10 file (too short)`);
    return 'need-more';
  }
  if (buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new P10Error(`${what} is not a DICOM Part 10 file (no "DICM" prefix)`);
  }
  let pos = 132;
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
      throw new P10Error(`${what} has a file meta element (0002,${hex4(element)}) that is not explicit VR`);
    }
    if (len === 0xffffffff) {
      throw new P10Error(`${what} has an undefined-length file meta element (0002,${hex4(element)})`);
    }
    const end = valueStart + len;
    if (end > MAX_META) throw new P10Error(`${what} has an implausibly large file meta header`);
    if (end > buf.length) return buf.length >= fileSize ? fail() : 'need-more';
    if (element === 0x0002 || element === 0x0003 || element === 0x0010) {
      values.set(element, uidValue(buf, valueStart, len));
    }
    pos = end;
  }
  const sopClassUid = values.get(0x0002);
  const sopInstanceUid = values.get(0x0003);
  const transferSyntaxUid = values.get(0x0010);
  if (!transferSyntaxUid) throw new P10Error(`${what} has no TransferSyntaxUID (0002,0010) in its file meta`);
  if (!sopClassUid) throw new P10Error(`${what} has no MediaStorageSOPClassUID (0002,0002) in its file meta`);
  if (!sopInstanceUid) throw new P10Error(`${what} has no MediaStorageSOPInstanceUID (0002,0003) in its file meta`);
  if (pos >= fileSize) throw new P10Error(`${what} has a file meta header but no data set`);
  return { sopClassUid, sopInstanceUid, transferSyntaxUid, dataSetOffset: pos, fileSize };

  function fail(): never {
    throw new P10Error(`${what} is truncated inside its file meta header`);
  }
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** Reads just enough of `path` to parse its file meta header. Throws P10Error or an fs error. */
export function readP10Header(path: string, what = 'file'): P10Header {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    let size = Math.min(fileSize, 4096);
    for (;;) {
      const buf = Buffer.allocUnsafe(size);
      const n = readSync(fd, buf, 0, size, 0);
      const r = parseP10Header(buf.subarray(0, n), fileSize, what);
      if (r !== 'need-more') return r;
      if (n >= fileSize || size >= MAX_META) throw new P10Error(`${what} has an unreadable file meta header`);
      size = Math.min(fileSize, size * 4);
    }
  } finally {
    closeSync(fd);
  }
}
