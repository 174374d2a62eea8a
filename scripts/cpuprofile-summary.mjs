// Summarizes a V8 .cpuprofile (node --cpu-prof; each worker thread writes its own): sampled time
// by file and by function, self and inclusive, in ms and % of the window. With a function name,
// only the samples from the first to the last one whose stack holds that function count (e.g.
// `onData` for the node's receiving, `stageOne` for a processing thread), which leaves start-up
// out. Wall-clock samples: a blocking system call (fdatasync, fsync, writev) counts as its
// caller's time, and '(idle)' is the event loop waiting.
//   usage: node scripts/cpuprofile-summary.mjs <file.cpuprofile> [top rows = 25] [window function]
//   e.g.:  node --cpu-prof --cpu-prof-dir=/tmp/prof dist/cli.js serve --config node.json  (push, stop)
//          for f in /tmp/prof/*.cpuprofile; do node scripts/cpuprofile-summary.mjs "$f" 20 stageOne; done
import { readFileSync } from 'node:fs';

const [file, topArg, windowFn] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/cpuprofile-summary.mjs <file.cpuprofile> [top rows] [window function]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url) => url.replace(/.*\/(dist|node_modules|src)\//, '$1/');
const fnKey = (n) =>
  `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
const fileKey = (n) => short(n.callFrame.url) || n.callFrame.functionName;
const stackHas = (id, name) => {
  for (let c = id; c !== undefined; c = parent.get(c)) if (byId.get(c).callFrame.functionName === name) return true;
  return false;
};

const { samples, timeDeltas } = profile;
let first = 0;
let last = samples.length - 1;
if (windowFn) {
  first = samples.findIndex((s) => stackHas(s, windowFn));
  while (last >= 0 && !stackHas(samples[last], windowFn)) last--;
  if (first < 0) {
    console.error(`no sample has ${windowFn} on its stack`);
    process.exit(1);
  }
}

const selfByFn = new Map();
const selfByFile = new Map();
const inclusive = new Map();
const add = (m, k, us) => m.set(k, (m.get(k) ?? 0) + us);
let total = 0;
for (let i = first; i <= last; i++) {
  const us = timeDeltas[i + 1] ?? 0; // the time until the next sample is this sample's
  const node = byId.get(samples[i]);
  total += us;
  add(selfByFn, fnKey(node), us);
  add(selfByFile, fileKey(node), us);
  const seen = new Set();
  for (let c = samples[i]; c !== undefined; c = parent.get(c)) {
    const k = fnKey(byId.get(c));
    if (!seen.has(k)) add(inclusive, k, us);
    seen.add(k);
  }
}

console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled${windowFn ? ` (window: ${windowFn})` : ''}`);
for (const [title, m] of [
  ['self time by file', selfByFile],
  ['self time by function', selfByFn],
  ['inclusive time by function', inclusive],
]) {
  console.log(`== ${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
}
