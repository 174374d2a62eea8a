// Where the data set of an outgoing DIMSE message comes from: a source that yields it in bounded
// chunks, so sending a multi-gigabyte instance never holds more than one chunk of it (issue 15).
// A converting source (issue 14) is one more implementation: src/transcode/convertInstance's
// `dataSet()` generator already has this shape (`{ chunks: () => converted.dataSet() }`).
import { open } from 'node:fs/promises';

/**
 * A data set to send, as a sequence of chunks. The sender splits each chunk into PDVs and has
 * written it out (flushed to the system) before it asks for the next one, so a source may reuse
 * one buffer for every chunk.
 */
export interface DataSetSource {
  /** Total bytes, when known before sending (a file range); a converting source may not know it. */
  readonly byteLength?: number;
  /**
   * Yields the data set's bytes in order, in chunks of about `maxChunkBytes` (a hint: the sender
   * splits any chunk into PDVs, so a converter may yield its own chunk size). Throws when the
   * bytes cannot be produced; the sender then aborts the association (a partial data set cannot
   * be ended).
   */
  chunks(maxChunkBytes: number): AsyncIterable<Buffer>;
}

/** Thrown by a file data set when the file ends before the range does (it shrank). */
export class SourceReadError extends Error {
  override name = 'SourceReadError';
}

/** A DataSetSource reading an open file; close() it when done (also after a failed send). */
export interface FileDataSet extends DataSetSource {
  close(): Promise<void>;
}

/**
 * Opens `path` and returns its bytes [offset, offset + length) as a source that reads one chunk
 * at a time into one reused buffer (never the whole range). Opening first lets a caller learn
 * that a file is gone before it announces a data set to the peer. Rejects with the fs error
 * (ENOENT...); chunks() throws the fs error of a failed read, and SourceReadError when the file
 * is shorter than the range.
 */
export async function openFileDataSet(path: string, offset: number, length: number): Promise<FileDataSet> {
  const fh = await open(path, 'r');
  return {
    byteLength: length,
    async *chunks(maxChunkBytes: number): AsyncIterable<Buffer> {
      const buf = Buffer.allocUnsafe(Math.min(maxChunkBytes, length));
      let done = 0;
      while (done < length) {
        const want = Math.min(buf.length, length - done);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, offset + done + got);
          if (bytesRead === 0) {
            throw new SourceReadError(`file shrank while sending (${done + got} of ${length} data set bytes)`);
          }
          got += bytesRead;
        }
        done += want;
        yield buf.subarray(0, want);
      }
    },
    close: () => fh.close(),
  };
}

/** A data set already in memory (a C-FIND identifier, a test), in chunks that are views of it. */
export function bufferDataSet(bytes: Buffer): DataSetSource {
  return {
    byteLength: bytes.length,
    async *chunks(maxChunkBytes: number): AsyncIterable<Buffer> {
      for (let off = 0; off < bytes.length; off += maxChunkBytes) {
        yield bytes.subarray(off, Math.min(bytes.length, off + maxChunkBytes));
      }
    },
  };
}
