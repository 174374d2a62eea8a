// The node's processing steps (stage, commit, retire) and the crash windows between them: a
// spool file outlives every step until its output is durable, and processing it again is
// idempotent (same output path and bytes, one filing record, one queue item).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MappingTable } from '../src/core/mapping/mappingTable.js';
import { ensureSchema as ensureQueueSchema } from '../src/forward/forwardQueue.js';
import { readMappingFile } from '../src/io/mappingFile.js';
import { ensureFiledSchema } from '../src/node/filedInstances.js';
import {
  commitStaged,
  isStaged,
  processInstance,
  retireStaged,
  stageInstance,
  type ProcessorDeps,
  type Staged,
} from '../src/node/instanceProcessor.js';
import { StateDb } from '../src/state/stateDb.js';
import { tempDir } from './forward-helpers.js';
import { makeSamples, writeMappingCsv } from './serve-helpers.js';

let samples: string[];
const open: StateDb[] = [];

beforeAll(() => {
  const dir = tempDir('proc-samples-');
  samples = makeSamples(dir, 'MRN555', 'ACC5', '1.2.826.0.1.3680043.8.498.55', 'p').filter(
    (f) => !/JPEG|RLE|dfl|jpeg/.test(f),
  );
  expect(samples.length).toBeGreaterThan(2);
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/** A node's folders and processing dependencies, with the samples copied into its spool. */
function setup() {
  const dir = tempDir('proc-');
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN555', accession: '', researchId: 'RS_55' }]);
  const state = StateDb.open(join(dir, 'state.sqlite'));
  open.push(state);
  ensureFiledSchema(state.db);
  ensureQueueSchema(state.db);
  const table = new MappingTable(readMappingFile(csv));
  const deps: ProcessorDeps = {
    state,
    mapping: () => table,
    outputDir: join(dir, 'output'),
    quarantineDir: join(dir, 'quarantine'),
    forwardTo: ['RESEARCH@127.0.0.1:104'],
    audit: () => undefined,
  };
  const files = samples.map((f, i) => {
    const to = join(spool, `${i}.dcm`);
    copyFileSync(f, to);
    return to;
  });
  const count = (table: string) => (state.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  return { deps, files, count };
}

const source = { callingAet: 'TEST', receivedAt: new Date() };

function stageAll(deps: ProcessorDeps, files: string[]): Staged[] {
  return files.map((f) => {
    const s = stageInstance(deps, f, source);
    if (!isStaged(s)) throw new Error(`not staged: ${JSON.stringify(s)}`);
    return s;
  });
}

describe('node processing steps', () => {
  it('keeps every spool file until a checkpoint made its output durable', () => {
    const { deps, files, count } = setup();
    const staged = stageAll(deps, files);
    for (const s of staged) expect(existsSync(s.outputPath)).toBe(true);
    commitStaged(deps, staged);
    expect(count('filed_instance')).toBe(files.length);
    for (const f of files) expect(existsSync(f), 'committed but not retired').toBe(true);
    retireStaged(staged);
    for (const f of files) expect(existsSync(f), 'retired').toBe(false);
  });

  it('a crash after the commit: processing the spool files again changes nothing', () => {
    const { deps, files, count } = setup();
    const staged = stageAll(deps, files);
    commitStaged(deps, staged);
    const first = new Map(staged.map((s) => [s.outputPath, readFileSync(s.outputPath)]));
    // Restart: the spool still holds every file; each is processed from the start.
    for (const f of files) {
      const outcome = processInstance(deps, f, source);
      expect(outcome.status).toBe('filed');
      const path = join(deps.outputDir, (outcome as { outputPath: string }).outputPath);
      expect(first.get(path)?.equals(readFileSync(path)), path).toBe(true);
      expect(existsSync(f)).toBe(false);
    }
    expect(count('filed_instance')).toBe(files.length);
    expect(count('forward_queue')).toBe(files.length);
  });

  it('a checkpoint that cannot make an output durable deletes no spool file', () => {
    const { deps, files } = setup();
    const staged = stageAll(deps, files);
    commitStaged(deps, staged);
    rmSync(staged[staged.length - 1]!.outputPath); // e.g. removed behind our back, or an I/O error
    expect(() => retireStaged(staged)).toThrow(/ENOENT/);
    for (const f of files) expect(existsSync(f)).toBe(true);
  });
});
