// On-disk format of the spool journal (spoolJournal.ts): the segment header and the record
// marker. Read by the receiver (writing, recovery) and by the processing threads (each record is
// checked against its marker and its segment's header before it is used).
//
//   segment header (bytes 0..39 of the segment's first block):
//     0 magic "DICOM-DEID-JRNL\0" | 16 version u32 | 20 generation u64 | 28 nonce (8 random bytes)
//     | 36 CRC-32 of bytes 0..35
//   record marker (bytes 0..51 of the record's Part 10 preamble):
//     0 magic "DICOM-DEID-SPOOL" | 16 version u32 = 2 | 20 record length u64 | 28 CRC-32 of the
//     record's bytes 128.. | 32 generation u64 | 40 retired u32 (outside every checksum: set once
//     the instance is filed) | 44 nonce (the segment header's)
//
// The nonce is new at every generation and never leaves the spool: a record of an earlier use of
// the segment, or a marker a sender planted inside an instance's pixel data, cannot carry it.
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const BLOCK = 4096;
const SEGMENT_MAGIC = Buffer.from('DICOM-DEID-JRNL\0', 'latin1');
const SEGMENT_VERSION = 1;
const RECORD_MAGIC = Buffer.from('DICOM-DEID-SPOOL', 'latin1');
const RECORD_MARKER_VERSION = 2;
export const RETIRED_AT = 40;

/** What makes one use of a segment unique. */
export interface Stamp {
  generation: number;
  nonce: Buffer;
}

/** A new use of a segment: `generation` with a fresh random 8-byte nonce (node:crypto). */
export function newStamp(generation: number): Stamp {
  return { generation, nonce: randomBytes(8) };
}

/**
 * The segment header block for `stamp`: BLOCK (4096) bytes, the layout above in bytes 0..39, the rest zeros.
 */
export function segmentHeader(stamp: Stamp): Buffer {
  const h = Buffer.alloc(BLOCK);
  SEGMENT_MAGIC.copy(h, 0);
  h.writeUInt32LE(SEGMENT_VERSION, 16);
  h.writeBigUInt64LE(BigInt(stamp.generation), 20);
  stamp.nonce.copy(h, 28);
  h.writeUInt32LE(crc32(h.subarray(0, 36)) >>> 0, 36);
  return h;
}

/** The stamp a segment header carries, or null when it is not a valid header. */
export function readSegmentHeader(h: Buffer): Stamp | null {
  if (h.length < 40 || !h.subarray(0, 16).equals(SEGMENT_MAGIC) || h.readUInt32LE(16) !== SEGMENT_VERSION) return null;
  if (h.readUInt32LE(36) !== crc32(h.subarray(0, 36)) >>> 0) return null;
  return { generation: Number(h.readBigUInt64LE(20)), nonce: Buffer.from(h.subarray(28, 36)) };
}

/** The 128-byte preamble of a complete record. */
export function recordMarker(length: number, crc: number, stamp: Stamp): Buffer {
  const m = Buffer.alloc(128);
  RECORD_MAGIC.copy(m, 0);
  m.writeUInt32LE(RECORD_MARKER_VERSION, 16);
  m.writeBigUInt64LE(BigInt(length), 20);
  m.writeUInt32LE(crc >>> 0, 28);
  m.writeBigUInt64LE(BigInt(stamp.generation), 32);
  stamp.nonce.copy(m, 44);
  return m;
}

export interface MarkerFields {
  length: number;
  crc: number;
  retired: boolean;
}

/** The marker's fields when it is a marker of this use of the segment (`stamp`), else null. */
export function readMarker(m: Buffer, stamp: Stamp): MarkerFields | null {
  if (m.length < 128 || !m.subarray(0, 16).equals(RECORD_MAGIC) || m.readUInt32LE(16) !== RECORD_MARKER_VERSION)
    return null;
  if (Number(m.readBigUInt64LE(32)) !== stamp.generation || !m.subarray(44, 52).equals(stamp.nonce)) return null;
  return { length: Number(m.readBigUInt64LE(20)), crc: m.readUInt32LE(28), retired: m.readUInt32LE(RETIRED_AT) === 1 };
}

/** Whether a record's bytes carry a marker of this use of the segment that matches them. */
export function isCompleteRecord(bytes: Buffer, stamp: Stamp): boolean {
  const m = readMarker(bytes.subarray(0, 128), stamp);
  return !!m && m.length === bytes.length && crc32(bytes.subarray(128)) >>> 0 === m.crc;
}
