// The DICOM node: the SCP spools each instance durably and answers; a processing loop then
// de-identifies, files and queues it for forwarding. The spool is the durable inbox: a journal
// record not yet retired, or a spool file, is acknowledged but not yet filed, so a restart after
// a crash processes it. The node owns the journal: its records are retired as they are filed,
// which goes on after receiving stops.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { destinationLabel } from '../forward/destination.js';
import { Status } from '../dimse/status.js';
import { Forwarder } from '../forward/forwarder.js';
import type { Logger } from '../log.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { DicomServer, type ReceivedInstance } from './dimse/dicomServer.js';
import { SpoolJournal } from './dimse/spoolJournal.js';
import { parseJournalRef, spoolItemName } from './dimse/spoolRef.js';
import { AuditLog } from '../audit/auditLog.js';
import { ProcessingThread } from './processingThread.js';
import { quarantineFile } from './quarantine.js';
import { MappingWatcher } from './mappingWatcher.js';
import type { NodeConfig } from './nodeConfig.js';

/** After an unexpected processing failure (disk full...), the spool is scanned again this often. */
const RETRY_SCAN_MS = 10_000;
/** Non-I/O failures of one instance before it goes to quarantine. */
const MAX_FAULTS = 3;

export interface NodeCounts {
  received: number;
  filed: number;
  quarantined: number;
  failed: number;
}

export class DeidNode {
  private state!: StateStore;
  private watcher!: MappingWatcher;
  private server!: DicomServer;
  private forwarder: Forwarder | null = null;
  private processing!: ProcessingThread;
  private journal!: SpoolJournal;
  private audit!: AuditLog;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly faults = new Map<string, number>();
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
    this.watcher = new MappingWatcher(c.csv, this.logger, 1000, (t) => this.processing.setMapping([...t.rows]));
    this.state = await openStateStore(c.db, { create: true });
    await this.state.uidSecret(); // created once, before two threads could race for it
    const forwardTo = c.forward.map((d) => d.name); // queue keys
    this.audit = new AuditLog(c.logDir);
    this.journal = new SpoolJournal(c.spool, {
      reserveBytes: c.spoolReserveMB * 1024 * 1024,
      warn: (message, code) => this.logger.warn(message, { code }),
    });
    this.processing = new ProcessingThread(
      {
        db: c.db,
        output: c.output,
        quarantine: c.quarantine,
        forwardTo,
        rows: [...this.watcher.current.rows],
      },
      {
        onAudit: (rows) => {
          for (const row of rows) this.audit.write(row);
          this.audit.flush();
        },
        onDone: (_file, outcome) => {
          if (outcome.status === 'filed') {
            this.counts.filed++;
            this.forwarder?.kick();
          } else if (outcome.status === 'quarantined') {
            this.counts.quarantined++;
            this.logger.warn(`instance quarantined (${outcome.reason}); see the audit log`);
          }
        },
        onReleased: (file) => this.journal.release(file),
        onFailed: (file, error) => this.onFailed(file, error),
        onCrash: (e) => this.logger.error(`processing thread crashed: ${e.name}; restarting it`),
      },
      c.processingThreads,
    );
    if (forwardTo.length > 0) {
      this.forwarder = new Forwarder({
        state: this.state,
        destinations: c.forward,
        callingAet: c.callingAet,
        logger: this.logger,
        giveUpAfterMs: c.forwardGiveUpHours * 3600_000,
      });
      await this.forwarder.start();
    }
    this.watcher.start();
    this.server = new DicomServer({
      aeTitle: c.aeTitle,
      host: c.host,
      port: c.port,
      allowedCallingAets: c.allowedAets,
      spoolDir: c.spool,
      journal: this.journal,
      maxAssociations: c.maxAssociations,
      maxPduLength: c.maxPduLength,
      maxInstanceBytes: c.maxInstanceMB * 1024 * 1024,
      logger: this.logger,
      onStore: (inst) => this.onStore(inst),
    });
    // Instances acknowledged before a crash or stop: process them first.
    await this.server.recoverSpool();
    const pending = await this.scanSpool();
    if (pending > 0) this.logger.info(`spool: ${pending} acknowledged instance(s) from a previous run to process`);
    const { port } = await this.server.start();
    this.logger.info(`listening as ${c.aeTitle} on ${c.host}:${port}`, {
      output: c.output,
      forward: c.forward.map(destinationLabel).join(', ') || 'none',
      allowedAets: c.allowedAets.join(',') || 'any',
    });
    return { port };
  }

  /** The spool file is durable when this runs: accept it and process it after answering. */
  private async onStore(inst: ReceivedInstance): Promise<number> {
    this.counts.received++;
    this.processing.process(inst.spoolPath, inst.callingAet, new Date(), inst.byteLength);
    return Status.Success;
  }

  /**
   * Disk full, permissions... (an errno code): the spool file stays and is retried on the next
   * scan, for as long as it takes. Anything else is a fault tied to this instance: after
   * MAX_FAULTS tries it goes to quarantine, so one bad instance cannot loop for ever.
   */
  private onFailed(file: string, error: string): void {
    this.counts.failed++;
    const name = spoolItemName(file);
    if (error === 'SpoolItemGone') {
      // Its segment was removed, or its place reused: nothing is left to process or keep.
      this.journal.release(file);
      this.logger.error('spooled instance is gone from the spool journal; it cannot be filed', { spoolFile: name });
      return;
    }
    const faults = (this.faults.get(file) ?? 0) + 1;
    this.faults.set(file, faults);
    // A record the disk damaged is kept as it is, for a person to look at; never filed.
    const corrupt = error === 'SpoolRecordCorrupt';
    if (corrupt || (!/^E[A-Z0-9]+$/.test(error) && faults >= MAX_FAULTS)) {
      const why = corrupt
        ? 'spool record fails its checksum (a disk error)'
        : `processing failed ${faults} times (${error})`;
      try {
        quarantineFile(
          this.config.quarantine,
          file,
          {
            reason: corrupt ? 'unreadable' : 'not-deidentifiable',
            message: why,
            receivedAt: new Date().toISOString(),
            callingAet: 'spool',
            keys: {},
          },
          { unchecked: corrupt },
        );
        this.faults.delete(file);
        this.journal.release(file);
        this.counts.quarantined++;
        this.logger.error(`${why}: instance moved to quarantine`, { spoolFile: name });
        return;
      } catch {
        // could not move it: keep retrying like an I/O error
      }
    }
    this.logger.error(`processing failed, will retry: ${error}`, { spoolFile: name });
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.scanSpool().catch(() => this.scheduleRetry());
    }, RETRY_SCAN_MS);
    this.retryTimer.unref();
  }

  /**
   * Queues every acknowledged instance not yet filed: the journal's live records and the complete
   * spool files (partial ones are in the receiver's incoming/ folder).
   */
  private async scanSpool(): Promise<number> {
    let n = 0;
    for (const item of this.journal.liveRecords()) {
      if (this.processing.has(item)) continue;
      this.processing.process(item, 'spool', new Date(), parseJournalRef(item)!.length);
      n++;
    }
    for (const f of (await fsp.readdir(this.config.spool)).sort()) {
      const file = join(this.config.spool, f);
      if (!f.endsWith('.dcm') || this.processing.has(file)) continue;
      const st = await fsp.stat(file).catch(() => null);
      if (!st) continue;
      this.processing.process(file, 'spool', st.mtime, st.size);
      n++;
    }
    return n;
  }

  /** Resolves when nothing is being processed. */
  whenIdle(): Promise<void> {
    return this.processing.whenIdle();
  }

  /** Stops accepting, answers in-flight stores, finishes processing, closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.server?.stop();
    await this.processing?.close();
    await this.journal?.close();
    this.audit?.close();
    this.watcher?.stop();
    await this.forwarder?.stop();
    await this.state?.close();
    if (this.server) this.logger.info('stopped', { ...this.counts });
  }
}
