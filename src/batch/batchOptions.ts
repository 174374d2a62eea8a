// A batch run's options, and everything about them that can be a usage error, checked before any
// file is touched: the folders, where the key material goes, the mapping CSV.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MappingRow } from '../core/types.js';
import { UsageError } from '../errors.js';
import { readMappingFile } from '../io/mappingFile.js';
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
  workers?: number;
  quiet?: boolean;
  /** Progress bar (default: when stderr is a TTY and not quiet). */
  progress?: boolean;
  logger?: Logger;
  /** Makes the logger once the options are validated (nothing is written before). */
  createLog?: (logDir: string) => Logger;
  /** Where the summary goes (default stdout). */
  out?: (line: string) => void;
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

/** A validated run: its paths, the mapping CSV's rows, how many worker threads. */
export interface PreparedBatch {
  paths: BatchPaths;
  rows: MappingRow[];
  workerCount: number;
}

export function defaultStatePath(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-state.sqlite');
}

export function defaultLogDir(csv: string): string {
  return path.join(path.dirname(path.resolve(csv)), 'dicom-deid-logs');
}

/** True when `child` is `parent` or below it (absolute paths). */
export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Checks the options and reads the mapping CSV; writes nothing (warnings go to stderr).
 * Throws UsageError (exit 2) for a missing or wrong folder, an output inside the input, an
 * unreadable CSV; MappingError (exit 2) for a CSV that does not validate.
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
  const workerCount = Math.max(1, Math.floor(opts.workers ?? os.availableParallelism()));
  // An unreadable CSV is a usage error; one that does not validate, a MappingError (both exit 2).
  const rows = readMappingFile(
    csv,
    (message) => new UsageError(message),
    (warning) => process.stderr.write(`dicom-deid: warning: ${warning}\n`),
  );
  if (isInside(paths.logDir, paths.output) || isInside(paths.db, paths.output)) {
    // Key material inside the shareable tree: allowed (the user asked) but loudly.
    process.stderr.write(
      'dicom-deid: warning: the audit log or state database is inside the output folder; ' +
        'they hold identifiers: remove them before sharing the output\n',
    );
  }
  return { paths, rows, workerCount };
}
