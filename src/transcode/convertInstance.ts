// Converting a filed Part 10 instance to another transfer syntax on its way out (issue 14): the
// API the forwarder calls. The filed file is only read. See src/core/transcode/ for the engine.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { buildFileMeta } from '../core/dicom/fileMeta.js';
import { EXPLICIT_LE, IMPLICIT_LE, transferSyntaxInfo, type Encoding } from '../core/dicom/transferSyntax.js';
import { SequentialReader } from '../core/transcode/sequentialSource.js';
import { ConversionError, corrupt, unsupported } from '../core/transcode/conversionError.js';
import { convertDataSet, DEFAULT_CHUNK_BYTES } from '../core/transcode/convertDataSet.js';
import { detectEncoding } from '../core/transcode/elementHeader.js';
import { planDecode, type DecodePlan, type FrameDecoder } from '../core/transcode/pixelPlan.js';
import { scanDataSet } from '../core/transcode/scan.js';
import { CONVERSION_TARGETS, sourceSyntax } from '../core/transcode/transferSyntaxes.js';
import { DicomFormatError } from '../core/types.js';
import { readP10Header } from '../dimse/part10.js';
import { dcmjsCodecsDecoder } from './dcmjsCodecsDecoder.js';
import { openFileSequentialSource } from './fileSequentialSource.js';

export { conversionsFor } from '../core/transcode/transferSyntaxes.js';
export { ConversionError } from '../core/transcode/conversionError.js';

export interface ConvertOptions {
  /** Largest chunk yielded, bytes (default 1 MiB). */
  chunkBytes?: number;
  /** Frame decoder (default: dcmjs-codecs). */
  decoder?: FrameDecoder;
}

/** One instance ready to be sent in `transferSyntaxUid`. */
export interface ConvertedInstance {
  /** The target transfer syntax: what `dataSet()` is encoded in. */
  transferSyntaxUid: string;
  /** The stored transfer syntax. */
  sourceTransferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** 'decode' when pixel data is decompressed, 'byte-level' otherwise. */
  kind: 'byte-level' | 'decode';
  /** Photometric Interpretation before/after and lossy flag, when pixel data is decoded. */
  pixel?: DecodePlan['summary'] & { frames: number };
  /**
   * The converted data set (no preamble, no file meta), as chunks of at most `chunkBytes`
   * (the caller may keep each). Each call reads the file afresh. Throws ConversionError when
   * the instance turns out not to be convertible part way (a corrupt frame): what was yielded
   * is then a partial data set, to be abandoned (abort the association).
   */
  dataSet(): AsyncGenerator<Buffer>;
}

const TARGET_ENCODING: Record<string, Encoding> = {
  '1.2.840.10008.1.2.1': EXPLICIT_LE,
  '1.2.840.10008.1.2': IMPLICIT_LE,
};

/**
 * Prepares the conversion of the Part 10 file at `path` to `targetTs` (explicit or implicit VR
 * little endian; see conversionsFor). Reads the file meta and, for compressed pixel data, walks
 * the headers once (seeking over values) to plan the decode from the Image Pixel attributes and
 * the first frame's codestream header, so most failures surface here, before any byte is sent.
 *
 * Throws ConversionError ('unsupported': a transfer syntax, codec or pixel layout we cannot
 * convert; 'corrupt': damaged or inconsistent data, including a file that is not Part 10),
 * with a one-line message; fs errors (ENOENT...) pass through.
 */
export async function convertInstance(
  path: string,
  targetTs: string,
  options: ConvertOptions = {},
): Promise<ConvertedInstance> {
  const target = TARGET_ENCODING[targetTs];
  if (!target) throw unsupported(`cannot convert to ${targetTs} (targets: ${CONVERSION_TARGETS.join(', ')})`);
  let header;
  try {
    header = readP10Header(path);
  } catch (e) {
    if (e instanceof DicomFormatError) throw corrupt(e.message);
    throw e;
  }
  const sourceTs = header.transferSyntaxUid;
  const syntax = sourceSyntax(sourceTs);
  if (!syntax) throw unsupported(`cannot convert from transfer syntax ${sourceTs}`);
  const declared = transferSyntaxInfo(sourceTs).encoding;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const decoder = options.decoder ?? dcmjsCodecsDecoder;

  let plan: DecodePlan | undefined;
  if (syntax.pixelData === 'encapsulated') {
    const source = await openFileSequentialSource(path, header.dataSetOffset, syntax.deflated);
    try {
      const r = new SequentialReader(source);
      const scan = await scanDataSet(r, await detectEncoding(r, declared));
      // An encapsulated syntax without pixel data (e.g. a report) converts at the byte level.
      if (scan.pixelData) plan = planDecode(scan, syntax);
    } finally {
      await source.close();
    }
  }

  return {
    transferSyntaxUid: targetTs,
    sourceTransferSyntaxUid: sourceTs,
    sopClassUid: header.sopClassUid,
    sopInstanceUid: header.sopInstanceUid,
    kind: plan ? 'decode' : 'byte-level',
    pixel: plan && { ...plan.summary, frames: plan.frames },
    async *dataSet() {
      const source = await openFileSequentialSource(path, header.dataSetOffset, syntax.deflated);
      try {
        yield* convertDataSet(source, {
          sourceEncoding: declared,
          targetEncoding: target,
          decode: plan && { plan, decoder },
          chunkBytes,
        });
      } finally {
        await source.close();
      }
    },
  };
}

/**
 * Writes `converted` as a Part 10 file at `outPath` (file meta + converted data set), for tools
 * and tests. Throws ConversionError as dataSet() does (the partial file is left for the caller).
 */
export async function writeConvertedFile(converted: ConvertedInstance, outPath: string): Promise<void> {
  const out = createWriteStream(outPath);
  const closed = once(out, 'close');
  try {
    out.write(
      buildFileMeta({
        sopClassUid: converted.sopClassUid,
        sopInstanceUid: converted.sopInstanceUid,
        transferSyntaxUid: converted.transferSyntaxUid,
      }),
    );
    for await (const chunk of converted.dataSet()) {
      if (!out.write(chunk)) await once(out, 'drain');
    }
  } finally {
    out.end();
    await closed;
  }
}

/** Narrows an error to ConversionError (the instance cannot be converted: dead-letter it, do not retry). */
export function isConversionError(e: unknown): e is ConversionError {
  return e instanceof ConversionError;
}
