// `dicom-deid retrieve`: pull the cohort of the mapping CSV from a PACS (C-FIND, C-MOVE to our own
// receiver), de-identify, file and forward it as the node does; `status`, `resume` and `cancel`
// for a job. The job lives in the node's state, so a rerun or `resume` continues it.
//
// Without a running node, the command runs the node's receiving side itself (under the node's AE
// title and port, from --config) for the job's duration: src/retrieve/retrieveService.ts inside a
// DeidNode in this process. With a node running on the config's port, the job (and status,
// resume, cancel) goes to that node through its HTTP API: retrieveOnNode.ts.
import type { Argv, CommandModule } from 'yargs';
import { closeLogger, createLogger, type ProcessLogger } from '../log.js';
import { UsageError } from '../errors.js';
import { nodeConfigFrom, openNodeState, withServeOptions, type NodeArgs } from './nodeOptions.js';
import type { NodeConfig } from '../node/nodeConfig.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { RESUMABLE_JOB_STATES, type RetrieveJob } from '../state/retrieveRecords.js';
import {
  DEFAULT_SETTINGS,
  checkSettings,
  settingsFromParams,
  settingsToParams,
  type RetrieveSettings,
} from '../retrieve/jobSettings.js';
import { fileSha256, jobForRequest } from '../retrieve/retrieveJobs.js';
import { retrieveSummary } from '../retrieve/retrieveReport.js';
import type { RetrieveProgress } from '../retrieve/retrieveRun.js';
import type { RetrieveResumeInput } from '../http/nodeApi.js';
import { progressBar } from './retrieveProgressBar.js';
import {
  cancelOnNode,
  findRunningNode,
  isPortInUse,
  resumeOnNode,
  startOnNode,
  statusOnNode,
} from './retrieveOnNode.js';
import type { RetrieveJobResult } from '../retrieve/retrieveService.js';
import { shellQuote } from '../shellQuote.js';

interface RetrieveArgs extends NodeArgs {
  action?: 'status' | 'resume' | 'cancel';
  from?: string;
  job?: number;
  'dry-run'?: boolean;
  'days-before'?: number;
  'days-after'?: number;
  modalities?: string;
  concurrency?: number;
  window?: string;
  'quiet-seconds'?: number;
  'study-timeout'?: number;
  'max-attempts'?: number;
  'pacs-wait'?: number;
  progress?: boolean;
  verbose?: boolean;
}

/** Exit status of an interrupted run (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

const command: CommandModule<object, RetrieveArgs> = {
  command: 'retrieve [action]',
  describe:
    'Pull the studies of the mapping CSV from a PACS (C-FIND, C-MOVE) and de-identify them; status/resume/cancel a job',
  builder: (y: Argv) =>
    withServeOptions(
      y
        .positional('action', {
          choices: ['status', 'resume', 'cancel'] as const,
          describe: 'status: show jobs; resume: continue a job; cancel: stop a job for good',
        })
        .option('from', { type: 'string', describe: 'The PACS: AET@host:port (it must know our AE title)' })
        .option('job', { type: 'number', describe: 'The job (status/resume/cancel); default the newest' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'Query only and print the plan; move nothing' })
        .option('days-before', { type: 'number', describe: "Only studies from N days before each row's Surgery_Date" })
        .option('days-after', { type: 'number', describe: "Only studies up to N days after each row's Surgery_Date" })
        .option('modalities', { type: 'string', describe: 'Only studies with one of these modalities, e.g. CT,MR' })
        .option('concurrency', { type: 'number', describe: 'C-MOVEs at a time [default 1]' })
        .option('window', { type: 'string', describe: 'Start moves only in this daily window, e.g. 19:00-07:00' })
        .option('quiet-seconds', {
          type: 'number',
          describe: 'A study is done when nothing arrived for this long after its move [default 30]',
        })
        .option('study-timeout', { type: 'number', describe: 'Longest wait for one study, in minutes [default 120]' })
        .option('max-attempts', { type: 'number', describe: 'C-MOVEs per study before it is reported [default 3]' })
        .option('pacs-wait', {
          type: 'number',
          describe: 'Seconds to keep trying while the PACS is down or busy before pausing the job [default 300]',
        })
        .option('progress', {
          type: 'boolean',
          describe: 'Progress bar on stderr [default: when stderr is a terminal]',
        }),
    ) as unknown as Argv<RetrieveArgs>,
  handler: async (args) => {
    const config = nodeConfigFrom(args);
    if (args.action === 'status') return showStatus(config, args);
    if (args.action === 'cancel') return cancelJob(config, args);
    if (args.action === 'resume') return resumeJob(config, args);
    if (args.from === undefined)
      throw new UsageError('retrieve needs --from AET@host:port (or an action: status, resume, cancel)');
    return newJob(config, args);
  },
};

export default command;

/** The settings given on the command line over `base` (a stored job's, or the defaults). */
function settingsFrom(args: RetrieveArgs, base: RetrieveSettings): RetrieveSettings {
  const s: RetrieveSettings = { ...base };
  if (args['days-before'] !== undefined) s.daysBefore = args['days-before'];
  if (args['days-after'] !== undefined) s.daysAfter = args['days-after'];
  if (args.modalities !== undefined) {
    s.modalities = args.modalities
      .split(',')
      .map((m) => m.trim().toUpperCase())
      .filter((m) => m !== '');
  }
  if (args.concurrency !== undefined) s.concurrency = args.concurrency;
  if (args.window !== undefined) s.window = args.window;
  if (args['quiet-seconds'] !== undefined) s.quietMs = args['quiet-seconds'] * 1000;
  if (args['study-timeout'] !== undefined) s.studyTimeoutMs = args['study-timeout'] * 60_000;
  if (args['max-attempts'] !== undefined) s.maxAttempts = args['max-attempts'];
  if (args['pacs-wait'] !== undefined) s.pacsWaitMs = args['pacs-wait'] * 1000;
  try {
    return checkSettings(s);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The pace and timers given on the command line (a resume on a running node). */
function paceFrom(args: RetrieveArgs): RetrieveResumeInput {
  const pace: RetrieveResumeInput = {};
  if (args.concurrency !== undefined) pace.concurrency = args.concurrency;
  if (args.window !== undefined) pace.window = args.window;
  if (args['quiet-seconds'] !== undefined) pace.quietMs = args['quiet-seconds'] * 1000;
  if (args['study-timeout'] !== undefined) pace.studyTimeoutMs = args['study-timeout'] * 60_000;
  if (args['max-attempts'] !== undefined) pace.maxAttempts = args['max-attempts'];
  if (args['pacs-wait'] !== undefined) pace.pacsWaitMs = args['pacs-wait'] * 1000;
  return pace;
}

async function newJob(config: NodeConfig, args: RetrieveArgs): Promise<void> {
  const settings = settingsFrom(args, { ...DEFAULT_SETTINGS, modalities: [], dryRun: args['dry-run'] === true });
  // A node runs on this config: it takes the job (a dry run without it needs no receiver).
  const node = await findRunningNode(config);
  if (node?.client) {
    return startOnNode(node.client, {
      from: args.from!,
      csv: config.csv,
      settings,
      configArg: args.config,
      progress: args.progress,
    });
  }
  if (node?.refusal !== undefined && !settings.dryRun) throw new UsageError(node.refusal);
  const state = await openStateStore(config.db, { create: true });
  let job: RetrieveJob;
  try {
    const r = await jobForRequest(
      state,
      { from: args.from!, csv: config.csv, moveDestination: config.aeTitle, settings },
      (line) => process.stderr.write(`dicom-deid: warning: ${line}\n`),
    );
    job = r.job;
    if (r.resumed) process.stderr.write(`dicom-deid: continuing retrieve job ${job.id} (same CSV, PACS and plan)\n`);
  } finally {
    await state.close();
  }
  await runJob(config, args, job, settingsToParams(settings));
}

async function resumeJob(config: NodeConfig, args: RetrieveArgs): Promise<void> {
  const node = await findRunningNode(config);
  if (node?.refusal !== undefined) throw new UsageError(node.refusal);
  if (node?.client) {
    return resumeOnNode(node.client, args.job, paceFrom(args), { configArg: args.config, progress: args.progress });
  }
  const state = await openNodeState(config, args);
  let job: RetrieveJob;
  try {
    job = await pickJob(state, args.job, (j) => RESUMABLE_JOB_STATES.includes(j.state), 'to resume');
  } finally {
    await state.close();
  }
  if (config.csv !== job.csvPath && args.csv === undefined) config = { ...config, csv: job.csvPath };
  let sha: string | undefined;
  try {
    sha = fileSha256(config.csv);
  } catch {
    sha = undefined;
  }
  if (sha !== job.csvSha256) {
    process.stderr.write(
      `dicom-deid: warning: the mapping CSV ${config.csv} is not the one job ${job.id} was made with (it changed or moved); its rows are as they were then, and arriving studies are matched with the CSV as it is now\n`,
    );
  }
  const settings = settingsFrom(args, settingsFromParams(job.params));
  await runJob(config, args, job, settingsToParams(settings));
}

/** The job `id`, or the newest one `fits`; throws UsageError naming what is missing. */
async function pickJob(
  state: StateStore,
  id: number | undefined,
  fits: (j: RetrieveJob) => boolean,
  what: string,
): Promise<RetrieveJob> {
  if (id !== undefined) {
    const j = await state.retrieveJob(id);
    if (!j) throw new UsageError(`there is no retrieve job ${id} in ${state.location}`);
    return j;
  }
  const j = (await state.retrieveJobs(100)).find(fits);
  if (!j) throw new UsageError(`no retrieve job ${what} in ${state.location}`);
  return j;
}

async function cancelJob(config: NodeConfig, args: RetrieveArgs): Promise<void> {
  // Through the node when it can be reached; else in the state (a runner stops on its heartbeat).
  const node = await findRunningNode(config);
  if (node?.client) return cancelOnNode(node.client, args.job);
  const state = await openNodeState(config, args);
  try {
    const job = await pickJob(state, args.job, (j) => j.state !== 'done' && j.state !== 'cancelled', 'to cancel');
    const after = await state.cancelRetrieveJob(job.id);
    if (after?.state === 'cancelled') process.stdout.write(`retrieve job ${job.id} is cancelled\n`);
    else if (after?.state === 'done') process.stdout.write(`retrieve job ${job.id} is done already\n`);
    else {
      process.stdout.write(
        `retrieve job ${job.id} runs in ${after?.runner ?? 'another process'}: it stops within a few seconds, cancelled\n`,
      );
    }
  } finally {
    await state.close();
  }
}

async function showStatus(config: NodeConfig, args: RetrieveArgs): Promise<void> {
  // Through the node when it can be reached (it adds the progress of the jobs it runs).
  const node = await findRunningNode(config);
  if (node?.client) return statusOnNode(node.client, args.job);
  const state = await openNodeState(config, args);
  try {
    const jobs =
      args.job !== undefined ? [await pickJob(state, args.job, () => true, '')] : await state.retrieveJobs(10);
    if (jobs.length === 0) {
      process.stdout.write('no retrieve job\n');
      return;
    }
    for (const job of jobs) {
      for (const line of await retrieveSummary(state, job)) process.stdout.write(line + '\n');
      if (job.runner) process.stdout.write(`  run by ${job.runner}\n`);
      if (job.reportPath) process.stdout.write(`  report: ${job.reportPath}\n`);
    }
  } finally {
    await state.close();
  }
}

/**
 * Runs `job` here: a dry run needs only the state and the PACS; a real one starts the node's
 * receiving side (config: AE title, port, CSV, output, forwarding) for the job's duration. Prints
 * the summary and sets the exit status: 0 all found and filed, 1 not (or paused, failed), 130
 * interrupted.
 */
async function runJob(config: NodeConfig, args: RetrieveArgs, job: RetrieveJob, params: string): Promise<void> {
  const dryRun = settingsFromParams(params).dryRun;
  const logger = createLogger({ logDir: config.logDir, consoleLevel: args.verbose ? 'info' : 'warn' });
  const bar = progressBar(args.progress ?? process.stderr.isTTY === true);
  let interrupted = false;
  let result: RetrieveJobResult | undefined;
  // A signal before the job runs stops it as soon as it starts.
  let stopReason: string | undefined;
  let stopAll: (why: string) => void = (why) => (stopReason = why);
  const setStop: Stopper = (f) => {
    stopAll = f;
    if (stopReason !== undefined) f(stopReason);
  };
  const onSignal = (sig: string): void => {
    interrupted = true;
    stopAll(`interrupted (${sig})`);
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  try {
    if (dryRun) result = await runDry(config, logger, job, params, bar.update, setStop);
    else result = await runWithNode(config, logger, job, params, bar.update, setStop);
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    bar.finish();
  }
  const state = await openStateStore(config.db, { create: false });
  try {
    const after = (await state.retrieveJob(job.id)) ?? result.job;
    for (const line of await retrieveSummary(state, after)) process.stdout.write(line + '\n');
    if (result.reportPath)
      process.stdout.write(`  report: ${result.reportPath} (key material: it names MRNs and studies)\n`);
    if (after.state === 'paused' || after.state === 'failed') {
      process.stdout.write(
        `  continue with: dicom-deid retrieve resume --job ${job.id}${args.config ? ` --config ${shellQuote(args.config)}` : ''}\n`,
      );
    }
    const c = await state.retrieveJobCounts(job.id);
    const clean =
      after.state === 'done' &&
      c.rows.not_found + c.rows.ambiguous + c.rows.query_failed + c.rows.query_incomplete === 0 &&
      c.studies.incomplete + c.studies.failed === 0;
    process.exitCode = interrupted ? EXIT_INTERRUPTED : clean ? 0 : 1;
  } finally {
    await state.close();
    await closeLogger(logger);
  }
}

type Stopper = (stop: (why: string) => void) => void;

async function runDry(
  config: NodeConfig,
  logger: ProcessLogger,
  job: RetrieveJob,
  params: string,
  onProgress: (p: RetrieveProgress) => void,
  setStop: Stopper,
): Promise<RetrieveJobResult> {
  const { RetrieveService } = await import('../retrieve/retrieveService.js');
  const state = await openStateStore(config.db, { create: false });
  const service = new RetrieveService({
    state,
    node: {
      aeTitle: config.aeTitle,
      host: config.host,
      port: config.port,
      callingAet: config.callingAet,
      reportDir: config.logDir,
    },
    arrivals: () => ({ received: 0, processed: 0, receiving: 0 }),
    logger,
    onProgress,
    runner: `retrieve:${process.pid}`,
  });
  try {
    await service.start(job.id, params).catch(rethrowAsUsage);
    setStop((why) => void service.stop(why));
    return (await service.whenFinished(job.id))!;
  } finally {
    await service.stop();
    await state.close();
  }
}

async function runWithNode(
  config: NodeConfig,
  logger: ProcessLogger,
  job: RetrieveJob,
  params: string,
  onProgress: (p: RetrieveProgress) => void,
  setStop: Stopper,
): Promise<RetrieveJobResult> {
  await refuseRunningNode(config);
  // Loaded here: the DIMSE stack takes ~0.1 s to load, which status/cancel need not pay.
  const { DeidNode } = await import('../node/deidNode.js');
  const node = new DeidNode(config, logger, { onProgress, runner: `retrieve:${process.pid}` });
  try {
    await node.start();
  } catch (e) {
    await node.stop().catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw portInUseError(config);
    if (err.name === 'MappingError') throw new UsageError(err.message);
    throw e;
  }
  try {
    await node.retrieve.start(job.id, params).catch(rethrowAsUsage);
    setStop((why) => void node.retrieve.stop(why));
    return (await node.retrieve.whenFinished(job.id))!;
  } finally {
    await node.stop();
  }
}

function portInUseError(config: NodeConfig): UsageError {
  return new UsageError(
    `port ${config.port} is already in use: is a node running (dicom-deid serve)? Stop it first: the job runs the node's receiving side itself`,
  );
}

/**
 * Throws when the node's port is taken. A node running with this config owns its spool and state
 * (their locks refuse a second node too); the port is checked first for the clearer message,
 * which says what to do: stop the node, or let the job be handed to it.
 */
async function refuseRunningNode(config: NodeConfig): Promise<void> {
  if (await isPortInUse(config.host, config.port)) throw portInUseError(config);
}

function rethrowAsUsage(e: unknown): never {
  if (e instanceof Error && e.name === 'RetrieveJobBusyError') throw new UsageError(e.message);
  throw e;
}
