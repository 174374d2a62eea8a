// The node's processing steps (stage, commit, retire) and the crash windows between them: a
// spool file outlives every step until its output is durable, and processing it again is
// idempotent (same output path and bytes, one filing record, one queue item).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MappingTable } from '../../src/core/mapping/mappingTable.js';
import { readMappingFile } from '../../src/io/mappingFile.js';
import {
  commitStaged,
  isStaged,
  processInstance,
  retireStaged,
  stageInstance,
  type ProcessorDeps,
  type Staged,
} from '../../src/node/instanceProcessor.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { StateStore } from '../../src/state/stateStore.js';
import { fileRef } from '../../src/node/spool/spoolRef.js';
import { tempDir } from '../helpers/forward-helpers.js';
import { makeSamples, writeMappingCsv } from '../helpers/serve-helpers.js';

let samples: string[];
const open: StateStore[] = [];

beforeAll(() => {
  const dir = tempDir('proc-samples-');
  samples = makeSamples(dir, 'MRN555', 'ACC5', '1.2.826.0.1.3680043.8.498.55', 'p').filter(
    (f) => !/JPEG|RLE|dfl|jpeg/.test(f),
  );
  expect(samples.length).toBeGreaterThan(2);
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** A node's folders and processing dependencies, with the samples copied into its spool. */
async function setup() {
  const dir = tempDir('proc-');
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN555', accession: '', researchId: 'RS_55' }]);
  const state = await openStateStore(join(dir, 'state.sqlite'), { create: true });
  open.push(state);
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
  /** Filing records, and forward queue items of every state. */
  const count = {
    filed: () => state.filedInstanceCount(),
    queued: async () =>
      (await state.forwardCounts()).reduce((n, c) => n + c.pending + c.inFlight + c.delivered + c.dead, 0),
  };
  return { deps, files, count };
}

const source = { callingAet: 'TEST', receivedAt: new Date() };

async function stageAll(deps: ProcessorDeps, files: string[]): Promise<Staged[]> {
  const staged: Staged[] = [];
  for (const f of files) {
    const s = await stageInstance(deps, fileRef(f), source);
    if (!isStaged(s)) throw new Error(`not staged: ${JSON.stringify(s)}`);
    staged.push(s);
  }
  return staged;
}

describe('node processing steps', () => {
  it('keeps every spool file until a checkpoint made its output durable', async () => {
    const { deps, files, count } = await setup();
    const staged = await stageAll(deps, files);
    for (const s of staged) expect(existsSync(s.outputPath)).toBe(true);
    await commitStaged(deps, staged);
    expect(await count.filed()).toBe(files.length);
    expect(await count.queued()).toBe(files.length);
    for (const f of files) expect(existsSync(f), 'committed but not retired').toBe(true);
    retireStaged(staged);
    for (const f of files) expect(existsSync(f), 'retired').toBe(false);
  });

  it('a crash after the commit: processing the spool files again changes nothing', async () => {
    const { deps, files, count } = await setup();
    const staged = await stageAll(deps, files);
    await commitStaged(deps, staged);
    const first = new Map(staged.map((s) => [s.outputPath, readFileSync(s.outputPath)]));
    // Restart: the spool still holds every file; each is processed from the start.
    for (const f of files) {
      const outcome = await processInstance(deps, fileRef(f), source);
      expect(outcome.status).toBe('filed');
      const path = join(deps.outputDir, (outcome as { outputPath: string }).outputPath);
      expect(first.get(path)?.equals(readFileSync(path)), path).toBe(true);
      expect(existsSync(f)).toBe(false);
    }
    expect(await count.filed()).toBe(files.length);
    expect(await count.queued()).toBe(files.length);
  });

  it('stages one instance at a time per thread (they share one read buffer)', async () => {
    const { deps, files } = await setup();
    const first = stageInstance(deps, fileRef(files[0]!), source);
    await expect(stageInstance(deps, fileRef(files[1]!), source)).rejects.toThrow(/one instance at a time/);
    expect(isStaged(await first)).toBe(true);
    expect(isStaged(await stageInstance(deps, fileRef(files[1]!), source))).toBe(true);
  });

  it('a checkpoint that cannot make an output durable deletes no spool file', async () => {
    const { deps, files } = await setup();
    const staged = await stageAll(deps, files);
    await commitStaged(deps, staged);
    rmSync(staged[staged.length - 1]!.outputPath); // e.g. removed behind our back, or an I/O error
    expect(() => retireStaged(staged)).toThrow(/ENOENT/);
    for (const f of files) expect(existsSync(f)).toBe(true);
  });
});
