// Shared helpers for test/forward-*.test.ts: free ports, real dcmtk peers, byte comparison.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { encodeHeader, encodeRaw, encodeText } from '../../src/core/dicom/encoder.js';
import { buildFileMeta } from '../../src/core/dicom/fileMeta.js';
import { EXPLICIT_LE, EXPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { readP10Header } from '../../src/dimse/part10.js';
import type { Logger } from '../../src/log.js';
import { conversionThread } from '../../src/transcode/conversionThread.js';
import type { Converter } from '../../src/transcode/converter.js';

export const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
export const F = {
  ctExplicit: join(TEST_FILES, 'CT_small.dcm'), // Explicit VR LE, CT
  mrImplicit: join(TEST_FILES, 'MR_small_implicit.dcm'), // Implicit VR LE, MR
  jpeg2000: join(TEST_FILES, 'JPEG2000.dcm'), // JPEG 2000, SC
  jpegLossy: join(TEST_FILES, 'JPEG-lossy.dcm'), // JPEG extended, SC
  rtplanImplicit: join(TEST_FILES, 'rtplan.dcm'), // Implicit VR LE, RT Plan
};

/**
 * The conversion thread running the built worker (dist/transcode/conversionWorker.js; `npm test`
 * builds first): tests import src/, where no .js worker exists next to the module.
 */
export function testConverter(): Converter {
  const workerUrl = new URL('../../dist/transcode/conversionWorker.js', import.meta.url);
  if (!existsSync(workerUrl)) throw new Error('dist/ is not built: run npm run build');
  return conversionThread({ workerUrl });
}

/** Folders made by tempDir in this test file: removed after its last test (KEEP_TEST_DIRS=1 keeps them). */
const madeDirs: string[] = [];
// Registered when a test file imports this module (vitest isolates modules per test file).
afterAll(() => {
  if (process.env.KEEP_TEST_DIRS === '1') return;
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder under the system's temp folder, removed after the test file's last test. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fwd-${prefix}-`));
  madeDirs.push(dir);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Runs `cmd args` without blocking the event loop (for peers of a listener running in the test's
 * process), with TCP_NODELAY=1 for dcmtk; SIGKILL after `timeoutMs` (default 30 s). Resolves with
 * the exit code (null when killed) and stdout and stderr together; never rejects.
 */
export function runAsync(
  cmd: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export interface Peer {
  proc: ChildProcess;
  port: number;
  dir: string;
  output: () => string;
  stop: () => Promise<void>;
}

const children = new Set<ChildProcess>();

/** Starts `storescp [args] -od dir port` (TCP_NODELAY=1) and waits until it listens. */
export async function startStorescp(args: string[], port: number, dir: string): Promise<Peer> {
  const proc = spawn('storescp', [...args, '-od', dir, String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(proc, port, dir);
}

export async function track(proc: ChildProcess, port: number, dir: string, timeoutMs = 10_000): Promise<Peer> {
  children.add(proc);
  let out = '';
  proc.stdout?.on('data', (b) => (out += b));
  proc.stderr?.on('data', (b) => (out += b));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    children.delete(proc);
  };
  try {
    await Promise.race([
      waitForPort(port, timeoutMs),
      exited.then(() => {
        throw new Error(`peer exited early: ${out}`);
      }),
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return { proc, port, dir, output: () => out, stop };
}

/** Kills every peer still running (call from afterEach/afterAll). */
export async function stopAllPeers(): Promise<void> {
  await Promise.all(
    [...children].map(
      (p) =>
        new Promise<void>((r) => {
          if (p.exitCode !== null || p.signalCode !== null) return r();
          p.once('exit', () => r());
          p.kill('SIGKILL');
        }),
    ),
  );
  children.clear();
}

/** The data set bytes of a Part 10 file (everything after group 0002). */
export function dataSetBytes(path: string): Buffer {
  const h = readP10Header(path);
  return readFileSync(path).subarray(h.dataSetOffset);
}

/** Received Part 10 files in `dir`, keyed by SOP Instance UID (from their meta). */
export function receivedBySopInstance(dir: string): Map<string, { path: string; ts: string }[]> {
  const m = new Map<string, { path: string; ts: string }[]>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    let h;
    try {
      h = readP10Header(path);
    } catch {
      continue; // not (yet) a Part 10 file
    }
    const list = m.get(h.sopInstanceUid) ?? [];
    list.push({ path, ts: h.transferSyntaxUid });
    m.set(h.sopInstanceUid, list);
  }
  return m;
}

/** A logger that records lines in memory. */
export function memoryLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (msg: string) => {
    lines.push({ level, msg });
  };
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

export function writeFileIn(dir: string, name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

export function rmrf(p: string): void {
  rmSync(p, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Orthanc (Debian package `orthanc`) as a research PACS

/** Path of the Orthanc binary, or undefined when it is not installed (tests skip then). */
export const ORTHANC_BIN = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc', '/usr/local/bin/Orthanc'].find((p) =>
  existsSync(p),
);

export interface OrthancPeer extends Peer {
  httpPort: number;
  dicomPort: number;
  /** http://127.0.0.1:<httpPort> */
  base: string;
  /** GET `${base}${path}` as JSON. */
  get<T = unknown>(path: string): Promise<T>;
  /** GET `${base}${path}` as bytes. */
  getBytes(path: string): Promise<Buffer>;
}

/**
 * Starts Orthanc on loopback with its own config and storage under `dir` (AE title `aet`, any
 * called AE accepted, no auth, no plugins; `extra` settings on top, e.g. DicomModalities) and
 * waits until both its HTTP and DICOM ports listen. Stopped by peer.stop() or stopAllPeers().
 */
export async function startOrthanc(
  dir: string,
  aet = 'ORTHANC',
  extra: Record<string, unknown> = {},
): Promise<OrthancPeer> {
  if (!ORTHANC_BIN) throw new Error('Orthanc is not installed');
  const httpPort = await freePort();
  const dicomPort = await freePort();
  mkdirSync(join(dir, 'storage'), { recursive: true });
  mkdirSync(join(dir, 'index'), { recursive: true });
  const cfg = join(dir, 'orthanc.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      Name: 'fwd-test',
      StorageDirectory: join(dir, 'storage'),
      IndexDirectory: join(dir, 'index'),
      HttpPort: httpPort,
      DicomPort: dicomPort,
      DicomAet: aet,
      DicomCheckCalledAet: false,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      HttpServerEnabled: true,
      DicomServerEnabled: true,
      Plugins: [],
      StorageCompression: false,
      ConcurrentJobs: 1,
      HttpThreadsCount: 4,
      ...extra,
    }),
  );
  const proc = spawn(ORTHANC_BIN, [cfg], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  const peer = await track(proc, httpPort, dir, 30_000);
  try {
    await waitForPort(dicomPort, 30_000);
  } catch (e) {
    await peer.stop();
    throw e;
  }
  const base = `http://127.0.0.1:${httpPort}`;
  return {
    ...peer,
    httpPort,
    dicomPort,
    base,
    get: async <T>(path: string) => (await (await fetch(`${base}${path}`)).json()) as T,
    getBytes: async (path: string) => Buffer.from(await (await fetch(`${base}${path}`)).arrayBuffer()),
  };
}

// ---------------------------------------------------------------------------------------------
// Large instances, made up

/**
 * Writes a Secondary Capture Part 10 file (Explicit VR LE) whose Pixel Data element holds
 * `pixelBytes` bytes (a repeating pattern), without holding them in memory: the element is
 * written in 1 MiB pieces. Made-up patient; returns the file's SOP Instance UID.
 */
export function writeLargeInstance(path: string, pixelBytes: number, sopInstanceUid: string): string {
  if (pixelBytes % 2 !== 0) throw new Error('pixelBytes must be even');
  const SC = '1.2.840.10008.5.1.4.1.1.7';
  const enc = EXPLICIT_LE;
  const us = (v: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return b;
  };
  const columns = 1024;
  const rows = pixelBytes / 2 / columns;
  if (!Number.isInteger(rows) || rows > 0xffff) throw new Error('pixelBytes must be 2048 x rows (rows <= 65535)');
  const head = Buffer.concat([
    buildFileMeta({ sopClassUid: SC, sopInstanceUid, transferSyntaxUid: EXPLICIT_VR_LE }),
    encodeText(0x00080016, 'UI', SC, enc),
    encodeText(0x00080018, 'UI', sopInstanceUid, enc),
    encodeText(0x00100010, 'PN', 'Test^Large', enc),
    encodeText(0x00100020, 'LO', 'LARGE01', enc),
    encodeRaw(0x00280002, 'US', us(1), enc),
    encodeText(0x00280004, 'CS', 'MONOCHROME2', enc),
    encodeRaw(0x00280010, 'US', us(rows), enc),
    encodeRaw(0x00280011, 'US', us(columns), enc),
    encodeRaw(0x00280100, 'US', us(16), enc),
    encodeRaw(0x00280101, 'US', us(16), enc),
    encodeRaw(0x00280102, 'US', us(15), enc),
    encodeRaw(0x00280103, 'US', us(0), enc),
    encodeHeader(0x7fe00010, 'OW', pixelBytes, enc),
  ]);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    const piece = Buffer.alloc(1 << 20);
    for (let i = 0; i < piece.length; i++) piece[i] = (i * 7) & 0xff;
    for (let done = 0; done < pixelBytes; done += piece.length) {
      writeSync(fd, piece, 0, Math.min(piece.length, pixelBytes - done));
    }
  } finally {
    closeSync(fd);
  }
  return sopInstanceUid;
}

// ---------------------------------------------------------------------------------------------
// Converted instances against their sources (test/fixtures/compare_converted.py)

export interface ComparedInstance {
  source: string;
  target: string;
  /** Set when the comparison itself failed. */
  error?: string;
  /** dcmdump's warnings and errors on the converted file. */
  dcmdump: string[];
  /** Non-pixel elements that differ (empty with pixels_only). */
  elements: string[];
  /** The independent decoder of the source ("gdcmconv --raw", "pydicom"...), null when none could. */
  reference?: string | null;
  pixels?: { equal: boolean; max_diff: number | null; samples: number };
  /** Transfer syntax UID of the converted file. */
  ts: string;
}

/**
 * Compares each `converted` file with its `source` (pixel samples against an independent decode
 * of the source, and with `pixelsOnly` false every other element too), by pydicom, GDCM and
 * dcmtk in a child process. Results in input order.
 */
export function compareConverted(
  cases: { source: string; converted: string; target?: string }[],
  pixelsOnly = false,
): ComparedInstance[] {
  const dir = tempDir('compare');
  try {
    const file = join(dir, 'cases.json');
    writeFileSync(
      file,
      JSON.stringify(cases.map((c) => ({ target: '', ...c, ...(pixelsOnly ? { pixels_only: true } : {}) }))),
    );
    const out = execFileSync(
      '/usr/bin/python3',
      [join(import.meta.dirname, '..', 'fixtures', 'compare_converted.py'), file],
      { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    return JSON.parse(out) as ComparedInstance[];
  } finally {
    rmrf(dir);
  }
}

/**
 * Writes `<dir>/rle-frame2-corrupt.dcm`: pydicom's SC_rgb_rle_2frame.dcm (RLE, two frames) with
 * the second half of its second frame's fragment overwritten with noise, so that decoding frame 2
 * fails while frame 1 decodes; returns its path. Asserts (vitest) that the file has two fragments.
 */
export function writeCorruptSecondFrame(dir: string): string {
  const bytes = Buffer.from(readFileSync(join(TEST_FILES, 'SC_rgb_rle_2frame.dcm')));
  let pos = bytes.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42])) + 12;
  pos += 8 + bytes.readUInt32LE(pos + 4); // Basic Offset Table
  const fragments: [number, number][] = [];
  while (bytes.readUInt32LE(pos) === 0xe000fffe) {
    fragments.push([pos + 8, bytes.readUInt32LE(pos + 4)]);
    pos += 8 + fragments.at(-1)![1];
  }
  expect(fragments).toHaveLength(2);
  const [start, length] = fragments[1]!;
  for (let i = start + length / 2; i < start + length; i++) bytes[i] = (i * 73) & 0xff;
  const out = join(dir, 'rle-frame2-corrupt.dcm');
  writeFileSync(out, bytes);
  return out;
}
