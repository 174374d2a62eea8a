// The batch's system-call floor: for every file of a tree, the system calls `dicom-deid batch`
// makes to write it (open the source, read its header, create a temporary file beside the output,
// write a header, copy the rest by range with the same io/copyRange.js, close, rename), and
// nothing else: no parsing, no de-identification, no leak guard, no state. In T worker threads,
// files dealt round-robin (as the batch's worker pool deals them). bench-batch.sh times it beside
// `cp -r`: what batch costs above this line is our own CPU, not the copying.
//   usage: node scripts/bench-batch-floor.mjs <input tree> <output folder> [threads = 2]
// Needs a built dist/ (npm run build).
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, workerData } from 'node:worker_threads';

const HEADER = 4096; // bytes written from memory per file, as a de-identified header is

if (isMainThread) {
  const [input, output, threadsArg] = process.argv.slice(2);
  if (!input || !output) {
    console.error('usage: node scripts/bench-batch-floor.mjs <input tree> <output folder> [threads]');
    process.exit(2);
  }
  const files = [];
  const walk = (dir, rel) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else files.push(r);
    }
  };
  walk(input, '');
  const threads = Math.max(1, Number(threadsArg ?? 2));
  const shares = Array.from({ length: threads }, () => []);
  files.forEach((f, i) => shares[i % threads].push(f));
  for (const share of shares) new Worker(new URL(import.meta.url), { workerData: { input, output, files: share } });
} else {
  const { copyRangeSync } = await import('../dist/io/copyRange.js');
  const { input, output, files } = workerData;
  const header = Buffer.alloc(65536);
  const made = new Set();
  let n = 0;
  for (const rel of files) {
    const src = openSync(path.join(input, rel), 'r');
    const size = fstatSync(src).size;
    readSync(src, header, 0, header.length, 0);
    const out = path.join(output, rel);
    if (!made.has(path.dirname(out))) {
      mkdirSync(path.dirname(out), { recursive: true });
      made.add(path.dirname(out));
    }
    const tmp = path.join(path.dirname(out), `.${path.basename(out)}.${n++}.tmp`);
    const dst = openSync(tmp, 'wx');
    writeSync(dst, header, 0, Math.min(HEADER, size));
    if (size > HEADER) copyRangeSync({ fd: src, offset: HEADER, length: size - HEADER }, dst);
    closeSync(dst);
    closeSync(src);
    renameSync(tmp, out);
  }
}
