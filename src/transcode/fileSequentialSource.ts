// A Part 10 file's data set as a SequentialSource: read from the file in place (skips are seeks), or
// inflated on the fly for the deflated transfer syntax (PS3.5 A.5). Nothing is read ahead
// beyond one read of the caller's window.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInflateRaw } from 'node:zlib';
import type { SequentialSource } from '../core/transcode/sequentialSource.js';
import { corrupt } from '../core/transcode/conversionError.js';

export interface FileSequentialSource extends SequentialSource {
  close(): Promise<void>;
}

/** The bytes of `path` from `offset` to its end (the data set after the file meta). */
export async function openFileSequentialSource(
  path: string,
  offset: number,
  deflated: boolean,
): Promise<FileSequentialSource> {
  return deflated ? inflatingSource(path, offset) : fileRegion(await open(path, 'r'), offset);
}

async function fileRegion(fh: FileHandle, offset: number): Promise<FileSequentialSource> {
  const size = (await fh.stat()).size;
  let pos = offset;
  return {
    async readInto(target, at, length) {
      if (pos >= size || length === 0) return 0;
      const { bytesRead } = await fh.read(target, at, Math.min(length, size - pos), pos);
      pos += bytesRead;
      return bytesRead;
    },
    skip(length) {
      const n = Math.max(0, Math.min(length, size - pos));
      pos += n;
      return Promise.resolve(n);
    },
    close: () => fh.close(),
  };
}

function inflatingSource(path: string, offset: number): FileSequentialSource {
  const file = createReadStream(path, { start: offset, highWaterMark: 256 * 1024 });
  const inflate = createInflateRaw({ chunkSize: 256 * 1024 });
  file.on('error', (e) => inflate.destroy(e));
  file.pipe(inflate);
  const chunks = inflate[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer = Buffer.alloc(0);
  let ended = false;
  async function fill(): Promise<boolean> {
    while (pending.length === 0 && !ended) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (e) {
        throw corrupt(`deflated data set cannot be inflated: ${(e as Error).message}`);
      }
      if (next.done) ended = true;
      else pending = next.value;
    }
    return pending.length > 0;
  }
  return {
    async readInto(target, at, length) {
      if (!(await fill())) return 0;
      const n = Math.min(length, pending.length);
      pending.copy(target, at, 0, n);
      pending = pending.subarray(n);
      return n;
    },
    async skip(length) {
      let done = 0;
      while (done < length && (await fill())) {
        const n = Math.min(length - done, pending.length);
        pending = pending.subarray(n);
        done += n;
      }
      return done;
    },
    close() {
      file.destroy();
      inflate.destroy();
      return Promise.resolve();
    },
  };
}
