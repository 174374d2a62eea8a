// Random-access bytes of one Part 10 instance. The core reads an instance through this interface
// and so never needs it whole in memory (a 2 GB multi-frame instance is read up to its Pixel Data
// header and from the end of its pixel data on); the adapters implement it over a file
// descriptor, a spool journal record or a buffer, so the core itself does no I/O.

/** The bytes of one instance, read by position. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Exactly `length` bytes from `offset` on (bytes; the caller keeps 0 <= offset and
   * offset + length <= size). The caller may keep the returned bytes: a source never reuses them
   * for a later read. Throws when the bytes cannot be read (an I/O error, or the source shrank).
   */
  read(offset: number, length: number): Buffer;
}

/** A source over bytes already in memory: reads are views, nothing is copied. */
export function bufferSource(bytes: Uint8Array): ByteSource {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    size: buf.length,
    read: (offset, length) => buf.subarray(offset, offset + length),
  };
}

/** A byte range of a source: `length` bytes from `offset` on. */
export interface ByteRange {
  offset: number;
  length: number;
}
