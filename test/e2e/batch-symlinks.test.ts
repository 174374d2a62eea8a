// Batch on input trees with symbolic links (the built CLI, dist/): a session or patient folder
// linked in from elsewhere is walked like a folder that is there (found by a new-user trial: its
// files were skipped without a trace); a link to a folder above it, a cycle of links and a link to
// nothing are one audit row each, never a hang. Names, IDs and UIDs are made up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latestAuditRows, listTree, runBatch } from '../helpers/batch-helpers.js';
import { tinyMrInstance } from '../helpers/dicomBytes.js';

let tmp = '';
let sop = 0;

/** An MR instance of made-up patient `mrn` in study `study`, as Part 10. */
function instance(mrn: string, study: string): Buffer {
  return tinyMrInstance({
    sopUid: `1.2.826.0.1.3680043.9.7777.2.${++sop}`,
    study,
    patientName: 'Roe^Jane',
    patientId: mrn,
  });
}

function write(rel: string, bytes: Buffer): void {
  const file = path.join(tmp, ...rel.split('/'));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

function link(target: string, rel: string): void {
  const at = path.join(tmp, ...rel.split('/'));
  fs.mkdirSync(path.dirname(at), { recursive: true });
  fs.symlinkSync(target, at);
}

function run(input: string, out: string, extra: string[] = []) {
  const from = ['--csv', path.join(tmp, 'mapping.csv'), '--input', path.join(tmp, input)];
  return runBatch([...from, '--output', path.join(tmp, out), '--workers', '2', ...extra], { timeoutMs: 60_000 });
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-batch-symlinks-'));
  fs.writeFileSync(
    path.join(tmp, 'mapping.csv'),
    'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\nMRN5151,,RES_R,2024-01-01,2024-06-15,\n',
  );
  // 6 scans on "another disk", linked into the input as a patient folder.
  for (const [session, study] of [
    ['s1', '1.2.826.0.1.3680043.9.7777.1'],
    ['s2', '1.2.826.0.1.3680043.9.7777.3'],
  ] as const) {
    for (const name of ['a', 'b', 'c'])
      write(`Elsewhere/Raw Scans/Roe_Jane/${session}/${name}.dcm`, instance('MRN5151', study));
  }
  link(path.join(tmp, 'Elsewhere', 'Raw Scans', 'Roe_Jane'), 'Raw/Roe_Jane');
  // A tree with loops and links to nothing, around one real scan.
  write('Loops/Roe_J/s1/a.dcm', instance('MRN5151', '1.2.826.0.1.3680043.9.7777.4'));
  link('..', 'Loops/Roe_J/s1/up');
  link(path.join(tmp, 'no-such-folder'), 'Loops/Roe_J/s1/gone');
  link(path.join(tmp, 'no-such-file.dcm'), 'Loops/Roe_J/s1/gone.dcm');
  fs.mkdirSync(path.join(tmp, 'Loops', 'Cycle', 'A'), { recursive: true });
  fs.mkdirSync(path.join(tmp, 'Loops', 'Cycle', 'B'), { recursive: true });
  link('../B', 'Loops/Cycle/A/toB');
  link('../A', 'Loops/Cycle/B/toA');
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch on input with symbolic links', () => {
  it('a patient folder that is a link is walked: its 6 files are de-identified and audited', () => {
    const r = run('Raw', 'Out');
    expect(r.stderr).toBe('');
    expect(r.status, r.stdout).toBe(0);
    const rows = latestAuditRows(path.join(tmp, 'dicom-deid-logs'));
    expect(rows.map((x) => [x.source_path, x.status])).toEqual(
      ['s1/a', 's1/b', 's1/c', 's2/a', 's2/b', 's2/c'].map((f) => [`Roe_Jane/${f}.dcm`, 'ok']),
    );
    expect(listTree(path.join(tmp, 'Out')).filter((f) => f.endsWith('.dcm'))).toHaveLength(6);
    expect(r.stdout).toMatch(/de-identified \(ok\): 6/);
  });

  it('the dry run plans the linked folder too', () => {
    const r = run('Raw', 'OutDry', ['--dry-run', '--db', path.join(tmp, 'dry.sqlite')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/A run would de-identify 6 of 6 files/);
  });

  it('a link to a folder above it, a cycle of links and links to nothing: one row each, the rest is done', () => {
    const started = Date.now();
    const r = run('Loops', 'OutLoops', ['--log-dir', path.join(tmp, 'loop-logs')]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.stderr).toBe('');
    expect(r.status, r.stdout).toBe(1);
    const rows = latestAuditRows(path.join(tmp, 'loop-logs'));
    expect(rows.map((x) => [x.source_path, x.status, x.message])).toEqual([
      ['Cycle/A/toB', 'error', 'a second path to a folder already walked: not walked again'],
      ['Cycle/B/toA', 'error', 'a second path to a folder already walked: not walked again'],
      ['Roe_J/s1/a.dcm', 'ok', ''],
      ['Roe_J/s1/gone', 'error', 'a link to nothing: not followed'],
      ['Roe_J/s1/gone.dcm', 'error', 'a link to nothing: not followed'],
      ['Roe_J/s1/up', 'error', 'a link to a folder that holds it (a loop): not followed'],
    ]);
  });

  it('a link to a folder holding the input (/), to a sibling session, or to the audit log: one row each, at once', () => {
    // A second new-user trial: a link to / walked the whole disk, deaf to Ctrl-C; 'latest -> s1'
    // wrote the session twice; a link to the CSV's folder copied the audit log (day offsets) out.
    fs.mkdirSync(path.join(tmp, 'Odd', 'Roe_Jane'), { recursive: true });
    fs.cpSync(path.join(tmp, 'Elsewhere', 'Raw Scans', 'Roe_Jane', 's1'), path.join(tmp, 'Odd', 'Roe_Jane', 's1'), {
      recursive: true,
    });
    link('/', 'Odd/Roe_Jane/s1/root');
    link(path.join(tmp, 'Odd', 'Roe_Jane', 's1'), 'Odd/Roe_Jane/latest');
    fs.mkdirSync(path.join(tmp, 'odd-logs'));
    fs.writeFileSync(path.join(tmp, 'odd-logs', 'old.txt'), 'day offsets\n');
    link(path.join(tmp, 'odd-logs'), 'Odd/Roe_Jane/s1/keys');
    const started = Date.now();
    const r = run('Odd', 'OutOdd', ['--log-dir', path.join(tmp, 'odd-logs'), '--copy-other-files']);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const rows = latestAuditRows(path.join(tmp, 'odd-logs'));
    const why = (rel: string) => rows.find((x) => x.source_path === rel)?.message;
    expect(why('Roe_Jane/s1/root')).toBe('a link to a folder that holds the input (a loop): not followed');
    expect(why('Roe_Jane/latest')).toBe('a second path to a folder already walked: not walked again');
    expect(why('Roe_Jane/s1/keys')).toBe(
      'the output folder or a folder of key material (audit log, state), reached through a link: not walked',
    );
    expect(rows.filter((x) => x.status === 'ok')).toHaveLength(3);
    expect(listTree(path.join(tmp, 'OutOdd')).some((f) => f.includes('old.txt'))).toBe(false);
  });

  it('a link to the output folder is not walked (the run would read what it writes)', () => {
    fs.mkdirSync(path.join(tmp, 'Out2'));
    fs.mkdirSync(path.join(tmp, 'WithOut', 'Roe_Jane'), { recursive: true });
    fs.cpSync(path.join(tmp, 'Elsewhere', 'Raw Scans', 'Roe_Jane', 's1'), path.join(tmp, 'WithOut', 'Roe_Jane', 's1'), {
      recursive: true,
    });
    link(path.join(tmp, 'Out2'), 'WithOut/Roe_Jane/s1/out');
    const r = run('WithOut', 'Out2', ['--log-dir', path.join(tmp, 'out-logs')]);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const rows = latestAuditRows(path.join(tmp, 'out-logs'));
    expect(rows.find((x) => x.source_path === 'Roe_Jane/s1/out')).toMatchObject({
      status: 'error',
      message: 'the output folder or a folder of key material (audit log, state), reached through a link: not walked',
    });
    expect(rows.filter((x) => x.status === 'ok')).toHaveLength(3);
  });
});
