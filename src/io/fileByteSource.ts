// The core's ByteSource over an open file, or over a stretch of one (a spool journal record):
// the core reads the elements it judges through it, and the adapter copies the pixel data range
// it returns straight from the file (copyRange.ts), so no instance passes whole through memory.
import { fstatSync, readSync } from 'node:fs';
import type { ByteRange, ByteSource } from '../core/dicom/byteSource.js';
import { dicomFormOfSource } from '../core/dicom/sniff.js';
import type { FileRange } from './copyRange.js';

/**
 * The core's ByteSource (src/core/dicom/byteSource.ts) over a file descriptor range, read with synchronous
 * positioned reads (fs.readSync); see above.
 */
export class FileByteSource implements ByteSource {
  /**
   * The bytes of open file `fd` from `start` on, `size` of them (default: to the end of the
   * file). The caller keeps `fd` open while the source is used, and closes it.
   */
  constructor(
    readonly fd: number,
    readonly start = 0,
    readonly size = fstatSync(fd).size - start,
  ) {}

  /**
   * `length` bytes from `offset` on (relative to the source), in a new buffer. Throws the read's
   * system error, or one with code ESHORTREAD when the file ends before them.
   */
  read(offset: number, length: number): Buffer {
    const bytes = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, bytes, done, length - done, this.start + offset + done);
      if (n === 0) throw Object.assign(new Error('file shorter than the range read'), { code: 'ESHORTREAD' });
      done += n;
    }
    return bytes;
  }

  /**
   * True when the source is DICOM in any form (a Part 10 file, or one without preamble or file
   * meta: core/dicom/sniff.ts). Reads its first 132 bytes.
   */
  isDicom(): boolean {
    return dicomFormOfSource(this) !== null;
  }

  /** `range` of this source as a range of its file, for copyRangeSync. */
  fileRange(range: ByteRange): FileRange {
    return { fd: this.fd, offset: this.start + range.offset, length: range.length };
  }
}
