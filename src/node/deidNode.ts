// The DICOM node: the receiver (receiver/) writes each instance durably into the spool (spool/)
// and answers; processing threads then de-identify, file and queue it for forwarding. The spool
// is the durable inbox: a journal record not yet retired, or a spool file, is acknowledged but
// not yet filed, so a restart after a crash processes it. The node owns the spool: it recovers
// and prepares it before the receiver listens, and releases each instance once it is filed,
// which goes on after receiving stops. Every part reports its status; status() gathers them.
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, relative, sep } from 'node:path';
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
import { listQuarantine, quarantineFile } from './quarantine.js';
import { testOnlyKeep, warnOnlyTags } from '../leakGuardSettings.js';
import { ConfigError, describeSystemError, UsageError } from '../errors.js';
import { MappingWatcher } from './mappingWatcher.js';
import { isLoopbackHost, nodeMarkerNames, settingLabel, type NodeConfig } from './nodeConfig.js';
import { shellQuote } from '../shellQuote.js';
import { ActivityLog } from './activityLog.js';
import { DeidNodeApi } from './nodeApi.js';
import { acquireProcessLock, LockHeldError, type ProcessLock } from '../io/processLock.js';
import { claimOutputTree } from '../io/projectMarker.js';
import type { HttpServer } from '../http/server.js';
import { plural } from '../words.js';
import { RetrieveService } from '../retrieve/retrieveService.js';
import { makeNodeFolder } from './nodeFolders.js';

/** After an unexpected processing failure (disk full...), the spool is scanned again this often. */
const RETRY_SCAN_MS = 10_000;
/** Non-I/O failures of one instance before it goes to quarantine. */
const MAX_FAULTS = 3;

/** The study's session folder ({researchId}_{N}) of an output path relative to the output tree. */
function studyOf(rel: string): string {
  return rel.split(sep)[1] ?? rel;
}

/**
 * The DICOM node (the `serve` command): start() takes the spool's and the state's locks, recovers the spool,
 * starts the mapping watcher, processing threads, forwarder, retrieve jobs, the DICOM listener(s) (PS3.8
 * associations, PS3.4 Storage and Verification SCP) and the HTTP side. stop() ends retrieve jobs, the HTTP
 * side, receiving, then processing, and releases the locks last. See start() for what it throws.
 */
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
  private http: HttpServer | undefined;
  private api: DeidNodeApi | undefined;
  private activity!: ActivityLog;
  /** The spool's and the state's locks, held from the start of start() to the end of stop(). */
  private readonly locks: ProcessLock[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  /** Failures per spooled instance, by spoolRefId. */
  private readonly faults = new Map<string, number>();
  private stopping = false;
  /** start() completed: only then does stop() say "stopped" (a start that failed did not run). */
  private running = false;
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

  /** The HTTP side's address once started ("http://127.0.0.1:11180"), if enabled. */
  get httpUrl(): string | undefined {
    return this.http?.url;
  }

  /**
   * Starts everything; throws (with a one-line message) when the node cannot run: a UsageError
   * when another process holds the spool or the state (taken before anything is read, recovered
   * or prepared) or when the output tree was made with another state's secret (projectMarker.ts),
   * a ConfigError naming a TLS file that is missing or unusable, a UsageError for the HTTP port,
   * the DICOM listen error (EADDRINUSE..., with its `port` and `endpoint`, 'dicom' or
   * 'dicom-tls') of a port in use; every port is bound before the spool is recovered or its
   * reserve written, so these fail at once. Resolves with the bound ports: `port` is the first endpoint's (the plain
   * one, or the TLS one with tls.only), `tlsPort` the TLS endpoint's, `httpPort` the HTTP side's.
   */
  async start(): Promise<{ port: number; tlsPort?: number; httpPort?: number }> {
    const c = this.config;
    this.takeLocks();
    // Certificates first: a wrong path is a start error before anything is prepared.
    if (c.tls) {
      const { options, warnings } = readTlsCredentials({ cert: c.tls.cert, key: c.tls.key, ca: c.tls.ca }, 'tls');
      for (const w of warnings) this.logger.warn(w);
      this.tlsServer = new TlsServer({ credentials: options, requireClientCert: c.tls.requireClientCert });
    }
    const httpsCredentials = c.httpEnabled && c.httpTls ? this.readHttpsCredentials() : undefined;
    for (const d of c.forward) for (const w of checkDestinationTls(d)) this.logger.warn(w);
    const activity = new ActivityLog(this.logger, c.httpEnabled ? '/api/quarantine' : '`dicom-deid quarantine list`');
    this.activity = activity;
    const watcher = new MappingWatcher(c.csv, this.logger, 1000, (t) => processing.setMapping([...t.rows]));
    this.watcher = watcher;
    const spool = new Spool(c.spool, {
      reserveBytes: c.spoolReserveMB * 1024 * 1024,
      warn: (message, code) => this.logger.warn(message, { code }),
    });
    this.spool = spool;
    // Every port first, before the folders, the state, the output's marker and the slow parts
    // (recovery, the reserve): a port in use fails the start at once, before anything is written
    // (found by a new-user trial: a failed start had made a state and marked the output).
    // The HTTP port is tried first (bound and closed: the HTTP side's modules take half a second
    // to load), then the DICOM ports are bound, then the HTTP side starts. The DICOM ports stay
    // bound (no other program can take them meanwhile) but take associations only once the spool
    // is ready (listen(), then accept() below): a sender that calls meanwhile waits, unanswered,
    // for the seconds a new spool's reserve takes. Nothing is accepted into an unready spool.
    if (c.httpEnabled) await this.probeHttpPort();
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
      onAcknowledged: (ms) => this.api?.emitLatency('ack', ms),
    });
    const { port, ports } = await receiver.listen(); // throws the listen error (EADDRINUSE, its port, endpoint)
    const tlsPort: number | undefined = ports['dicom-tls'];
    this.receiver = receiver; // listening: stop() closes it if a later step fails
    for (const k of ['output', 'quarantine', 'logDir'] as const) makeNodeFolder(c[k], k);
    // An output tree made with another project secret is refused (projectMarker.ts), before a
    // new state would be created for nothing.
    const names = nodeMarkerNames(c);
    if (!existsSync(c.db)) claimOutputTree(c.output, null, names, false);
    this.state = await openStateStore(c.db, { create: true });
    const secret = await this.state.uidSecret(); // created once, before two threads could race for it
    claimOutputTree(c.output, secret, names, true, (m) => this.logger.warn(m));
    const forwardTo = c.forward.map((d) => d.name); // queue keys
    // Created at its first row: a start that fails before filing anything leaves no audit file.
    this.audit = new AuditLog(c.logDir, new Date(), { lazy: true });
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
        onDone: (_ref, outcome, source) => {
          this.api?.emitLatency('processing', Date.now() - source.receivedAt);
          if (outcome.status === 'filed') {
            activity.recovered('processing');
            activity.filed(studyOf(outcome.outputPath));
            this.forwarder?.kick();
          } else if (outcome.status === 'quarantined') {
            if (outcome.reason === 'leak-guard') {
              // A leak guard hold names where and what kind (never the value): said per instance.
              this.logger.warn(`instance quarantined (leak-guard: ${outcome.message}); see the audit log`);
            } else {
              activity.quarantined(source.callingAet || 'a sender', outcome.reason);
            }
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
        onDelivered: (dest, files) => {
          const label = dest.name;
          const byStudy = new Map<string, number>();
          for (const f of files) {
            const study = studyOf(relative(c.output, f));
            byStudy.set(study, (byStudy.get(study) ?? 0) + 1);
          }
          for (const [study, n] of byStudy) activity.delivered(study, label, n);
        },
      });
    }
    if (c.httpEnabled) await this.startHttp(httpsCredentials);
    await this.forwarder?.start();
    watcher.start();
    await this.logStartup();
    // Instances acknowledged before a crash or stop: process them first.
    await this.recoverSpool(spool);
    const pending = await this.scanSpool();
    if (pending > 0)
      this.logger.info(`spool: ${plural(pending, 'acknowledged instance')} from a previous run to process`);
    await this.prepareSpool(spool);
    receiver.accept();
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
    this.running = true;
    return {
      port,
      ...(tlsPort !== undefined ? { tlsPort } : {}),
      ...(this.http ? { httpPort: this.http.port } : {}),
    };
  }

  /**
   * One node per spool and per state: takes both locks (spool first) before anything is read,
   * recovered or prepared. Throws a UsageError naming the holder when another process has one.
   */
  private takeLocks(): void {
    const c = this.config;
    const targets: [what: string, setting: 'spool' | 'db', folder: string, lockFile: string][] = [
      ['spool', 'spool', c.spool, join(c.spool, '.lock')],
      ['state', 'db', dirname(c.db), `${c.db}.lock`],
    ];
    for (const [what, setting, folder, lockFile] of targets) {
      try {
        makeNodeFolder(folder, setting, { mode: 0o700, mustWrite: true });
      } catch (e) {
        this.releaseLocks();
        throw e;
      }
      try {
        this.locks.push(acquireProcessLock(lockFile));
      } catch (e) {
        this.releaseLocks();
        if (e instanceof LockHeldError) {
          const path = what === 'spool' ? c.spool : c.db;
          const holder = e.pid === null ? 'another process' : `process ${e.pid}`;
          throw new UsageError(
            `the ${what} ${path} is in use by ${holder}: another dicom-deid node runs on it (one node per ${what}; stop it first, or give this one its own ${what})`,
          );
        }
        throw e;
      }
    }
  }

  private releaseLocks(): void {
    for (const lock of this.locks.splice(0).reverse()) lock.release();
  }

  /**
   * The HTTPS certificate and key (config httpTls), read and checked; throws ConfigError naming
   * the file. The DICOM TLS warnings (expiry) are not repeated when they are the same files.
   */
  private readHttpsCredentials(): { cert: Buffer; key: Buffer } {
    const t = this.config.httpTls!;
    const { options, warnings } = readTlsCredentials({ cert: t.cert, key: t.key }, 'httpTls');
    if (!t.sameAsDicomTls) for (const w of warnings) this.logger.warn(w);
    return { cert: options.cert!, key: options.key! };
  }

  /**
   * Binds and closes the HTTP port (httpHost, httpPort) so that a port in use fails the start
   * at once; throws the UsageError startHttp() would. Port 0 (any free port) is not tried.
   */
  private async probeHttpPort(): Promise<void> {
    const c = this.config;
    if (c.httpPort === 0) return;
    const e = await listenError(c.httpHost, c.httpPort);
    if (e === null) return;
    const err = this.httpListenError(e);
    if (!(err instanceof UsageError)) throw err;
    // The DICOM ports are bound next: one taken as well is said now, not at the next attempt.
    const lines = [err.message];
    const dicomPorts: [number, string, string][] = [];
    if (!c.tls?.only && c.port !== 0) dicomPorts.push([c.port, 'DICOM port', settingLabel('port')]);
    if (c.tls && c.tls.port !== 0) dicomPorts.push([c.tls.port, 'DICOM TLS port', settingLabel('tls.port')]);
    for (const [port, which, key] of dicomPorts) {
      if ((await listenError(c.host, port))?.code === 'EADDRINUSE') {
        lines.push(`the ${which} ${port} is already in use too (${key})`);
      }
    }
    throw new UsageError(lines.join('\n'));
  }

  /** A listen error of the HTTP side as a one-line UsageError naming the settings; others as they are. */
  private httpListenError(e: unknown): unknown {
    const c = this.config;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      const why =
        code === 'EACCES' && c.httpPort > 0 && c.httpPort < 1024
          ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
          : describeSystemError(e);
      return new UsageError(`cannot serve HTTP on ${c.httpHost}:${c.httpPort} (httpHost, httpPort): ${why}`);
    }
    return e;
  }

  /** Starts the HTTP side (status page, API, metrics) with this node's operations; HTTPS with `https`. */
  private async startHttp(https: { cert: Buffer; key: Buffer } | undefined): Promise<void> {
    const c = this.config;
    const { startHttpServer } = await import('../http/server.js');
    this.api = new DeidNodeApi({
      config: c,
      logger: this.logger,
      startedAt: this.startedAt,
      state: this.state,
      filedMark: await this.state.filedInstanceMark(),
      status: () => this.status(),
      mapping: () => this.watcher!.current,
      audit: (row) => {
        this.audit.write(row);
        this.audit.flush();
      },
      kickForwarder: () => this.forwarder?.kick(),
      resumeForwarder: (destination) => this.forwarder?.resume(destination),
      retrieve: () => (this.running ? this.retrieveService : undefined),
    });
    try {
      this.http = await startHttpServer(this.api, {
        host: c.httpHost,
        port: c.httpPort,
        token: c.httpToken,
        loopback: isLoopbackHost(c.httpHost),
        logger: this.logger,
        ...(https ? { https } : {}),
      });
    } catch (e) {
      throw this.httpListenError(e);
    }
    const auth = c.httpToken
      ? 'access token set'
      : 'no access token: the identifying quarantine view and deleting are off';
    this.logger.info(`status page and API on ${this.http.url}/ (${auth})`);
    if (!https && !isLoopbackHost(c.httpHost)) {
      this.logger.warn(
        `the HTTP side on ${c.httpHost} is plain HTTP: the access token crosses the network readable; set httpTls (--http-tls) for HTTPS`,
      );
    }
  }

  /**
   * Start-up, in a few lines: the mapping, who may connect (a warning when any calling AE may
   * store while listening on every interface), each destination, and the backlog found (spool,
   * quarantine, forward queue, queue items of destinations no longer configured).
   */
  private async logStartup(): Promise<void> {
    const c = this.config;
    this.logger.info(`mapping CSV ${c.csv}: ${plural(this.watcher!.current.rows.length, 'row')}`);
    // An empty list on an interface others can reach is the listener's to say (openAccess: a
    // warning, or every association rejected); on loopback only, it is no risk.
    if (c.allowedAets.length > 0) {
      this.logger.info(`AE title ${c.aeTitle}: calling AE titles allowed to store: ${c.allowedAets.join(', ')}`);
    } else if (isLoopbackHost(c.host)) {
      this.logger.info(`AE title ${c.aeTitle}: every calling AE title is accepted (listening on ${c.host} only)`);
    }
    for (const d of c.forward)
      this.logger.info(`forward destination ${destinationLabel(d)} (${d.aeTitle}@${d.host}:${d.port})`);
    if (c.forward.length === 0) this.logger.info('no forward destination: instances are filed only');
    const quarantined = await listQuarantine(c.quarantine);
    if (quarantined.length > 0) {
      const by = new Map<string, number>();
      for (const q of quarantined) by.set(q.sidecar.reason, (by.get(q.sidecar.reason) ?? 0) + 1);
      const parts = [...by].map(([r, n]) => `${n} ${r}`).join(', ');
      this.logger.warn(
        `quarantine holds ${plural(quarantined.length, 'instance')} (${parts}): see ${c.httpEnabled ? '/api/quarantine' : '`dicom-deid quarantine list`'}`,
      );
    }
    const configured = new Set(c.forward.map((d) => d.name));
    for (const q of await this.state.forwardCounts()) {
      const waiting = q.pending + q.inFlight;
      if (!configured.has(q.destination)) {
        if (waiting + q.dead > 0) {
          this.logger.warn(
            `forward queue: ${plural(waiting + q.dead, 'item')} of ${q.destination}, which is no longer configured: add it back to send them, or drop them (dicom-deid queue drop --destination ${shellQuote(q.destination)}, or POST /api/queue/drop)`,
          );
        }
      } else if (waiting + q.dead > 0) {
        this.logger.info(`forward queue ${q.destination}: ${waiting} pending, ${q.dead} dead`);
      }
    }
  }

  /**
   * SIGHUP: reads the TLS certificate, key and CA again, and the HTTPS certificate and key (new
   * connections use them; open ones keep theirs), checks the destinations' TLS files (read again
   * for each association anyway), and resolves the allowedAets host names again. Whatever fails
   * is logged in one line and the previous settings stay; never throws.
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
    if (c.httpTls && this.http?.setCredentials) {
      try {
        this.http.setCredentials(this.readHttpsCredentials());
        this.logger.info('HTTPS certificate reloaded: new connections use it', { cert: c.httpTls.cert });
      } catch (e) {
        this.logger.error(`HTTPS certificate not reloaded, the previous one stays: ${(e as Error).message}`);
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
    // Said once per cause (a full disk fails every waiting instance every 10 s), and once when it clears.
    this.activity.failure('processing', error, { output: this.config.output });
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
    await this.http?.close();
    await this.receiver?.stop();
    await this.processing?.close();
    // Acknowledged instances not filed (a full disk...): they stay in the spool for the next start.
    const leftInSpool = this.spool?.status().backlog ?? 0;
    await this.spool?.close();
    this.watcher?.stop();
    await this.forwarder?.stop();
    this.activity?.flush();
    this.audit?.close();
    await this.state?.close();
    this.releaseLocks();
    if (this.running) {
      const counts = (c: { counts: Record<string, number> } | undefined, key: string) => c?.counts[key] ?? 0;
      const { receiver, processing } = this.status().components;
      this.logger.info('stopped', {
        received: counts(receiver, 'instancesStored'),
        filed: counts(processing, 'filed'),
        quarantined: counts(processing, 'quarantined'),
        // Instances, not attempts: a full disk fails each waiting instance every 10 s (found by a
        // fresh-user trial: "failed=24" when no instance had failed, only retries).
        leftInSpool,
        failedAttempts: counts(processing, 'failed'),
      });
    }
  }
}

/** Binds `port` on `host` and closes it at once: null if it could be bound, else the listen error (EADDRINUSE...). */
async function listenError(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, () => resolve());
    });
    return null;
  } catch (e) {
    return e as NodeJS.ErrnoException;
  } finally {
    await new Promise((r) => probe.close(r));
  }
}
