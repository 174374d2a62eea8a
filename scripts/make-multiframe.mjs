// Writes one large multi-frame instance for memory and speed measurements, streamed to disk (never
// whole in memory): Multi-frame Grayscale Word Secondary Capture, 16-bit frames of pseudo-random
// pixels (each frame stamped with its number), made-up identifiers, and a private group (7FE1)
// after the pixel data as real files have.
//   usage: node scripts/make-multiframe.mjs OUT.dcm [--frames N=4000] [--rows 512] [--cols 512]
//            [--patient-id MFMRN001] [--accession MFACC001] [--encapsulated] [--private-header N]
// 4000 frames of 512x512 are 2.1 GB (2,097,152,000 bytes of pixel data). --encapsulated writes
// the frames as fragments under a JPEG 2000 label (not real JPEG 2000: nothing here decodes it);
// --private-header N adds a private element of N bytes before the pixel data (a long vendor
// header: readers must read past their first bytes to reach the pixel data).
// Needs a built dist/ (npm run build).
import { closeSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { encodeHeader, encodeRaw, encodeText } from '../dist/core/dicom/encoder.js';
import { buildFileMeta } from '../dist/core/dicom/fileMeta.js';
import { EXPLICIT_LE } from '../dist/core/dicom/transferSyntax.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    frames: { type: 'string', default: '4000' },
    rows: { type: 'string', default: '512' },
    cols: { type: 'string', default: '512' },
    'patient-id': { type: 'string', default: 'MFMRN001' },
    accession: { type: 'string', default: 'MFACC001' },
    encapsulated: { type: 'boolean', default: false },
    'private-header': { type: 'string', default: '0' },
  },
});
const out = positionals[0];
if (!out) {
  console.error('usage: node scripts/make-multiframe.mjs OUT.dcm [--frames N] [--rows R] [--cols C] [--encapsulated]');
  process.exit(2);
}
const frames = Number(values.frames);
const rows = Number(values.rows);
const cols = Number(values.cols);
const frameBytes = rows * cols * 2;
const uid = () => `2.25.${BigInt('0x' + randomBytes(15).toString('hex'))}`;
const us = (tag, v) => encodeRaw(tag, 'US', Buffer.from([v & 0xff, v >> 8]), EXPLICIT_LE);
const text = (tag, vr, v) => encodeText(tag, vr, v, EXPLICIT_LE);
const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7.3';
const TS = values.encapsulated ? '1.2.840.10008.1.2.4.90' : '1.2.840.10008.1.2.1';
const sop = uid();

const head = [
  buildFileMeta({ sopClassUid: SOP_CLASS, sopInstanceUid: sop, transferSyntaxUid: TS }),
  text(0x00080016, 'UI', SOP_CLASS),
  text(0x00080018, 'UI', sop),
  text(0x00080020, 'DA', '20240301'),
  text(0x00080050, 'SH', values.accession),
  text(0x00080060, 'CS', 'OT'),
  text(0x00100010, 'PN', 'MULTIFRAME^MADEUP'),
  text(0x00100020, 'LO', values['patient-id']),
  text(0x00100030, 'DA', '19700101'),
  text(0x0020000d, 'UI', uid()),
  text(0x0020000e, 'UI', uid()),
  text(0x00200011, 'IS', '1'),
  text(0x00200013, 'IS', '1'),
  us(0x00280002, 1),
  text(0x00280004, 'CS', 'MONOCHROME2'),
  text(0x00280008, 'IS', String(frames)),
  us(0x00280010, rows),
  us(0x00280011, cols),
  us(0x00280100, 16),
  us(0x00280101, 16),
  us(0x00280102, 15),
  us(0x00280103, 0),
];
const privateHeader = Number(values['private-header']);
if (privateHeader > 0) {
  // Group 0029 sorts after the image pixel group 0028 and before the pixel data.
  head.push(text(0x00290010, 'LO', 'MADE UP VENDOR'));
  head.push(encodeRaw(0x00291010, 'OB', randomBytes(privateHeader + (privateHeader % 2)), EXPLICIT_LE));
}
const item = (length) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(0xe000fffe, 0); // (FFFE,E000) little endian: FFFE then E000
  b.writeUInt32LE(length, 4);
  return b;
};
if (values.encapsulated) {
  head.push(encodeHeader(0x7fe00010, 'OB', 0xffffffff, EXPLICIT_LE), item(0)); // empty offset table
} else {
  head.push(encodeHeader(0x7fe00010, 'OW', frames * frameBytes, EXPLICIT_LE));
}
const tail = [
  ...(values.encapsulated ? [Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])] : []),
  text(0x7fe10010, 'LO', 'MADE UP PRIVATE'),
  encodeRaw(0x7fe11001, 'OB', Buffer.from('PRIVATE AFTER PIXELS'), EXPLICIT_LE),
];

const fd = openSync(out, 'w');
const write = (b) => {
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
};
for (const b of head) write(b);
const block = randomBytes(frameBytes);
for (let f = 0; f < frames; f++) {
  block.writeUInt32LE(f, 0);
  if (values.encapsulated) write(item(frameBytes));
  write(block);
}
for (const b of tail) write(b);
closeSync(fd);
console.log(`${out}: ${frames} frames of ${rows}x${cols}, ${frames * frameBytes} bytes of pixel data`);
