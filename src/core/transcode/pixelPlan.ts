// How encapsulated pixel data becomes native pixel data, decided before any byte is written:
// the frame layout the codec produces, how fragments group into frames, and the Image Pixel and
// lossy compression attributes the converted data set gets (PS3.5 8.2, PS3.3 C.7.6.3 and
// C.7.6.1.1.5). Pure: from the scan's values and the first frame's codestream headers.
import { hexTag } from '../dicom/parser.js';
import { readCodestream, type CodestreamInfo } from './codestream.js';
import { corrupt, unsupported } from './conversionError.js';
import { PIXEL_TAGS as T, type ScanResult } from './scan.js';
import type { PixelCodec, SourceSyntax } from './transferSyntaxes.js';

/** What a FrameDecoder is told about one frame (the codec's view of it). */
export interface FrameParameters {
  codec: PixelCodec;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  /** Bits per sample the codec writes: 8, 16 (or 32 for RLE). */
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  photometricInterpretation: string;
}

/**
 * Decodes one compressed frame into its samples: rows x columns x samplesPerPixel samples of
 * bitsAllocated/8 bytes (little endian), interleaved, except JPEG-LS without interleave (planar)
 * and JPEG 2000 / JPEG-LS samples of <= 8 bits (one byte each). Rejects (any error) on data it
 * cannot decode; the engine turns that into a ConversionError. `frame` is the engine's scratch
 * buffer: valid until the promise settles, never to be kept.
 */
export interface FrameDecoder {
  decode(frame: Buffer, params: FrameParameters): Promise<Buffer>;
}

export type Framing =
  | { kind: 'single' }
  | { kind: 'per-fragment' }
  | { kind: 'offsets'; offsets: number[] }
  | { kind: 'markers'; codec: PixelCodec };

export interface ReplacedValue {
  vr: string;
  value: Buffer;
}

export interface DecodePlan {
  codec: PixelCodec;
  frames: number;
  params: FrameParameters;
  /** Bytes per sample the codec writes (1, 2 or 4). */
  codecSampleBytes: number;
  /** Sign-extend one-byte codec samples when widening them (JPEG 2000 signed data). */
  codecSigned: boolean;
  /** The codec writes colour planes one after the other (JPEG-LS, interleave mode 0). */
  codecPlanar: boolean;
  /** Bytes per sample in the output (Bits Allocated / 8). */
  sampleBytes: number;
  /** Native bytes of one frame. */
  frameBytes: number;
  /** Value length of the native Pixel Data (even: a padding byte follows odd data). */
  pixelDataLength: number;
  /** VR of the native Pixel Data (OB for 8 bits allocated, else OW). */
  pixelDataVr: 'OB' | 'OW';
  framing: Framing;
  /** Top-level attributes written instead of the source's (null: left out), by tag. */
  replace: Map<number, ReplacedValue | null>;
  /** Photometric Interpretation before and after, and whether the source was lossy. */
  summary: { photometricIn: string; photometricOut: string; lossy: boolean };
}

const METHOD: Record<PixelCodec, string> = {
  jpeg: 'ISO_10918_1',
  'jpeg-ls': 'ISO_14495_1',
  jpeg2000: 'ISO_15444_1',
  rle: '',
};

function us(values: Map<number, Buffer>, tag: number, name: string, required: true): number;
function us(values: Map<number, Buffer>, tag: number, name: string, required: false): number | undefined;
function us(values: Map<number, Buffer>, tag: number, name: string, required: boolean): number | undefined {
  const v = values.get(tag);
  if (!v || v.length < 2) {
    if (required) throw corrupt(`${name} ${hexTag(tag)} is missing`);
    return undefined;
  }
  return v.readUInt16LE(0);
}

function text(values: Map<number, Buffer>, tag: number): string | undefined {
  const v = values.get(tag);
  return (
    v &&
    v
      .toString('latin1')
      .replace(/[\0 ]+$/, '')
      .replace(/^ +/, '')
  );
}

function textValue(s: string, pad = ' '): Buffer {
  return Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
}

function usValue(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** Lossy Image Compression Ratio as a DS (at most 16 characters). */
export function formatRatio(ratio: number): string {
  return ratio >= 1000 ? String(Math.round(ratio)) : ratio.toFixed(2);
}

/**
 * Plans the decode of the scanned instance's encapsulated Pixel Data. Throws ConversionError:
 * 'unsupported' for what our codecs cannot produce (e.g. 16-bit colour JPEG 2000), 'corrupt'
 * for missing or inconsistent attributes and unreadable codestream headers.
 */
export function planDecode(scan: ScanResult, syntax: SourceSyntax): DecodePlan {
  const px = scan.pixelData;
  const codec = syntax.codec;
  if (!codec || !px) throw unsupported('no encapsulated pixel data to decode');
  if (!px.encapsulated) throw corrupt('the transfer syntax is compressed but Pixel Data is not encapsulated');
  const v = scan.values;
  const rows = us(v, T.rows, 'Rows', true);
  const columns = us(v, T.columns, 'Columns', true);
  const spp = us(v, T.samplesPerPixel, 'SamplesPerPixel', true);
  const bitsAllocated = us(v, T.bitsAllocated, 'BitsAllocated', true);
  const bitsStoredIn = us(v, T.bitsStored, 'BitsStored', false) ?? bitsAllocated;
  const pixelRepresentation = us(v, T.pixelRepresentation, 'PixelRepresentation', false) ?? 0;
  const photometricIn = text(v, T.photometricInterpretation) ?? '';
  const nfText = text(v, T.numberOfFrames);
  const frames = nfText === undefined || nfText === '' ? 1 : Number(nfText);
  if (!Number.isInteger(frames) || frames < 1) throw corrupt(`NumberOfFrames "${nfText}" is not a positive integer`);
  if (rows === 0 || columns === 0) throw corrupt(`image size ${rows}x${columns} is empty`);
  if (spp !== 1 && spp !== 3) throw unsupported(`SamplesPerPixel ${spp} (only 1 and 3 are decoded)`);
  const okBits = codec === 'rle' ? [8, 16, 32] : [8, 16];
  if (!okBits.includes(bitsAllocated)) {
    throw unsupported(`BitsAllocated ${bitsAllocated} with ${codec} (${okBits.join(', ')} are decoded)`);
  }
  if (!photometricIn) throw corrupt('PhotometricInterpretation (0028,0004) is missing');

  let info: CodestreamInfo | undefined;
  if (codec !== 'rle') {
    const read = readCodestream(codec, px.firstFragmentHead);
    if (typeof read === 'string') throw corrupt(`first frame: ${read}`);
    info = read;
    const dataSetSays = `${columns}x${rows}x${spp}`;
    const codestreamSays = `${info.columns}x${info.rows}x${info.components}`;
    if (dataSetSays !== codestreamSays) {
      throw corrupt(
        `the first frame is ${codestreamSays} (columns x rows x samples) but the data set says ${dataSetSays}`,
      );
    }
    if (info.precision > bitsAllocated) {
      throw corrupt(`the codestream has ${info.precision}-bit samples but BitsAllocated is ${bitsAllocated}`);
    }
  }
  const precision = info?.precision ?? bitsStoredIn;
  // What the codec writes per sample: RLE byte planes by Bits Allocated; the others by precision.
  const codecSampleBytes = codec === 'rle' ? bitsAllocated / 8 : precision <= 8 ? 1 : 2;
  if (codec === 'jpeg2000' && spp === 3 && codecSampleBytes > 1) {
    throw unsupported(`${precision}-bit colour JPEG 2000 (the codec decodes colour to 8 bits only)`);
  }

  // Photometric Interpretation after decoding (PS3.5 8.2.1, 8.2.4; PS3.3 C.7.6.3.1.2).
  let photometricOut = photometricIn;
  if (codec === 'jpeg') {
    if (photometricIn.startsWith('YBR_PARTIAL')) throw unsupported(`${photometricIn} JPEG`);
    // Decoded without colour conversion (as GDCM does): the subsampled chroma comes out upsampled.
    if (photometricIn === 'YBR_FULL_422') photometricOut = 'YBR_FULL';
  } else if (codec === 'jpeg2000') {
    // The codec applies the inverse irreversible/reversible component transform.
    if (photometricIn === 'YBR_ICT' || photometricIn === 'YBR_RCT') photometricOut = 'RGB';
  }

  const sampleBytes = bitsAllocated / 8;
  const frameBytes = rows * columns * spp * sampleBytes;
  const total = frames * frameBytes;
  const replace = new Map<number, ReplacedValue | null>();
  if (photometricOut !== photometricIn) {
    replace.set(T.photometricInterpretation, { vr: 'CS', value: textValue(photometricOut) });
  }
  if (spp > 1 && us(v, T.planarConfiguration, 'PlanarConfiguration', false) !== 0) {
    replace.set(T.planarConfiguration, { vr: 'US', value: usValue(0) });
  }
  // A codestream deeper than Bits Stored says (e.g. 16-bit JPEG 2000 in 14 bits stored): the
  // decoded samples use the codestream's bits, as GDCM records them.
  if (precision > bitsStoredIn) {
    replace.set(T.bitsStored, { vr: 'US', value: usValue(precision) });
    replace.set(T.highBit, { vr: 'US', value: usValue(precision - 1) });
  }
  // Lossy sources stay marked lossy, with ratio and method when the source gave none.
  const lossyFlag = text(v, T.lossyImageCompression);
  const lossy = lossyFlag === '01' || (info ? info.lossy : syntax.lossy === true);
  if (lossy) {
    if (lossyFlag !== '01') replace.set(T.lossyImageCompression, { vr: 'CS', value: textValue('01') });
    if (!v.has(T.lossyImageCompressionRatio) && px.compressedBytes > 0) {
      replace.set(T.lossyImageCompressionRatio, {
        vr: 'DS',
        value: textValue(formatRatio(total / px.compressedBytes)),
      });
    }
    if (!v.has(T.lossyImageCompressionMethod) && METHOD[codec]) {
      replace.set(T.lossyImageCompressionMethod, { vr: 'CS', value: textValue(METHOD[codec]) });
    }
  }
  // Native pixel data has no offset tables.
  replace.set(T.extendedOffsetTable, null);
  replace.set(T.extendedOffsetTableLengths, null);

  return {
    codec,
    frames,
    params: {
      codec,
      rows,
      columns,
      samplesPerPixel: spp,
      bitsAllocated: codecSampleBytes * 8,
      bitsStored: Math.min(precision, codecSampleBytes * 8),
      pixelRepresentation,
      photometricInterpretation: photometricIn,
    },
    codecSampleBytes,
    codecSigned: info?.signed === true,
    codecPlanar: codec === 'jpeg-ls' && spp > 1 && info?.interleave === 0,
    sampleBytes,
    frameBytes,
    pixelDataLength: total + (total % 2),
    pixelDataVr: bitsAllocated <= 8 ? 'OB' : 'OW',
    framing: chooseFraming(scan, px.fragments, px.basicOffsets, frames, codec),
    replace,
    summary: { photometricIn, photometricOut, lossy },
  };
}

/** How fragments group into frames (PS3.5 A.4): the first rule that applies. */
function chooseFraming(
  scan: ScanResult,
  fragments: number,
  basicOffsets: number[],
  frames: number,
  codec: PixelCodec,
): Framing {
  if (frames === 1) return { kind: 'single' };
  if (fragments === frames) return { kind: 'per-fragment' };
  const eot = scan.values.get(T.extendedOffsetTable);
  if (eot && eot.length === 8 * frames) {
    const offsets: number[] = [];
    for (let i = 0; i < frames; i++) offsets.push(Number(eot.readBigUInt64LE(8 * i)));
    return { kind: 'offsets', offsets };
  }
  if (basicOffsets.length === frames) return { kind: 'offsets', offsets: basicOffsets };
  if (codec === 'rle') throw corrupt(`RLE pixel data has ${fragments} fragments for ${frames} frames`);
  if (fragments < frames) throw corrupt(`pixel data has ${fragments} fragments for ${frames} frames`);
  return { kind: 'markers', codec };
}

/**
 * The decoder's output for frame `index` (0-based) as native samples of the plan's Bits
 * Allocated, interleaved. Throws ConversionError (corrupt) when its size is not the frame's.
 */
export function toNativeFrame(decoded: Buffer, plan: DecodePlan, index: number): Buffer {
  const { rows, columns, samplesPerPixel: spp } = plan.params;
  const pixels = rows * columns;
  const expected = pixels * spp * plan.codecSampleBytes;
  if (decoded.length !== expected) {
    throw corrupt(`frame ${index + 1} of ${plan.frames} decoded to ${decoded.length} bytes, expected ${expected}`);
  }
  let out = decoded;
  const sb = plan.codecSampleBytes;
  if (plan.codecPlanar) {
    out = Buffer.allocUnsafe(decoded.length);
    for (let s = 0; s < spp; s++) {
      for (let p = 0; p < pixels; p++) {
        decoded.copy(out, (p * spp + s) * sb, (s * pixels + p) * sb, (s * pixels + p + 1) * sb);
      }
    }
  }
  if (sb === 1 && plan.sampleBytes === 2) {
    const wide = Buffer.allocUnsafe(out.length * 2);
    for (let i = 0; i < out.length; i++) {
      wide.writeUInt16LE(plan.codecSigned ? out.readInt8(i) & 0xffff : out[i]!, 2 * i);
    }
    out = wide;
  }
  return out;
}
