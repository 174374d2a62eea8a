// The DICOM node: the SCP spools each instance durably and answers; a processing loop then
// de-identifies, files and queues it for forwarding. The spool folder is the durable inbox:
// a file there is acknowledged but not yet filed, so a restart after a crash processes it.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../batch/auditLog.js';
import { formatDestination, parseDestination } from '../forward/destination.js';
import { ensureSchema as ensureQueueSchema } from '../forward/forwardQueue.js';
import { Forwarder } from '../forward/forwarder.js';
import type { Logger } from '../log.js';
import { StateDb } from '../state/stateDb.js';
import { DicomServer, type ReceivedInstance } from './dimse/dicomServer.js';
import { ensureFiledSchema } from './filedInstances.js';
import { processInstance, type ProcessorDeps, type Source } from './instanceProcessor.js';
import { MappingWatcher } from './mappingWatcher.js';
import type { NodeConfig } from './nodeConfig.js';

const SUCCESS = 0x0000;
/** Processing runs this many instances at once (I/O bound: reads, fsyncs). */
const PROCESS_CONCURRENCY = 3;
/** After an unexpected processing failure (disk full...), the spool is scanned again this often. */
const RETRY_SCAN_MS = 10_000;

export interface NodeCounts {
  received: number;
  filed: number;
  quarantined: number;
  failed: number;
}

export class DeidNode {
  private state!: StateDb;
  private watcher!: MappingWatcher;
  private audit!: AuditLog;
  private server!: DicomServer;
  private forwarder: Forwarder | null = null;
  private deps!: ProcessorDeps;
  private readonly queue: { file: string; source: Source }[] = [];
  private readonly queued = new Set<string>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  readonly counts: NodeCounts = { received: 0, filed: 0, quarantined: 0, failed: 0 };

  constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
  ) {}

  /** Starts everything; throws (with a one-line message) when the node cannot run. */
  async start(): Promise<{ port: number }> {
    const c = this.config;
    await Promise.all([c.output, c.quarantine, c.spool, c.logDir].map((d) => fsp.mkdir(d, { recursive: true })));
    this.watcher = new MappingWatcher(c.csv, this.logger);
    this.state = StateDb.open(c.db);
    ensureFiledSchema(this.state.db);
    ensureQueueSchema(this.state.db);
    this.audit = new AuditLog(c.logDir);
    const forwardTo = c.forward.map((f) => formatDestination(parseDestination(f)));
    this.deps = {
      state: this.state,
      mapping: () => this.watcher.current,
      outputDir: c.output,
      quarantineDir: c.quarantine,
      forwardTo,
      audit: (row) => {
        this.audit.write(row);
        this.audit.flush();
      },
    };
    if (forwardTo.length > 0) {
      this.forwarder = new Forwarder({
        db: this.state.db,
        destinations: c.forward.map(parseDestination),
        callingAet: c.callingAet,
        logger: this.logger,
        giveUpAfterMs: c.forwardGiveUpHours * 3600_000,
      });
      this.forwarder.start();
    }
    this.watcher.start();
    // Instances acknowledged before a crash or stop: process them first.
    const pending = await this.scanSpool();
    if (pending > 0) this.logger.info(`spool: ${pending} acknowledged instance(s) from a previous run to process`);
    this.server = new DicomServer({
      aeTitle: c.aeTitle,
      host: c.host,
      port: c.port,
      allowedCallingAets: c.allowedAets,
      spoolDir: c.spool,
      maxAssociations: c.maxAssociations,
      maxPduLength: c.maxPduLength,
      maxInstanceBytes: c.maxInstanceMB * 1024 * 1024,
      logger: this.logger,
      onStore: (inst) => this.onStore(inst),
    });
    const { port } = await this.server.start();
    this.logger.info(`listening as ${c.aeTitle} on ${c.host}:${port}`, {
      output: c.output,
      forward: forwardTo.join(',') || 'none',
      allowedAets: c.allowedAets.join(',') || 'any',
    });
    return { port };
  }

  /** The spool file is durable when this runs: accept it and process it after answering. */
  private async onStore(inst: ReceivedInstance): Promise<number> {
    this.counts.received++;
    this.enqueue(inst.spoolPath, { callingAet: inst.callingAet, receivedAt: new Date() });
    return SUCCESS;
  }

  private enqueue(file: string, source: Source): void {
    if (this.queued.has(file)) return;
    this.queued.add(file);
    this.queue.push({ file, source });
    this.pump();
  }

  private pump(): void {
    while (this.active < PROCESS_CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.active++;
      void this.runJob(job.file, job.source).finally(() => {
        this.active--;
        this.queued.delete(job.file);
        this.pump();
        if (this.active === 0 && this.queue.length === 0) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
    }
  }

  private async runJob(file: string, source: Source): Promise<void> {
    try {
      const outcome = await processInstance(this.deps, file, source);
      if (outcome.status === 'filed') {
        this.counts.filed++;
        this.forwarder?.kick();
      } else if (outcome.status === 'quarantined') {
        this.counts.quarantined++;
        this.logger.warn(`instance quarantined (${outcome.reason}); see the audit log`, { callingAet: source.callingAet });
      }
    } catch (e) {
      // Disk full, permissions...: the spool file stays; it is retried on the next scan.
      this.counts.failed++;
      this.logger.error(`processing failed, will retry: ${(e as NodeJS.ErrnoException).code ?? (e as Error).name}`, {
        spoolFile: file.split('/').pop(),
      });
      this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.scanSpool().catch(() => this.scheduleRetry());
    }, RETRY_SCAN_MS);
    this.retryTimer.unref();
  }

  /** Queues every complete spool file; removes partial ones (never acknowledged). */
  private async scanSpool(): Promise<number> {
    let n = 0;
    for (const f of (await fsp.readdir(this.config.spool)).sort()) {
      const file = join(this.config.spool, f);
      if (f.endsWith('.part')) {
        if (!this.server) await fsp.rm(file, { force: true });
        continue;
      }
      if (!f.endsWith('.dcm') || this.queued.has(file)) continue;
      const st = await fsp.stat(file).catch(() => null);
      if (!st) continue;
      this.enqueue(file, { callingAet: 'spool', receivedAt: st.mtime });
      n++;
    }
    return n;
  }

  /** Resolves when nothing is queued or being processed. */
  whenIdle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops accepting, answers in-flight stores, finishes processing, closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.server?.stop();
    await this.whenIdle();
    this.watcher?.stop();
    await this.forwarder?.stop();
    this.audit?.close();
    this.state?.close();
    this.logger.info('stopped', { ...this.counts });
  }
}
