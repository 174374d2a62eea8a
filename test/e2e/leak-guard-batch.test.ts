// The leak guard in `dicom-deid batch` (the built CLI): the profile broken on purpose three ways
// (a rule wrongly keeping Other Patient IDs, through the test-only variable; a name in an
// unlisted public LO element; a kept SeriesDescription holding the surname). Each file is held:
// not written, audit status `leak-guard` naming the attribute and the kind, never the value, in a
// line of the summary, exit 1. --leak-guard-warn-only turns the listed attributes' hits into
// warnings: the file is written, and the audit row says so.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLogs, auditRows, runBatch } from '../helpers/batch-helpers.js';
import { REPO } from '../helpers/serve-helpers.js';

const python = '/usr/bin/python3';
/** The sample patient's values (make_leak_guard_samples.py): never in a log, a summary or a hit. */
const VALUES = ['Quill', 'QUILL', 'Ada', 'QX-ALT-5521', '01.03.2023', '20230301', 'Varga', 'Lind', 'Northwind'];
let tmp: string;

/** The sample tree and its mapping CSV, as `batch` arguments. */
const samples = () => ['--csv', path.join(tmp, 'samples', 'mapping.csv'), '--input', path.join(tmp, 'samples', 'tree')];

function batch(name: string, extra: string[] = [], env: Record<string, string> = {}) {
  const logDir = path.join(tmp, `${name}-logs`);
  const state = ['--db', path.join(tmp, `${name}.sqlite`), '--log-dir', logDir];
  const r = runBatch([...samples(), '--output', path.join(tmp, `${name}-out`), ...state, '--workers', '2', ...extra], {
    env,
  });
  const audit = auditRows(auditLogs(logDir)[0]!);
  const byFile = new Map(audit.map((row) => [path.basename(row.source_path!), row]));
  const runLog = fs.readFileSync(path.join(logDir, 'dicom-deid.log'), 'utf8');
  return { ...r, byFile, runLog, out: path.join(tmp, `${name}-out`) };
}

function written(out: string): string[] {
  return fs.existsSync(out)
    ? (fs.readdirSync(out, { recursive: true }) as string[]).filter((f) => f.endsWith('.dcm'))
    : [];
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leak-guard-batch-'));
  execFileSync(python, [path.join(REPO, 'test', 'fixtures', 'make_leak_guard_samples.py'), path.join(tmp, 'samples')]);
});

describe('batch: the leak guard', () => {
  it('holds each file the broken profile would leak, naming attribute and kind, never the value', () => {
    const r = batch('broken', [], { DICOM_DEID_TEST_KEEP_ATTRIBUTES: 'OtherPatientIDs' });
    expect(r.stderr).toContain('DICOM_DEID_TEST_KEEP_ATTRIBUTES is set');
    expect(r.status).toBe(1);
    const expected: Record<string, string> = {
      'other_ids.dcm': 'other-patient-id in (0010,1000) OtherPatientIDs',
      'unlisted_lo.dcm': 'patient-name in (0018,99A1)',
      'nested_lo.dcm': 'patient-name in (0008,1140)[0]/(0018,99A1)',
      'series_surname.dcm': 'patient-name in (0008,103E) SeriesDescription',
      'date_text.dcm': 'date in (0008,103E) SeriesDescription',
      'japanese.dcm': 'patient-name in (0008,1090) ManufacturerModelName',
    };
    for (const [file, what] of Object.entries(expected)) {
      const row = r.byFile.get(file)!;
      expect({ file, status: row.status, output: row.output_path }).toEqual({ file, status: 'leak-guard', output: '' });
      expect(row.message).toBe(`held by the leak guard, not written: ${what}`);
    }
    for (const file of ['clean.dcm', 'code_name.dcm', 'maker_site.dcm']) expect(r.byFile.get(file)!.status).toBe('ok');
    // Only those three were written; nothing of a held file is in the output tree.
    expect(
      written(r.out)
        .map((f) => path.basename(f))
        .sort(),
    ).toEqual(['clean.dcm', 'code_name.dcm', 'maker_site.dcm']);
    expect(r.stdout).toContain('held (leak guard):  6');
    for (const v of VALUES) {
      expect(r.stdout + r.stderr, v).not.toContain(v);
      expect(r.runLog, v).not.toContain(v);
      for (const row of r.byFile.values()) expect(row.message, v).not.toContain(v);
    }
    expect(r.runLog).toContain('"leak-guard":6');
  });

  it('without the broken rule, writes Other Patient IDs removed; warn-only attributes are written with a warning', () => {
    const r = batch('warn', ['--leak-guard-warn-only', 'SeriesDescription,0018,99A1']);
    expect(r.status).toBe(1); // japanese.dcm is still held
    expect(r.byFile.get('other_ids.dcm')!.status).toBe('ok');
    for (const [file, where] of [
      ['series_surname.dcm', '(0008,103E) SeriesDescription'],
      ['unlisted_lo.dcm', '(0018,99A1)'],
      ['nested_lo.dcm', '(0008,1140)[0]/(0018,99A1)'],
    ] as const) {
      const row = r.byFile.get(file)!;
      expect(row.status).toBe('ok');
      expect(row.message).toMatch(
        new RegExp(`^leak guard warning: (patient-name|date) in ${where.replace(/[()[\]]/g, '\\$&')}$`),
      );
      expect(fs.existsSync(path.join(r.out, row.output_path!))).toBe(true);
    }
    expect(r.byFile.get('japanese.dcm')!.status).toBe('leak-guard');
    // The summary says so too (found by a new-user trial: warnings were in the audit log only).
    expect(r.stdout).toMatch(/^Leak guard warnings: [3-9] written files \(/m);
  });

  it('refuses a warn-only entry that is no attribute, before touching anything', () => {
    const r = runBatch([
      ...samples(),
      '--output',
      path.join(tmp, 'bad-out'),
      '--leak-guard-warn-only',
      'SeriesDescriptoin',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      'dicom-deid: --leak-guard-warn-only: not an attribute: "SeriesDescriptoin" (give keywords such as StudyDescription or tags such as 0008,1030)',
    );
    expect(fs.existsSync(path.join(tmp, 'bad-out'))).toBe(false);
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
