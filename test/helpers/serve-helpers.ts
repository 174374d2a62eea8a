// Helpers for end-to-end tests of the DICOM node as a real process (`node dist/cli.js serve`):
// start/stop/kill the node, send with dcmtk's storescu, run other CLI commands on its state.
//
//   const node = await startNode({ dir, csv, forward: ['RESEARCH@127.0.0.1:1234'] });
//   storescu(node.port, files);              // -> { status, output }
//   await node.stop();                       // SIGTERM, waits for exit (SIGKILL after a grace time)
//
// Every node started here is tracked; call stopAllNodes() from afterEach/afterAll so a failing
// test never leaves a process behind.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { newAccessionNumber } from '../../src/core/accession.js';
import { parseMappingCsv } from '../../src/core/mapping/mappingCsv.js';
import type { DeidPlan } from '../../src/core/types.js';
import type { Logger } from '../../src/log.js';
import type { DeidNode } from '../../src/node/deidNode.js';
import { loadNodeConfig, type NodeConfig } from '../../src/node/nodeConfig.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import { waitFor } from './forward-helpers.js';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO, 'dist', 'cli.js');
export const CSV_HEADER = 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes';

/** Builds dist/ if it is missing (the `npm test` script builds it first anyway). */
export function ensureBuilt(): void {
  if (!existsSync(CLI)) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO, stdio: 'pipe' });
}

/** Where a test node under `dir` keeps its files (config-file settings): output tree, state, quarantine, spool, logs. */
export function nodePaths(dir: string): {
  output: string;
  db: string;
  quarantine: string;
  spool: string;
  logDir: string;
} {
  return {
    output: join(dir, 'output'),
    db: join(dir, 'state', 'state.sqlite'),
    quarantine: join(dir, 'quarantine'),
    spool: join(dir, 'spool'),
    logDir: join(dir, 'logs'),
  };
}

export interface StartNodeOptions {
  /** Base folder: state, quarantine, spool, logs and the generated config file live under it. */
  dir: string;
  /** Mapping CSV path. */
  csv: string;
  /** Output tree (default `<dir>/output`). */
  output?: string;
  /** Forward destinations: "AET@host:port" or config objects ({ name, aeTitle, host, port, ... }). */
  forward?: (string | Record<string, unknown>)[];
  /** Port to listen on (default 0: an ephemeral port, read back from the "listening as" line). */
  port?: number;
  /** Our AE title (default DEID). */
  aeTitle?: string;
  /** Further config-file settings (e.g. { callingAet: 'X', forwardGiveUpHours: 1 }). */
  config?: Record<string, unknown>;
  /** Extra command-line arguments after `serve`. */
  args?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** How long to wait for the "listening as" line (default 20 s). */
  startTimeoutMs?: number;
}

export interface NodeProc {
  port: number;
  /** The HTTP side's base URL ("http://127.0.0.1:PORT"), from its start-up line; '' when off. */
  httpUrl: string;
  proc: ChildProcess;
  /** The generated config file: pass it to other commands (`queue --config ...`). */
  configPath: string;
  paths: { output: string; db: string; quarantine: string; spool: string; logDir: string };
  /** Everything the node wrote to stderr so far (its readable log lines). */
  logs(): string;
  /** Everything the node wrote to stdout so far (expected: nothing). */
  stdout(): string;
  /** Resolves when `re` matches the logs (polling), rejects after timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after graceMs (default 15 s); resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL (a crash) and wait for the exit. */
  kill9(): Promise<void>;
}

const nodes = new Set<NodeProc>();

/** Starts the node and waits for its "listening as" log line on stderr. */
export async function startNode(o: StartNodeOptions): Promise<NodeProc> {
  ensureBuilt();
  mkdirSync(o.dir, { recursive: true });
  const paths = { ...nodePaths(o.dir), output: o.output ?? join(o.dir, 'output') };
  const configPath = join(o.dir, 'node-config.json');
  writeFileSync(
    configPath,
    JSON.stringify(
      {
        aeTitle: o.aeTitle ?? 'DEID',
        host: '127.0.0.1',
        port: o.port ?? 0,
        csv: o.csv,
        ...paths,
        forward: o.forward ?? [],
        // One journal segment: the reserve is written when a node starts on a new spool, and
        // 64 MiB per test node keeps the suite light (the default is 1 GiB).
        spoolReserveMB: 64,
        // Any free port for the HTTP side (nodes of parallel tests must not share 11180).
        httpPort: 0,
        ...o.config,
      },
      null,
      2,
    ),
  );
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', configPath, ...(o.args ?? [])], {
    cwd: o.dir,
    env: { ...process.env, DEBUG: '', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const alive = () => proc.exitCode === null && proc.signalCode === null;

  const stop = async (graceMs = 15_000): Promise<number | null> => {
    if (alive()) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => alive() && proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    }
    nodes.delete(handle);
    return proc.exitCode;
  };
  const kill9 = async (): Promise<void> => {
    if (alive()) {
      proc.kill('SIGKILL');
      await exited;
    }
    nodes.delete(handle);
  };
  const waitForLog = async (re: RegExp, timeoutMs = 20_000): Promise<void> => {
    const end = Date.now() + timeoutMs;
    while (!re.test(err)) {
      if (!alive()) throw new Error(`node exited (code ${proc.exitCode}) before logging ${re}:\n${err}${out}`);
      if (Date.now() > end) throw new Error(`node did not log ${re} within ${timeoutMs} ms:\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const handle: NodeProc = {
    port: 0,
    httpUrl: '',
    proc,
    configPath,
    paths,
    logs: () => err,
    stdout: () => out,
    waitForLog,
    stop,
    kill9,
  };
  nodes.add(handle);
  try {
    await waitForLog(/listening as \S+ on [^\s:]+:\d+/, o.startTimeoutMs ?? 20_000);
  } catch (e) {
    await kill9();
    throw e;
  }
  handle.port = Number(/listening as \S+ on [^\s:]+:(\d+)/.exec(err)![1]);
  handle.httpUrl = /status page and API on (http\S+?)\/ /.exec(err)?.[1] ?? '';
  return handle;
}

/** Kills every node still running (SIGKILL); call from afterEach/afterAll. */
export async function stopAllNodes(): Promise<void> {
  await Promise.all([...nodes].map((n) => n.kill9()));
}

/**
 * Sends files with dcmtk's storescu (one association, TCP_NODELAY=1). Never throws: returns the
 * exit status and output (storescu exits non-zero when any store fails).
 */
export function storescu(
  port: number,
  files: string[],
  o: { callingAet?: string; calledAet?: string; args?: string[]; timeoutMs?: number } = {},
): { status: number | null; output: string } {
  const r = spawnSync(
    'storescu',
    [
      '-aet',
      o.callingAet ?? 'MODALITY',
      '-aec',
      o.calledAet ?? 'DEID',
      ...(o.args ?? []),
      '127.0.0.1',
      String(port),
      ...files,
    ],
    { encoding: 'utf8', env: { ...process.env, TCP_NODELAY: '1' }, timeout: o.timeoutMs ?? 30_000 },
  );
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Runs `node dist/cli.js ...args` to completion (e.g. `queue --config c.json`). */
export function runCli(args: string[], cwd = REPO): { status: number | null; stdout: string; stderr: string } {
  ensureBuilt();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DEBUG: '' },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Writes pydicom samples (8 transfer syntaxes; with `all`, 11: every syntax of issue 14) with the
 * given patient into `outDir` via test/fixtures/make_node_samples.py; returns their paths, sorted.
 */
export function makeSamples(
  outDir: string,
  patientId: string,
  accession: string,
  studyUid: string,
  prefix = 's',
  all = false,
): string[] {
  execFileSync(
    '/usr/bin/python3',
    [
      join(REPO, 'test', 'fixtures', 'make_node_samples.py'),
      outDir,
      patientId,
      accession,
      studyUid,
      prefix,
      ...(all ? ['all'] : []),
    ],
    {
      stdio: 'pipe',
    },
  );
  return readdirSync(outDir)
    .filter((n) => n.startsWith(`${prefix}_`))
    .sort()
    .map((n) => join(outDir, n));
}

/** Writes a mapping CSV with the given rows (MRN, accession, research ID; fixed dates). */
export function writeMappingCsv(path: string, rows: { mrn: string; accession: string; researchId: string }[]): string {
  const lines = rows.map((r) => `${r.mrn},${r.accession},${r.researchId},2024-03-01,2024-06-15,`);
  writeFileSync(path, [CSV_HEADER, ...lines, ''].join('\n'));
  return path;
}

/** All regular files under `dir`, recursively (empty if it does not exist), but the project marker. */
export function listFilesRecursive(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    // The output tree's project marker (src/io/projectMarker.ts), written at start-up, is no
    // filed instance; test/e2e/project-marker.test.ts checks it.
    if (name === '.dicom-deid-project') continue;
    const p = join(dir, name);
    // A writer's temporary file can be renamed between readdir and stat (a running node, polled).
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory()) out.push(...listFilesRecursive(p));
    else out.push(p);
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// The node's forward queue, read from its state (a second connection, as `queue` does)

export interface QueueCounts {
  pending: number;
  delivered: number;
  dead: number;
  inFlight: number;
}

/** Forward queue counts of every destination, read from the node's state (a second connection, as `queue` does). */
export async function queueCounts(dbPath: string): Promise<QueueCounts> {
  const state = await openStateStore(dbPath, { create: false });
  try {
    const sum: QueueCounts = { pending: 0, delivered: 0, dead: 0, inFlight: 0 };
    for (const c of await state.forwardCounts()) {
      sum.pending += c.pending;
      sum.delivered += c.delivered;
      sum.dead += c.dead;
      sum.inFlight += c.inFlight;
    }
    return sum;
  } finally {
    await state.close();
  }
}

/** Waits until the node's queue counts satisfy `cond` (polling); the error shows the counts and the node's log. */
export async function waitQueue(
  node: NodeProc,
  cond: (c: QueueCounts) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await waitFor(async () => cond(await queueCounts(node.paths.db)), timeoutMs, what).catch(async (e: Error) => {
    throw new Error(
      `${e.message}; queue ${JSON.stringify(await queueCounts(node.paths.db))}; node log:\n${node.logs()}`,
    );
  });
}

/**
 * The plan a batch run or node used for the first study of the mapping CSV's first row (`csvText`,
 * the CSV's text): its research ID, accession number 1, day offset and notes, and the UID secret of
 * the state at `dbPath` (opened read-only while it reads). For comparing outputs with what the
 * whole-buffer core makes of the same input.
 */
export async function firstStudyPlan(csvText: string, dbPath: string): Promise<DeidPlan> {
  const state = await openStateStore(dbPath, { create: false });
  try {
    const row = parseMappingCsv(csvText, 'mapping.csv')[0]!;
    return {
      researchId: row.researchId,
      accessionNumber: newAccessionNumber(row.researchId, 1),
      dayOffset: row.dayOffset,
      notes: row.notes,
      uidSecret: await state.uidSecret(),
    };
  } finally {
    await state.close();
  }
}

/**
 * The DeidNode class of the built dist/ (built first if missing): a node run in the test's process
 * must be dist/'s, since its processing threads load dist/node/processingWorker.js.
 */
export async function loadDeidNode(): Promise<typeof DeidNode> {
  ensureBuilt();
  return ((await import(join(CLI, '..', 'node', 'deidNode.js'))) as { DeidNode: typeof DeidNode }).DeidNode;
}

/**
 * The config of a node run in the test's process (see loadDeidNode): AE title DEID on 127.0.0.1,
 * any free DICOM and HTTP port (11180 may be taken on a shared machine), everything under `dir`
 * (output, state/state.sqlite, quarantine, spool, logs), a 64 MiB spool reserve and one
 * processing thread; `settings` add or override config-file settings. Throws ConfigError as
 * loadNodeConfig does.
 */
export function inProcessNodeConfig(dir: string, csv: string, settings: Record<string, unknown> = {}): NodeConfig {
  return loadNodeConfig(undefined, {
    host: '127.0.0.1',
    port: 0,
    csv,
    ...nodePaths(dir),
    httpPort: 0,
    spoolReserveMB: 64,
    processingThreads: 1,
    ...settings,
  });
}

/** A Logger that keeps every line as `level: message {meta as JSON}` in `lines`. */
export function collectingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string, meta?: object) =>
    void lines.push(`${level}: ${message} ${JSON.stringify(meta ?? {})}`);
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/**
 * storescu (calling AE MODALITY) to a node running in this process: asynchronous, since
 * spawnSync would block the node's event loop. Resolves with storescu's exit status.
 */
export function storescuAsync(
  port: number,
  files: string[],
  args: string[] = [],
  calledAet = 'DEID',
): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn('storescu', ['-aet', 'MODALITY', '-aec', calledAet, ...args, '127.0.0.1', String(port), ...files], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: 'ignore',
    });
    p.on('exit', (code) => resolve(code));
  });
}
