// Collects the converted data set into chunks of a fixed size, copying what it is given: the
// chunks handed out are the caller's to keep (the reader's window is reused), and one chunk is
// the largest buffer the engine fills besides a decoded frame.

/**
 * Buffers written bytes into chunks of `size` bytes (see above): write() returns the chunks it filled,
 * flush() the rest. Pure, nothing thrown.
 */
export class ChunkWriter {
  /** The chunk being filled; allocated on the first write after a flush. */
  private cur: Buffer | undefined;
  private used = 0;

  /** `size`: bytes per chunk (> 0). */
  constructor(private readonly size: number) {}

  /** Copies `b`; returns the chunks it filled (often none). */
  write(b: Buffer): Buffer[] {
    const full: Buffer[] = [];
    let pos = 0;
    while (pos < b.length) {
      this.cur ??= Buffer.allocUnsafe(this.size);
      const n = Math.min(b.length - pos, this.size - this.used);
      b.copy(this.cur, this.used, pos, pos + n);
      this.used += n;
      pos += n;
      if (this.used === this.size) {
        full.push(this.cur);
        this.cur = undefined;
        this.used = 0;
      }
    }
    return full;
  }

  /** The partly filled chunk, if any. */
  flush(): Buffer | undefined {
    if (this.used === 0 || !this.cur) return undefined;
    // A copy of the used part: the chunk handed out is no bigger than its bytes, and the
    // allocation is reused for the next chunk.
    const out = Buffer.from(this.cur.subarray(0, this.used));
    this.used = 0;
    return out;
  }
}
