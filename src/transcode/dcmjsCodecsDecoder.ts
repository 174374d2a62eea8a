// The FrameDecoder over dcmjs-codecs (npm, MIT): one WebAssembly module bundling dcmtk's IJG
// libjpeg 8/12/16-bit (baseline, extended, lossless), CharLS 2.3.4 (JPEG-LS), OpenJPEG 2.5.0
// (JPEG 2000) and an RLE decoder. Why this library: docs/codecs.md.
//
// The package (and dcmjs, which it imports: ~20 MB of RSS) is imported on the first decode, so a
// thread converting only at the byte level never loads it. The module is loaded once per thread,
// on first use (~45 ms, ~4 MB of WebAssembly). A codec
// failure may leave the module's heap in any state (a C++ abort surfaces as "unreachable"), so
// the module is loaded afresh after one. Decoding is synchronous and CPU-bound: run it in a
// worker thread, never on the thread that receives associations.
import type Codecs from 'dcmjs-codecs';
import type { FrameDecoder, FrameParameters } from '../core/transcode/pixelPlan.js';

type Library = typeof Codecs;
let ready: Promise<Library> | undefined;

function load(): Promise<Library> {
  ready ??= (async () => {
    const codecs = (await import('dcmjs-codecs')).default;
    await codecs.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return codecs;
  })().catch((e: unknown) => {
    ready = undefined;
    throw e;
  });
  return ready;
}

/** Decodes frames with dcmjs-codecs; see FrameDecoder for the output layout. */
export const dcmjsCodecsDecoder: FrameDecoder = {
  async decode(frame: Buffer, p: FrameParameters): Promise<Buffer> {
    const { NativeCodecs, Context } = await load();
    const context = new Context({
      width: p.columns,
      height: p.rows,
      bitsAllocated: p.bitsAllocated,
      bitsStored: p.bitsStored,
      samplesPerPixel: p.samplesPerPixel,
      pixelRepresentation: p.pixelRepresentation,
      planarConfiguration: 0,
      photometricInterpretation: p.photometricInterpretation,
      encodedBuffer: frame,
    });
    try {
      let out: InstanceType<typeof Context>;
      switch (p.codec) {
        case 'jpeg':
          // No colour conversion: YBR stays YBR (pixelPlan.ts sets the Photometric Interpretation).
          out = NativeCodecs.decodeJpeg(context, { convertColorspaceToRgb: false });
          break;
        case 'jpeg-ls':
          out = NativeCodecs.decodeJpegLs(context);
          break;
        case 'jpeg2000':
          out = NativeCodecs.decodeJpeg2000(context);
          break;
        case 'rle':
          out = NativeCodecs.decodeRle(context);
          break;
      }
      const d = out.getDecodedBuffer();
      if (!d) throw new Error('the codec returned no data');
      return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    } catch (e) {
      ready = undefined; // reload before the next frame
      throw e;
    }
  },
};
