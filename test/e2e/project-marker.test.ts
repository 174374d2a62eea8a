// The output tree's project marker (src/io/projectMarker.ts): a batch, a dry run or a node whose
// state (UID secret) is not the one that made the output tree is refused with one line naming
// both, before anything is written (found by a new-user trial: `batch --db other.sqlite` into the
// same --output silently wrote a second copy of every instance under other UIDs). A tree without
// a marker is adopted.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeSamples, runCli, startNode, stopAllNodes, storescu, writeMappingCsv } from '../helpers/serve-helpers.js';

const repo = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repo, 'dist', 'cli.js');
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const MARKER = '.dicom-deid-project';
let tmp: string;

function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
}

/** Every file below `dir` (relative, sorted), the marker included. */
function listFiles(dir: string, rel = ''): string[] {
  if (!fs.existsSync(path.join(dir, rel))) return [];
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) => {
      const r = rel ? `${rel}/${e.name}` : e.name;
      return e.isDirectory() ? listFiles(dir, r) : [r];
    })
    .sort();
}

const BATCH = ['batch', '--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', 'Out'];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-marker-'));
  execFileSync(python, [path.join(repo, 'test', 'fixtures', 'make_many.py'), path.join(tmp, 'b'), '2', '2', '2']);
  if (!fs.existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'pipe' });
});

afterEach(async () => {
  await stopAllNodes();
});

afterAll(async () => {
  await stopAllNodes();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch: the output tree records the project secret that made it', () => {
  it('a run with another --db into the same --output is refused (exit 2, one line), and writes nothing', () => {
    const dir = path.join(tmp, 'b');
    const first = run(BATCH, dir);
    expect(first.status).toBe(1); // Unknown_Pat has no row: the rest is written
    const written = listFiles(path.join(dir, 'Out'));
    expect(written.filter((f) => f.endsWith('.dcm')).length).toBeGreaterThan(0);
    expect(written).toContain(MARKER);
    const marker = fs.readFileSync(path.join(dir, 'Out', MARKER), 'utf8');
    expect(marker.split('\n')[0]).toMatch(/^dicom-deid project [0-9a-f]{12}$/);
    // Nothing of the secret, nothing of a patient.
    const secret = execFileSync(
      'sqlite3',
      ['dicom-deid-state.sqlite', "SELECT hex(value) FROM meta WHERE key='uid_secret'"],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    ).trim();
    expect(secret).toMatch(/^[0-9A-F]{64}$/);
    expect(marker.toUpperCase()).not.toContain(secret.slice(0, 12));
    expect(marker).not.toMatch(/Patient_|MRN|RES9/);

    // A new state (a new secret): refused before the state is even created.
    const fresh = run([...BATCH, '--db', 'other.sqlite'], dir);
    expect(fresh.status).toBe(2);
    expect(fresh.stderr.trim().split('\n')).toEqual([
      'dicom-deid: --output Out was made with another project secret than --db other.sqlite, a new state (it would ' +
        'make a new project secret): every instance would be written again under other UIDs; use the --db that made ' +
        'it, or a new --output folder',
    ]);
    expect(fs.existsSync(path.join(dir, 'other.sqlite'))).toBe(false);
    expect(listFiles(path.join(dir, 'Out'))).toEqual(written);

    // An existing state of another project (it made Out2): refused too, and the dry run says the same.
    expect(
      run(['batch', '--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', 'Out2', '--db', 'other.sqlite'], dir)
        .status,
    ).toBe(1);
    const other = run([...BATCH, '--db', 'other.sqlite'], dir);
    expect(other.status).toBe(2);
    expect(other.stderr.trim().split('\n')).toEqual([
      'dicom-deid: --output Out was made with another project secret than the state --db other.sqlite: every ' +
        'instance would be written again under other UIDs; use the --db that made it, or a new --output folder',
    ]);
    const dry = run([...BATCH, '--db', 'other.sqlite', '--dry-run'], dir);
    expect(dry.status).toBe(2);
    expect(dry.stderr).toBe(other.stderr);
    expect(listFiles(path.join(dir, 'Out'))).toEqual(written);

    // The state that made it: the same files again, no second copy.
    const again = run(BATCH, dir);
    expect(again.status).toBe(1);
    expect(listFiles(path.join(dir, 'Out'))).toEqual(written);
  });

  it('an output without a marker (made before it existed) is adopted: the marker is written', () => {
    const dir = path.join(tmp, 'b');
    fs.rmSync(path.join(dir, 'Out', MARKER));
    expect(run(BATCH, dir).status).toBe(1);
    expect(fs.readFileSync(path.join(dir, 'Out', MARKER), 'utf8')).toMatch(/^dicom-deid project [0-9a-f]{12}\n/);
    expect(run([...BATCH, '--db', 'other.sqlite'], dir).status).toBe(2);
  });

  it('a file of that name that is no marker is refused, naming it', () => {
    const dir = path.join(tmp, 'b');
    fs.mkdirSync(path.join(dir, 'Out3'));
    fs.writeFileSync(path.join(dir, 'Out3', MARKER), 'something else\n');
    const r = run(['batch', '--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', 'Out3'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `dicom-deid: ${path.join(dir, 'Out3', MARKER)} is not a dicom-deid project marker: move it away if this folder is meant as an output tree`,
    ]);
  });
});

describe('serve: the same rule for the node output', () => {
  it('a node whose state did not make its output folder does not start (exit 2, one line)', async () => {
    const root = path.join(tmp, 'node');
    fs.mkdirSync(root);
    const csv = writeMappingCsv(path.join(root, 'map.csv'), [
      { mrn: 'MRN6101', accession: 'ACC6101', researchId: 'RS_61' },
    ]);
    const samples = makeSamples(
      path.join(root, 'in'),
      'MRN6101',
      'ACC6101',
      '1.2.826.0.1.3680043.8.498.6101',
      'm',
    ).filter((f) => /CT_small/.test(f));
    expect(samples.length).toBeGreaterThan(0);
    const a = await startNode({ dir: path.join(root, 'a'), csv });
    expect(fs.existsSync(path.join(a.paths.output, MARKER))).toBe(true);
    expect(storescu(a.port, samples).status).toBe(0);
    await a.waitForLog(/RS_61_1: 1 instance filed/);
    await stopAllNodes();
    const filed = listFiles(a.paths.output);

    const otherDb = path.join(root, 'other-state', 'state.sqlite');
    const r = runCli(['serve', '--config', a.configPath, '--db', otherDb]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `dicom-deid: output ${a.paths.output} was made with another project secret than db ${otherDb}, a new state ` +
        '(it would make a new project secret): every instance would be written again under other UIDs; use the db ' +
        'that made it, or a new output folder',
    ]);
    expect(fs.existsSync(otherDb)).toBe(false);
    expect(listFiles(a.paths.output)).toEqual(filed);
  });
});
