// Helpers for end-to-end tests of `dicom-deid batch` as a real process (the built CLI, dist/):
// write an input tree with pydicom, run the CLI, list the tree it wrote, read its audit log.
//
//   writeNamedTree(tmp, { root: join(tmp, 'RAW'), files: [{ rel: 'A/S1/a.dcm', patientId: ... }] });
//   const r = runBatch(['--csv', csv, '--input', join(tmp, 'RAW'), '--output', out]);
//   const rows = auditRows(auditLogs(join(tmp, 'dicom-deid-logs'))[0]!);

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { CLI, ensureBuilt, REPO } from './serve-helpers.js';

/** One audit log row, by column name (source_path, output_path, status, ...). */
export type AuditRow = Record<string, string>;

/** The arguments for `spawn(process.execPath, ...)` that run `dist/cli.js batch ...args`. */
export function batchArgv(args: string[]): string[] {
  return [CLI, 'batch', ...args];
}

/**
 * Runs `node dist/cli.js batch ...args` to completion (dist/ built first if missing), with DEBUG
 * unset and `env` added. No time limit unless `timeoutMs` is given (a killed run has status null).
 * Never throws.
 */
export function runBatch(
  args: string[],
  o: { timeoutMs?: number; env?: Record<string, string> } = {},
): { status: number | null; stdout: string; stderr: string } {
  ensureBuilt();
  const r = spawnSync(process.execPath, batchArgv(args), {
    encoding: 'utf8',
    env: { ...process.env, DEBUG: '', ...o.env },
    timeout: o.timeoutMs,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Writes `<dir>/spec.json` and runs test/fixtures/make_named_tree.py on it: pydicom writes each
 * `spec.files[i]` ({ rel, patientId, accession, patientName, charset, ... }) under `spec.root`.
 * Throws (execFileSync's error, with the script's stderr) when the script fails.
 */
export function writeNamedTree(dir: string, spec: { root: string; files: object[] }): void {
  const specPath = path.join(dir, 'spec.json');
  fs.writeFileSync(specPath, JSON.stringify(spec));
  execFileSync('/usr/bin/python3', [path.join(REPO, 'test', 'fixtures', 'make_named_tree.py'), specPath], {
    stdio: 'pipe',
  });
}

/**
 * Every regular file below `root`, as `/`-separated paths relative to it, sorted. Throws ENOENT
 * when `root` does not exist (a tree that should have been written was not).
 */
export function listTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listTree(root, r));
    else out.push(r);
  }
  return out.sort();
}

/**
 * The audit logs (`deid_log_*.csv`) in `logDir`, full paths, oldest first (by creation time, then
 * name); empty when the folder does not exist yet.
 */
export function auditLogs(logDir: string): string[] {
  if (!fs.existsSync(logDir)) return [];
  return fs
    .readdirSync(logDir)
    .filter((f) => /^deid_log_.*\.csv$/.test(f))
    .map((f) => path.join(logDir, f))
    .sort((a, b) => fs.statSync(a).birthtimeMs - fs.statSync(b).birthtimeMs || (a < b ? -1 : 1));
}

/** The rows of one audit log file (UTF-8 with BOM, CRLF), by column name. */
export function auditRows(file: string): AuditRow[] {
  return parse(fs.readFileSync(file, 'utf8'), { columns: true, bom: true, skip_empty_lines: true }) as AuditRow[];
}

/** The rows of the most recently modified audit log in `logDir`; throws when there is none. */
export function latestAuditRows(logDir: string): AuditRow[] {
  const files = auditLogs(logDir).sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs);
  if (files.length === 0) throw new Error(`no audit log in ${logDir}`);
  return auditRows(files[files.length - 1]!);
}
