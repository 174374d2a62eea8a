// `dicom-deid retrieve` with a node running (`dicom-deid serve` on the config's DICOM port): the
// command hands the job to the node through its HTTP API (src/http/routes/retrieve.ts) and
// follows its progress, since the node owns the receiver the PACS sends to, and its spool.
// `status`, `resume` and `cancel` go through the node too. Ctrl-C stops following only: the job
// keeps running on the node.
import net from 'node:net';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { RetrieveJobView, RetrieveResumeInput } from '../http/nodeApi.js';
import { NodeClient, NodeHttpError } from '../http/nodeClient.js';
import type { NodeConfig } from '../node/nodeConfig.js';
import type { RetrieveSettings } from '../retrieve/jobSettings.js';
import { progressBar } from './retrieveProgressBar.js';
import { shellQuote } from '../shellQuote.js';

/** How often a followed job's progress is asked for (ms). */
const FOLLOW_POLL_MS = 500;
/** Exit status when following is interrupted (128 + SIGINT). */
const EXIT_INTERRUPTED = 130;

/** True when something listens on host:port (a bind there fails with EADDRINUSE). */
export function isPortInUse(host: string, port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE'));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}

/**
 * A node on the config's port: `client` when its HTTP side answers as this config's node (same
 * AE title and state), else `refusal`, a one-line reason naming the setting to change.
 */
export type RunningNode = { client: NodeClient; refusal?: undefined } | { client?: undefined; refusal: string };

/** The node running on `config`'s DICOM port, if any (see RunningNode). */
export async function findRunningNode(config: NodeConfig): Promise<RunningNode | undefined> {
  if (!(await isPortInUse(config.host, config.port))) return undefined;
  const first = `port ${config.port} is already in use: is a node running (dicom-deid serve)? Stop it first`;
  if (!config.httpEnabled) {
    return { refusal: `${first}, or turn its HTTP side on (httpEnabled) so that the job can be handed to it` };
  }
  const client = new NodeClient(config);
  let identity;
  try {
    identity = await client.identity();
  } catch (e) {
    const why =
      e instanceof NodeHttpError && e.status !== 0
        ? `the node at ${client.url} says: ${e.message}`
        : (e as Error).message;
    return {
      refusal: `${first}, or let the job be handed to it: ${why} (httpHost, httpPort; the access token from httpToken or httpTokenFile)`,
    };
  }
  const db = identity.config?.paths?.db;
  if (identity.aeTitle !== config.aeTitle || (db !== undefined && db !== config.db)) {
    return {
      refusal: `${first}: the node at ${client.url} is ${identity.aeTitle} on the state ${db ?? '(not said)'}, not this config's ${config.aeTitle} on ${config.db}`,
    };
  }
  return { client };
}

/** The node's answer as a UsageError (its message is the node's one-line reason). */
function usage(e: unknown): never {
  if (e instanceof NodeHttpError) throw new UsageError(e.message);
  throw e;
}

/** How the command names the config in the hints it prints. */
function configWords(configArg: string | undefined): string {
  return configArg ? ` --config ${shellQuote(configArg)}` : '';
}

/** Starts (or continues) the job on the node and follows it; sets the exit status as a run here does. */
export async function startOnNode(
  client: NodeClient,
  o: { from: string; csv: string; settings: RetrieveSettings; configArg?: string; progress?: boolean },
): Promise<void> {
  const { job, resumed } = await client
    .startRetrieve({ from: o.from, csv: resolve(o.csv), ...o.settings })
    .catch(usage);
  process.stderr.write(
    `dicom-deid: retrieve job ${job.id} ${resumed ? 'continues' : 'runs'} on the node at ${client.url} (Ctrl-C stops following it, not the job)\n`,
  );
  await follow(client, job.id, o);
}

/** Runs job `id` (or the newest resumable) again on the node and follows it. */
export async function resumeOnNode(
  client: NodeClient,
  id: number | undefined,
  pace: RetrieveResumeInput,
  o: { configArg?: string; progress?: boolean },
): Promise<void> {
  const jobId =
    id ?? (await pick(client, (j) => ['pending', 'running', 'paused', 'failed'].includes(j.state), 'to resume'));
  await client.resumeRetrieve(jobId, pace).catch(usage);
  process.stderr.write(
    `dicom-deid: retrieve job ${jobId} runs on the node at ${client.url} (Ctrl-C stops following it, not the job)\n`,
  );
  await follow(client, jobId, o);
}

/** Cancels job `id` (or the newest unfinished) on the node. */
export async function cancelOnNode(client: NodeClient, id: number | undefined): Promise<void> {
  const jobId = id ?? (await pick(client, (j) => j.state !== 'done' && j.state !== 'cancelled', 'to cancel'));
  const after = await client.cancelRetrieve(jobId).catch(usage);
  if (after.state === 'cancelled') process.stdout.write(`retrieve job ${jobId} is cancelled\n`);
  else if (after.state === 'done') process.stdout.write(`retrieve job ${jobId} is done already\n`);
  else {
    process.stdout.write(
      `retrieve job ${jobId} runs in ${after.runner ?? 'another process'}: it stops within a few seconds, cancelled\n`,
    );
  }
}

/** Prints the node's jobs (or job `id`) as `retrieve status` does. */
export async function statusOnNode(client: NodeClient, id: number | undefined): Promise<void> {
  const jobs =
    id !== undefined ? [await client.retrieveJob(id).catch(usage)] : await client.retrieveJobs(10).catch(usage);
  if (jobs.length === 0) {
    process.stdout.write('no retrieve job\n');
    return;
  }
  for (const job of jobs) {
    for (const line of job.summary) process.stdout.write(line + '\n');
    if (job.progress) process.stdout.write(`  now: ${progressWords(job.progress)}\n`);
    if (job.runner)
      process.stdout.write(`  run by ${job.runner}${job.runningHere ? ` (the node at ${client.url})` : ''}\n`);
    if (job.reportPath) process.stdout.write(`  report: ${job.reportPath}\n`);
  }
}

function progressWords(p: NonNullable<RetrieveJobView['progress']>): string {
  return `${p.phase}, rows queried ${p.rowsQueried}/${p.rowsTotal}, studies ${p.studiesDone}/${p.studiesTotal}${p.moving > 0 ? `, moving ${p.moving}` : ''}${p.waitingFor ? `, waiting for ${p.waitingFor}` : ''}`;
}

/** The newest job of the node that `fits`; throws UsageError when there is none. */
async function pick(client: NodeClient, fits: (j: RetrieveJobView) => boolean, what: string): Promise<number> {
  const j = (await client.retrieveJobs(100).catch(usage)).find(fits);
  if (!j) throw new UsageError(`no retrieve job ${what} on the node at ${client.url}`);
  return j.id;
}

/**
 * Polls job `id` on the node until the node's run of it ends, with the progress bar; then
 * prints its summary and sets the exit status: 0 all found and filed, 1 not (or paused,
 * failed), 130 when Ctrl-C stopped following (the job keeps running on the node).
 */
async function follow(client: NodeClient, id: number, o: { configArg?: string; progress?: boolean }): Promise<void> {
  const bar = progressBar(o.progress ?? process.stderr.isTTY === true);
  let interrupted = false;
  let wake = (): void => undefined;
  const onSignal = (): void => {
    interrupted = true;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const cfg = configWords(o.configArg);
  let view: RetrieveJobView;
  try {
    for (;;) {
      try {
        view = await client.retrieveJob(id);
      } catch (e) {
        bar.finish();
        throw new Error(
          `lost the node while following retrieve job ${id}: ${(e as Error).message}; the node pauses its jobs when it stops: dicom-deid retrieve resume --job ${id}${cfg}`,
        );
      }
      if (view.progress) bar.update(view.progress);
      if (!view.runningHere || interrupted) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, FOLLOW_POLL_MS);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    bar.finish();
  }
  if (interrupted && view.runningHere) {
    process.stdout.write(
      [
        `stopped following retrieve job ${id}: it keeps running on the node at ${client.url}`,
        `  see it: dicom-deid retrieve status --job ${id}${cfg}`,
        `  cancel it: dicom-deid retrieve cancel --job ${id}${cfg}`,
        '',
      ].join('\n'),
    );
    process.exitCode = EXIT_INTERRUPTED;
    return;
  }
  for (const line of view.summary) process.stdout.write(line + '\n');
  if (view.reportPath) process.stdout.write(`  report: ${view.reportPath} (key material: it names MRNs and studies)\n`);
  if (view.state === 'paused' || view.state === 'failed') {
    process.stdout.write(`  continue with: dicom-deid retrieve resume --job ${id}${cfg}\n`);
  }
  const { rows, studies } = view.counts;
  const n = (r: Record<string, number>, k: string): number => r[k] ?? 0;
  const clean =
    view.state === 'done' &&
    n(rows, 'not_found') + n(rows, 'ambiguous') + n(rows, 'query_failed') + n(rows, 'query_incomplete') === 0 &&
    n(studies, 'incomplete') + n(studies, 'failed') === 0;
  process.exitCode = clean ? 0 : 1;
}
