// What we do not change, we do not carry, in the node (issue 15): a node (the built CLI) receives
// from storescu an instance with 256 MiB of pixel data (native, after a 300 KiB private header:
// larger than a journal segment, so spooled as a file of its own) and one with 20 MiB (encapsulated
// in fragments: a journal record, checked by streaming its checksum), while its processing copies
// the pixel data by range: by the kernel, or streamed through a 1 MiB buffer
// (DICOM_DEID_COPY=stream). It files exactly what the whole-buffer core makes of them, and its peak
// RSS (the child's VmHWM, reset once the node is idle) grows by far less than the large instance.
//
// Why 256 MiB and not less: receiving alone leaves up to ~40-60 MB of dead socket buffers (Node
// reads a socket in new 64 KiB buffers, and V8 collects them once ~64 MB of them pile up: the same
// for a plain Node server, and for 2 GB as for 64 MB: scripts/bench-node-large.sh), so an instance
// must be well above that for the bound to tell carrying it from not.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deidentify, readInstanceKeys } from '../../src/core/deidentify.js';
import { rmrf, sleep, tempDir, waitFor } from '../helpers/forward-helpers.js';
import { CSV_HEADER, firstStudyPlan, REPO, startNode, stopAllNodes, storescu } from '../helpers/serve-helpers.js';

const MiB = 1 << 20;
const CSV = `${CSV_HEADER}\nMFMRN001,MFACC001,RES001,2024-01-01,2024-06-15,\n`;
const LARGE = 'native.dcm';
const RECORD = 'encapsulated.dcm';
let tmp: string;
const input = (name: string) => path.join(tmp, 'in', name);

function makeInstance(name: string, frames: number, ...options: string[]): void {
  const args = [path.join(REPO, 'scripts', 'make-multiframe.mjs'), input(name), '--frames', String(frames), ...options];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

function outputs(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.dcm'))
    .map((f) => path.join(dir, f));
}

/** A field of a process's /proc status, in bytes (VmRSS, VmHWM). */
function procBytes(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  expect(m, field).not.toBeNull();
  return Number(m![1]) * 1024;
}

/** Whether `file` holds exactly `parts`, one after the other (compared without joining them). */
function fileEquals(file: string, parts: Buffer[]): boolean {
  const bytes = fs.readFileSync(file);
  let off = 0;
  for (const p of parts) {
    if (off + p.length > bytes.length || !bytes.subarray(off, off + p.length).equals(p)) return false;
    off += p.length;
  }
  return off === bytes.length;
}

beforeAll(() => {
  tmp = tempDir('node-memory-');
  fs.mkdirSync(path.join(tmp, 'in'));
  fs.writeFileSync(path.join(tmp, 'mapping.csv'), CSV);
  makeInstance('small.dcm', 1);
  makeInstance(LARGE, 512, '--private-header', '307200'); // 512 frames of 512 KiB
  makeInstance(RECORD, 40, '--encapsulated');
}, 120_000);

afterEach(stopAllNodes);
afterAll(() => rmrf(tmp));

describe('the node on instances far larger than its buffers', () => {
  for (const [mode, env] of [
    ['kernel copy', {}],
    ['1 MiB stream', { DICOM_DEID_COPY: 'stream' }],
  ] as const) {
    it(`files what the whole-buffer core makes of them, in far less memory than an instance (${mode})`, async () => {
      const node = await startNode({
        dir: path.join(tmp, mode.replace(/ /g, '_')),
        csv: path.join(tmp, 'mapping.csv'),
        env,
      });
      const pid = node.proc.pid!;
      // The idle level: after one small instance went all the way (the code of every stage loaded).
      expect(storescu(node.port, [input('small.dcm')]).status).toBe(0);
      await waitFor(() => outputs(node.paths.output).length === 1, 30_000, 'the small instance filed');
      await sleep(500);
      const idle = procBytes(pid, 'VmRSS');
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); // VmHWM starts again from the current RSS
      for (const name of [LARGE, RECORD]) {
        // -xv proposes JPEG 2000 lossless, the encapsulated one's label: it is sent as it is stored.
        const sent = storescu(node.port, [input(name)], { args: name === RECORD ? ['-xv'] : [], timeoutMs: 120_000 });
        expect(sent.status, sent.output).toBe(0);
      }
      await waitFor(() => outputs(node.paths.output).length === 3, 120_000, 'the large instances filed');
      const peak = procBytes(pid, 'VmHWM');
      expect(await node.stop()).toBe(0);
      // The large one was spooled as a file of its own, the other as a record of a journal segment.
      const audit = fs.readdirSync(node.paths.logDir).find((f) => f.startsWith('deid_log_'))!;
      const rows = fs.readFileSync(path.join(node.paths.logDir, audit), 'utf8').split('\n');
      const spooledAs = (name: string) =>
        rows.find((r) => r.includes(`(${readInstanceKeys(fs.readFileSync(input(name))).sopInstanceUid}),ok,`));
      expect(spooledAs(LARGE)).toMatch(/^MODALITY:[0-9a-f-]+\.dcm /);
      expect(spooledAs(RECORD)).toMatch(/^MODALITY:\d{4}-\d+-\d+ /);

      // The bytes: the whole-buffer core on each input, with the plan the node used.
      const plan = await firstStudyPlan(CSV, node.paths.db);
      const filed = new Map(outputs(node.paths.output).map((f) => [path.basename(f), f]));
      for (const name of [LARGE, RECORD]) {
        const expected = deidentify(fs.readFileSync(input(name)), plan);
        const out = filed.get(`${expected.sopInstanceUid}.dcm`);
        expect(out, `${name} filed under its new SOP Instance UID`).toBeDefined();
        expect(fileEquals(out!, expected.parts), `${mode}: ${name}`).toBe(true);
        // The test can tell: the inputs carry what the core removes.
        expect(fs.readFileSync(input(name)).includes('MFMRN001')).toBe(true);
        expect(fs.readFileSync(out!).includes('MFMRN001'), name).toBe(false);
      }
      // Less than 3/8 of the large instance, receiving's dead socket buffers included (the bound
      // leaves room for V8 collecting them late on a loaded machine); carrying the instance whole
      // took more than the instance (+308 MiB here before the node read spool records by range).
      expect(fs.statSync(input(LARGE)).size).toBeGreaterThan(256 * MiB);
      expect(fs.statSync(input(RECORD)).size).toBeGreaterThan(20 * MiB);
      expect(peak - idle, `${mode}: peak ${peak} bytes, idle ${idle} bytes`).toBeLessThan(96 * MiB);
    }, 300_000);
  }
});
