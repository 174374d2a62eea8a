// The node's retrieve jobs as the HTTP side sees them (src/http/nodeApi.ts RetrieveApi): start,
// resume, follow and cancel jobs run by the node's RetrieveService, where the moved instances
// arrive. Answers hold no identifier: counts, CSV line numbers, states, and the report's path.
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { MappingError } from '../core/types.js';
import {
  ApiError,
  type RetrieveApi,
  type RetrieveJobView,
  type RetrieveResumeInput,
  type RetrieveStartInput,
} from '../http/nodeApi.js';
import type { Logger } from '../log.js';
import {
  DEFAULT_SETTINGS,
  checkSettings,
  settingsFromParams,
  settingsToParams,
  type RetrieveSettings,
} from '../retrieve/jobSettings.js';
import { jobForRequest } from '../retrieve/retrieveJobs.js';
import { retrieveSummary } from '../retrieve/retrieveReport.js';
import type { RetrieveService } from '../retrieve/retrieveService.js';
import type { RetrieveJob } from '../state/retrieveRecords.js';
import type { StateStore } from '../state/stateStore.js';
import { shellQuote } from '../shellQuote.js';

export interface RetrieveApiParts {
  state: StateStore;
  /** The node's AE title: where its jobs move studies to. */
  aeTitle: string;
  /** The node's mapping CSV (the default of a job's CSV). */
  csv: string;
  /** The node's retrieve service; undefined until the receiver listens. */
  service: () => RetrieveService | undefined;
  logger: Logger;
}

/** Settings of a job from the request, over `base`; throws ApiError 400 naming the setting. */
function settingsOf(input: Partial<RetrieveSettings>, base: RetrieveSettings): RetrieveSettings {
  const s: RetrieveSettings = { ...base };
  for (const [k, v] of Object.entries(input)) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  s.modalities = s.modalities.map((m) => m.trim().toUpperCase()).filter((m) => m !== '');
  try {
    return checkSettings(s);
  } catch (e) {
    throw new ApiError(400, (e as Error).message);
  }
}

/**
 * The retrieve side of the node's HTTP API (RetrieveApi, src/http/nodeApi.ts): requests become jobs in the
 * StateStore run by the node's RetrieveService (PS3.4 C-FIND and C-MOVE to the node's own AE title). Refusals
 * throw ApiError: 400 for a bad setting or a CSV that does not validate (the message names the file, never a
 * value), 404 for an unknown job, 409 for a job that cannot run (done, cancelled, or run by another process),
 * 503 while the node starts or stops.
 */
export class NodeRetrieveApi implements RetrieveApi {
  /** `p`: the node's state, AE title, default CSV, retrieve service and logger. */
  constructor(private readonly p: RetrieveApiParts) {}

  private service(): RetrieveService {
    const s = this.p.service();
    if (!s) throw new ApiError(503, 'the node is starting: try again in a few seconds');
    return s;
  }

  /** Starts job `id` here with `params`; the service's refusals become ApiError 409 or 503. */
  private async run(id: number, params: string): Promise<void> {
    try {
      await this.service().start(id, params);
    } catch (e) {
      if (e instanceof Error && e.name === 'RetrieveJobBusyError') {
        throw new ApiError(e.message === 'the node is stopping' ? 503 : 409, e.message);
      }
      throw e;
    }
  }

  /**
   * Starts a job from `input` over the default settings, or continues the newest unfinished job of
   * the same PACS, CSV content and plan (`resumed`: its settings become the request's); logs `who`.
   * Rejects with ApiError 400/409/503 as above.
   */
  async startRetrieve(input: RetrieveStartInput, who: string): Promise<{ job: RetrieveJobView; resumed: boolean }> {
    this.service();
    const { from, csv, ...rest } = input;
    const settings = settingsOf(rest, { ...DEFAULT_SETTINGS, modalities: [], dryRun: false });
    const csvPath = resolve(csv ?? this.p.csv);
    let r: { job: RetrieveJob; resumed: boolean };
    try {
      r = await jobForRequest(this.p.state, { from, csv: csvPath, moveDestination: this.p.aeTitle, settings });
    } catch (e) {
      // The CSV's problems name values (MRNs...): the answer only says where to look.
      if (e instanceof MappingError) {
        throw new ApiError(
          400,
          `the mapping CSV ${csvPath} does not validate: see dicom-deid check-csv ${shellQuote(csvPath)}`,
        );
      }
      if (e instanceof UsageError) throw new ApiError(400, e.message);
      throw e;
    }
    await this.run(r.job.id, settingsToParams(settings));
    this.p.logger.info(`retrieve job ${r.job.id}: ${r.resumed ? 'continued' : 'started'} by ${who}`);
    return { job: await this.retrieveJob(r.job.id), resumed: r.resumed };
  }

  /**
   * Runs job `id` again with its stored settings overridden by `input` (pace and timers); logs `who`. Rejects
   * with ApiError 400/404/409/503.
   */
  async resumeRetrieve(id: number, input: RetrieveResumeInput, who: string): Promise<RetrieveJobView> {
    const job = await this.known(id);
    let base: RetrieveSettings;
    try {
      base = settingsFromParams(job.params);
    } catch {
      base = { ...DEFAULT_SETTINGS, modalities: [], dryRun: false };
    }
    await this.run(id, settingsToParams(settingsOf(input, base)));
    this.p.logger.info(`retrieve job ${id}: resumed by ${who}`);
    return this.retrieveJob(id);
  }

  /** The `limit` most recent jobs, newest first, as views without identifiers. */
  async retrieveJobs(limit: number): Promise<RetrieveJobView[]> {
    const jobs = await this.p.state.retrieveJobs(limit);
    return Promise.all(jobs.map((j) => this.view(j)));
  }

  /** Job `id` as a view without identifiers; rejects with ApiError 404 when there is none. */
  async retrieveJob(id: number): Promise<RetrieveJobView> {
    return this.view(await this.known(id));
  }

  /**
   * Cancels job `id` (through the service when it runs, else in the state) and logs `who`; resolves with its
   * view. Rejects with ApiError 404 for an unknown job.
   */
  async cancelRetrieve(id: number, who: string): Promise<RetrieveJobView> {
    await this.known(id);
    const service = this.p.service();
    if (service) await service.cancel(id);
    else await this.p.state.cancelRetrieveJob(id);
    this.p.logger.info(`retrieve job ${id}: cancel asked by ${who}`);
    return this.retrieveJob(id);
  }

  private async known(id: number): Promise<RetrieveJob> {
    const job = await this.p.state.retrieveJob(id);
    if (!job) throw new ApiError(404, `there is no retrieve job ${id}`);
    return job;
  }

  private async view(job: RetrieveJob): Promise<RetrieveJobView> {
    const { state } = this.p;
    const service = this.p.service();
    const progress = service?.progress(job.id);
    const c = await state.retrieveJobCounts(job.id);
    let dryRun = false;
    try {
      dryRun = settingsFromParams(job.params).dryRun;
    } catch {
      // Unreadable settings: the job cannot run anyway; shown as a real run.
    }
    return {
      id: job.id,
      state: job.state,
      pacs: job.pacs,
      moveDestination: job.moveDestination,
      dryRun,
      createdAt: new Date(job.createdAt).toISOString(),
      updatedAt: new Date(job.updatedAt).toISOString(),
      runner: job.runner,
      runningHere: service?.runningJobs().includes(job.id) ?? false,
      cancelRequested: job.cancelRequested,
      message: job.message,
      reportPath: job.reportPath,
      counts: {
        rows: { ...c.rows },
        studies: { ...c.studies },
        filedInstances: c.filedInstances,
        expectedInstances: c.expectedInstances,
      },
      summary: await retrieveSummary(state, job),
      ...(progress ? { progress: { ...progress } } : {}),
    };
  }
}
