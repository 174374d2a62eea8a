// What we do not change, we do not carry: `dicom-deid batch` (the built CLI) on instances with
// 64 MiB of pixel data (native after a 300 KiB private header, and encapsulated in 128
// fragments) writes exactly what the whole-buffer core makes of them, while its peak RSS
// (measured by /usr/bin/time) grows by far less than one instance over a run on a 0.5 MB
// instance: headers are read up to the pixel data, and the pixel data is copied by range, by the
// kernel, or streamed through a 1 MiB buffer (DICOM_DEID_COPY=stream).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deidentify } from '../../src/core/deidentify.js';
import { firstStudyPlan } from '../helpers/serve-helpers.js';

const repo = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repo, 'dist', 'cli.js');
const TIME = '/usr/bin/time';
const MiB = 1 << 20;
const CSV =
  'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\nMFMRN001,MFACC001,RES001,2024-01-01,2024-06-15,\n';
let tmp: string;

function makeInstance(file: string, frames: number, ...options: string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const args = [path.join(repo, 'scripts', 'make-multiframe.mjs'), file, '--frames', String(frames), ...options];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

/** Runs the batch on `input` into a fresh output and state; returns its peak RSS (bytes). */
function batch(
  input: string,
  name: string,
  env: Record<string, string> = {},
): { peak: number; out: string; db: string } {
  const out = path.join(tmp, `out_${name}`);
  const state = path.join(tmp, `state_${name}`);
  const db = path.join(state, 'state.sqlite');
  const args = ['--csv', path.join(tmp, 'mapping.csv'), '--input', input, '--output', out, '--db', db];
  const r = spawnSync(
    TIME,
    ['-f', 'PEAK_KB %M', process.execPath, cli, 'batch', ...args, '--log-dir', path.join(state, 'logs'), '--quiet'],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  );
  expect(r.status, r.stderr).toBe(0);
  const kb = /PEAK_KB (\d+)/.exec(r.stderr);
  expect(kb, r.stderr).not.toBeNull();
  return { peak: Number(kb![1]) * 1024, out, db };
}

/** What the whole-buffer core makes of `file` with the plan the batch used (its state's secret). */
async function wholeBuffer(file: string, db: string): Promise<Buffer> {
  return deidentify(fs.readFileSync(file), await firstStudyPlan(CSV, db)).bytes;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-memory-'));
  fs.writeFileSync(path.join(tmp, 'mapping.csv'), CSV);
  // Two small instances as there are two large ones: both runs use two workers (a worker's own
  // heap is not what is measured).
  makeInstance(path.join(tmp, 'small', 'P1', '2024-03-01_OT', 'MF.dcm'), 1);
  makeInstance(path.join(tmp, 'small', 'P1', '2024-03-01_OT', 'MF2.dcm'), 1, '--encapsulated');
  // A vendor header of 300 KiB before the pixel data: headers are read past their first bytes.
  makeInstance(path.join(tmp, 'large', 'P1', '2024-03-01_OT', 'MF_native.dcm'), 128, '--private-header', '307200');
  makeInstance(path.join(tmp, 'large', 'P1', '2024-03-01_OT', 'MF_encapsulated.dcm'), 128, '--encapsulated');
}, 60_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch on instances of 64 MiB of pixel data', () => {
  it('writes what the whole-buffer core writes, in far less memory than an instance', async () => {
    const small = batch(path.join(tmp, 'small'), 'small');
    expect(fs.readdirSync(path.join(small.out, 'RES001', 'RES001_1')).sort()).toEqual(['MF.dcm', 'MF2.dcm']);
    for (const [mode, env] of [
      ['kernel copy', {}],
      ['1 MiB stream', { DICOM_DEID_COPY: 'stream' }],
    ] as const) {
      const large = batch(path.join(tmp, 'large'), mode.replace(/ /g, '_'), env);
      for (const name of ['MF_native.dcm', 'MF_encapsulated.dcm']) {
        const input = path.join(tmp, 'large', 'P1', '2024-03-01_OT', name);
        expect(fs.statSync(input).size).toBeGreaterThan(64 * MiB);
        const output = fs.readFileSync(path.join(large.out, 'RES001', 'RES001_1', name));
        expect(output.includes('MFMRN001'), `${mode} ${name}`).toBe(false);
        expect(output.includes('PRIVATE AFTER PIXELS'), `${mode} ${name}`).toBe(false);
        expect(output.equals(await wholeBuffer(input, large.db)), `${mode} ${name}`).toBe(true);
      }
      // Two instances of 64 MiB each went through; the process grew by less than a quarter of one.
      expect(large.peak - small.peak, `${mode}: peak ${large.peak} vs ${small.peak} bytes`).toBeLessThan(16 * MiB);
    }
  }, 120_000);
});
