// Range copies between open files (src/io/copyRange.ts) and atomic writes made of buffers and
// ranges (src/io/durableWrite.ts): the bytes land where they belong, by the kernel on one file
// system, streamed across two (tmpfs to disk), and a source shorter than its range is an error.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyMechanism, copyRangeSync } from '../../src/io/copyRange.js';
import { writeFileAtomicSync } from '../../src/io/durableWrite.js';

let tmp: string;
const data = randomBytes(3 * (1 << 20) + 12345);

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-copyrange-'));
  fs.writeFileSync(path.join(tmp, 'src.bin'), data);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Copies `length` bytes from `offset` of `from` after a 5-byte prefix, into a new file. */
function copyAfterPrefix(from: string, offset: number, length: number): Buffer {
  const to = path.join(tmp, `out-${randomBytes(4).toString('hex')}`);
  const fdIn = fs.openSync(from, 'r');
  const fdOut = fs.openSync(to, 'w');
  try {
    fs.writeSync(fdOut, Buffer.from('HEAD:'));
    copyRangeSync({ fd: fdIn, offset, length }, fdOut);
    fs.writeSync(fdOut, Buffer.from(':TAIL'));
  } finally {
    fs.closeSync(fdIn);
    fs.closeSync(fdOut);
  }
  return fs.readFileSync(to);
}

describe('copyRangeSync', () => {
  it('copies a range at the destination position, by the kernel on Linux', () => {
    if (process.platform === 'linux') expect(copyMechanism()).toBe('copy_file_range');
    const out = copyAfterPrefix(path.join(tmp, 'src.bin'), 4097, data.length - 4097 - 3);
    expect(
      out.equals(Buffer.concat([Buffer.from('HEAD:'), data.subarray(4097, data.length - 3), Buffer.from(':TAIL')])),
    ).toBe(true);
    expect(copyAfterPrefix(path.join(tmp, 'src.bin'), 10, 0).toString()).toBe('HEAD::TAIL');
  });

  it.skipIf(!fs.existsSync('/dev/shm'))('copies across file systems (tmpfs to disk) by streaming', () => {
    const shm = fs.mkdtempSync('/dev/shm/deid-copyrange-');
    try {
      fs.writeFileSync(path.join(shm, 'src.bin'), data);
      const out = copyAfterPrefix(path.join(shm, 'src.bin'), 1, data.length - 1);
      expect(out.subarray(5, -5).equals(data.subarray(1))).toBe(true);
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });

  it('throws ESHORTREAD when the source ends before the range', () => {
    expect(() => copyAfterPrefix(path.join(tmp, 'src.bin'), data.length - 10, 20)).toThrow(
      expect.objectContaining({ code: 'ESHORTREAD' }),
    );
  });

  it('streams through a 1 MiB buffer with DICOM_DEID_COPY=stream', () => {
    // A fresh process: the mechanism is chosen once per process.
    const script = `
      import fs from 'node:fs';
      import { copyMechanism, copyRangeSync } from '${path.join(import.meta.dirname, '..', '..', 'dist', 'io', 'copyRange.js')}';
      const [from, to] = process.argv.slice(1); // node -e: no script path in argv
      const fdIn = fs.openSync(from, 'r'), fdOut = fs.openSync(to, 'w');
      copyRangeSync({ fd: fdIn, offset: 7, length: fs.fstatSync(fdIn).size - 7 }, fdOut);
      console.log(copyMechanism());`;
    const to = path.join(tmp, 'streamed.bin');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, path.join(tmp, 'src.bin'), to], {
      encoding: 'utf8',
      env: { ...process.env, DICOM_DEID_COPY: 'stream' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('stream');
    expect(fs.readFileSync(to).equals(data.subarray(7))).toBe(true);
  });
});

describe('writeFileAtomicSync with ranges', () => {
  it('writes buffers and ranges of other files in order, under the final name only', () => {
    const fd = fs.openSync(path.join(tmp, 'src.bin'), 'r');
    const file = path.join(tmp, 'deep', 'er', 'pieces.bin');
    try {
      writeFileAtomicSync(file, [
        Buffer.from('a'),
        Buffer.from('bc'),
        { fd, offset: 100, length: 2 << 20 },
        Buffer.from('d'),
        { fd, offset: 0, length: 3 },
      ]);
    } finally {
      fs.closeSync(fd);
    }
    const expected = Buffer.concat([
      Buffer.from('abc'),
      data.subarray(100, 100 + (2 << 20)),
      Buffer.from('d'),
      data.subarray(0, 3),
    ]);
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['pieces.bin']);
  });
});
