// How the de-identification core scales on this machine: each of T worker threads (T = 1, then
// 2) de-identifies the same N files of a tree twice in memory-light mode (open, de-identify from
// the file by range, close; nothing written), and prints ms per file for the first round (a fresh
// thread: V8 still interpreting and compiling) and the second (warm). Shows what a short batch
// pays for each worker thread (JIT warm-up) and what a second thread on a 2-core VM buys.
//   usage: node scripts/bench-deid-threads.mjs <input tree> [N = 300]
// Needs a built dist/ (npm run build).
import { closeSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

if (isMainThread) {
  const [input, nArg] = process.argv.slice(2);
  if (!input) {
    console.error('usage: node scripts/bench-deid-threads.mjs <input tree> [N]');
    process.exit(2);
  }
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else files.push(path.join(dir, e.name));
    }
  };
  walk(input);
  const n = Math.min(Number(nArg ?? 300), files.length);
  for (const threads of [1, 2]) {
    const started = performance.now();
    const rounds = await Promise.all(
      Array.from(
        { length: threads },
        (_, i) =>
          new Promise((resolve, reject) => {
            const w = new Worker(new URL(import.meta.url), { workerData: { files: files.slice(0, n), seed: i } });
            w.once('message', resolve).once('error', reject);
          }),
      ),
    );
    const wall = performance.now() - started;
    const per = (k) => rounds.map((r) => (r[k] / n).toFixed(2)).join(' / ');
    console.log(
      `${threads} thread(s), ${n} files each: cold ${per(0)} ms/file, warm ${per(1)} ms/file, ` +
        `wall ${wall.toFixed(0)} ms for ${threads * n * 2} files`,
    );
  }
} else {
  const { deidentifySource } = await import('../dist/core/deidentify.js');
  const { FileByteSource } = await import('../dist/io/fileByteSource.js');
  const secret = Buffer.alloc(32, 7);
  const ms = [];
  for (let round = 0; round < 2; round++) {
    const t = performance.now();
    for (const file of workerData.files) {
      const fd = openSync(file, 'r');
      try {
        deidentifySource(new FileByteSource(fd), {
          researchId: 'RS_1',
          accessionNumber: 'RS_1_1',
          dayOffset: 3,
          notes: '',
          uidSecret: secret,
        });
      } finally {
        closeSync(fd);
      }
    }
    ms.push(performance.now() - t);
  }
  parentPort.postMessage(ms);
}
