// Streams one received data set to `<spoolDir>/<random>.part` and makes it durable.
//
// The object is handed to dcmjs-dimse as the "writable" of createStoreWritableStream(). The
// library only calls write(), end() and once('drain'); write() always returns true, so the
// library never awaits 'drain' (its drain handling is broken for all but the first write).
// Real backpressure is applied by the owner through onPressure (it pauses the socket).
//
// Chunks are kept as references (no copies) and written in batches with one writev() per
// batch. finish() = wait for writes, fsync, close, rename .part -> .dcm, fsync the directory.
// Nothing may be acknowledged to the peer before finish() resolved.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';

/** Queued-but-unwritten bytes above which the socket is paused, and below which it resumes. */
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;

/**
 * fsyncs the spool directory (making renames durable) through one directory descriptor kept
 * open, and coalesces concurrent requests: callers share the next sync that starts after them.
 */
export class DirSyncer {
  private fd: number | undefined;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    // The running sync may have started before the caller's rename: wait for the next one.
    if (!this.queued) {
      this.queued = this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.sync();
        });
    }
    return this.queued;
  }

  /** Closes the directory descriptor (after the last sync). */
  async close(): Promise<void> {
    await this.running?.catch(() => undefined);
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
  }

  private async syncOnce(): Promise<void> {
    if (this.fd === undefined) {
      this.fd = await new Promise<number>((resolve, reject) =>
        fs.open(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, (err, fd) => (err ? reject(err) : resolve(fd))),
      );
    }
    const fd = this.fd;
    try {
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      // Reopen next time (the directory may have been replaced).
      this.fd = undefined;
      fs.close(fd, () => undefined);
      throw err;
    }
  }
}

export interface SpoolWriterOptions {
  dir: string;
  dirSyncer: DirSyncer;
  /** Transfer syntax of the data set (as accepted); recorded for the caller. */
  transferSyntaxUid: string;
  /** Part 10 preamble + file meta, written before the data set bytes. */
  meta: Buffer;
  /** Cap on data set bytes; exceeding it calls onOverflow once and drops further data. */
  maxBytes: number;
  onOverflow(): void;
  /** true: stop feeding me (pause the socket); false: resume. */
  onPressure(paused: boolean): void;
}

type WriterState = 'open' | 'finishing' | 'done' | 'discarded';

export class SpoolWriter {
  readonly id = randomUUID();
  readonly partPath: string;
  readonly finalPath: string;
  readonly transferSyntaxUid: string;
  /** Data set bytes received (file meta excluded). */
  bytes = 0;
  /** First I/O error; the instance must then be answered with a failure. */
  error: NodeJS.ErrnoException | undefined;
  overflowed = false;

  private fd: number | undefined;
  private opening = true;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  private paused = false;
  private state: WriterState = 'open';
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: SpoolWriterOptions) {
    this.partPath = path.join(opts.dir, `${this.id}.part`);
    this.finalPath = path.join(opts.dir, `${this.id}.dcm`);
    this.transferSyntaxUid = opts.transferSyntaxUid;
    this.enqueue(opts.meta);
    fs.open(this.partPath, 'wx', 0o600, (err, fd) => {
      this.opening = false;
      if (err) {
        this.fail(err);
      } else if (this.state === 'discarded') {
        fs.close(fd, () => fs.unlink(this.partPath, () => undefined));
      } else {
        this.fd = fd;
      }
      this.pump();
    });
  }

  // --- the Writable subset dcmjs-dimse uses -------------------------------------------------
  write(chunk: Buffer): boolean {
    if (this.state !== 'open') return true;
    this.bytes += chunk.length;
    if (this.bytes > this.opts.maxBytes) {
      if (!this.overflowed) {
        this.overflowed = true;
        this.dropQueue();
        this.opts.onOverflow();
      }
      return true;
    }
    if (this.error) return true; // keep counting, drop the data; answered as a failure
    this.enqueue(chunk);
    this.pump();
    return true;
  }

  end(): void {
    // Completion is driven by finish(); nothing to do here.
  }

  once(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }

  on(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }

  // --- completion ---------------------------------------------------------------------------
  /** Makes the file durable under its final name; rejects (after cleaning up) on any failure. */
  async finish(): Promise<string> {
    if (this.state !== 'open') throw new Error(`spool writer already ${this.state}`);
    this.state = 'finishing';
    try {
      await this.idle();
      if (this.overflowed) throw new Error('instance exceeds the size limit');
      if (this.error) throw this.error;
      const fd = this.fd!;
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve, reject) =>
        fs.rename(this.partPath, this.finalPath, (err) => (err ? reject(err) : resolve())),
      );
      this.state = 'done';
      this.fd = undefined;
      // The data is durable once fsync succeeded: a close error changes nothing.
      const closed = new Promise<void>((resolve) => fs.close(fd, () => resolve()));
      await Promise.all([this.opts.dirSyncer.sync(), closed]);
      return this.finalPath;
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  /** Abandons the instance: closes and deletes the partial file. Idempotent, never throws. */
  async discard(): Promise<void> {
    const wasDone = this.state === 'done';
    this.state = 'discarded';
    this.dropQueue();
    await this.idle();
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    await fs.promises.rm(wasDone ? this.finalPath : this.partPath, { force: true }).catch(() => undefined);
  }

  // --- internals ----------------------------------------------------------------------------
  private enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (!this.paused && this.queuedBytes > HIGH_WATER) {
      this.paused = true;
      this.opts.onPressure(true);
    }
  }

  private dropQueue(): void {
    for (const b of this.queue) this.queuedBytes -= b.length;
    this.queue = [];
    this.relievePressure();
  }

  private relievePressure(): void {
    if (this.paused && this.queuedBytes <= LOW_WATER) {
      this.paused = false;
      this.opts.onPressure(false);
    }
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (!this.error) this.error = err;
    this.dropQueue();
  }

  private pump(): void {
    if (this.writing || this.opening) return;
    if (this.fd === undefined || this.queue.length === 0 || this.error) {
      if (this.error) this.dropQueue();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    const batch = this.queue;
    this.queue = [];
    let n = 0;
    for (const b of batch) n += b.length;
    this.writing = true;
    fs.writev(this.fd, batch, (err, written) => {
      this.writing = false;
      this.queuedBytes -= n;
      if (err) this.fail(err);
      else if (written !== n) this.fail(Object.assign(new Error('short write'), { code: 'EIO' }));
      this.relievePressure();
      this.pump();
    });
  }

  private idle(): Promise<void> {
    if (!this.writing && !this.opening && (this.queue.length === 0 || this.error || this.fd === undefined)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * Sink for a data set that will be refused anyway (bad UIDs, SOP class not matching its
 * presentation context): counts bytes against the cap, stores nothing, and carries the status.
 */
export class DiscardSink {
  bytes = 0;
  private overflowed = false;

  constructor(
    readonly status: number,
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  write(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes && !this.overflowed) {
      this.overflowed = true;
      this.onOverflow();
    }
    return true;
  }

  end(): void {}

  once(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }

  on(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }

  async discard(): Promise<void> {}
}
