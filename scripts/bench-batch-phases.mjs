// Where one batch worker's time goes, file by file, on one thread: the phases of
// src/batch/worker.ts (survey read, open + header read, de-identification, leak guard, write)
// timed separately over every file of a tree, ROUNDS times; prints each phase's minimum over the
// rounds (ms per file; the minimum is the least disturbed by other load on a shared machine).
//   usage: [ROUNDS=5] node scripts/bench-batch-phases.mjs TREE (with Raw_Scans/, mapping.csv) [OUT]
// Needs a built dist/ (npm run build) and a tree from scripts/bench-batch-tree.py.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dist = new URL('../dist/', import.meta.url);
const { deidentifySource, readInstanceKeys } = await import(new URL('core/deidentify.js', dist));
const { scanOutput } = await import(new URL('core/leakGuard/index.js', dist));
const { FileByteSource } = await import(new URL('io/fileByteSource.js', dist));
const { writeFileAtomicSync } = await import(new URL('io/durableWrite.js', dist));
const { surveyFile } = await import(new URL('batch/survey.js', dist));

const tree = process.argv[2];
if (!tree) {
  console.error('usage: node scripts/bench-batch-phases.mjs TREE [OUT]');
  process.exit(2);
}
const out = process.argv[3] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-phases-'));
const rounds = Number(process.env.ROUNDS ?? 5);
const input = path.join(tree, 'Raw_Scans');
const files = fs
  .readdirSync(input, { recursive: true })
  .map(String)
  .filter((f) => fs.statSync(path.join(input, f)).isFile())
  .sort();
const secret = Buffer.alloc(32, 7);
const PHASES = ['survey', 'open+keys', 'deidentify', 'leakGuard', 'write', 'total'];
const best = Object.fromEntries(PHASES.map((p) => [p, Infinity]));

for (let r = 0; r < rounds; r++) {
  fs.rmSync(out, { recursive: true, force: true });
  const t = Object.fromEntries(PHASES.map((p) => [p, 0]));
  const start = performance.now();
  for (const [i, rel] of files.entries()) {
    const abs = path.join(input, rel);
    let t0 = performance.now();
    surveyFile(abs);
    t.survey += performance.now() - t0;

    t0 = performance.now();
    const fd = fs.openSync(abs, 'r');
    const source = new FileByteSource(fd);
    source.isDicom();
    const keys = readInstanceKeys(source);
    t['open+keys'] += performance.now() - t0;

    t0 = performance.now();
    const supplied = { researchId: 'BENCH001', accessionNumber: 'BENCH001_1', dayOffset: 10, notes: '' };
    const result = deidentifySource(source, { ...supplied, uidSecret: secret });
    t.deidentify += performance.now() - t0;

    t0 = performance.now();
    scanOutput({
      head: result.head,
      pixelData: result.pixelData,
      tail: result.tail,
      path: `BENCH001/BENCH001_1/IM${i}.dcm`,
      sidecars: [],
      source: result.sourceValues,
      supplied,
    });
    t.leakGuard += performance.now() - t0;

    t0 = performance.now();
    const px = result.pixelData ? [source.fileRange(result.pixelData)] : [];
    writeFileAtomicSync(path.join(out, 'BENCH001', `S${keys.studyInstanceUid.length % 3}`, `IM${i}.dcm`), [
      ...result.head,
      ...px,
      ...result.tail,
    ]);
    fs.closeSync(fd);
    t.write += performance.now() - t0;
  }
  t.total = performance.now() - start;
  for (const p of PHASES) best[p] = Math.min(best[p], t[p]);
}
fs.rmSync(out, { recursive: true, force: true });
console.log(
  `${files.length} files, ${rounds} rounds, load ${os.loadavg()[0].toFixed(1)}: ms per file (minimum over rounds)`,
);
for (const p of PHASES) console.log(`  ${p.padEnd(12)} ${(best[p] / files.length).toFixed(3)}`);
