// The forwarder's conversions run on a worker thread of their own (conversionWorker.ts), never on
// the main thread, where the node's receiver, spool and forwarder share one event loop: decoding
// is synchronous WebAssembly (a 512x512 JPEG 2000 frame takes tens of ms, a large instance
// minutes), and acknowledgements would wait behind it. Only the conversion moves: the SCU stays
// on the main thread with the rest of the forwarder, and pulls the converted data set chunk by
// chunk; the worker works one chunk ahead, so at most ~2 chunks (1 MiB each) exist per
// conversion, whatever the instance's size. The worker runs at nice 10 (conversionWorker.ts), so
// that on busy cores acknowledgements go first. scripts/bench-node.sh CONVERT=1 measures the
// effect on acknowledgements (README, "Converting transfer syntaxes": on the main thread, the
// slowest acknowledgements waited about a second behind JPEG 2000 frames).
//
// One worker serves every conversion of the process (conversions of several destinations
// interleave chunk by chunk). It starts on the first conversion, is terminated after a minute
// without one, and keeps the process alive only while a reply is awaited (a source left open is
// no reason to stay). A worker that dies fails the conversions under way with a plain Error
// (retryable), and the next conversion starts a new worker.
import { Worker } from 'node:worker_threads';
import { ConversionError } from '../core/transcode/conversionError.js';
import type { FromConversionWorker, SerializedError, ToConversionWorker } from './conversionWorker.js';
import { inlineConverter, type Converter, type ConvertingSource } from './converter.js';

export interface ConversionThreadOptions {
  /** The worker script (default: conversionWorker.js next to this module, i.e. in dist/). */
  workerUrl?: URL;
  /** Largest chunk of a converted data set, bytes (default: the engine's 1 MiB). */
  chunkBytes?: number;
  /** The worker is terminated after this long without a conversion, ms (default 60 000). */
  idleMs?: number;
}

interface Stream {
  /** The reply awaited (each conversion has at most one request outstanding). */
  waiter?: { resolve(msg: FromConversionWorker): void; reject(e: Error): void };
}

/** A Converter whose conversions run on one worker thread (see the top of this file). */
export function conversionThread(options: ConversionThreadOptions = {}): Converter {
  return new ConversionThread(options);
}

/**
 * The converter the forwarder uses by default: the conversion thread, or inline on the calling
 * thread when the environment says DICOM_DEID_CONVERT=inline (for measuring what the thread
 * spares the receiver: scripts/bench-node.sh).
 */
export function defaultConverter(): Converter {
  return process.env.DICOM_DEID_CONVERT === 'inline' ? inlineConverter() : conversionThread();
}

class ConversionThread implements Converter {
  private worker: Worker | undefined;
  private readonly streams = new Map<number, Stream>();
  private nextId = 1;
  /** Requests whose reply has not come: the worker is ref'd while there are any. */
  private awaited = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly workerUrl: URL;
  private readonly idleMs: number;

  constructor(private readonly options: ConversionThreadOptions) {
    this.workerUrl = options.workerUrl ?? new URL('./conversionWorker.js', import.meta.url);
    this.idleMs = options.idleMs ?? 60_000;
  }

  async open(path: string, targetTs: string): Promise<ConvertingSource> {
    const id = this.nextId++;
    const stream: Stream = {};
    this.streams.set(id, stream);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    let opened: FromConversionWorker;
    try {
      opened = await this.request(id, { type: 'open', id, path, targetTs, chunkBytes: this.options.chunkBytes });
    } catch (e) {
      this.forget(id);
      throw e;
    }
    if (opened.type !== 'opened') {
      this.forget(id);
      throw new Error(`conversion thread: unexpected ${opened.type} reply to open`);
    }
    return new ThreadSource(this, id, targetTs, opened.kind);
  }

  async close(): Promise<void> {
    await this.stopWorker('the conversion thread was closed');
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Sends a request for conversion `id` (one at a time per conversion) and resolves with its
   * reply; rejects with the revived error, or when the conversion ends first.
   */
  request(id: number, msg: ToConversionWorker): Promise<FromConversionWorker> {
    const stream = this.streams.get(id);
    if (!stream) return Promise.reject(new Error('conversion thread: the conversion has ended'));
    const worker = this.ensureWorker();
    return new Promise<FromConversionWorker>((resolve, reject) => {
      const settle = (): void => {
        stream.waiter = undefined;
        if (--this.awaited === 0) this.worker?.unref();
      };
      stream.waiter = {
        resolve: (m) => (settle(), resolve(m)),
        reject: (e) => (settle(), reject(e)),
      };
      if (this.awaited++ === 0) worker.ref();
      worker.postMessage(msg);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.workerUrl);
    w.on('message', (msg: FromConversionWorker) => {
      const waiter = this.streams.get(msg.id)?.waiter;
      if (!waiter) return; // a reply to a conversion already abandoned
      if (msg.type === 'error') waiter.reject(revive(msg.error));
      else waiter.resolve(msg);
    });
    let why = 'exited';
    w.on('error', (e) => (why = `failed: ${e.message}`));
    w.on('exit', (code) => {
      if (this.worker !== w) return; // terminated on purpose
      this.worker = undefined;
      this.failAll(new Error(`the conversion thread ${why === 'exited' ? `exited (code ${code})` : why}`));
    });
    this.worker = w;
    w.unref();
    return w;
  }

  /** Conversion `id` ended (read to its end, failed, or abandoned: then the worker drops it too). */
  finish(id: number, abandoned: boolean): void {
    const stream = this.streams.get(id);
    if (!stream) return;
    if (abandoned) this.worker?.postMessage({ type: 'cancel', id } satisfies ToConversionWorker);
    this.forget(id);
    stream.waiter?.reject(new Error('conversion thread: the conversion has ended'));
  }

  private forget(id: number): void {
    this.streams.delete(id);
    if (this.streams.size > 0 || !this.worker) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.streams.size === 0) void this.stopWorker('idle');
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private failAll(e: Error): void {
    for (const [id, stream] of [...this.streams]) {
      this.streams.delete(id);
      stream.waiter?.reject(e);
    }
  }

  private async stopWorker(why: string): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new Error(`conversion stopped: ${why}`));
    await w?.terminate();
  }
}

/** One conversion on the thread, as the SCU reads it. */
class ThreadSource implements ConvertingSource {
  private state: 'new' | 'reading' | 'done' = 'new';

  constructor(
    private readonly thread: ConversionThread,
    private readonly id: number,
    readonly transferSyntaxUid: string,
    readonly kind: ConvertingSource['kind'],
  ) {}

  async *chunks(): AsyncGenerator<Buffer> {
    if (this.state !== 'new') throw new Error('a converted data set can be read once');
    this.state = 'reading';
    try {
      // The worker makes the next chunk while the caller sends this one (see conversionWorker.ts).
      for (;;) {
        const msg = await this.thread.request(this.id, { type: 'pull', id: this.id });
        if (msg.type === 'end') break;
        if (msg.type !== 'chunk') throw new Error(`conversion thread: unexpected ${msg.type} reply to pull`);
        yield Buffer.from(msg.bytes);
      }
      this.state = 'done';
      this.thread.finish(this.id, false);
    } finally {
      await this.close(); // stopped early (the association failed) or failed: the worker drops it
    }
  }

  async close(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    this.thread.finish(this.id, true);
  }
}

/** The worker's error as the caller expects it: ConversionError, an fs error with its code, or an Error. */
function revive(e: SerializedError): Error {
  if (e.name === 'ConversionError' && e.kind) return new ConversionError(e.kind, e.message);
  const err = new Error(e.message) as NodeJS.ErrnoException;
  if (e.code) err.code = e.code;
  return err;
}
