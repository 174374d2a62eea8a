// What the first bytes of a compressed frame say about it, read from its headers without
// decoding: size, components, precision, and whether the coding was lossy. JPEG and JPEG-LS per
// ITU-T T.81 B.2 and T.87 (SOF55, SOS with NEAR and ILV); JPEG 2000 per ITU-T T.800 A.5.1 (SIZ)
// and A.6.1 (COD), raw codestream or inside a JP2 file.
import type { PixelCodec } from './transferSyntaxes.js';

export interface CodestreamInfo {
  rows: number;
  columns: number;
  components: number;
  /** Bits per sample in the codestream. */
  precision: number;
  /** Whether the samples were coded lossily (DCT, JPEG-LS NEAR > 0, JPEG 2000 9-7 wavelet). */
  lossy: boolean;
  /** JPEG 2000: samples are signed (Ssiz bit 7). */
  signed?: boolean;
  /** JPEG 2000: a multiple component transform (ICT/RCT) is applied (COD SGcod). */
  componentTransform?: boolean;
  /** JPEG-LS: interleave mode of the first scan (0 none, 1 line, 2 sample). */
  interleave?: number;
}

/** Reads the headers of `frame` (its first bytes suffice); a one-line reason when unreadable. */
export function readCodestream(codec: PixelCodec, frame: Buffer): CodestreamInfo | string {
  if (codec === 'jpeg' || codec === 'jpeg-ls') return readJpeg(frame);
  if (codec === 'jpeg2000') return readJ2k(frame);
  return 'no codestream header in RLE';
}

const isSof = (m: number): boolean => (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) || m === 0xf7;

function readJpeg(b: Buffer): CodestreamInfo | string {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 'the frame does not start with a JPEG SOI marker';
  let pos = 2;
  let info: CodestreamInfo | undefined;
  let sof = 0;
  while (pos + 4 <= b.length) {
    if (b[pos] !== 0xff) return `no JPEG marker at byte ${pos} of the frame`;
    const marker = b[pos + 1]!;
    if (marker === 0xff) {
      pos += 1; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2;
      continue;
    }
    const len = b.readUInt16BE(pos + 2);
    const seg = pos + 4;
    if (isSof(marker)) {
      if (seg + 6 > b.length) break;
      sof = marker;
      info = {
        precision: b[seg]!,
        rows: b.readUInt16BE(seg + 1),
        columns: b.readUInt16BE(seg + 3),
        components: b[seg + 5]!,
        // SOF3/7/11/15 are the lossless processes, SOF55 is JPEG-LS (NEAR read from SOS).
        lossy: ![0xc3, 0xc7, 0xcb, 0xcf, 0xf7].includes(marker),
      };
    } else if (marker === 0xda) {
      if (!info) return 'JPEG scan before any frame header';
      if (sof === 0xf7) {
        const ns = b[seg]!;
        const near = b[seg + 1 + 2 * ns];
        const ilv = b[seg + 2 + 2 * ns];
        if (near === undefined || ilv === undefined) break;
        info.lossy = near > 0;
        info.interleave = ilv;
      }
      return info;
    }
    pos = seg + len - 2;
  }
  return info ?? 'no JPEG frame header in the first bytes of the frame';
}

function readJ2k(b: Buffer): CodestreamInfo | string {
  // A JP2 file wraps the codestream in boxes; the codestream starts at SOC + SIZ (FF4F FF51).
  let pos = b.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51]));
  if (pos < 0) return 'no JPEG 2000 codestream (SOC, SIZ) in the first bytes of the frame';
  pos += 2;
  let info: CodestreamInfo | undefined;
  while (pos + 4 <= b.length) {
    if (b[pos] !== 0xff) return `no JPEG 2000 marker at byte ${pos} of the frame`;
    const marker = b[pos + 1]!;
    const len = b.readUInt16BE(pos + 2);
    const seg = pos + 4;
    if (marker === 0x51) {
      if (seg + 36 + 3 > b.length) break;
      const xsiz = b.readUInt32BE(seg + 2);
      const ysiz = b.readUInt32BE(seg + 6);
      const xo = b.readUInt32BE(seg + 10);
      const yo = b.readUInt32BE(seg + 14);
      const csiz = b.readUInt16BE(seg + 34);
      const ssiz = b[seg + 36]!;
      info = {
        columns: xsiz - xo,
        rows: ysiz - yo,
        components: csiz,
        precision: (ssiz & 0x7f) + 1,
        signed: (ssiz & 0x80) !== 0,
        lossy: false,
      };
    } else if (marker === 0x52) {
      if (!info) return 'JPEG 2000 COD before SIZ';
      if (seg + 10 > b.length) break;
      info.componentTransform = b[seg + 4] === 1;
      info.lossy = b[seg + 9] === 0; // 0: 9-7 irreversible wavelet, 1: 5-3 reversible
      return info;
    } else if (marker === 0x90 || marker === 0x93) {
      break; // first tile: no COD in the main header
    }
    pos = seg + len - 2;
  }
  return info ? 'no JPEG 2000 COD marker in the main header' : 'no JPEG 2000 SIZ marker';
}
