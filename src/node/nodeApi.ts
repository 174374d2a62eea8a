// The node's side of the HTTP interface (src/http/nodeApi.ts): DeidNode hands the HTTP server
// one of these, built over its parts. Operations go through the StateStore, the quarantine
// module and the forwarder's own entry points; what they return holds no original identifier,
// except the quarantine view asked for with identifiers (the HTTP side asks only for an
// authenticated user).
import { constants, promises as fsp, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { csvField, type AuditRow } from '../audit/auditLog.js';
import { newAccessionNumber } from '../core/accession.js';
import { ConfigError, describeSystemError } from '../errors.js';
import { echoDestination } from '../forward/echoDestination.js';
import { destinationLabel, formatDestination } from '../forward/destination.js';
import type { DestinationStatus } from '../forward/forwarderStatus.js';
import {
  ApiError,
  type DiskRoom,
  type EchoResult,
  type LatencyKind,
  type NodeApi,
  type NodeIdentity,
  type QuarantineGroupView,
  type QuarantineSelectionInput,
  type QueueView,
  type Readiness,
  type ReplayResult,
  type RetrieveJobView,
  type RetrieveResumeInput,
  type RetrieveStartInput,
  type StatusTotals,
  type StudyView,
} from '../http/nodeApi.js';
import type { RetrieveService } from '../retrieve/retrieveService.js';
import { NodeRetrieveApi } from './retrieveApi.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../state/stateStore.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import type { NodeConfig } from './nodeConfig.js';
import type { NodeStatus } from './nodeStatus.js';
import {
  NOT_REPLAYABLE,
  isQuarantineItemId,
  isQuarantineStudyId,
  listQuarantine,
  type QuarantineSelection,
  type QuarantinedInstance,
} from './quarantine.js';
import { deleteQuarantined, replayQuarantined } from './quarantineReplay.js';
import { plural } from '../words.js';
import { warnOnlyTags } from '../leakGuardSettings.js';

/** What the API works with: the node's parts, passed in by DeidNode. */
export interface NodeParts {
  config: NodeConfig;
  logger: Logger;
  startedAt: string;
  state: StateStore;
  /** The state's filings when the node started (StateStore.filedInstanceMark()). */
  filedMark: number;
  status: () => NodeStatus;
  mapping: () => MappingTable;
  audit: (row: AuditRow) => void;
  /** Something was queued: the forwarder should look now. */
  kickForwarder: () => void;
  /** Dead items were made pending again by a person: the forwarder tries now, backoff or not. */
  resumeForwarder: (destination?: string) => void;
  /** An instance was filed by a replay (for the console's per-study lines). */
  onFiled?: (study: string) => void;
  /** The node's retrieve jobs; undefined until its receiver listens. */
  retrieve: () => RetrieveService | undefined;
}

/** dicom-deid's version, from its package.json (read once). */
let version: string | undefined;
function packageVersion(): string {
  if (version === undefined) {
    try {
      const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
      version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** The quarantine is listed at most this often (ms): /metrics and the page both ask. */
const QUARANTINE_CACHE_MS = 2000;

/**
 * The NodeApi (src/http/nodeApi.ts) of a running DeidNode, over its parts (`NodeParts`). Refusals the caller
 * can fix throw ApiError with the HTTP status to answer (400, 404, 409, 503); state and file system errors
 * are rethrown as they come. Quarantine replays and deletions run one at a time.
 */
export class DeidNodeApi implements NodeApi {
  private readonly latencyListeners: ((kind: LatencyKind, ms: number) => void)[] = [];
  /** Replays and deletions run one at a time (the processor stages one instance at a time per thread). */
  private chain: Promise<unknown> = Promise.resolve();
  private quarantineCache: { at: number; items: Promise<QuarantinedInstance[]> } | undefined;

  private readonly retrieveApi: NodeRetrieveApi;

  /** `p`: the node's parts; builds the retrieve side (NodeRetrieveApi) over the same state and service. */
  constructor(private readonly p: NodeParts) {
    this.retrieveApi = new NodeRetrieveApi({
      state: p.state,
      aeTitle: p.config.aeTitle,
      csv: p.config.csv,
      service: p.retrieve,
      logger: p.logger,
    });
  }

  /** Starts a retrieve job, or resumes the same unfinished one (NodeRetrieveApi.startRetrieve). */
  startRetrieve(input: RetrieveStartInput, who: string): Promise<{ job: RetrieveJobView; resumed: boolean }> {
    return this.retrieveApi.startRetrieve(input, who);
  }

  /** Resumes job `id` with new pace and timers (NodeRetrieveApi.resumeRetrieve). */
  resumeRetrieve(id: number, input: RetrieveResumeInput, who: string): Promise<RetrieveJobView> {
    return this.retrieveApi.resumeRetrieve(id, input, who);
  }

  /** The `limit` most recent retrieve jobs, newest first (NodeRetrieveApi.retrieveJobs). */
  retrieveJobs(limit: number): Promise<RetrieveJobView[]> {
    return this.retrieveApi.retrieveJobs(limit);
  }

  /** Retrieve job `id`; ApiError 404 when there is none (NodeRetrieveApi.retrieveJob). */
  retrieveJob(id: number): Promise<RetrieveJobView> {
    return this.retrieveApi.retrieveJob(id);
  }

  /** Cancels retrieve job `id` (NodeRetrieveApi.cancelRetrieve). */
  cancelRetrieve(id: number, who: string): Promise<RetrieveJobView> {
    return this.retrieveApi.cancelRetrieve(id, who);
  }

  /**
   * The node's identity and configuration for GET /api/status: AE title, version (package.json), pid, host,
   * start time, settings and paths; the access token only as 'set' or 'not set'.
   */
  identity(): NodeIdentity {
    const c = this.p.config;
    return {
      aeTitle: c.aeTitle,
      version: packageVersion(),
      pid: process.pid,
      hostname: hostname(),
      startedAt: this.p.startedAt,
      config: {
        aeTitle: c.aeTitle,
        host: c.host,
        port: c.port,
        allowedAets: c.allowedAets,
        callingAet: c.callingAet,
        destinations: c.forward.map((d) => ({ name: d.name, address: formatDestination(d) })),
        maxAssociations: c.maxAssociations,
        maxPduLength: c.maxPduLength,
        maxInstanceMB: c.maxInstanceMB,
        processingThreads: c.processingThreads,
        spoolReserveMB: c.spoolReserveMB,
        forwardGiveUpHours: c.forwardGiveUpHours,
        minFreeDiskMB: c.minFreeDiskMB,
        httpHost: c.httpHost,
        httpPort: c.httpPort,
        accessToken: c.httpToken !== '' ? 'set' : 'not set',
        paths: { csv: c.csv, output: c.output, db: c.db, quarantine: c.quarantine, spool: c.spool, logDir: c.logDir },
      },
    };
  }

  /** The node's status (nodeStatus.ts), as DeidNode.status() gathers it. */
  status(): NodeStatus {
    return this.p.status();
  }

  /** Latencies measured by the node, for the listeners (the metrics' histograms). */
  emitLatency(kind: LatencyKind, ms: number): void {
    for (const l of this.latencyListeners) l(kind, ms);
  }

  /** Adds a listener for every latency (ms) the node measures; never removed. */
  onLatency(listener: (kind: LatencyKind, ms: number) => void): void {
    this.latencyListeners.push(listener);
  }

  /**
   * Free and total bytes (statfs) of the spool, output, quarantine and state folders with minFreeDiskMB in
   * bytes; a folder that cannot be read or written gets `problem` (one line, from describeSystemError)
   * instead of rejecting.
   */
  async disks(): Promise<DiskRoom[]> {
    const c = this.p.config;
    const min = c.minFreeDiskMB * 1024 * 1024;
    const folders: [string, string][] = [
      ['spool', c.spool],
      ['output', c.output],
      ['quarantine', c.quarantine],
      ['state', dirname(c.db)],
    ];
    return Promise.all(
      folders.map(async ([name, path]): Promise<DiskRoom> => {
        const room: DiskRoom = { name, path, freeBytes: 0, totalBytes: 0, minFreeBytes: min };
        try {
          const s = await fsp.statfs(path);
          room.freeBytes = s.bavail * s.bsize;
          room.totalBytes = s.blocks * s.bsize;
          await fsp.access(path, constants.W_OK);
        } catch (e) {
          room.problem = describeSystemError(e);
        }
        return room;
      }),
    );
  }

  /**
   * Ready when the receiver is running, the state file and its folder are writable, and the spool and output
   * disks are readable with at least minFreeDiskMB free; otherwise the reasons, one line each. Never rejects
   * for these checks.
   */
  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    const receiver = this.p.status().components.receiver;
    if (receiver?.state !== 'running') {
      reasons.push(`the DICOM port is not listening (receiver ${receiver?.state ?? 'not started'})`);
    }
    try {
      await fsp.access(this.p.config.db, constants.W_OK);
      await fsp.access(dirname(this.p.config.db), constants.W_OK);
    } catch (e) {
      reasons.push(`the state ${this.p.config.db} is not writable: ${describeSystemError(e)}`);
    }
    for (const d of await this.disks()) {
      if (d.name !== 'spool' && d.name !== 'output') continue;
      if (d.problem) reasons.push(`the ${d.name} folder ${d.path}: ${d.problem}`);
      else if (d.freeBytes < d.minFreeBytes) {
        reasons.push(
          `the ${d.name} disk has ${mib(d.freeBytes)} MiB free, below minFreeDiskMB (${mib(d.minFreeBytes)} MiB)`,
        );
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  /**
   * The `limit` most recently filed studies (StateStore.recentStudies) with their new accession number, last
   * filing time (ISO 8601) and forward counts per destination and state.
   */
  async studies(limit: number): Promise<StudyView[]> {
    const rows = await this.p.state.recentStudies(limit);
    return rows.map((s) => ({
      researchId: s.researchId,
      accession: newAccessionNumber(s.researchId, s.sessionN),
      studyDate: s.studyDate,
      modalities: s.modalities,
      instances: s.instances,
      lastFiledAt: new Date(s.lastFiledAt).toISOString(),
      forward: s.forward as Record<string, Record<string, number>>,
    }));
  }

  private listQuarantineCached(): Promise<QuarantinedInstance[]> {
    const now = Date.now();
    if (!this.quarantineCache || now - this.quarantineCache.at > QUARANTINE_CACHE_MS) {
      this.quarantineCache = { at: now, items: listQuarantine(this.p.config.quarantine) };
    }
    return this.quarantineCache.items;
  }

  /** Filed since the node started (from the state: replays by any process count) and held in the quarantine now. */
  async totals(): Promise<StatusTotals> {
    const [filed, quarantined] = await Promise.all([
      this.p.state.filedInstancesSince(this.p.filedMark),
      this.listQuarantineCached(),
    ]);
    return { filed, quarantined: quarantined.length };
  }

  /** Quarantined instances per reason, from a listing cached for up to 2 s. */
  async quarantineCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const q of await this.listQuarantineCached()) out[q.sidecar.reason] = (out[q.sidecar.reason] ?? 0) + 1;
    return out;
  }

  /**
   * Quarantined instances grouped by study folder and reason (listing cached for up to 2 s). With
   * `identifiers`, each group also carries the patient ID, accession and study date tried, and a CSV row to
   * complete for the mapping: key material, only for an authenticated user.
   */
  async quarantine({ identifiers }: { identifiers: boolean }): Promise<QuarantineGroupView[]> {
    const groups = new Map<string, QuarantinedInstance[]>();
    for (const q of await this.listQuarantineCached()) {
      const key = `${q.study}\0${q.sidecar.reason}`;
      const group = groups.get(key);
      if (group) group.push(q);
      else groups.set(key, [q]);
    }
    return [...groups.values()].map((list) => {
      const times = list.map((q) => q.sidecar.receivedAt).sort();
      const first = list[0]!;
      const view: QuarantineGroupView = {
        study: first.study,
        reason: first.sidecar.reason,
        replayable: !NOT_REPLAYABLE.has(first.sidecar.reason),
        count: list.length,
        firstReceivedAt: times[0] ?? '',
        lastReceivedAt: times[times.length - 1] ?? '',
        items: list.map((q) => ({ id: q.id, receivedAt: q.sidecar.receivedAt, callingAet: q.sidecar.callingAet })),
      };
      if (identifiers) {
        const k = first.sidecar.keys;
        view.identifiers = {
          patientId: k.patientId ?? '',
          accessionNumber: k.accessionNumber ?? '',
          studyDate: k.studyDate ?? '',
          message: first.sidecar.message,
          csvRow: [k.patientId ?? '', k.accessionNumber ?? '', '<New_Patient_ID>', '<Surgery_Date YYYY-MM-DD>', '', '']
            .map(csvField)
            .join(','),
        };
      }
      return view;
    });
  }

  /** Checks a selection's form (ids that could name a path outside the quarantine are refused). */
  private selection(sel: QuarantineSelectionInput): QuarantineSelection {
    if (sel.item !== undefined && !isQuarantineItemId(sel.item))
      throw new ApiError(400, 'item: not a quarantine item id');
    if (sel.study !== undefined && !isQuarantineStudyId(sel.study)) throw new ApiError(400, 'study: not a study id');
    if (sel.reason !== undefined && !/^[a-z][a-z0-9-]{0,63}$/.test(sel.reason)) {
      throw new ApiError(400, 'reason: not a quarantine reason');
    }
    return sel;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Files the selected quarantined instances again with the current mapping (replayQuarantined), then wakes
   * the forwarder. Throws ApiError 400 (synchronously) for a malformed selection.
   */
  replayQuarantine(input: QuarantineSelectionInput, who: string): Promise<ReplayResult> {
    const sel = this.selection(input);
    return this.serial(async () => {
      const c = this.p.config;
      const s = await replayQuarantined(
        {
          state: this.p.state,
          mapping: this.p.mapping(),
          output: c.output,
          quarantine: c.quarantine,
          forwardTo: c.forward.map((d) => d.name),
          allowBurnedIn: c.allowBurnedIn,
          leakGuardWarnOnly: new Set(warnOnlyTags(c.leakGuardWarnOnly, 'leakGuardWarnOnly', (m) => new ConfigError(m))),
          audit: this.p.audit,
        },
        sel,
      );
      this.quarantineCache = undefined;
      if (s.filed > 0) this.p.kickForwarder();
      this.p.logger.info(
        `quarantine replay by ${who}: ${s.filed} of ${s.selected} filed` +
          (s.filedStudies.length ? ` (${s.filedStudies.join(', ')})` : '') +
          (s.stillUnmatched ? `, ${s.stillUnmatched} still without a mapping row` : '') +
          (s.skipped ? `, ${s.skipped} not replayable (unreadable)` : ''),
      );
      return { selected: s.selected, filed: s.filed, stillUnmatched: s.stillUnmatched, skipped: s.skipped };
    });
  }

  /**
   * Deletes the selected quarantined instances (audited, logged with `who`); resolves with how many. Throws
   * ApiError 400 (synchronously) for a malformed or empty selection.
   */
  deleteQuarantine(input: QuarantineSelectionInput, who: string): Promise<number> {
    const sel = this.selection(input);
    if (sel.item === undefined && sel.study === undefined && sel.reason === undefined) {
      throw new ApiError(400, 'name what to delete: an item, a study or a reason');
    }
    return this.serial(async () => {
      const n = await deleteQuarantined(this.p.config.quarantine, sel, this.p.audit, who);
      this.quarantineCache = undefined;
      this.p.logger.warn(`quarantine: ${plural(n, 'instance')} deleted by ${who} (the audit log names them)`);
      return n;
    });
  }

  private destinationStatuses(): Map<string, DestinationStatus> {
    const details = this.p.status().components.forwarder?.details as { destinations?: DestinationStatus[] } | undefined;
    return new Map((details?.destinations ?? []).map((d) => [d.name, d]));
  }

  /**
   * The forward queue per destination, configured ones first then removed ones still holding items: counts by
   * state, oldest pending time (ISO 8601), health, and the dead items' reasons (the 100 most common across
   * destinations).
   */
  async queue(): Promise<QueueView[]> {
    const counts = new Map((await this.p.state.forwardCounts()).map((c) => [c.destination, c]));
    const reasons = await this.p.state.deadForwardReasons(100);
    const health = this.destinationStatuses();
    const configured = new Map(this.p.config.forward.map((d) => [d.name, d]));
    const names = [...configured.keys(), ...[...counts.keys()].filter((n) => !configured.has(n))];
    return names.map((name) => {
      const c = counts.get(name);
      const dest = configured.get(name);
      return {
        destination: name,
        configured: dest !== undefined,
        address: dest ? formatDestination(dest) : null,
        health: dest ? (health.get(name)?.health ?? 'unknown') : 'not-configured',
        pending: c?.pending ?? 0,
        inFlight: c?.inFlight ?? 0,
        delivered: c?.delivered ?? 0,
        dead: c?.dead ?? 0,
        oldestPendingAt: c?.oldestPendingAt ? new Date(c.oldestPendingAt).toISOString() : null,
        deadReasons: reasons
          .filter((r) => r.destination === name)
          .map((r) => ({ reason: r.reason ?? 'unknown reason', count: r.count })),
      };
    });
  }

  /**
   * Makes the dead items of `destination` (or of all) pending again, wakes the forwarder and logs `who`;
   * resolves with how many.
   */
  async retryDead(destination: string | undefined, who: string): Promise<number> {
    const n = await this.p.state.retryDeadForwards(destination);
    if (n > 0) this.p.resumeForwarder(destination);
    const which = destination === undefined ? 'every destination' : destination;
    this.p.logger.info(
      `queue retry by ${who}: ${plural(n, 'dead item')} of ${which} ${n === 1 ? 'is' : 'are'} pending again`,
    );
    return n;
  }

  /**
   * Deletes the queue items of a destination no longer configured; resolves with how many. Rejects with
   * ApiError 409 for a configured destination.
   */
  async dropDestination(destination: string, who: string): Promise<number> {
    const dest = this.p.config.forward.find((d) => d.name === destination);
    if (dest) {
      throw new ApiError(
        409,
        `${destinationLabel(dest)} is configured: only the items of a destination removed from the configuration can be dropped`,
      );
    }
    const n = await this.p.state.dropForwards(destination);
    this.p.logger.warn(`queue: ${plural(n, 'item')} of the removed destination ${destination} dropped by ${who}`);
    return n;
  }

  /**
   * C-ECHO (PS3.7 9.3.5) to the configured destination `name` from the node's calling AE title. Rejects with
   * ApiError 404 for an unknown name.
   */
  async echo(name: string): Promise<EchoResult> {
    const dest = this.p.config.forward.find((d) => d.name === name);
    if (!dest) throw new ApiError(404, `no configured destination is named ${JSON.stringify(name)}`);
    return echoDestination(dest, this.p.config.callingAet);
  }
}

function mib(bytes: number): number {
  return Math.floor(bytes / 1024 / 1024);
}
