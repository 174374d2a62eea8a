// Batch into an output it cannot write (the built CLI, dist/): a read-only disk, a full disk and a
// folder this user may not write are one clear line and exit 2 before the run; a disk that fills
// during the run fails the files that no longer fit, one plain-word row each ("the disk is
// full", never ENOSPC), keeps going, and leaves no partial file. The disks are tmpfs mounts
// (mounting needs root: skipped with the reason otherwise).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/forward-helpers.js';
import { CLI, ensureBuilt, listFilesRecursive, REPO } from '../helpers/serve-helpers.js';
import { mountTmpfs, tmpfsUnavailable, unmountAllTmpfs } from '../helpers/tmpfs-helpers.js';

let root = '';
/** Why tmpfs cannot be mounted here ('' when it can). */
let cannotMount = '';

/** Runs `dicom-deid batch` on the tree (8 CT slices of 0.5 MB) into `output`; `as` runs it as another user. */
function batch(
  output: string,
  name: string,
  as: string[] = [],
  where: { db?: string; logDir?: string; tree?: string; extra?: string[] } = {},
) {
  const tree = where.tree ?? join(root, 'tree');
  const args = [CLI, 'batch', '--csv', join(tree, 'mapping.csv'), '--input', join(tree, 'Raw_Scans')];
  args.push(...(where.extra ?? []));
  args.push('--output', output, '--db', where.db ?? join(root, name, 'state.sqlite'));
  args.push('--log-dir', where.logDir ?? join(root, name, 'logs'));
  const [cmd, ...rest] = as.length > 0 ? [...as, process.execPath, ...args] : [process.execPath, ...args];
  const r = spawnSync(cmd!, rest, { encoding: 'utf8', env: { ...process.env, DEBUG: '' }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function auditRows(name: string): string[] {
  const dir = join(root, name, 'logs');
  const log = readdirSync(dir).find((f) => f.startsWith('deid_log_'));
  expect(log, `no audit log in ${dir}`).toBeDefined();
  return readFileSync(join(dir, log!), 'utf8').trim().split(/\r?\n/).slice(1);
}

beforeAll(() => {
  ensureBuilt();
  root = tempDir('batch-disk');
  mkdirSync(join(root, 'tree'));
  execFileSync('/usr/bin/python3', [join(REPO, 'scripts', 'bench-batch-tree.py'), join(root, 'tree'), '8'], {
    stdio: 'pipe',
  });
  cannotMount = tmpfsUnavailable(join(root, 'probe'));
});

afterAll(() => {
  unmountAllTmpfs();
  rmSync(root, { recursive: true, force: true });
});

describe('batch into an output it cannot write', () => {
  it('a read-only disk: one line, exit 2, before the run', (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    mountTmpfs(join(root, 'ro'), 'size=1m,ro');
    const r = batch(join(root, 'ro', 'Anonymized_Data'), 'ro-state');
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      `dicom-deid: cannot write into --output ${join(root, 'ro', 'Anonymized_Data')}: the disk is read-only\n`,
    );
    const logs = join(root, 'ro-state', 'logs'); // made before the output is checked; no run, so no audit log
    expect(existsSync(logs) ? readdirSync(logs).filter((f) => f.startsWith('deid_log_')) : []).toEqual([]);
  });

  it('a disk already full: one line, exit 2', (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    mountTmpfs(join(root, 'full'), 'size=64k');
    writeFileSync(join(root, 'full', 'filler'), Buffer.alloc(64 * 1024)); // every page of it
    const r = batch(join(root, 'full', 'out'), 'full-state');
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe(`dicom-deid: cannot write into --output ${join(root, 'full', 'out')}: the disk is full\n`);
    // The refused run leaves no empty output folder behind (found at the last stop).
    expect(existsSync(join(root, 'full', 'out'))).toBe(false);
  });

  it('a folder this user may not write: one line, exit 2', (ctx) => {
    const setpriv = spawnSync('setpriv', ['--version']);
    if (process.getuid?.() !== 0 || setpriv.status !== 0) ctx.skip('needs root and setpriv to run as another user');
    const locked = join(root, 'locked');
    mkdirSync(locked, { mode: 0o755 });
    mkdirSync(join(root, 'nobody-state'), { mode: 0o777 });
    chmodSync(join(root, 'nobody-state'), 0o777);
    for (const dir of [root, join(root, 'tree')]) chmodSync(dir, 0o755);
    const r = batch(join(locked, 'out'), 'nobody-state', [
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
    ]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe(`dicom-deid: cannot write into --output ${join(locked, 'out')}: permission denied\n`);
  });

  it('an output under /proc or below a file: one line, exit 2, at once (found by a new-user trial: it hung)', () => {
    if (process.platform !== 'linux') return;
    const proc = batch('/proc/dicom-deid-no-such/out', 'proc-state');
    expect(proc.status, proc.stderr).toBe(2);
    expect(proc.stderr).toBe(
      'dicom-deid: --output /proc/dicom-deid-no-such/out cannot be made: /proc takes no new folders (a system folder?)\n',
    );
    const underFile = batch('/dev/null/out', 'devnull-state');
    expect(underFile.status, underFile.stderr).toBe(2);
    expect(underFile.stderr).toBe('dicom-deid: --output /dev/null/out cannot be made: /dev/null is not a folder\n');
  });

  it('a --log-dir or --db that cannot be made: one line, exit 2, and no output made or marked (found by a new-user trial)', () => {
    if (process.platform !== 'linux') return;
    const out = join(root, 'never-made');
    const logs = batch(out, 'logs-state', [], { logDir: '/proc/dicom-deid-no-such/logs' });
    expect(logs.status, logs.stderr).toBe(2);
    expect(logs.stderr).toBe(
      'dicom-deid: cannot make the folder /proc/dicom-deid-no-such/logs (--log-dir /proc/dicom-deid-no-such/logs): /proc takes no new folders (a system folder?)\n',
    );
    const db = batch(out, 'db-state', [], { db: '/proc/dicom-deid-no-such/state.sqlite' });
    expect(db.status, db.stderr).toBe(2);
    expect(db.stderr).toBe(
      'dicom-deid: cannot make the folder /proc/dicom-deid-no-such (--db /proc/dicom-deid-no-such/state.sqlite): /proc takes no new folders (a system folder?)\n',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('a --db that is a device: one line, exit 2, and SQLite leaves no journal beside it (/dev/null-journal)', () => {
    if (process.platform !== 'linux') return;
    const before = readdirSync('/dev').filter((f) => f.startsWith('null'));
    const r = batch(join(root, 'dev-db-out'), 'dev-db-state', [], { db: '/dev/null' });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      'dicom-deid: the state database /dev/null is a device or a pipe, not a file: pass --db with a file name\n',
    );
    expect(readdirSync('/dev').filter((f) => f.startsWith('null'))).toEqual(before);
    expect(existsSync(join(root, 'dev-db-out'))).toBe(false);
  });

  it('a --db that is not SQLite: exit 2, and none of the folders the run made is left (found by a new-user trial)', () => {
    const base = join(root, 'notadb');
    mkdirSync(base);
    const db = join(base, 'mapping.csv');
    writeFileSync(db, 'MRN,Accession,New_Patient_ID\n'.repeat(10)); // not a state database
    const output = join(base, 'new', 'out');
    const logDir = join(base, 'new-logs', 'logs');
    const r = batch(output, 'notadb-state', [], { db, logDir });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /^dicom-deid: cannot open the state database .*: .*not an SQLite database \(SQLITE_NOTADB\)\n$/,
    );
    expect(readdirSync(base)).toEqual(['mapping.csv']);
  });

  it('a disk that fills during the run: the files that fit are written whole, the rest fail in words', (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    const output = join(root, 'small', 'out');
    mountTmpfs(join(root, 'small'), 'size=2m'); // 3 of the 8 slices of 0.5 MB fit
    const r = batch(output, 'small-state');
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/ENOSPC|at .*\.js:\d+/);
    const rows = auditRows('small-state');
    expect(rows).toHaveLength(8);
    const ok = rows.filter((l) => l.split(',')[1] === 'ok');
    const full = rows.filter((l) => l.endsWith(',not written: the disk is full'));
    expect(ok.length).toBeGreaterThan(0);
    expect(full.length).toBeGreaterThan(0);
    expect(ok.length + full.length).toBe(8);
    // What has a name is whole; nothing half-written is left.
    const written = listFilesRecursive(output);
    expect(written).toHaveLength(ok.length);
    for (const f of written) {
      expect(f).toMatch(/\.dcm$/);
      expect(spawnSync('dcmdump', ['-q', f]).status, f).toBe(0);
    }
  });

  it('a disk that fills before notes.txt and the other files: each is a line of the summary, exit 1 (found by a new-user trial: ENOSPC crash)', (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    // The same tree, with Notes on every mapping row and a text file to copy (--copy-other-files).
    const tree = join(root, 'notes-tree');
    cpSync(join(root, 'tree'), tree, { recursive: true });
    const csv = readFileSync(join(tree, 'mapping.csv'), 'utf8');
    writeFileSync(join(tree, 'mapping.csv'), csv.replace(/,\n/g, ',Left side revision\n'));
    writeFileSync(join(tree, 'Raw_Scans', 'Patient_0', '2023-01-01_CT', 'protocol.txt'), 'protocol: standard knee\n');
    // Room for a few files' inodes only: once the instances took them, nothing more can be made,
    // whatever the order the workers write in.
    const output = join(root, 'few-inodes', 'out');
    mountTmpfs(join(root, 'few-inodes'), 'size=8m,nr_inodes=8');
    const r = batch(output, 'few-inodes-state', [], { tree, extra: ['--copy-other-files'] });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr + r.stdout).not.toMatch(/ENOSPC|at .*\.js:\d+/);
    const rows = auditRows('few-inodes-state');
    const ok = rows.filter((l) => l.split(',')[1] === 'ok');
    expect(ok.length).toBeGreaterThan(0);
    expect(rows.filter((l) => l.endsWith(',not written: the disk is full')).length).toBeGreaterThan(0);
    // Every session with a written file has Notes: its notes.txt is one line of the summary.
    const sessions = new Set(ok.map((l) => l.split(',')[6]!.split('/').slice(0, 2).join('/')));
    const notWritten = r.stdout.split('\n').filter((l) => l.endsWith(': the disk is full') && l.startsWith('  BENCH'));
    expect(notWritten.filter((l) => l.endsWith('/notes.txt: the disk is full')).sort()).toEqual(
      [...sessions].map((s) => `  ${s}/notes.txt: the disk is full`).sort(),
    );
    expect(r.stdout).toMatch(/^Not written \(\d+ files; run the same command again once fixed\):$/m);
    expect(r.stdout).toMatch(/^Audit log \(contains identifiers, do not share\): /m);
  });

  it('a log folder that fills: the run stops with one line naming the audit log, exit 1, no ENOSPC, no stack', (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    const tree = join(root, 'tree60');
    mkdirSync(tree);
    execFileSync('/usr/bin/python3', [join(REPO, 'scripts', 'bench-batch-tree.py'), tree, '60'], { stdio: 'pipe' });
    const logDir = join(root, 'small-logs');
    mountTmpfs(logDir, 'size=12k'); // three pages: the run log's, the journal's, the audit log's first
    const r = batch(join(root, 'logs-full-out'), 'logs-full-state', [], { tree, logDir });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/ENOSPC|at .*\.js:\d+/);
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(
      new RegExp(`^dicom-deid: cannot write the audit log ${logDir}/deid_log_\\d{8}_\\d{6}\\.csv: the disk is full$`),
    );
  });
});
