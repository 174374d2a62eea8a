// Helpers for the retrieve tests: made-up studies (pydicom), hospital PACS peers loaded with them
// (Orthanc, dcmtk's dcmqrscp), a node config for `dicom-deid retrieve`, and running the command.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { startOrthanc, track, type OrthancPeer, type Peer } from './forward-helpers.js';
import { CLI, CSV_HEADER, REPO, ensureBuilt, nodePaths } from './serve-helpers.js';

/** One made-up study (see test/fixtures/make_cohort.py). */
export interface CohortStudy {
  patientId: string;
  patientName?: string;
  accession?: string;
  studyUid: string;
  /** YYYYMMDD. */
  studyDate: string;
  modality?: 'CT' | 'MR';
  series?: number;
  instances?: number;
  /** Image rows = columns (default 16). */
  rows?: number;
  ts?: 'explicit' | 'implicit';
}

/** Writes the studies' instances into `dir`; returns their paths by study UID. */
export function makeCohort(dir: string, studies: CohortStudy[]): Map<string, string[]> {
  const out = execFileSync('/usr/bin/python3', [join(REPO, 'test', 'fixtures', 'make_cohort.py'), dir], {
    input: JSON.stringify({ studies }),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const byStudy = new Map<string, string[]>();
  for (const line of out.split('\n').filter((l) => l.trim() !== '')) {
    const r = JSON.parse(line) as { path: string; studyUid: string };
    byStudy.set(r.studyUid, [...(byStudy.get(r.studyUid) ?? []), r.path]);
  }
  return byStudy;
}

/** Stores files in Orthanc through its REST API (POST /instances). */
export async function loadOrthanc(peer: OrthancPeer, files: string[]): Promise<void> {
  for (const f of files) {
    const r = await fetch(`${peer.base}/instances`, { method: 'POST', body: readFileSync(f) });
    if (!r.ok) throw new Error(`Orthanc refused ${f}: ${r.status}`);
  }
}

/**
 * Starts Orthanc (AE title ORTHANC) under `dir` knowing the node as the C-MOVE destination DEID at
 * 127.0.0.1:`nodePort` (`settings` add Orthanc configuration), and stores `files` in it. Rejects
 * when Orthanc does not start or refuses a file.
 */
export async function startOrthancHolding(
  dir: string,
  nodePort: number,
  files: string[],
  settings: Record<string, unknown> = {},
): Promise<OrthancPeer> {
  const orthanc = await startOrthanc(dir, 'ORTHANC', {
    DicomModalities: { deid: ['DEID', '127.0.0.1', nodePort] },
    ...settings,
  });
  await loadOrthanc(orthanc, files);
  return orthanc;
}

export interface DcmqrscpPeer extends Peer {
  aeTitle: string;
}

/**
 * Starts dcmtk's dcmqrscp (fork mode: --single-process segfaults) on `port` with one storage
 * area `aeTitle` under `dir`, holding `files` (copied and indexed with dcmqridx), any calling AE
 * allowed; `hosts` are the move destinations it knows (HostTable: name = (AET, localhost, port)).
 */
export async function startDcmqrscp(
  dir: string,
  files: string[],
  o: { port: number; aeTitle?: string; hosts: { aeTitle: string; port: number }[] },
): Promise<DcmqrscpPeer> {
  const aeTitle = o.aeTitle ?? 'QRSCP';
  const db = join(dir, 'db');
  mkdirSync(db, { recursive: true });
  const copies = files.map((f, i) => {
    const to = join(db, `i${String(i).padStart(5, '0')}.dcm`);
    writeFileSync(to, readFileSync(f));
    return to;
  });
  for (let i = 0; i < copies.length; i += 200) execFileSync('dcmqridx', [db, ...copies.slice(i, i + 200)]);
  const cfg = join(dir, 'dcmqrscp.cfg');
  writeFileSync(
    cfg,
    [
      `NetworkTCPPort = ${o.port}`,
      'MaxPDUSize = 16384',
      'MaxAssociations = 16',
      'HostTable BEGIN',
      ...o.hosts.map((h, i) => `dest${i} = (${h.aeTitle}, localhost, ${h.port})`),
      'HostTable END',
      'VendorTable BEGIN',
      'VendorTable END',
      'AETable BEGIN',
      `${aeTitle} ${db} R (500, 1024mb) ANY`,
      'AETable END',
      '',
    ].join('\n'),
  );
  const proc = spawn('dcmqrscp', ['-c', cfg], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { ...(await track(proc, o.port, dir)), aeTitle };
}

export interface RetrieveNode {
  dir: string;
  configPath: string;
  csv: string;
  paths: { output: string; db: string; quarantine: string; spool: string; logDir: string };
}

/** A CSV row: MRN, accession (either may be ''), research ID, surgery date (YYYY-MM-DD). */
export type CsvRow = [mrn: string, accession: string, researchId: string, surgeryDate: string];

/**
 * Writes a node's config (AE title DEID on 127.0.0.1:`port`, the HTTP side on any free port, unless
 * `config` says otherwise) and mapping CSV under `dir`.
 */
export function retrieveNode(
  dir: string,
  port: number,
  rows: CsvRow[],
  config: Record<string, unknown> = {},
): RetrieveNode {
  mkdirSync(dir, { recursive: true });
  const csv = join(dir, 'mapping.csv');
  writeFileSync(csv, [CSV_HEADER, ...rows.map((r) => `${r[0]},${r[1]},${r[2]},${r[3]},2024-06-15,`), ''].join('\n'));
  const paths = nodePaths(dir);
  const configPath = join(dir, 'node.json');
  writeFileSync(
    configPath,
    // httpPort 0: the standalone run's HTTP side on any free port (11180 may be another node's).
    JSON.stringify(
      { aeTitle: 'DEID', host: '127.0.0.1', port, csv, ...paths, spoolReserveMB: 0, httpPort: 0, ...config },
      null,
      2,
    ),
  );
  return { dir, configPath, csv, paths };
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `dicom-deid retrieve ...args` to completion. */
export function runRetrieve(args: string[], cwd: string, timeoutMs = 120_000): CliResult {
  ensureBuilt();
  const r = spawnSync(process.execPath, [CLI, 'retrieve', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DEBUG: '' },
    timeout: timeoutMs,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Starts `dicom-deid retrieve ...args` in the background (for Ctrl-C and kill tests). */
export function spawnRetrieve(
  args: string[],
  cwd: string,
): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  ensureBuilt();
  const proc = spawn(process.execPath, [CLI, 'retrieve', ...args], {
    cwd,
    env: { ...process.env, DEBUG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited };
}

/** A report CSV's lines as objects keyed by header (BOM removed). */
export function readReport(path: string): Record<string, string>[] {
  return parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, ''), { columns: true }) as Record<string, string>[];
}

/** The report path a retrieve run printed. */
export function reportPathOf(stdout: string): string {
  const m = /report: (\S+\.csv)/.exec(stdout);
  if (!m) throw new Error(`no report path in:\n${stdout}`);
  return m[1]!;
}
