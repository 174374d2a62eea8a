// Main-thread side of the processing worker: hands it spool files, tracks what is in flight,
// restarts it if it dies (the spool still holds whatever it had not finished).
import { Worker } from 'node:worker_threads';
import type { MappingRow } from '../core/types.js';
import type { Outcome } from './instanceProcessor.js';
import type { FromWorker, ProcessingInit, ToWorker } from './processingWorker.js';

export interface ProcessingEvents {
  onDone(file: string, outcome: Outcome): void;
  onFailed(file: string, error: string): void;
  onCrash(error: Error): void;
}

export class ProcessingThread {
  private worker!: Worker;
  private readonly inFlight = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  private closing = false;

  constructor(
    private init: ProcessingInit,
    private readonly events: ProcessingEvents,
  ) {
    this.spawn();
  }

  private spawn(): void {
    const w = new Worker(new URL('./processingWorker.js', import.meta.url), { workerData: this.init });
    w.on('message', (msg: FromWorker) => {
      if (msg.type === 'done') this.finish(msg.file, () => this.events.onDone(msg.file, msg.outcome));
      else if (msg.type === 'failed') this.finish(msg.file, () => this.events.onFailed(msg.file, msg.error));
    });
    w.on('error', (e) => this.events.onCrash(e));
    w.on('exit', () => {
      if (this.closing) return;
      // Whatever it held is still in the spool; the node rescans it.
      for (const f of [...this.inFlight]) this.finish(f, () => this.events.onFailed(f, 'WorkerExited'));
      this.spawn();
    });
    this.worker = w;
  }

  private finish(file: string, report: () => void): void {
    this.inFlight.delete(file);
    try {
      report();
    } finally {
      if (this.inFlight.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  has(file: string): boolean {
    return this.inFlight.has(file);
  }

  process(file: string, callingAet: string, receivedAt: Date): void {
    if (this.inFlight.has(file) || this.closing) return;
    this.inFlight.add(file);
    this.worker.postMessage({ type: 'process', file, callingAet, receivedAt: receivedAt.getTime() } satisfies ToWorker);
  }

  setMapping(rows: MappingRow[]): void {
    this.init = { ...this.init, rows };
    this.worker.postMessage({ type: 'mapping', rows } satisfies ToWorker);
  }

  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Waits for in-flight work, then closes the worker's database and audit log. */
  async close(): Promise<void> {
    await this.whenIdle();
    this.closing = true;
    await new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    });
  }
}
