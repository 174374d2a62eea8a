// Driver of scripts/bench-forward.sh: sends a list of Part 10 files to a C-STORE SCP with the
// forwarder's SCU (sendFiles) of a built checkout, and prints one JSON line: seconds, files
// delivered, bytes, peak RSS of this process.
//   usage: node bench-forward-send.mjs <dist dir> <port> <file with one path per line>
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, port, list] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(resolve(dist), p)).href);
const { sendFiles } = await load('forward/storeScu.js');
const { parseDestination } = await load('forward/destination.js');
const files = readFileSync(list, 'utf8').split('\n').filter(Boolean);
const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
const t0 = performance.now();
const r = await sendFiles(files, parseDestination(`BENCH@127.0.0.1:${port}`), { callingAet: 'DEID' });
const seconds = (performance.now() - t0) / 1000;
const delivered = r.outcomes.filter((o) => o.outcome.kind === 'delivered' || o.outcome.kind === 'warning').length;
const peakRssMB = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
process.stdout.write(JSON.stringify({ seconds, delivered, files: files.length, bytes, peakRssMB }) + '\n');
