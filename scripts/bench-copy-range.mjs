// How to copy a byte range of one file into another from Node 20: the ways measured side by side
// in the same run (each in a process of its own, so its peak RSS is its own), on every file of a
// tree (the range: all but each file's first 2 KiB, as the pixel data of a CT slice) or on one
// large file. Prints, per way, the median wall time, CPU time (user + system) and peak RSS over
// ROUNDS rounds, and the ratios to fs.copyFile (whole files: the kernel's own copy, not a range).
//   usage: [ROUNDS=3] node scripts/bench-copy-range.mjs SRC (a folder tree or one file) [WORKDIR]
// Ways: copy_file_range (Linux, through koffi: what src/io/copyRange.ts uses), pread/pwrite
// through one 1 MiB buffer (its fallback), streams (createReadStream piped to createWriteStream,
// 1 MiB chunks), read whole + write (what batch did before), and fs.copyFile (reference).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const WAYS = ['copyFile', 'copy_file_range', 'pread_pwrite_1MiB', 'streams_1MiB', 'read_whole_write'];
const HEAD = 2048;

function files(src) {
  if (!fs.statSync(src).isDirectory()) return [src];
  return fs
    .readdirSync(src, { recursive: true })
    .map((f) => path.join(src, f))
    .filter((f) => fs.statSync(f).isFile());
}

async function runOne(way, src, dst) {
  const require = createRequire(import.meta.url);
  let cfr;
  if (way === 'copy_file_range') {
    const koffi = require('koffi');
    const fn = koffi
      .load('libc.so.6')
      .func(
        'int64_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)',
      );
    cfr = (fi, off, fo, len) => {
      for (let done = 0; done < len;) {
        const n = Number(fn(fi, [off + done], fo, null, len - done, 0));
        if (n <= 0) throw new Error(`copy_file_range: errno ${koffi.errno()}`);
        done += n;
      }
    };
  }
  const buf = Buffer.allocUnsafe(1 << 20);
  const copy = {
    copy_file_range: cfr,
    pread_pwrite_1MiB(fi, off, fo, len) {
      for (let done = 0; done < len;) {
        const n = fs.readSync(fi, buf, 0, Math.min(buf.length, len - done), off + done);
        for (let w = 0; w < n;) w += fs.writeSync(fo, buf, w, n - w);
        done += n;
      }
    },
    read_whole_write(fi, off, fo, len) {
      const b = Buffer.allocUnsafe(len);
      for (let d = 0; d < len;) d += fs.readSync(fi, b, d, len - d, off + d);
      for (let w = 0; w < len;) w += fs.writeSync(fo, b, w, len - w);
    },
    streams_1MiB: (fi, off, fo, len) =>
      new Promise((resolve, reject) => {
        const r = fs.createReadStream(null, {
          fd: fi,
          start: off,
          end: off + len - 1,
          autoClose: false,
          highWaterMark: 1 << 20,
        });
        const w = fs.createWriteStream(null, { fd: fo, autoClose: false });
        r.pipe(w);
        w.on('finish', resolve);
        r.on('error', reject);
        w.on('error', reject);
      }),
  };
  const list = files(src);
  const t0 = process.hrtime.bigint();
  let i = 0;
  for (const f of list) {
    const out = path.join(dst, String(i++));
    if (way === 'copyFile') {
      fs.copyFileSync(f, out);
      continue;
    }
    const fi = fs.openSync(f, 'r');
    const fo = fs.openSync(out, 'w');
    const size = fs.fstatSync(fi).size;
    fs.writeSync(fo, Buffer.alloc(HEAD, 1)); // a new head of the same size
    await copy[way](fi, HEAD, fo, size - HEAD);
    fs.closeSync(fi);
    fs.closeSync(fo);
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage();
  const peak = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  console.log(JSON.stringify({ wall, cpu: (cpu.user + cpu.system) / 1e6, peak }));
}

async function main() {
  const [src, workArg] = process.argv.slice(2);
  if (!src) {
    console.error('usage: [ROUNDS=3] node scripts/bench-copy-range.mjs SRC [WORKDIR]');
    process.exit(2);
  }
  const work = workArg ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-copy-range-'));
  const rounds = Number(process.env.ROUNDS ?? 3);
  const list = files(src);
  const bytes = list.reduce((n, f) => n + fs.statSync(f).size, 0);
  console.log(
    `${list.length} file(s), ${(bytes / 1e6).toFixed(0)} MB; ${rounds} rounds; load ${os.loadavg()[0].toFixed(1)}`,
  );
  for (const f of list) fs.readFileSync(f); // warm the page cache: every way reads from memory
  const results = Object.fromEntries(WAYS.map((w) => [w, []]));
  for (let r = 0; r < rounds; r++) {
    for (const way of WAYS) {
      const dst = path.join(work, 'out');
      fs.rmSync(dst, { recursive: true, force: true });
      fs.mkdirSync(dst, { recursive: true });
      execFileSync('sync'); // each way starts with no dirty pages of the one before
      const child = spawnSync(process.execPath, [import.meta.filename, '--run', way, src, dst], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`${way}: ${child.stderr}`);
      results[way].push(JSON.parse(child.stdout));
    }
  }
  fs.rmSync(path.join(work, 'out'), { recursive: true, force: true });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const ref = results.copyFile;
  const ratio = (way, key) => median(results[way].map((x, i) => x[key] / ref[i][key]));
  console.log(
    `\n${'way'.padEnd(20)} ${'wall s'.padStart(7)} ${'cpu s'.padStart(7)} ${'peak MB'.padStart(8)}   wall/copyFile  cpu/copyFile  (medians; ratios within a round)`,
  );
  for (const way of WAYS) {
    const m = (k) => median(results[way].map((x) => x[k]));
    console.log(
      `${way.padEnd(20)} ${m('wall').toFixed(3).padStart(7)} ${m('cpu').toFixed(3).padStart(7)} ${(m('peak') / 1e6).toFixed(0).padStart(8)}   ${ratio(way, 'wall').toFixed(2).padStart(13)} ${ratio(way, 'cpu').toFixed(2).padStart(13)}`,
    );
  }
  if (!workArg) fs.rmSync(work, { recursive: true, force: true });
}

if (process.argv[2] === '--run') await runOne(process.argv[3], process.argv[4], process.argv[5]);
else await main();
