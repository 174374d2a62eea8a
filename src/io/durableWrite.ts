// Durable file writes: temp name in the same folder, write, fsync, rename, fsync the folder.
// After it resolves the file survives a crash or power loss with exactly these bytes; before,
// readers never see a partial file under the final name.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  promises as fsp,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, basename } from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileDurable(file: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const dir = dirname(file);
  await fsp.mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

/**
 * Moves a file durably: rename when on the same file system, else copy durably and remove the
 * source. The destination folder is created and fsync'd.
 */
export async function moveFileDurable(from: string, to: string): Promise<void> {
  await fsp.mkdir(dirname(to), { recursive: true });
  try {
    await fsp.rename(from, to);
    await fsyncDir(dirname(to));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await writeFileDurable(to, await fsp.readFile(from));
    await fsp.rm(from, { force: true });
  }
}

// Synchronous twins, for worker threads: they never touch libuv's shared thread pool, so a
// processing thread cannot delay the receiving thread's spool writes.

const knownDirs = new Set<string>();

function mkdirpSync(dir: string): void {
  if (knownDirs.has(dir)) return;
  mkdirSync(dir, { recursive: true });
  knownDirs.add(dir);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileDurableSync(file: string, data: Uint8Array | string, mode = 0o644): void {
  const dir = dirname(file);
  mkdirpSync(dir);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDirSync(dir);
}

export function moveFileDurableSync(from: string, to: string): void {
  mkdirpSync(dirname(to));
  try {
    renameSync(from, to);
    fsyncDirSync(dirname(to));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    writeFileDurableSync(to, readFileSync(from));
    rmSync(from, { force: true });
  }
}
