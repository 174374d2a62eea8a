// The DICOM node: the receiver (receiver/) writes each instance durably into the spool (spool/)
// and answers; processing threads then de-identify, file and queue it for forwarding. The spool
// is the durable inbox: a journal record not yet retired, or a spool file, is acknowledged but
// not yet filed, so a restart after a crash processes it. The node owns the spool: it recovers
// and prepares it before the receiver listens, and releases each instance once it is filed,
// which goes on after receiving stops. Every part reports its status; status() gathers them.
import { promises as fsp } from 'node:fs';
import { destinationLabel } from '../forward/destination.js';
import { Status } from '../dimse/status.js';
import { Forwarder } from '../forward/forwarder.js';
import type { Logger } from '../log.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { AuditLog } from '../audit/auditLog.js';
import { checkDestinationTls } from '../forward/destinationTls.js';
import { readTlsCredentials } from '../dimse/tlsCredentials.js';
import { DicomListener, type ListenerEndpoint } from './receiver/listener.js';
import { TlsServer } from './receiver/tlsServer.js';
import type { ReceivedInstance } from './receiver/storeSink.js';
import { Spool } from './spool/spool.js';
import { spoolRefId, spoolRefName, type SpoolRef } from './spool/spoolRef.js';
import { nodeStatus, type NodeStatus } from './nodeStatus.js';
import { ProcessingThread } from './processingThread.js';
import { quarantineFile } from './quarantine.js';
import { testOnlyKeep, warnOnlyTags } from '../leakGuardSettings.js';
import { ConfigError } from '../errors.js';
import { MappingWatcher } from './mappingWatcher.js';
import type { NodeConfig } from './nodeConfig.js';
import { RetrieveService } from '../retrieve/retrieveService.js';

/** After an unexpected processing failure (disk full...), the spool is scanned again this often. */
const RETRY_SCAN_MS = 10_000;
/** Non-I/O failures of one instance before it goes to quarantine. */
const MAX_FAULTS = 3;

export class DeidNode {
  private state!: StateStore;
  private watcher: MappingWatcher | undefined;
  private receiver: DicomListener<SpoolRef> | undefined;
  /** The DICOM TLS endpoint's server factory, whose certificates reload() replaces. */
  private tlsServer: TlsServer | undefined;
  private forwarder: Forwarder | null = null;
  private retrieveService: RetrieveService | undefined;
  private processing: ProcessingThread | undefined;
  private spool: Spool | undefined;
  private audit!: AuditLog;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Failures per spooled instance, by spoolRefId. */
  private readonly faults = new Map<string, number>();
  private stopping = false;
  private readonly startedAt = new Date().toISOString();

  /**
   * `retrieveOptions`: settings of the node's retrieve jobs that are not the config's (the
   * standalone `retrieve` command's progress bar and runner name; tests' timers).
   */
  constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
    private readonly retrieveOptions: Partial<
      Pick<ConstructorParameters<typeof RetrieveService>[0], 'runner' | 'onProgress' | 'heartbeatMs' | 'pollMs'>
    > = {},
  ) {}

  /** The node's retrieve jobs (available once start() has resolved). */
  get retrieve(): RetrieveService {
    if (!this.retrieveService) throw new Error('the node is not started');
    return this.retrieveService;
  }

  /**
   * Counters of the node's work on arriving instances: received (acknowledged) and done
   * processing (filed, quarantined, failed), and the associations open now. A retrieve job sees
   * by them that a study it moved is still arriving, or still being filed.
   */
  arrivals(): { received: number; processed: number; receiving: number } {
    const r = this.receiver?.status().counts;
    const p = this.processing?.status().counts;
    return {
      received: r?.instancesStored ?? 0,
      receiving: r?.associationsOpen ?? 0,
      processed: (p?.filed ?? 0) + (p?.quarantined ?? 0) + (p?.failed ?? 0),
    };
  }

  /**
   * Starts everything; throws (with a one-line message) when the node cannot run: a ConfigError
   * naming a TLS file that is missing or unusable, a system error when a port is taken...
   * Resolves with the bound ports: `port` is the first endpoint's (the plain one, or the TLS one
   * with tls.only), `tlsPort` the TLS endpoint's.
   */
  async start(): Promise<{ port: number; tlsPort?: number }> {
    const c = this.config;
    // Certificates first: a wrong path is a start error before anything is prepared.
    if (c.tls) {
      const { options, warnings } = readTlsCredentials({ cert: c.tls.cert, key: c.tls.key, ca: c.tls.ca }, 'tls');
      for (const w of warnings) this.logger.warn(w);
      this.tlsServer = new TlsServer({ credentials: options, requireClientCert: c.tls.requireClientCert });
    }
    for (const d of c.forward) for (const w of checkDestinationTls(d)) this.logger.warn(w);
    await Promise.all([c.output, c.quarantine, c.spool, c.logDir].map((d) => fsp.mkdir(d, { recursive: true })));
    const watcher = new MappingWatcher(c.csv, this.logger, 1000, (t) => processing.setMapping([...t.rows]));
    this.watcher = watcher;
    this.state = await openStateStore(c.db, { create: true });
    await this.state.uidSecret(); // created once, before two threads could race for it
    const forwardTo = c.forward.map((d) => d.name); // queue keys
    this.audit = new AuditLog(c.logDir);
    const spool = new Spool(c.spool, {
      reserveBytes: c.spoolReserveMB * 1024 * 1024,
      warn: (message, code) => this.logger.warn(message, { code }),
    });
    this.spool = spool;
    const processing = new ProcessingThread(
      {
        db: c.db,
        output: c.output,
        quarantine: c.quarantine,
        forwardTo,
        rows: [...watcher.current.rows],
        allowBurnedIn: c.allowBurnedIn,
        leakGuardWarnOnly: warnOnlyTags(c.leakGuardWarnOnly, 'leakGuardWarnOnly', (m) => new ConfigError(m)),
        testOnlyKeep: testOnlyKeep(
          process.env,
          (m) => new ConfigError(m),
          (m) => this.logger.warn(m),
        ),
      },
      {
        onAudit: (rows) => {
          for (const row of rows) this.audit.write(row);
          this.audit.flush();
        },
        onDone: (_ref, outcome) => {
          if (outcome.status === 'filed') {
            this.forwarder?.kick();
          } else if (outcome.status === 'quarantined') {
            // A leak guard hold names where and what kind (never the value): say it here too.
            const what = outcome.reason === 'leak-guard' ? `: ${outcome.message}` : '';
            this.logger.warn(`instance quarantined (${outcome.reason}${what}); see the audit log`);
          }
        },
        onReleased: (ref) => spool.release(ref),
        onFailed: (ref, error) => this.onFailed(ref, error),
        onCrash: (e) => this.logger.error(`processing thread crashed: ${e.name}; restarting it`),
      },
      c.processingThreads,
    );
    this.processing = processing;
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
    watcher.start();
    // Instances acknowledged before a crash or stop: process them first.
    await this.recoverSpool(spool);
    const pending = await this.scanSpool();
    if (pending > 0) this.logger.info(`spool: ${pending} acknowledged instance(s) from a previous run to process`);
    await this.prepareSpool(spool);
    const endpoints: ListenerEndpoint[] = [];
    if (!c.tls?.only) endpoints.push({ name: 'dicom', port: c.port });
    if (c.tls && this.tlsServer)
      endpoints.push({ name: 'dicom-tls', port: c.tls.port, createServer: this.tlsServer.create });
    const receiver = new DicomListener<SpoolRef>({
      aeTitle: c.aeTitle,
      host: c.host,
      endpoints,
      allowedCallingAets: c.allowedAets,
      openAccess: c.openAccess,
      maxAssociations: c.maxAssociations,
      maxAssociationsPerAddress: c.maxAssociationsPerAddress,
      timeouts: { message: c.messageDeadlineSeconds * 1000 },
      minReceiveBytesPerSecond: c.minReceiveBytesPerSecond,
      maxPduLength: c.maxPduLength,
      maxInstanceBytes: c.maxInstanceMB * 1024 * 1024,
      logger: this.logger,
      sinks: spool,
      onStore: (inst) => this.onStore(inst),
    });
    this.receiver = receiver;
    const { port, ports } = await receiver.start();
    const tlsPort = ports['dicom-tls'];
    this.retrieveService = new RetrieveService({
      state: this.state,
      node: { aeTitle: c.aeTitle, host: c.host, port, callingAet: c.callingAet, reportDir: c.logDir },
      arrivals: () => this.arrivals(),
      logger: this.logger,
      ...this.retrieveOptions,
    });
    const tlsWords = c.tls ? ` (DICOM TLS${c.tls.requireClientCert ? ', client certificates required' : ''})` : '';
    for (const e of endpoints) {
      const words = e.name === 'dicom-tls' ? tlsWords : '';
      this.logger.info(`listening as ${c.aeTitle} on ${c.host}:${ports[e.name]}${words}`, {
        output: c.output,
        forward: c.forward.map(destinationLabel).join(', ') || 'none',
        allowedAets: c.allowedAets.join(',') || 'any',
      });
    }
    return { port, ...(tlsPort !== undefined ? { tlsPort } : {}) };
  }

  /**
   * SIGHUP: reads the TLS certificate, key and CA again (new connections use them; open ones keep
   * theirs), checks the destinations' TLS files (read again for each association anyway), and
   * resolves the allowedAets host names again. Whatever fails is logged in one line and the
   * previous settings stay; never throws.
   */
  async reload(): Promise<void> {
    const c = this.config;
    if (c.tls && this.tlsServer) {
      try {
        const { options, warnings } = readTlsCredentials({ cert: c.tls.cert, key: c.tls.key, ca: c.tls.ca }, 'tls');
        for (const w of warnings) this.logger.warn(w);
        this.tlsServer.setCredentials(options);
        this.logger.info('TLS certificates reloaded: new connections use them', { cert: c.tls.cert });
      } catch (e) {
        this.logger.error(`TLS certificates not reloaded, the previous ones stay: ${(e as Error).message}`);
      }
    }
    for (const d of c.forward) {
      try {
        for (const w of checkDestinationTls(d)) this.logger.warn(w);
      } catch (e) {
        this.logger.error(`${(e as Error).message} (its associations fail until this is fixed)`);
      }
    }
    try {
      await this.receiver?.reloadCallingAes();
    } catch (e) {
      this.logger.error(`allowedAets not reloaded, the previous addresses stay: ${(e as Error).message}`);
    }
  }

  /** Recovers what a previous run left in the spool (spool.ts recover()), and says what it found. */
  private async recoverSpool(spool: Spool): Promise<void> {
    const { journalRecords, filesRecovered, partialsDeleted } = await spool.recover();
    if (journalRecords > 0) {
      this.logger.info('spool journal: acknowledged instances left by a previous run', { count: journalRecords });
    }
    if (partialsDeleted > 0)
      this.logger.warn('deleted partial files left by a previous run', { count: partialsDeleted });
    if (filesRecovered > 0) {
      this.logger.info('moved complete files left by a previous run to the spool', { count: filesRecovered });
    }
  }

  /** Prepares the spool's reserve before listening (seconds, once, on a new spool), and says so. */
  private async prepareSpool(spool: Spool): Promise<void> {
    const t0 = Date.now();
    const missing = spool.missingBytes();
    if (missing > 0) {
      this.logger.info('preparing the spool reserve before listening (once, on a new spool)', {
        mb: Math.round(missing / 1024 / 1024),
      });
    }
    const reserve = await spool.prepare();
    if (reserve.preparedBytes > 0) {
      this.logger.info('spool reserve prepared (once, on a new spool)', {
        mb: Math.round(reserve.preparedBytes / 1024 / 1024),
        ms: Date.now() - t0,
      });
    }
    if (reserve.error === 'LOWDISK') {
      this.logger.warn(
        'spool reserve left incomplete to keep disk space free (1/20 of the disk, 1-10 GiB); instances beyond it go to files',
      );
    } else if (reserve.error) {
      this.logger.warn('spool reserve incomplete: instances beyond it go to files', { code: reserve.error });
    }
  }

  /** The instance is durable in the spool when this runs: accept it and process it after answering. */
  private async onStore(inst: ReceivedInstance<SpoolRef>): Promise<number> {
    this.processing!.process(inst.ref, inst.callingAet, new Date(), inst.byteLength);
    return Status.Success;
  }

  /**
   * Disk full, permissions... (an errno code): the spooled instance stays and is retried on the
   * next scan, for as long as it takes. Anything else is a fault tied to this instance: after
   * MAX_FAULTS tries it goes to quarantine, so one bad instance cannot loop for ever.
   */
  private onFailed(ref: SpoolRef, error: string): void {
    const spool = this.spool!;
    const name = spoolRefName(ref);
    if (error === 'SpoolItemGone') {
      // Its segment was removed, or its place reused: nothing is left to process or keep.
      spool.release(ref);
      this.logger.error('spooled instance is gone from the spool journal; it cannot be filed', { spoolFile: name });
      return;
    }
    const id = spoolRefId(ref);
    const faults = (this.faults.get(id) ?? 0) + 1;
    this.faults.set(id, faults);
    // A record the disk damaged is kept as it is, for a person to look at; never filed.
    const corrupt = error === 'SpoolRecordCorrupt';
    if (corrupt || (!/^E[A-Z0-9]+$/.test(error) && faults >= MAX_FAULTS)) {
      const why = corrupt
        ? 'spool record fails its checksum (a disk error)'
        : `processing failed ${faults} times (${error})`;
      try {
        quarantineFile(
          this.config.quarantine,
          ref,
          {
            reason: corrupt ? 'unreadable' : 'not-deidentifiable',
            message: why,
            receivedAt: new Date().toISOString(),
            callingAet: 'spool',
            keys: {},
          },
          { unchecked: corrupt },
        );
        this.faults.delete(id);
        spool.release(ref);
        this.processing!.recordQuarantined(corrupt ? 'unreadable' : 'not-deidentifiable');
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
   * Queues every acknowledged instance not yet filed (spool.ts pending(): the journal's live
   * records and the complete spool files) that is not being processed already.
   */
  private async scanSpool(): Promise<number> {
    let n = 0;
    for (const { ref, bytes, spooledAt } of await this.spool!.pending()) {
      if (this.processing!.has(ref)) continue;
      this.processing!.process(ref, 'spool', spooledAt, bytes);
      n++;
    }
    return n;
  }

  /** Resolves when nothing is being processed. */
  whenIdle(): Promise<void> {
    return this.processing?.whenIdle() ?? Promise.resolve();
  }

  /**
   * The node's status: each long-running part's ComponentStatus (receiver, spool, processing,
   * mapping, and the forwarder when destinations are configured) and the overall state. Cheap: no
   * I/O but a few fstat calls of the spool's segments. Plain data, no identifier.
   */
  status(): NodeStatus {
    return nodeStatus(
      {
        receiver: this.receiver?.status(),
        spool: this.spool?.status(),
        processing: this.processing?.status(),
        mapping: this.watcher?.status(),
        forwarder: this.forwarder?.status(),
        retrieve: this.retrieveService?.status(),
      },
      this.startedAt,
    );
  }

  /** Stops accepting, answers in-flight stores, finishes processing, closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // Retrieve jobs first: their moves are cancelled while the receiver still takes what comes.
    await this.retrieveService?.stop();
    await this.receiver?.stop();
    await this.processing?.close();
    await this.spool?.close();
    this.audit?.close();
    this.watcher?.stop();
    await this.forwarder?.stop();
    await this.state?.close();
    if (this.receiver) {
      const counts = (c: { counts: Record<string, number> } | undefined, key: string) => c?.counts[key] ?? 0;
      const { receiver, processing } = this.status().components;
      this.logger.info('stopped', {
        received: counts(receiver, 'instancesStored'),
        filed: counts(processing, 'filed'),
        quarantined: counts(processing, 'quarantined'),
        failed: counts(processing, 'failed'),
      });
    }
  }
}
