// Reads whole files into one buffer that is reused from file to file.
//
// A fresh buffer per file (readFileSync) leaves each thread with tens of MB of dead file buffers
// between garbage collections: the node's processing threads reached ~300 MB RSS together on a
// burst of 0.5 MB CT slices. The caller must be done with one file's bytes before the next read
// (the batch worker and the node's processing threads handle one file at a time).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Files larger than this get a buffer of their own, so one huge instance is not kept alive. */
const MAX_KEPT = 64 * 1024 * 1024;

export class ReusableReader {
  private scratch = Buffer.alloc(0);

  /**
   * The file's bytes, valid until the next call. With `dicomOnly`, null when the file is not
   * DICOM Part 10 (no `DICM` at offset 128): only those 132 bytes of it are read.
   */
  read(file: string, dicomOnly = false): Buffer | null {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (dicomOnly && size < 132) return null;
      const bytes = this.buffer(size);
      if (dicomOnly && (readSync(fd, bytes, 0, 132, 0) !== 132 || bytes.toString('latin1', 128, 132) !== 'DICM')) {
        return null;
      }
      let off = dicomOnly ? 132 : 0;
      while (off < size) {
        const n = readSync(fd, bytes, off, size - off, off);
        if (n === 0) break; // the file shrank meanwhile: what was there
        off += n;
      }
      return bytes.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  }

  /** `length` bytes of a file from `offset` on (a spool journal record), valid until the next call. */
  readRange(file: string, offset: number, length: number): Buffer {
    const fd = openSync(file, 'r');
    try {
      const bytes = this.buffer(length);
      let off = 0;
      while (off < length) {
        const n = readSync(fd, bytes, off, length - off, offset + off);
        if (n === 0) throw Object.assign(new Error('file shorter than the range read'), { code: 'ESHORTREAD' });
        off += n;
      }
      return bytes.subarray(0, length);
    } finally {
      closeSync(fd);
    }
  }

  private buffer(size: number): Buffer {
    if (size > MAX_KEPT) return Buffer.allocUnsafe(size);
    if (this.scratch.length < size)
      this.scratch = Buffer.allocUnsafe(Math.min(MAX_KEPT, Math.max(size, this.scratch.length * 2)));
    return this.scratch;
  }
}
