// Hand-made DICOM bytes for tests that need what no well-behaved writer produces: elements out
// of order or repeated, odd value lengths, a data set without preamble or file meta, explicit and
// implicit VR mixed in one data set. Every value is given as written (no padding added).
import { LONG_VRS } from '../../src/core/dicom/constants.js';

export type Enc = 'explicit' | 'implicit' | 'explicit-be';

/** One element: tag, VR, value (a string is written latin1, as is, without padding). */
export function el(tag: number, vr: string, value: string | Buffer, enc: Enc = 'explicit'): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const le = enc !== 'explicit-be';
  const tagBytes = Buffer.alloc(4);
  if (le) {
    tagBytes.writeUInt16LE(tag >>> 16, 0);
    tagBytes.writeUInt16LE(tag & 0xffff, 2);
  } else {
    tagBytes.writeUInt16BE(tag >>> 16, 0);
    tagBytes.writeUInt16BE(tag & 0xffff, 2);
  }
  if (enc === 'implicit') {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(v.length);
    return Buffer.concat([tagBytes, len, v]);
  }
  if (LONG_VRS.has(vr)) {
    const h = Buffer.alloc(8);
    h.write(vr, 0, 'latin1');
    if (le) h.writeUInt32LE(v.length, 4);
    else h.writeUInt32BE(v.length, 4);
    return Buffer.concat([tagBytes, h, v]);
  }
  const h = Buffer.alloc(4);
  h.write(vr, 0, 'latin1');
  if (le) h.writeUInt16LE(v.length, 2);
  else h.writeUInt16BE(v.length, 2);
  return Buffer.concat([tagBytes, h, v]);
}

/** A sequence of defined length whose items (each a list of encoded elements) have defined lengths. */
export function seq(tag: number, items: Buffer[][], enc: Enc = 'explicit'): Buffer {
  const body = Buffer.concat(
    items.map((elements) => {
      const content = Buffer.concat(elements);
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0xfffe, 0);
      h.writeUInt16LE(0xe000, 2);
      h.writeUInt32LE(content.length, 4);
      return Buffer.concat([h, content]);
    }),
  );
  return el(tag, 'SQ', body, enc);
}

export const UIDS = {
  mrStorage: '1.2.840.10008.5.1.4.1.1.4',
  usStorage: '1.2.840.10008.5.1.4.1.1.6.1',
  scStorage: '1.2.840.10008.5.1.4.1.1.7',
  ctStorage: '1.2.840.10008.5.1.4.1.1.2',
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
};

/** A UI value padded to even length with NUL, as PS3.5 wants (helper for well-formed parts). */
export function ui(uid: string): string {
  return uid.length % 2 ? uid + '\0' : uid;
}

/** Preamble, DICM and a file meta (explicit VR LE) naming `ts`, in front of `dataSet`. */
export function part10(dataSet: Buffer, opts: { sopClass: string; sopInstance: string; ts: string }): Buffer {
  const elements = Buffer.concat([
    el(0x00020001, 'OB', Buffer.from([0, 1])),
    el(0x00020002, 'UI', ui(opts.sopClass)),
    el(0x00020003, 'UI', ui(opts.sopInstance)),
    el(0x00020010, 'UI', ui(opts.ts)),
    el(0x00020012, 'UI', ui('1.2.3.4')),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(elements.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), el(0x00020000, 'UL', gl), elements, dataSet]);
}

/** US values, little endian. */
export function us(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
}

/**
 * A tiny MR instance (2x2 pixels of 8 bits) as Part 10, explicit VR LE: SOP Instance `sopUid` of
 * patient `patientName` / `patientId` in study `study` (its series `${study}.1`), study date
 * 2024-03-01. For tests that need a valid DICOM file and nothing more.
 */
export function tinyMrInstance(o: { sopUid: string; study: string; patientName: string; patientId: string }): Buffer {
  const ds = Buffer.concat([
    el(0x00080016, 'UI', ui(UIDS.mrStorage)),
    el(0x00080018, 'UI', ui(o.sopUid)),
    el(0x00080020, 'DA', '20240301'),
    el(0x00080060, 'CS', 'MR'),
    el(0x00100010, 'PN', o.patientName.length % 2 ? o.patientName + ' ' : o.patientName),
    el(0x00100020, 'LO', o.patientId.length % 2 ? o.patientId + ' ' : o.patientId),
    el(0x0020000d, 'UI', ui(o.study)),
    el(0x0020000e, 'UI', ui(`${o.study}.1`)),
    el(0x00280010, 'US', us(2)),
    el(0x00280011, 'US', us(2)),
    el(0x00280100, 'US', us(8)),
    el(0x7fe00010, 'OB', Buffer.from([1, 2, 3, 4])),
  ]);
  return part10(ds, { sopClass: UIDS.mrStorage, sopInstance: o.sopUid, ts: UIDS.explicitLE });
}
