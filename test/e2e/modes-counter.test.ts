// One accession counter across modes: studies a batch run numbered keep their numbers when the
// same studies later reach the node, and the node's new studies continue after them; and the
// other way round, a batch session folder holding a study the node numbered first takes that number.
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  listFilesRecursive,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';

afterEach(async () => {
  await stopAllNodes();
});

describe('session numbers across batch mode and the node', () => {
  it('a study numbered by batch keeps its number in the node; a new study gets the next', async () => {
    const dir = tempDir('modes-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const input = join(dir, 'Raw_Scans');
    const gen = (acc: string, i: number) =>
      makeSamples(join(dir, `gen${i}`), 'MRN777', acc, `1.2.826.0.1.3680043.8.498.4${i}`, `m${i}`).slice(0, 2);
    const studies = { a: gen('ACCA', 1), b: gen('ACCB', 2), c: gen('ACCC', 3) };
    for (const [session, files] of [
      ['visit_a', studies.a],
      ['visit_b', studies.b],
    ] as const) {
      mkdirSync(join(input, 'patient', session), { recursive: true });
      for (const f of files) renameSync(f, join(input, 'patient', session, f.split('/').pop()!));
    }
    const db = join(dir, 'state', 'state.sqlite');
    const b = runCli([
      'batch',
      '--csv',
      csv,
      '--input',
      input,
      '--output',
      join(dir, 'batch-out'),
      '--db',
      db,
      '--quiet',
    ]);
    expect(b.status, b.stderr).toBe(0);
    expect(readdirSync(join(dir, 'batch-out', 'RS_07')).sort()).toEqual(['RS_07_1', 'RS_07_2']);

    // The node on the same state: visit_b's study is re-sent, and a new study arrives.
    const node = await startNode({ dir, csv });
    expect(node.paths.db).toBe(db);
    const resend = listFilesRecursive(join(input, 'patient', 'visit_b'));
    expect(storescu(node.port, resend).status).toBe(0);
    expect(storescu(node.port, studies.c).status).toBe(0);
    await waitFor(() => listFilesRecursive(node.paths.output).length === 4, 20_000, 'node filed both studies');
    expect(readdirSync(join(node.paths.output, 'RS_07')).sort()).toEqual(['RS_07_2', 'RS_07_3']);
    expect(listFilesRecursive(join(node.paths.output, 'RS_07', 'RS_07_2'))).toHaveLength(2);
    expect(listFilesRecursive(join(node.paths.output, 'RS_07', 'RS_07_3'))).toHaveLength(2);
  });

  it('a batch session folder holding a study the node numbered first takes its number', async () => {
    const dir = tempDir('modes-rev-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN888', accession: '', researchId: 'RS_08' }]);
    const gen = (acc: string, i: number) =>
      makeSamples(join(dir, `gen${i}`), 'MRN888', acc, `1.2.826.0.1.3680043.8.498.5${i}`, `r${i}`).slice(0, 2);
    const studies = { x: gen('ACCX', 1), a: gen('ACCA', 2) };
    // The node numbers study X first: RS_08_1.
    const node = await startNode({ dir, csv });
    expect(storescu(node.port, studies.x).status).toBe(0);
    await waitFor(() => listFilesRecursive(node.paths.output).length === 2, 20_000, 'node filed study X');
    expect(readdirSync(join(node.paths.output, 'RS_08'))).toEqual(['RS_08_1']);
    expect(await node.stop()).toBe(0);

    // Later the researcher's export holds X again, in a folder that sorts after a new study's.
    const input = join(dir, 'Raw_Scans');
    for (const [session, files] of [
      ['visit_a', studies.a],
      ['visit_b', studies.x],
    ] as const) {
      mkdirSync(join(input, 'patient', session), { recursive: true });
      for (const f of files) renameSync(f, join(input, 'patient', session, f.split('/').pop()!));
    }
    const out = join(dir, 'batch-out');
    for (let run = 0; run < 2; run++) {
      const b = runCli(['batch', '--csv', csv, '--input', input, '--output', out, '--db', node.paths.db, '--quiet']);
      expect(b.status, b.stderr).toBe(0);
      expect(readdirSync(join(out, 'RS_08')).sort()).toEqual(['RS_08_1', 'RS_08_2']);
      // visit_b holds X: the node's number; visit_a is new: the next one.
      const inX = listFilesRecursive(join(out, 'RS_08', 'RS_08_1'))
        .map((f) => f.split('/').pop())
        .sort();
      expect(inX).toEqual(readdirSync(join(input, 'patient', 'visit_b')).sort());
      expect(listFilesRecursive(join(out, 'RS_08', 'RS_08_2'))).toHaveLength(2);
    }
  });
});
