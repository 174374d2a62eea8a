// Batch on file and folder names holding control characters (the built CLI, dist/): the dry run's
// plan and the summary show them escaped (`\x0a`, `\x1b`), so a name never splits a line or
// reaches the terminal as an escape sequence (found by a new-user trial); the audit log keeps the
// real names and stays valid CSV. Names, IDs and UIDs are made up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeAet } from '../../src/node/receiver/associationPolicy.js';
import { escapeControlCharacters } from '../../src/printable.js';
import { latestAuditRows, runBatch } from '../helpers/batch-helpers.js';
import { tinyMrInstance } from '../helpers/dicomBytes.js';

let tmp = '';
const FOLDER = 'Doe\nJohn/s\n1';
const RED = '\x1b[31mred.txt';

function instance(): Buffer {
  return tinyMrInstance({
    sopUid: '1.2.826.0.1.3680043.9.6666.2.1',
    study: '1.2.826.0.1.3680043.9.6666.1',
    patientName: 'Doe^John',
    patientId: 'MRN3131',
  });
}

function run(out: string, extra: string[] = []) {
  const from = ['--csv', path.join(tmp, 'mapping.csv'), '--input', path.join(tmp, 'Raw')];
  return runBatch([...from, '--output', path.join(tmp, out), '--workers', '1', ...extra], { timeoutMs: 60_000 });
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-batch-control-'));
  fs.writeFileSync(
    path.join(tmp, 'mapping.csv'),
    'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\nMRN3131,,RES_N,2024-01-01,2024-06-15,\n',
  );
  const dir = path.join(tmp, 'Raw', ...FOLDER.split('/'));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.dcm'), instance());
  fs.writeFileSync(path.join(dir, RED), 'a note\n');
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch on names with control characters', () => {
  it('one escaping helper: control characters as \\xNN, other scripts as they are; AE titles as before', () => {
    expect(escapeControlCharacters('Doe\nJohn\x1b[31m\x7f\x85 Müller 李')).toBe(
      'Doe\\x0aJohn\\x1b[31m\\x7f\\x85 Müller 李',
    );
    expect(escapeAet('EVIL\x1b[2J\\É')).toBe('EVIL\\x1b[2J\\x5c\\xc9');
  });

  it('the dry run plan shows them escaped, one line per entry', () => {
    const r = run('OutDry', ['--dry-run', '--db', path.join(tmp, 'dry.sqlite')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('  Doe\\x0aJohn/s\\x0a1/\\x1b[31mred.txt: not DICOM: left out');
    expect(lines.some((l) => l.startsWith('  Doe\\x0aJohn/s\\x0a1 -> RES_N_1 (new): 2 files'))).toBe(true);
    expect(lines.filter((l) => l.startsWith('John') || l.startsWith('1'))).toEqual([]);
  });

  it('a run prints nothing raw; the audit log keeps the real names as valid CSV', () => {
    const r = run('Out', ['--copy-other-files']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    const rows = latestAuditRows(path.join(tmp, 'dicom-deid-logs'));
    expect(rows.map((x) => [x.source_path, x.status])).toEqual([
      [`${FOLDER}/${RED}`, 'not-dicom'],
      [`${FOLDER}/a.dcm`, 'ok'],
    ]);
    expect(rows[1]!.output_path).toMatch(/^RES_N\/RES_N_1\//);
  });

  it('an error naming such a path says it escaped too', () => {
    const r = runBatch([
      '--csv',
      path.join(tmp, 'mapping.csv'),
      '--input',
      path.join(tmp, '\x1b[2JGone'),
      '--output',
      path.join(tmp, 'OutGone'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`dicom-deid: input folder not found: ${path.join(tmp, '\\x1b[2JGone')}\n`);
  });
});
