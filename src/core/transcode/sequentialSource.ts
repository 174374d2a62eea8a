// Forward-only reading of a data set from a source the adapter supplies (a file region, an
// inflating stream), through one bounded window: the core never holds the whole instance.
import { corrupt } from './conversionError.js';

/**
 * Where data set bytes come from, in order (forward only; the de-identifier's random-access
 * reader is core/dicom/byteSource.ts's ByteSource). The core does no I/O itself: the adapter implements
 * this over a file (src/transcode/fileSequentialSource.ts) or a buffer (bufferSequentialSource below).
 */
export interface SequentialSource {
  /** Copies up to `length` next bytes into `target` at `offset`; resolves 0 at the end. */
  readInto(target: Buffer, offset: number, length: number): Promise<number>;
  /** Skips up to `length` bytes; resolves how many were skipped (less only at the end). */
  skip(length: number): Promise<number>;
}

/** A SequentialSource over bytes already in memory (tests, small data sets). */
export function bufferSequentialSource(bytes: Buffer): SequentialSource {
  let pos = 0;
  return {
    readInto(target, offset, length) {
      const n = Math.min(length, bytes.length - pos);
      bytes.copy(target, offset, pos, pos + n);
      pos += n;
      return Promise.resolve(n);
    },
    skip(length) {
      const n = Math.min(length, bytes.length - pos);
      pos += n;
      return Promise.resolve(n);
    },
  };
}

/**
 * A window over a SequentialSource: `ensure(n)` makes n bytes readable at `buf[off]`, `consume(n)`
 * moves past them. The window grows to the largest `ensure` asked for (headers, small values,
 * at most `maxWindow` bytes); large values are streamed through `readChunks`.
 */
export class SequentialReader {
  buf: Buffer;
  /** Offset of the next unread byte in `buf`. */
  off = 0;
  /** End of the valid bytes in `buf`. */
  private end = 0;
  /** Data set offset of buf[0]. */
  private base = 0;
  private eof = false;

  /**
   * `initialWindow`: bytes allocated at first (default 64 KiB); `maxWindow`: the largest `ensure` allowed
   * (default 16 MiB; ensure throws ConversionError 'corrupt' beyond).
   */
  constructor(
    private readonly source: SequentialSource,
    initialWindow = 64 * 1024,
    private readonly maxWindow = 16 * 1024 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(initialWindow);
  }

  /** Data set offset of the next unread byte (for messages). */
  get position(): number {
    return this.base + this.off;
  }

  get available(): number {
    return this.end - this.off;
  }

  /** Makes `n` bytes available at buf[off]; false when the source ends first. */
  async ensure(n: number): Promise<boolean> {
    if (this.end - this.off >= n) return true;
    if (n > this.maxWindow) throw corrupt(`a value of ${n} bytes exceeds the ${this.maxWindow}-byte window`);
    if (this.off + n > this.buf.length) {
      // Compact (and grow when needed) so the n bytes fit from offset 0.
      const keep = this.end - this.off;
      // Doubling, never past the window: the buffer holds at most maxWindow bytes.
      const grown = Math.min(this.maxWindow, Math.max(n, this.buf.length * 2));
      const target = n > this.buf.length ? Buffer.allocUnsafe(grown) : this.buf;
      this.buf.copy(target, 0, this.off, this.end);
      this.buf = target;
      this.base += this.off;
      this.off = 0;
      this.end = keep;
    }
    while (this.end - this.off < n && !this.eof) {
      const got = await this.source.readInto(this.buf, this.end, this.buf.length - this.end);
      if (got === 0) this.eof = true;
      this.end += got;
    }
    return this.end - this.off >= n;
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.ensure(1));
  }

  /** Moves past `n` bytes; the caller has ensured them (nothing is checked). */
  consume(n: number): void {
    this.off += n;
  }

  /** `n` bytes as a copy (for values the engine keeps or rewrites). */
  async take(n: number, what: string): Promise<Buffer> {
    if (!(await this.ensure(n))) throw corrupt(`truncated: ${what} needs ${n} bytes, only ${this.available} left`);
    const out = Buffer.from(this.buf.subarray(this.off, this.off + n));
    this.off += n;
    return out;
  }

  /** Skips `n` bytes (the source skips what is not in the window). */
  async skip(n: number, what: string): Promise<void> {
    const inWindow = Math.min(n, this.end - this.off);
    this.off += inWindow;
    let left = n - inWindow;
    if (left === 0) return;
    this.base += this.end; // the window is empty: restart it at the skipped-to position
    this.off = 0;
    this.end = 0;
    const got = await this.source.skip(left);
    this.base += got;
    left -= got;
    if (left > 0) throw corrupt(`truncated: ${what} lacks ${left} bytes`);
  }

  /**
   * Streams the next `n` bytes as consecutive views of at most `chunk` bytes (each a multiple of
   * `align` except the last). A view is valid until the next call on this reader.
   */
  async *readChunks(n: number, chunk: number, align: number, what: string): AsyncGenerator<Buffer> {
    const step = Math.max(align, chunk - (chunk % align));
    let left = n;
    while (left > 0) {
      const want = Math.min(left, step);
      if (!(await this.ensure(want))) {
        throw corrupt(`truncated: ${what} needs ${left} more bytes, only ${this.available} left`);
      }
      const view = this.buf.subarray(this.off, this.off + want);
      this.off += want;
      left -= want;
      yield view;
    }
  }
}
