// Ctrl-C during a batch run (the built CLI, dist/): it stops taking files, finishes those in
// flight, keeps the audit rows of everything it wrote, says how far it got and exits 130; the
// same command run again continues, and the two runs together give what one uninterrupted run
// gives, each input file accounted for exactly once.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLogs, auditRows, batchArgv, listTree } from '../helpers/batch-helpers.js';
import { ensureBuilt, REPO } from '../helpers/serve-helpers.js';

const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
let tmp: string;

/** Data rows in an audit log file as it is being written. */
function rowCount(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\r\n').length - 2;
  } catch {
    return 0;
  }
}

/** `node dist/cli.js batch` on the generated tree into `out`, with its own state and log folder. */
function batchArgs(out: string, db: string, logDir: string): string[] {
  return batchArgv([
    '--csv',
    path.join(tmp, 'mapping.csv'),
    '--input',
    path.join(tmp, 'Raw_Scans'),
    '--output',
    out,
    '--db',
    db,
    '--log-dir',
    logDir,
    '--workers',
    '2',
    '--copy-other-files',
  ]);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-batch-interrupt-'));
  // 3 patients x 4 sessions x 60 files, a file outside the sessions per patient, 12 notes, 1 unmatched.
  execFileSync(python, [path.join(REPO, 'test', 'fixtures', 'make_many.py'), tmp, '3', '4', '60'], { stdio: 'pipe' });
  ensureBuilt();
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch interrupted by SIGINT, then run again', () => {
  it('stops cleanly, and the rerun completes the same tree; every file is in exactly one audit log', async () => {
    const inputFiles = listTree(path.join(tmp, 'Raw_Scans'));
    expect(inputFiles.length).toBe(3 * 4 * 61 + 3 + 1);
    const out = path.join(tmp, 'Out');
    const db = path.join(tmp, 'state', 'state.sqlite');
    const logDir = path.join(tmp, 'logs');

    // SIGINT once the run has written some rows (the audit log is written as files finish).
    const child = spawn(process.execPath, batchArgs(out, db, logDir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let sent = false;
    const poll = setInterval(() => {
      const log = auditLogs(logDir)[0];
      if (!sent && log && rowCount(log) >= 40) {
        sent = true;
        child.kill('SIGINT');
      }
    }, 10);
    const code = await exited;
    clearInterval(poll);
    expect(sent, 'the run ended before it could be interrupted').toBe(true);
    expect(code, stderr).toBe(130);
    const m = /^dicom-deid: interrupted after (\d+) of (\d+) files; run the same command again to continue$/m.exec(
      stderr,
    );
    expect(m, stderr).not.toBeNull();
    const [done, total] = [Number(m![1]), Number(m![2])];
    expect(total).toBe(inputFiles.length);
    expect(done).toBeGreaterThanOrEqual(40);
    expect(done).toBeLessThan(total);
    expect(stderr).not.toMatch(/at .*\.js:\d+/);

    // The interrupted run's audit log holds a row for every file it wrote, each output whole.
    const [firstLog] = auditLogs(logDir);
    expect(stdout).toContain(`Audit log so far (contains identifiers, do not share): ${firstLog}`);
    const first = auditRows(firstLog!);
    expect(first.length).toBeGreaterThanOrEqual(40);
    // The output tree: the project marker (projectMarker.ts), written before any file, and the files.
    const [marker, ...writtenFirst] = listTree(out);
    expect(marker).toBe('.dicom-deid-project');
    expect(writtenFirst.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(writtenFirst).toEqual(
      first
        .filter((r) => r.status === 'ok')
        .map((r) => r.output_path!)
        .sort(),
    );
    for (const f of writtenFirst) {
      const r = spawnSync('dcmdump', ['-q', path.join(out, f)], { encoding: 'utf8' });
      expect({ f, status: r.status }).toEqual({ f, status: 0 });
    }
    // Its rows are in walk order (the workers finish files in any order).
    const sources = first.map((r) => r.source_path!);
    expect(sources).toEqual([...sources].sort((a, b) => inputFiles.indexOf(a) - inputFiles.indexOf(b)));
    expect(fs.readdirSync(logDir).some((f) => /^batch_resume_[0-9a-f]{16}\.jsonl$/.test(f))).toBe(true);

    // The same command again: it continues.
    const again = spawnSync(process.execPath, batchArgs(out, db, logDir), { encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(1); // Unknown_Pat has no row
    expect(again.stdout).toMatch(
      new RegExp(
        `continuing an interrupted run: \\d+ files were done then \\(their rows are in ${path.basename(firstLog!)}\\)`,
      ),
    );
    const logs = auditLogs(logDir);
    expect(logs).toHaveLength(2);
    const second = auditRows(logs[1]!);
    // Every input file in exactly one of the two audit logs.
    const all = [...first, ...second].map((r) => r.source_path!);
    expect(all.length).toBe(new Set(all).size);
    expect([...all].sort()).toEqual(inputFiles);
    expect(fs.readdirSync(logDir).some((f) => f.startsWith('batch_resume_'))).toBe(false);
    // The summary counts the whole run.
    expect(again.stdout).toMatch(/de-identified \(ok\): 723\n/);
    expect(again.stdout).toMatch(/RES91: 5 sessions: RES91_1 \(60 files\), .*RES91_5 \(1 file\)/);

    // The same tree as one uninterrupted run (same state: same session numbers and UIDs).
    const ref = path.join(tmp, 'Ref');
    const whole = spawnSync(process.execPath, batchArgs(ref, db, path.join(tmp, 'logs-ref')), { encoding: 'utf8' });
    expect(whole.status, whole.stderr).toBe(1);
    const finalTree = listTree(out);
    expect(finalTree).toEqual(listTree(ref));
    expect(finalTree.filter((f) => f.endsWith('/notes.txt'))).toHaveLength(15); // every session's row has Notes
    for (const f of finalTree) {
      expect({ f, same: fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(ref, f))) }).toEqual({
        f,
        same: true,
      });
    }
    // Each output file comes from exactly one ok (or copied) row, in one of the two logs.
    const outputs = [...first, ...second].map((r) => r.output_path).filter((p): p is string => !!p);
    expect(outputs.length).toBe(new Set(outputs).size);
    expect([...outputs].sort()).toEqual(
      finalTree.filter((f) => !f.endsWith('/notes.txt') && f !== '.dicom-deid-project'),
    );
  }, 180_000);

  it('a second signal stops at once: no partial file under a final name, and a rerun completes the tree', async () => {
    const out = path.join(tmp, 'OutTerm');
    const db = path.join(tmp, 'state-term', 'state.sqlite');
    const logDir = path.join(tmp, 'logs-term');
    const child = spawn(process.execPath, batchArgs(out, db, logDir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let sent = 0;
    const poll = setInterval(() => {
      const log = auditLogs(logDir)[0];
      if (sent === 0 && log && rowCount(log) >= 20) {
        // Two different signals, so that both are delivered (a second SIGTERM pending beside the
        // first would be one), the second before the files in flight can finish.
        child.kill('SIGTERM');
        child.kill('SIGINT');
        sent = 2;
      }
    }, 10);
    const code = await exited;
    clearInterval(poll);
    expect(sent, 'the run ended before it could be stopped').toBe(2);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('dicom-deid: stopped at once; run the same command again to continue');
    expect(stderr).not.toMatch(/at .*\.js:\d+/);
    // It says where the audit log is, as a first Ctrl-C does (found by a new-user trial).
    expect(stdout).toContain(`Audit log so far (contains identifiers, do not share): ${auditLogs(logDir)[0]}`);
    // Whatever has a final name is whole; an unfinished file can only be a .tmp.
    const written = listTree(out);
    expect(written.filter((f) => f.endsWith('.dcm')).length).toBeGreaterThan(0);
    for (const f of written.filter((f) => f.endsWith('.dcm'))) {
      const r = spawnSync('dcmdump', ['-q', path.join(out, f)], { encoding: 'utf8' });
      expect({ f, status: r.status }).toEqual({ f, status: 0 });
    }
    expect(
      written.every(
        (f) => f.endsWith('.dcm') || f.endsWith('.txt') || /\/\.[^/]+\.tmp$/.test(f) || f === '.dicom-deid-project',
      ),
    ).toBe(true);

    // The rerun continues (or starts over) and leaves the tree one uninterrupted run leaves.
    const again = spawnSync(process.execPath, batchArgs(out, db, logDir), { encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(1); // Unknown_Pat has no row
    const ref = path.join(tmp, 'RefTerm');
    const whole = spawnSync(process.execPath, batchArgs(ref, db, path.join(tmp, 'logs-ref-term')), {
      encoding: 'utf8',
    });
    expect(whole.status, whole.stderr).toBe(1);
    // The rerun wrote every file the stop cut short, and removed what was left of them.
    const finalTree = listTree(out);
    expect(finalTree.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(finalTree).toEqual(listTree(ref));
    for (const f of finalTree) {
      expect({ f, same: fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(ref, f))) }).toEqual({
        f,
        same: true,
      });
    }
  }, 180_000);
});
