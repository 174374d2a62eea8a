// Where the data set of an outgoing DIMSE message comes from: a source that yields it in bounded
// chunks, so sending a multi-gigabyte instance never holds more than one chunk of it (issue 15).
// A converting source (issue 14) is one more implementation: it yields converted chunks.
import { open } from 'node:fs/promises';

/**
 * A data set to send, as a sequence of chunks. The sender splits each chunk into PDVs and writes
 * it before asking for the next one, and keeps no chunk after writing it: a source must hand out
 * a fresh (or no longer used) buffer per chunk, since the socket may still hold the previous one.
 */
export interface DataSetSource {
  /** Yields the data set's bytes in order, each chunk at most `maxChunkBytes` long. Throws on a read error. */
  chunks(maxChunkBytes: number): AsyncIterable<Buffer>;
}

/** Thrown by fileDataSet when the file ends before the range does (it shrank). */
export class SourceReadError extends Error {
  override name = 'SourceReadError';
}

/** A DataSetSource reading an open file; close() it when done (also after a failed send). */
export interface FileDataSet extends DataSetSource {
  close(): Promise<void>;
}

/**
 * Opens `path` and returns its bytes [offset, offset + length) as a source that reads one chunk
 * at a time, into a fresh buffer per chunk (never the whole range). Opening first lets a caller
 * learn that a file is gone before it announces a data set to the peer. Rejects with the fs error
 * (ENOENT...); chunks() throws the fs error of a failed read, and SourceReadError when the file
 * is shorter than the range.
 */
export async function openFileDataSet(path: string, offset: number, length: number): Promise<FileDataSet> {
  const fh = await open(path, 'r');
  return {
    async *chunks(maxChunkBytes: number): AsyncIterable<Buffer> {
      let done = 0;
      while (done < length) {
        const want = Math.min(maxChunkBytes, length - done);
        const buf = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, offset + done + got);
          if (bytesRead === 0) {
            throw new SourceReadError(`file shrank while sending (${done + got} of ${length} data set bytes)`);
          }
          got += bytesRead;
        }
        done += want;
        yield buf;
      }
    },
    close: () => fh.close(),
  };
}

/** A data set already in memory (a C-FIND identifier, a test), in chunks that are views of it. */
export function bufferDataSet(bytes: Buffer): DataSetSource {
  return {
    async *chunks(maxChunkBytes: number): AsyncIterable<Buffer> {
      for (let off = 0; off < bytes.length; off += maxChunkBytes) {
        yield bytes.subarray(off, Math.min(bytes.length, off + maxChunkBytes));
      }
    },
  };
}
