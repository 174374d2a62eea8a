// End-to-end: `dicom-deid batch` (the built CLI, dist/) over a generated raw-scans tree.
// The tree (test/fixtures/make_tree.py) covers every lookup fallback, nested sequences and
// private tags with identifiers, big endian, deflate and compressed transfer syntaxes, a
// truncated file, DICOM-looking garbage, non-DICOM files, an unmatched patient, and a rerun
// with a new session folder.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInstanceKeys } from '../../src/core/deidentify.js';
import { latestAuditRows, listTree, runBatch, type AuditRow } from '../helpers/batch-helpers.js';
import { ensureBuilt, REPO } from '../helpers/serve-helpers.js';

const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

interface Manifest {
  files: Record<string, { status: string; matchedBy?: string; researchId?: string }>;
  identifiers: string[];
}

let tmp: string;

/** `batch` on the generated tree into `out` (2 workers; the audit log in <tmp>/dicom-deid-logs). */
function runTreeBatch(out: string, extra: string[] = []) {
  const csv = path.join(tmp, 'mapping.csv');
  return runBatch(['--csv', csv, '--input', path.join(tmp, 'Raw_Scans'), '--output', out, '--workers', '2', ...extra]);
}

function latestAudit(): AuditRow[] {
  return latestAuditRows(path.join(tmp, 'dicom-deid-logs'));
}

function manifest(): Manifest {
  return JSON.parse(fs.readFileSync(path.join(tmp, 'manifest.json'), 'utf8')) as Manifest;
}

/** The bytes to search: a deflated dataset is inflated first (meta header + inflated data). */
function searchable(bytes: Buffer): Buffer {
  if (bytes.length < 144 || bytes.toString('latin1', 128, 132) !== 'DICM') return bytes;
  if (bytes.indexOf('1.2.840.10008.1.2.1.99', 0, 'latin1') < 0) return bytes;
  const metaEnd = 132 + 12 + bytes.readUInt32LE(140); // (0002,0000) UL group length
  return Buffer.concat([bytes.subarray(0, metaEnd), zlib.inflateRawSync(bytes.subarray(metaEnd))]);
}

/** Every identifying string of the input, absent from every output path and byte. */
function assertNoIdentifiers(outDir: string): void {
  const ids = manifest().identifiers;
  expect(ids.length).toBeGreaterThan(50);
  const leaks: string[] = [];
  for (const rel of listTree(outDir)) {
    const bytes = searchable(fs.readFileSync(path.join(outDir, rel)));
    for (const id of ids) {
      if (rel.toLowerCase().includes(id.toLowerCase())) leaks.push(`${id} in path ${rel}`);
      if (bytes.indexOf(Buffer.from(id, 'latin1')) >= 0) leaks.push(`${id} in ${rel}`);
    }
  }
  expect(leaks).toEqual([]);
}

function assertDcmdumpReads(outDir: string): void {
  // Beside the DICOM files: notes.txt and the project marker (projectMarker.ts).
  const dicom = listTree(outDir).filter((f) => !f.endsWith('.txt') && f !== '.dicom-deid-project');
  expect(dicom.length).toBeGreaterThan(10);
  for (const rel of dicom) {
    // No error and no warning (W:): outputs are valid Part 10 whatever the input was.
    const r = spawnSync('dcmdump', [path.join(outDir, rel)], { encoding: 'utf8' });
    expect({ rel, status: r.status, err: r.stderr.split('\n').filter((l) => /^[EW]:/.test(l)) }).toEqual({
      rel,
      status: 0,
      err: [],
    });
  }
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-batch-e2e-'));
  execFileSync(python, [path.join(REPO, 'test', 'fixtures', 'make_tree.py'), tmp], { stdio: 'pipe' });
  ensureBuilt();
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch end to end', () => {
  let audit1: AuditRow[];
  const out1 = () => path.join(tmp, 'Anonymized_1');

  it('de-identifies the tree, logs one row per input file, exits 1 for skipped files', () => {
    const r = runTreeBatch(out1(), ['--copy-other-files']);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack traces
    expect(r.status).toBe(1);
    audit1 = latestAudit();
    const m = manifest();
    const bySource = new Map(audit1.map((row) => [row.source_path!, row]));
    expect([...bySource.keys()].sort()).toEqual(Object.keys(m.files).sort());
    for (const [rel, exp] of Object.entries(m.files)) {
      const row = bySource.get(rel)!;
      expect({ rel, status: row.status }).toEqual({ rel, status: exp.status });
      if (exp.status === 'ok') {
        expect({ rel, matchedBy: row.matched_by, researchId: row.research_id }).toEqual({
          rel,
          matchedBy: exp.matchedBy,
          researchId: exp.researchId,
        });
        expect(fs.existsSync(path.join(out1(), row.output_path!))).toBe(true);
      }
    }
    // Summary on stdout: counts and per-patient sessions, no source paths.
    expect(r.stdout).toMatch(/RES001: 3 sessions: RES001_1 \(4 files\), RES001_2 \(6 files\), RES001_3 \(1 file\)/);
    expect(r.stdout).not.toMatch(/Doe_John|MRN1001/);
    expect(r.stdout).toMatch(/not DICOM: +3 \(2 left out, 1 copied\)/);
  });

  it('names folders by research ID and session number, renames identifying names', () => {
    const out = (src: string) => audit1.find((r) => r.source_path === src)!.output_path;
    expect(out('Doe_John/2023-03-01_CT/IM0001.dcm')).toBe('RES001/RES001_1/IM0001.dcm');
    expect(out('Doe_John/2023-03-01_CT/MRN1001_slice2.dcm')).toMatch(/^RES001\/RES001_1\/2\.25\.\d+\.dcm$/);
    expect(out('Doe_John/2023-03-01_CT/series_MRN1001/IM0003')).toMatch(
      /^RES001\/RES001_1\/folder_[0-9a-f]{10}\/IM0003$/,
    );
    expect(out('Doe_John/2023-03-01_CT/localizer/IM0004.dcm')).toBe('RES001/RES001_1/localizer/IM0004.dcm');
    expect(out('Doe_John/2023-04-01_MR/be.dcm')).toBe('RES001/RES001_2/be.dcm');
    expect(out('Doe_John/loose_in_patient.dcm')).toBe('RES001/RES001_3/loose_in_patient.dcm');
    expect(out('Roe_Jane/visit1/a.dcm')).toBe('RES002/RES002_1/a.dcm');
    expect(out('toplevel.dcm')).toBe('RES002/RES002_2/toplevel.dcm');
    expect(out('P6/x.dcm')).toBe('RES006/RES006_1/x.dcm');
    // --copy-other-files: copied unless its name holds an identifier or it has no patient.
    expect(out('Doe_John/2023-03-01_CT/protocol.txt')).toBe('RES001/RES001_1/protocol.txt');
    expect(out('Doe_John/2023-03-01_CT/report_MRN1001.txt')).toBe('');
    expect(out('README.txt')).toBe('');
    // Notes of the row, in each of its session folders.
    for (const s of ['RES001_1', 'RES001_2', 'RES001_3']) {
      expect(fs.readFileSync(path.join(out1(), 'RES001', s, 'notes.txt'), 'utf8')).toContain(
        'Left side, "revision" case',
      );
    }
    expect(fs.existsSync(path.join(out1(), 'RES002', 'RES002_1', 'notes.txt'))).toBe(false);
    // Key material stays outside the output tree.
    expect(fs.existsSync(path.join(tmp, 'dicom-deid-state.sqlite'))).toBe(true);
    expect(listTree(out1()).some((f) => /deid_log|sqlite/.test(f))).toBe(false);
  });

  it('writes research IDs and new accessions into the files', () => {
    for (const row of audit1.filter((r) => r.status === 'ok')) {
      const keys = readInstanceKeys(fs.readFileSync(path.join(out1(), row.output_path!)));
      const session = row.output_path!.split('/')[1];
      expect({ f: row.output_path, pid: keys.patientId.trim(), acc: keys.accessionNumber.trim() }).toEqual({
        f: row.output_path,
        pid: row.research_id,
        acc: session,
      });
      expect(row.new_accession).toBe(session);
      expect(keys.sopInstanceUid).toMatch(/^2\.25\.\d+$/);
    }
  });

  it('leaves no identifying value anywhere in the output', () => {
    assertNoIdentifiers(out1());
  });

  it('writes files dcmdump reads without an error or a warning', () => {
    assertDcmdumpReads(out1());
  });

  it('reruns with a new session folder: same numbers and UIDs for old files, next free for new', () => {
    execFileSync(python, [path.join(REPO, 'test', 'fixtures', 'make_tree.py'), tmp, '--rerun'], { stdio: 'pipe' });
    const out2 = path.join(tmp, 'Anonymized_2');
    const r = runTreeBatch(out2, ['--quiet']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const audit2 = latestAudit();
    for (const row of audit1.filter((x) => x.status === 'ok' && x.output_path!.endsWith('.dcm'))) {
      const again = audit2.find((x) => x.source_path === row.source_path)!;
      expect(again.output_path).toBe(row.output_path);
      const k1 = readInstanceKeys(fs.readFileSync(path.join(out1(), row.output_path!)));
      const k2 = readInstanceKeys(fs.readFileSync(path.join(out2, row.output_path!)));
      expect(k2.sopInstanceUid).toBe(k1.sopInstanceUid);
      expect(k2.studyInstanceUid).toBe(k1.studyInstanceUid);
    }
    const added = audit2.find((x) => x.source_path === 'Doe_John/2023-02-01_XR/xr.dcm')!;
    expect(added.status).toBe('ok');
    expect(added.output_path).toBe('RES001/RES001_4/xr.dcm');
    assertNoIdentifiers(out2);
  });
});
