// The conversion thread's worker (see conversionThread.ts): runs convertInstance and hands the
// converted data set out one chunk per request. It works one chunk ahead (from the moment the
// conversion is opened: the first chunk is ready when it is asked for), and no further, so the
// main thread sets the pace and memory stays at a few chunks whatever the instance's size.
// Chunk buffers are transferred, not copied.
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { convertInstance } from './convertInstance.js';

/** Messages from the main thread. Each conversion has an id; requests for it come one at a time. */
export type ToConversionWorker =
  | { type: 'open'; id: number; path: string; targetTs: string; chunkBytes?: number }
  | { type: 'pull'; id: number }
  | { type: 'cancel'; id: number };

/** An error as it crosses the thread boundary. */
export interface SerializedError {
  name: string;
  message: string;
  /** ConversionError's kind. */
  kind?: 'unsupported' | 'corrupt';
  /** An fs error's code (ENOENT...). */
  code?: string;
}

/** Replies, each to the one request of its id that is outstanding. */
export type FromConversionWorker =
  | { type: 'opened'; id: number; kind: 'byte-level' | 'decode' }
  | { type: 'chunk'; id: number; bytes: ArrayBuffer }
  | { type: 'end'; id: number }
  | { type: 'error'; id: number; error: SerializedError };

const port = parentPort;
if (!port) throw new Error('conversionWorker.ts runs as a worker thread (see conversionThread.ts)');

// A low CPU priority (nice 10) for this thread only (on Linux a nice value belongs to a thread, and
// pid 0 is the calling one): when the cores are busy, receiving and acknowledging go first, and
// a conversion still gets about a tenth of a core it shares with a thread at the default priority
// (the scheduler's weights; nice 19 would leave it ~1/70). scripts/bench-node.sh CONVERT=1
// measured nice 10 against 0. Where it cannot be set, the thread runs at the process's priority.
try {
  setPriority(0, 10);
} catch {
  // not permitted or not supported: keep the priority
}

interface Stream {
  generator: AsyncGenerator<Buffer>;
  /** The chunk being made (or made) ahead of the next pull. */
  ahead: Promise<IteratorResult<Buffer>>;
}

const streams = new Map<number, Stream>();

/** Starts making the next chunk; its failure is reported when it is pulled. */
function makeAhead(generator: AsyncGenerator<Buffer>): Promise<IteratorResult<Buffer>> {
  const ahead = generator.next();
  ahead.catch(() => undefined);
  return ahead;
}

port.on('message', (msg: ToConversionWorker) => void handle(msg));

async function handle(msg: ToConversionWorker): Promise<void> {
  try {
    switch (msg.type) {
      case 'open': {
        const converted = await convertInstance(msg.path, msg.targetTs, { chunkBytes: msg.chunkBytes });
        const generator = converted.dataSet();
        streams.set(msg.id, { generator, ahead: makeAhead(generator) });
        post({ type: 'opened', id: msg.id, kind: converted.kind });
        return;
      }
      case 'pull': {
        const stream = streams.get(msg.id);
        if (!stream) return; // cancelled meanwhile
        const r = await stream.ahead;
        if (r.done) {
          streams.delete(msg.id);
          post({ type: 'end', id: msg.id });
          return;
        }
        stream.ahead = makeAhead(stream.generator);
        const bytes = ownBuffer(r.value);
        port!.postMessage({ type: 'chunk', id: msg.id, bytes } satisfies FromConversionWorker, [bytes]);
        return;
      }
      case 'cancel': {
        const stream = streams.get(msg.id);
        streams.delete(msg.id);
        if (!stream) return;
        await stream.ahead.catch(() => undefined); // a generator cannot be returned while it runs
        await stream.generator.return(undefined); // closes the file
        return;
      }
    }
  } catch (e) {
    streams.delete(msg.id);
    post({ type: 'error', id: msg.id, error: serialize(e) });
  }
}

function post(msg: FromConversionWorker): void {
  port!.postMessage(msg);
}

/** An ArrayBuffer holding exactly `b`'s bytes that may be transferred (a pooled or shared one is copied). */
function ownBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const copy = new ArrayBuffer(b.byteLength);
  new Uint8Array(copy).set(b);
  return copy;
}

function serialize(e: unknown): SerializedError {
  const err = e as { name?: unknown; message?: unknown; kind?: unknown; code?: unknown } | null;
  const out: SerializedError = {
    name: typeof err?.name === 'string' ? err.name : 'Error',
    message: typeof err?.message === 'string' ? err.message : String(e),
  };
  if (err?.kind === 'unsupported' || err?.kind === 'corrupt') out.kind = err.kind;
  if (typeof err?.code === 'string') out.code = err.code;
  return out;
}
