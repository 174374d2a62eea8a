// The conversion engine: reads a data set in one encoding and writes it in another, element by
// element at every depth, as a stream of bounded chunks (PS3.5 7.1-7.5).
//
// - Headers are rewritten for the target (explicit or implicit VR little endian); values are
//   copied, byte-swapped by VR when the source is big endian (byteOrder.ts).
// - Sequences and items are always written with undefined length (PS3.5 7.5.1, 7.5.2), so no
//   length ever needs computing ahead; group lengths (gggg,0000) are left out (PS3.5 7.2).
// - With a decode plan, the top-level encapsulated Pixel Data is decoded frame by frame through
//   a FrameDecoder and written native, with the plan's Image Pixel attributes (pixelPlan.ts).
// Memory: the reader's window, one chunk, and one compressed plus one decoded frame.
import { encodeHeader, itemEnd, itemStart, sequenceEnd } from '../dicom/encoder.js';
import { hexTag } from '../dicom/parser.js';
import { ITEM, ITEM_DELIMITATION, PIXEL_DATA, SEQUENCE_DELIMITATION, UNDEFINED_LENGTH } from '../dicom/constants.js';
import { IMPLICIT_LE, type Encoding } from '../dicom/transferSyntax.js';
import { SequentialReader, type SequentialSource } from './sequentialSource.js';
import { swapInPlace, swapUnit } from './byteOrder.js';
import { ChunkWriter } from './chunkWriter.js';
import { ConversionError, corrupt, unsupported } from './conversionError.js';
import {
  detectEncoding,
  explicitVr,
  isEncapsulated,
  readHeader,
  type ElementHeader,
  type VrContext,
} from './elementHeader.js';
import { toNativeFrame, type DecodePlan, type FrameDecoder, type ReplacedValue } from './pixelPlan.js';
import { checkElementTag } from './scan.js';

/** Default chunk size, bytes. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const MAX_DEPTH = 32;
const SMALL_VALUE = 256;

export interface DataSetConversion {
  /** Encoding the source's transfer syntax declares (implicit VR in disguise is detected). */
  sourceEncoding: Encoding;
  /** Explicit or implicit VR little endian. */
  targetEncoding: Encoding;
  /** Decode the top-level encapsulated Pixel Data with this plan and decoder. */
  decode?: { plan: DecodePlan; decoder: FrameDecoder };
  /** Size of the chunks produced, bytes (a decoded frame is handed out in slices of this size). */
  chunkBytes?: number;
}

/**
 * Converts the data set read from `source` (from its first element to its end) and yields it,
 * in the target encoding, as chunks of at most `chunkBytes` bytes that the caller may keep.
 * Throws ConversionError (unsupported or corrupt, one-line message) at the point where the
 * input cannot be converted: chunks already yielded are then a partial data set to discard.
 */
export async function* convertDataSet(source: SequentialSource, conv: DataSetConversion): AsyncGenerator<Buffer> {
  if (conv.targetEncoding.explicitVr && !conv.targetEncoding.littleEndian) {
    throw unsupported('explicit VR big endian is not a conversion target');
  }
  const c = new Converter(new SequentialReader(source), conv);
  const enc = await detectEncoding(c.r, conv.sourceEncoding);
  yield* c.elements(enc, 0, 'top', {});
}

class Converter {
  readonly w: ChunkWriter;
  readonly chunk: number;
  readonly target: Encoding;
  /** Top-level replacements not yet written, ascending by tag. */
  private pending: [number, ReplacedValue | null][];

  constructor(
    readonly r: SequentialReader,
    private readonly conv: DataSetConversion,
  ) {
    this.chunk = conv.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.w = new ChunkWriter(this.chunk);
    this.target = conv.targetEncoding;
    this.pending = conv.decode ? [...conv.decode.plan.replace].sort((a, b) => a[0] - b[0]) : [];
  }

  /** Elements up to `end`: the source's end ('top'), an item delimiter ('item'), or a position. */
  async *elements(enc: Encoding, depth: number, end: 'top' | 'item' | number, ctx: VrContext): AsyncGenerator<Buffer> {
    if (depth > MAX_DEPTH) throw corrupt(`sequences nested deeper than ${MAX_DEPTH} levels`);
    const top = end === 'top';
    const r = this.r;
    for (;;) {
      if (typeof end === 'number' && r.position >= end) {
        if (r.position > end) throw corrupt(`an element crosses the end of its item at byte ${end}`);
        return;
      }
      const h = await readHeader(r, enc);
      if (!h) {
        if (top) break;
        throw corrupt('truncated: the data set ends inside a sequence');
      }
      if (h.tag === ITEM_DELIMITATION) {
        if (end === 'item') return;
        throw corrupt(`unexpected item delimiter at byte ${r.position - 8}`);
      }
      checkElementTag(h, r);
      if (top && (yield* this.replaced(h))) continue;
      if (h.length !== UNDEFINED_LENGTH && (h.tag & 0xffff) === 0) {
        await r.skip(h.length, hexTag(h.tag)); // group length: stale once headers change size
        continue;
      }
      if (h.length === UNDEFINED_LENGTH) {
        if (isEncapsulated(h, enc)) {
          if (top && h.tag === PIXEL_DATA && this.conv.decode) {
            yield* this.decodePixelData(enc, this.conv.decode);
            continue;
          }
          throw unsupported(
            top
              ? `encapsulated ${hexTag(h.tag)} in a data set whose transfer syntax is not compressed`
              : `encapsulated ${hexTag(h.tag)} inside a sequence (e.g. a compressed icon image)`,
          );
        }
        // An undefined-length UN (or implicit) element is a sequence of implicit VR LE items.
        yield* this.sequence(h, h.vr === 'SQ' ? enc : IMPLICIT_LE, depth, undefined);
        continue;
      }
      if (h.vr === 'SQ') {
        yield* this.sequence(h, enc, depth, r.position + h.length);
        continue;
      }
      if (top && h.tag === PIXEL_DATA && this.conv.decode) {
        throw corrupt('the transfer syntax is compressed but Pixel Data is not encapsulated');
      }
      yield* this.value(h, enc, ctx);
    }
    yield* this.replaced(undefined);
    yield* this.drain();
  }

  /**
   * Writes the pending replacements that sort before `h` (all of them at the end); when `h` is
   * itself replaced, skips its value, writes the replacement and returns true.
   */
  private async *replaced(h: ElementHeader | undefined): AsyncGenerator<Buffer, boolean> {
    const tag = h ? h.tag : Infinity;
    while (this.pending.length > 0 && this.pending[0]![0] <= tag) {
      const [t, value] = this.pending.shift()!;
      if (value) yield* this.write(encodeHeader(t, value.vr, value.value.length, this.target), value.value);
      if (h && t === tag) {
        if (h.length === UNDEFINED_LENGTH) throw corrupt(`undefined length on ${hexTag(tag)}`);
        await this.r.skip(h.length, hexTag(tag));
        return true;
      }
    }
    return false;
  }

  private async *sequence(
    h: ElementHeader,
    itemEnc: Encoding,
    depth: number,
    end: number | undefined,
  ): AsyncGenerator<Buffer> {
    const r = this.r;
    yield* this.write(encodeHeader(h.tag, 'SQ', UNDEFINED_LENGTH, this.target));
    for (;;) {
      if (end !== undefined && r.position >= end) {
        if (r.position > end) throw corrupt(`an item crosses the end of ${hexTag(h.tag)}`);
        break;
      }
      const item = await readHeader(r, itemEnc);
      if (!item) throw corrupt(`truncated: ${hexTag(h.tag)} has no sequence delimiter`);
      if (item.tag === SEQUENCE_DELIMITATION) {
        if (end === undefined) break;
        throw corrupt(`unexpected sequence delimiter in ${hexTag(h.tag)} at byte ${r.position - 8}`);
      }
      if (item.tag !== ITEM) throw corrupt(`expected an item in ${hexTag(h.tag)}, found ${hexTag(item.tag)}`);
      yield* this.write(itemStart(this.target));
      const itemEndAt = item.length === UNDEFINED_LENGTH ? 'item' : r.position + item.length;
      yield* this.elements(itemEnc, depth + 1, itemEndAt, {});
      yield* this.write(itemEnd(this.target));
    }
    yield* this.write(sequenceEnd(this.target));
  }

  private async *value(h: ElementHeader, enc: Encoding, ctx: VrContext): AsyncGenerator<Buffer> {
    const vr = this.target.explicitVr && !enc.explicitVr ? explicitVr(h.tag, h.vr, h.length, ctx) : h.vr;
    const unit = enc.littleEndian ? 1 : swapUnit(h.vr);
    if (h.length % unit !== 0)
      throw corrupt(`${hexTag(h.tag)} ${h.vr} has ${h.length} bytes, not a multiple of ${unit}`);
    yield* this.write(encodeHeader(h.tag, vr, h.length, this.target));
    if (h.length <= SMALL_VALUE) {
      const v = await this.r.take(h.length, hexTag(h.tag));
      swapInPlace(v, unit);
      if (v.length === 2 && h.tag === 0x00280103) ctx.pixelRepresentation = v.readUInt16LE(0);
      if (v.length === 2 && h.tag === 0x00280100) ctx.bitsAllocated = v.readUInt16LE(0);
      yield* this.write(v);
      return;
    }
    for await (const view of this.r.readChunks(h.length, this.chunk, 8, hexTag(h.tag))) {
      swapInPlace(view, unit);
      yield* this.write(view);
    }
  }

  private async *decodePixelData(enc: Encoding, d: NonNullable<DataSetConversion['decode']>): AsyncGenerator<Buffer> {
    const { plan, decoder } = d;
    const r = this.r;
    yield* this.write(encodeHeader(PIXEL_DATA, plan.pixelDataVr, plan.pixelDataLength, this.target));
    const bot = await readHeader(r, enc);
    if (!bot || bot.tag !== ITEM || bot.length === UNDEFINED_LENGTH) {
      throw corrupt('encapsulated pixel data without a Basic Offset Table item');
    }
    await r.skip(bot.length, 'the Basic Offset Table');
    const state: FrameState = { scratch: Buffer.alloc(0), length: 0, frame: 0 };
    let fragmentOffset = 0; // from the first fragment's item tag, as offset tables count (PS3.5 A.4)
    for (;;) {
      const h = await readHeader(r, enc);
      if (!h) throw corrupt('truncated encapsulated pixel data (no sequence delimiter)');
      if (h.tag === SEQUENCE_DELIMITATION) break;
      if (h.tag !== ITEM || h.length === UNDEFINED_LENGTH) throw corrupt(`bad fragment at byte ${r.position - 8}`);
      // Only the fragment's first bytes decide whether it opens a frame.
      if (!(await r.ensure(Math.min(h.length, 8)))) throw corrupt('truncated fragment');
      const head = r.buf.subarray(r.off, r.off + Math.min(h.length, 8));
      if (state.length > 0 && this.startsFrame(plan, state.frame, fragmentOffset, head)) {
        yield* this.decodeFrame(plan, decoder, state);
      }
      await this.append(state, h.length);
      fragmentOffset += 8 + h.length;
    }
    if (state.length > 0) yield* this.decodeFrame(plan, decoder, state);
    if (state.frame !== plan.frames) {
      throw corrupt(`pixel data holds ${state.frame} frames, NumberOfFrames says ${plan.frames}`);
    }
    if (plan.pixelDataLength > plan.frames * plan.frameBytes) yield* this.write(Buffer.alloc(1));
  }

  /** Decodes the fragments collected in `state` as its next frame and writes it native. */
  private async *decodeFrame(plan: DecodePlan, decoder: FrameDecoder, state: FrameState): AsyncGenerator<Buffer> {
    if (state.frame >= plan.frames) {
      throw corrupt(`pixel data holds more than the ${plan.frames} frames NumberOfFrames says`);
    }
    const compressed = state.scratch.subarray(0, state.length);
    state.length = 0;
    let decoded: Buffer;
    try {
      decoded = await decoder.decode(compressed, plan.params);
    } catch (e) {
      if (e instanceof ConversionError) throw e;
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      throw corrupt(`frame ${state.frame + 1} of ${plan.frames}: ${plan.codec} data cannot be decoded (${why})`);
    }
    const native = toNativeFrame(decoded, plan, state.frame);
    state.frame += 1;
    yield* this.drain();
    for (let pos = 0; pos < native.length; pos += this.chunk) yield native.subarray(pos, pos + this.chunk);
  }

  /** Whether a fragment begins a new frame, given the fragments already collected for `frame`. */
  private startsFrame(plan: DecodePlan, frame: number, fragmentOffset: number, fragment: Buffer): boolean {
    const f = plan.framing;
    switch (f.kind) {
      case 'single':
        return false;
      case 'per-fragment':
        return true;
      case 'offsets':
        return frame + 1 < f.offsets.length && fragmentOffset >= f.offsets[frame + 1]!;
      case 'markers':
        // Without offsets, a fragment that opens a codestream opens a frame (as pydicom does).
        if (f.codec === 'jpeg2000') {
          return (
            (fragment[0] === 0xff && fragment[1] === 0x4f && fragment[2] === 0xff && fragment[3] === 0x51) ||
            fragment.subarray(0, 8).equals(JP2_SIGNATURE)
          );
        }
        return fragment[0] === 0xff && fragment[1] === 0xd8;
    }
  }

  /** Appends the next `n` bytes (a fragment) to the frame being collected. */
  private async append(state: FrameState, n: number): Promise<void> {
    if (state.length + n > state.scratch.length) {
      // One buffer for the compressed frame, reused from frame to frame (grown when needed).
      const grown = Buffer.allocUnsafe(Math.max(state.length + n, state.scratch.length * 2));
      state.scratch.copy(grown, 0, 0, state.length);
      state.scratch = grown;
    }
    for await (const view of this.r.readChunks(n, this.chunk, 1, 'a fragment')) {
      view.copy(state.scratch, state.length);
      state.length += view.length;
    }
  }

  private *write(...bufs: Buffer[]): Generator<Buffer> {
    for (const b of bufs) yield* this.w.write(b);
  }

  private *drain(): Generator<Buffer> {
    const last = this.w.flush();
    if (last) yield last;
  }
}

/** The compressed frame being collected (its fragments, concatenated), and frames written. */
interface FrameState {
  scratch: Buffer;
  /** Bytes of `scratch` in use. */
  length: number;
  frame: number;
}

const JP2_SIGNATURE = Buffer.from([0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20]);
