// Collects the converted data set into chunks of a fixed size, copying what it is given: the
// chunks handed out are the caller's to keep (the reader's window is reused), and one chunk is
// the largest buffer the engine fills besides a decoded frame.

export class ChunkWriter {
  private cur: Buffer;
  private used = 0;

  constructor(private readonly size: number) {
    this.cur = Buffer.allocUnsafe(size);
  }

  /** Copies `b`; returns the chunks it filled (often none). */
  write(b: Buffer): Buffer[] {
    const full: Buffer[] = [];
    let pos = 0;
    while (pos < b.length) {
      const n = Math.min(b.length - pos, this.size - this.used);
      b.copy(this.cur, this.used, pos, pos + n);
      this.used += n;
      pos += n;
      if (this.used === this.size) {
        full.push(this.cur);
        this.cur = Buffer.allocUnsafe(this.size);
        this.used = 0;
      }
    }
    return full;
  }

  /** The partly filled chunk, if any (then a new one is started). */
  flush(): Buffer | undefined {
    if (this.used === 0) return undefined;
    const out = this.cur.subarray(0, this.used);
    this.cur = Buffer.allocUnsafe(this.size);
    this.used = 0;
    return out;
  }
}
