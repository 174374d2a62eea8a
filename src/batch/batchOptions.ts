// A batch run's options, and everything about them that can be a usage error, checked before any
// file is touched: the folders, where the key material goes, the mapping CSV.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MappingRow } from '../core/types.js';
import { describeSystemError, UsageError } from '../errors.js';
import { mkdirRecursiveSync } from '../io/durableWrite.js';
import { readMappingFile } from '../io/mappingFile.js';
import type { MarkerNames } from '../io/projectMarker.js';
import { testOnlyKeep, warnOnlyTags } from '../leakGuardSettings.js';
import type { Logger } from '../log.js';

export interface BatchOptions {
  csv: string;
  input: string;
  output: string;
  /** SQLite state; default `<csv dir>/dicom-deid-state.sqlite`. */
  db?: string;
  /** Audit log directory; default `<csv dir>/dicom-deid-logs`. */
  logDir?: string;
  copyOtherFiles?: boolean;
  /** Write instances whose Burned In Annotation is YES (default: hold them, status `held`). */
  allowBurnedIn?: boolean;
  workers?: number;
  quiet?: boolean;
  /** Progress bar (default: when stderr is a TTY and not quiet). */
  progress?: boolean;
  logger?: Logger;
  /** Makes the logger once the options are validated (nothing is written before). */
  createLog?: (logDir: string) => Logger;
  /** Where the summary goes (default stdout). */
  out?: (line: string) => void;
  /** Stops the run (the CLI aborts it on SIGINT/SIGTERM): see runBatch. */
  signal?: AbortSignal;
  /** Told the audit log's path once it is created (the CLI names it if a second signal ends the process). */
  onAuditLog?: (file: string) => void;
  /** Attributes (keywords or tags) whose leak guard hits are warnings only (--leak-guard-warn-only). */
  leakGuardWarnOnly?: string[];
}

/** The absolute paths of a run. */
export interface BatchPaths {
  csv: string;
  input: string;
  output: string;
  /** The SQLite state. */
  db: string;
  /** The folder of the audit log and the run log. */
  logDir: string;
}

/** A validated run: its paths, the mapping CSV's rows, how many worker threads, the leak guard's settings. */
export interface PreparedBatch {
  paths: BatchPaths;
  rows: MappingRow[];
  workerCount: number;
  /** Tags whose leak guard hits only warn; tags kept whatever the rules say (tests only). */
  guard: { leakGuardWarnOnly: number[]; testOnlyKeep: number[] };
}

/** The state's default place: beside the mapping CSV (key material with key material). */
export function defaultStatePath(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-state.sqlite');
}

/** The audit log folder's default place: beside the mapping CSV. */
export function defaultLogDir(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-logs');
}

/** How the output tree and the state are named in a refusal (projectMarker.ts): as given on the command line. */
export function markerNames(opts: BatchOptions, paths: BatchPaths): MarkerNames {
  return {
    output: { label: '--output', value: opts.output },
    db: { label: '--db', value: opts.db ?? paths.db },
  };
}

/** True when `child` is `parent` or below it (absolute paths). */
export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Checks the options and reads the mapping CSV; writes nothing (warnings go to stderr).
 * Throws UsageError (exit 2) for a missing or wrong folder, an output inside the input or
 * holding it, key material inside the output (placementProblems), an unreadable CSV;
 * MappingError (exit 2) for a CSV that does not validate.
 */
export function prepareBatch(opts: BatchOptions): PreparedBatch {
  const csv = path.resolve(opts.csv);
  const paths: BatchPaths = {
    csv,
    input: path.resolve(opts.input),
    output: path.resolve(opts.output),
    db: path.resolve(opts.db ?? defaultStatePath(csv)),
    logDir: path.resolve(opts.logDir ?? defaultLogDir(csv)),
  };
  let inputStat: fs.Stats;
  try {
    inputStat = fs.statSync(paths.input);
  } catch {
    throw new UsageError(`input folder not found: ${opts.input}`);
  }
  if (!inputStat.isDirectory()) throw new UsageError(`--input is not a folder: ${opts.input}`);
  if (isInside(paths.output, paths.input)) throw new UsageError('--output must not be inside --input');
  if (fs.existsSync(paths.output) && !fs.statSync(paths.output).isDirectory()) {
    throw new UsageError(`--output exists and is not a folder: ${opts.output}`);
  }
  const problems = [...placementProblems(paths, opts), ...keyMaterialPathProblems(paths)];
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  const workerCount = Math.max(1, Math.floor(opts.workers ?? os.availableParallelism()));
  const guard = {
    leakGuardWarnOnly: warnOnlyTags(opts.leakGuardWarnOnly ?? [], '--leak-guard-warn-only', (m) => new UsageError(m)),
    testOnlyKeep: testOnlyKeep(
      process.env,
      (m) => new UsageError(m),
      (m) => process.stderr.write(`dicom-deid: warning: ${m}\n`),
    ),
  };
  // An unreadable CSV is a usage error; one that does not validate, a MappingError (both exit 2).
  const rows = readMappingFile(
    csv,
    (message) => new UsageError(message),
    (warning) => process.stderr.write(`dicom-deid: warning: ${warning}\n`),
  );
  return { paths, rows, workerCount, guard };
}

/**
 * Makes the audit log folder (--log-dir) and the state's folder (--db), so that one that cannot be
 * made is one line and exit 2 before the output is made and marked. Throws UsageError naming the
 * option and the cause in words.
 */
export function makeKeyMaterialFolders(paths: BatchPaths, opts: Pick<BatchOptions, 'logDir' | 'db'>): void {
  for (const [dir, option, given] of [
    [paths.logDir, '--log-dir', opts.logDir ?? paths.logDir],
    [path.dirname(paths.db), '--db', opts.db ?? paths.db],
  ] as const) {
    const existing = nearestExisting(dir);
    try {
      mkdirRecursiveSync(dir);
    } catch (e) {
      const why = noNewFolders(dir, existing, e) ?? describeSystemError(e);
      throw new UsageError(`cannot make the folder ${dir} (${option} ${given}): ${why}`);
    }
  }
}

/**
 * The state database could not be opened or created (a device, a read-only disk, not SQLite):
 * a UsageError (exit 2) naming --db; other errors (a newer schema...) as they are.
 */
export function stateOpenError(e: unknown, db: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.syscall === 'string')
    return new UsageError(`cannot open the state database ${db} (--db): ${describeSystemError(err)}`);
  if (typeof err?.code === 'string' && err.code.startsWith('SQLITE_')) {
    return new UsageError(`cannot open the state database ${db} (--db): ${err.message} (${err.code})`);
  }
  return e;
}

/**
 * Makes the output folder and checks that files can be written in it (one probe file, removed),
 * so that an output on a read-only or full disk, or in a folder this user may not write, is one
 * clear line before the run instead of one error per input file. Throws UsageError (exit 2)
 * naming --output and the cause in words ("the disk is read-only", "permission denied", "the disk is full").
 */
export function checkOutputWritable(paths: BatchPaths, opts: Pick<BatchOptions, 'output'>): void {
  const blocker = notAFolderOnTheWay(paths.output);
  if (blocker !== undefined) throw new UsageError(`--output ${opts.output} cannot be made: ${blocker} is not a folder`);
  const probe = path.join(paths.output, `.dicom-deid-write-check-${process.pid}`);
  const existing = nearestExisting(paths.output);
  try {
    mkdirRecursiveSync(paths.output);
    fs.writeFileSync(probe, 'x');
  } catch (e) {
    fs.rmSync(probe, { force: true });
    removeEmptyFoldersUpTo(paths.output, existing); // a refused run leaves nothing behind
    const noFolders = noNewFolders(paths.output, existing, e);
    if (noFolders) throw new UsageError(`--output ${opts.output} cannot be made: ${noFolders}`);
    throw new UsageError(`cannot write into --output ${opts.output}: ${describeSystemError(e)}`);
  } finally {
    try {
      fs.rmSync(probe, { force: true });
    } catch {
      // nothing was made there
    }
  }
}

/** The nearest path at or above `p` that exists (undefined if none can be seen). */
function nearestExisting(p: string): string | undefined {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    if (fs.existsSync(dir)) return dir;
    if (dir === path.dirname(dir)) return undefined;
  }
}

/**
 * Words for a mkdir that said ENOENT although its nearest existing parent `existing` is there: a
 * file system that takes no new folders (/proc, /sys). Undefined for any other failure.
 */
function noNewFolders(dir: string, existing: string | undefined, e: unknown): string | undefined {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || existing === undefined || fs.existsSync(dir)) return undefined;
  return `${existing} takes no new folders (a system folder?)`;
}

/** Removes `dir` and its parents below `stop` while they are empty (the folders a refused run made). */
function removeEmptyFoldersUpTo(dir: string, stop: string | undefined): void {
  for (let d = path.resolve(dir); stop !== undefined && d !== stop && d !== path.dirname(d); d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      return; // not empty, or not there: nothing more to undo
    }
  }
}

/** The nearest existing path at or above `p`, if it is not a folder (or `p` itself is one for a file). */
function notAFolderOnTheWay(p: string): string | undefined {
  for (let dir = p; ; dir = path.dirname(dir)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(dir);
    } catch {
      if (dir === path.dirname(dir)) return undefined;
      continue;
    }
    return st.isDirectory() ? undefined : dir;
  }
}

/** --db and --log-dir where a folder is a file, or the state a folder: one line each. */
function keyMaterialPathProblems(paths: BatchPaths): string[] {
  const problems: string[] = [];
  const logBlocker = notAFolderOnTheWay(paths.logDir);
  if (logBlocker !== undefined) {
    problems.push(`the audit log folder ${paths.logDir} cannot be made: ${logBlocker} is not a folder (see --log-dir)`);
  }
  let dbStat: fs.Stats | undefined;
  try {
    dbStat = fs.statSync(paths.db, { throwIfNoEntry: false });
  } catch {
    dbStat = undefined; // ENOTDIR: a file on the way, said below
  }
  if (dbStat?.isDirectory()) {
    problems.push(`the state database ${paths.db} is a folder: pass --db with a file name`);
  } else if (dbStat !== undefined && !dbStat.isFile()) {
    // SQLite would write its journal beside it (/dev/null-journal) and then fail.
    problems.push(`the state database ${paths.db} is a device or a pipe, not a file: pass --db with a file name`);
  } else {
    const dbBlocker = notAFolderOnTheWay(path.dirname(paths.db));
    if (dbBlocker !== undefined) {
      problems.push(`the state database ${paths.db} cannot be made: ${dbBlocker} is not a folder (see --db)`);
    }
  }
  return problems;
}

/**
 * What must not be inside the output tree, the one folder meant to be shared, as the node
 * refuses it (nodeConfig.ts): the raw scans, and the key material (the state, the audit log, the
 * mapping CSV). One line per problem, naming the flag that fixes it.
 */
function placementProblems(paths: BatchPaths, opts: BatchOptions): string[] {
  const problems: string[] = [];
  const own = path.join(opts.output, 'Anonymized_Data');
  if (isInside(paths.input, paths.output)) {
    problems.push(
      `--output ${opts.output} holds --input ${opts.input}: the research folders would be written beside the raw ` +
        `scans, and sharing the output would share them; give --output a folder of its own, e.g. --output ${own}`,
    );
    return problems;
  }
  const outside = path.dirname(paths.output);
  const csvInside = isInside(paths.csv, paths.output);
  if (csvInside) {
    problems.push(
      `the mapping CSV ${opts.csv} is inside --output ${opts.output}, the folder to be shared: it holds MRNs ` +
        `and accessions; give --output a folder of its own, e.g. --output ${own}, or move the CSV out of it`,
    );
  }
  // The default state and log folder are beside the CSV: moving the output fixes them too.
  if (isInside(paths.db, paths.output) && !(csvInside && opts.db === undefined)) {
    problems.push(
      `the state database ${paths.db} would be inside --output ${opts.output}, the folder to be shared: it holds ` +
        `the UID secret and identifiers; pass --db with a file outside it, e.g. --db ${path.join(outside, 'dicom-deid-state.sqlite')}`,
    );
  }
  if (isInside(paths.logDir, paths.output) && !(csvInside && opts.logDir === undefined)) {
    problems.push(
      `the audit log folder ${paths.logDir} would be inside --output ${opts.output}, the folder to be shared: the ` +
        `audit log maps source paths to research IDs; pass --log-dir with a folder outside it, e.g. --log-dir ${path.join(outside, 'dicom-deid-logs')}`,
    );
  }
  return problems;
}
