// What the forwarder asks for when a destination does not accept a file's stored transfer syntax:
// a Converter opens a filed Part 10 file converted to another syntax, as a data set source the SCU
// sends chunk by chunk (src/dimse/scu/dataSetSource.ts). Two implementations: the conversion
// thread (conversionThread.ts, the default: decoding never runs on the thread that receives
// associations) and this file's inline one (same thread: tools, tests, and the benchmark that
// shows why the thread exists).
import type { DataSetSource } from '../dimse/scu/dataSetSource.js';
import { convertInstance, type ConvertedInstance } from './convertInstance.js';

/** One converted instance being sent: its data set in the target syntax, read once. */
export interface ConvertingSource extends DataSetSource {
  /** The target transfer syntax: what chunks() yields. */
  readonly transferSyntaxUid: string;
  /** 'decode' when compressed pixel data is decoded, 'byte-level' otherwise. */
  readonly kind: ConvertedInstance['kind'];
  /**
   * Ends the conversion (also when chunks() was not read to its end); idempotent. chunks() may
   * be iterated once.
   */
  close(): Promise<void>;
}

/** Converts filed instances on their way out (issue 14). */
export interface Converter {
  /**
   * Prepares the conversion of the Part 10 file at `path` to `targetTs` (explicit or implicit VR
   * little endian: conversionsFor). The headers are read and the decode planned first, so most
   * failures come here, before a byte is sent. Rejects with ConversionError (one line: the file
   * cannot be converted, retrying cannot help), an fs error with its `code` (ENOENT...), or an
   * Error when the converter itself failed (its thread stopped: worth retrying).
   * The source's chunks() throws ConversionError when a frame turns out to be corrupt part way.
   */
  open(path: string, targetTs: string): Promise<ConvertingSource>;
  /**
   * Ends every conversion under way (their chunks() reject) and frees the converter's resources
   * (its thread); a later open() starts afresh.
   */
  close(): Promise<void>;
}

/** A Converter on the calling thread: decoding blocks that thread's event loop while it runs. */
export function inlineConverter(chunkBytes?: number): Converter {
  return {
    async open(path, targetTs) {
      const converted = await convertInstance(path, targetTs, { chunkBytes });
      let generator: AsyncGenerator<Buffer> | undefined;
      return {
        transferSyntaxUid: converted.transferSyntaxUid,
        kind: converted.kind,
        chunks() {
          if (generator) throw new Error('a converted data set can be read once');
          generator = converted.dataSet();
          return generator;
        },
        async close() {
          await generator?.return(undefined);
        },
      };
    },
    async close() {},
  };
}
