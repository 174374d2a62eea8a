#!/usr/bin/env node
// The leak guard's share of the work per instance, in CPU time (so that other processes on a
// shared machine do not count): every DICOM file below DIR goes through what a batch worker does
// with it, on one thread (read up to and after the pixel data, de-identify, the leak guard, write
// head + pixel data range + tail to a temporary file), and the CPU time of each step is summed.
//   usage: node scripts/bench-leak-guard.mjs DIR [ROUNDS=3]   (npm run build first; DIR e.g. from
//          scripts/bench-batch-tree.py)
// Prints, per round, the CPU ms per file of each step and the guard's share of the total.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deidentifySource } from '../dist/core/deidentify.js';
import { scanOutput } from '../dist/core/leakGuard/index.js';
import { FileByteSource } from '../dist/io/fileByteSource.js';
import { writeFileAtomicSync } from '../dist/io/durableWrite.js';

const [dir, roundsArg] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node scripts/bench-leak-guard.mjs DIR [ROUNDS=3]');
  process.exit(2);
}
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.isFile()) files.push(p);
  }
};
walk(dir);
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-leak-guard-'));
const plan = {
  researchId: 'BENCH001',
  accessionNumber: 'BENCH001_1',
  dayOffset: 463,
  notes: '',
  uidSecret: Buffer.alloc(32, 1),
};
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

for (let round = 1; round <= Number(roundsArg ?? 3); round++) {
  const t = { deidentify: 0, guard: 0, write: 0 };
  let n = 0;
  for (const [i, file] of files.entries()) {
    const fd = fs.openSync(file, 'r');
    try {
      const source = new FileByteSource(fd);
      if (!source.isDicom()) continue;
      let c0 = cpu();
      let r;
      try {
        r = deidentifySource(source, plan);
      } catch {
        continue;
      }
      let c1 = cpu();
      t.deidentify += c1 - c0;
      scanOutput({
        head: r.head,
        pixelData: r.pixelData,
        tail: r.tail,
        path: `BENCH001/BENCH001_1/${i}.dcm`,
        source: r.sourceValues,
        supplied: plan,
      });
      c0 = cpu();
      t.guard += c0 - c1;
      const pixels = r.pixelData ? [source.fileRange(r.pixelData)] : [];
      writeFileAtomicSync(path.join(out, `${i}.dcm`), [...r.head, ...pixels, ...r.tail]);
      c1 = cpu();
      t.write += c1 - c0;
      n++;
    } finally {
      fs.closeSync(fd);
    }
  }
  const total = t.deidentify + t.guard + t.write;
  const per = (x) => (x / n).toFixed(3);
  console.log(
    `round ${round}: ${n} files; CPU ms per file: read+de-identify ${per(t.deidentify)}, leak guard ${per(t.guard)}, ` +
      `write ${per(t.write)}; leak guard share ${((100 * t.guard) / total).toFixed(1)}%`,
  );
}
fs.rmSync(out, { recursive: true, force: true });
