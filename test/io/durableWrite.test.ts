// Atomic writes through a temporary name: what a killed writer left behind is removed by the
// next write of the same file, and nothing else is.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirRecursiveSync, writeFileAtomicSync, writeFileDurableSync } from '../../src/io/durableWrite.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-write-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file as a killed writer leaves it: `ageS` seconds old. */
function leftover(dir: string, name: string, ageS: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, 'half of an instance');
  const t = Date.now() / 1000 - ageS;
  fs.utimesSync(file, t, t);
  return file;
}

describe('writeFileAtomicSync', () => {
  it('writes the bytes under the final name and leaves no temporary file', () => {
    const dir = path.join(tmp, 'plain', 'RES001_1');
    writeFileAtomicSync(path.join(dir, 'a.dcm'), [Buffer.from('one'), Buffer.from('two')]);
    expect(fs.readFileSync(path.join(dir, 'a.dcm'), 'utf8')).toBe('onetwo');
    expect(fs.readdirSync(dir)).toEqual(['a.dcm']);
  });

  it("removes an earlier process's temporary file for the file it writes, and nothing else", () => {
    const dir = path.join(tmp, 'killed', 'RES001_1');
    fs.mkdirSync(dir, { recursive: true });
    const stale = leftover(dir, '.a.dcm.0123456789ab.tmp', 3600);
    const otherTarget = leftover(dir, '.b.dcm.0123456789ab.tmp', 3600);
    const notOurs = leftover(dir, '.a.dcm.backup.tmp', 3600);
    // Written after this process started: a live writer's, not debris.
    const live = path.join(dir, '.a.dcm.fedcba987654.tmp');
    fs.writeFileSync(live, 'being written');

    writeFileAtomicSync(path.join(dir, 'a.dcm'), Buffer.from('whole'));
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'a.dcm'), 'utf8')).toBe('whole');
    expect(fs.existsSync(otherTarget)).toBe(true);
    expect(fs.existsSync(notOurs)).toBe(true);
    expect(fs.existsSync(live)).toBe(true);

    // b's leftover goes when b is written (the durable write too).
    writeFileDurableSync(path.join(dir, 'b.dcm'), 'whole');
    expect(fs.existsSync(otherTarget)).toBe(false);
    expect(fs.readdirSync(dir).sort()).toEqual(['.a.dcm.backup.tmp', '.a.dcm.fedcba987654.tmp', 'a.dcm', 'b.dcm']);
  });
});

describe('mkdirRecursiveSync', () => {
  it('makes every missing folder, and accepts one that exists', () => {
    const dir = path.join(tmp, 'a', 'b', 'c');
    mkdirRecursiveSync(dir, 0o700);
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    mkdirRecursiveSync(dir);
  });

  it('throws where mkdir says ENOENT under an existing parent (/proc), instead of looping as Node 20 does', () => {
    // Found by a new-user trial: batch --output /proc/x spun at 100% CPU, deaf to SIGTERM.
    if (process.platform !== 'linux') return;
    expect(() => mkdirRecursiveSync('/proc/dicom-deid-no-such/x')).toThrow(/ENOENT/);
  });

  it('names a file on the way (ENOTDIR)', () => {
    const file = path.join(tmp, 'plain-file');
    fs.writeFileSync(file, 'x');
    expect(() => mkdirRecursiveSync(path.join(file, 'sub', 'dir'))).toThrow(/ENOTDIR/);
  });
});
