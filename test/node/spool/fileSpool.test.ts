// The file spool's recovery after a crash (src/node/spool/fileSpool.ts): complete files that a
// crash left in incoming/ go to the inbox, partial ones are deleted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildFileMeta } from '../../../src/core/dicom/fileMeta.js';
import { completionMarker, isCompleteSpoolFile, recoverSpool } from '../../../src/node/spool/fileSpool.js';

describe('spool recovery after a crash', () => {
  const meta = buildFileMeta({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    sopInstanceUid: '1.2.3',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
  });
  const body = Buffer.concat([meta.subarray(128), Buffer.from('data set bytes as received...')]);
  const complete = Buffer.concat([completionMarker(128 + body.length, crc32(body)), body]);

  it('moves complete files to the inbox and deletes every partial one', async () => {
    const spool = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-recover-'));
    onTestFinished(() => fs.rmSync(spool, { recursive: true, force: true }));
    const incoming = path.join(spool, 'incoming');
    fs.mkdirSync(incoming);
    const put = (name: string, bytes: Buffer) => fs.writeFileSync(path.join(incoming, name), bytes);
    put('done.part', complete); // marker written and synced, rename lost
    put('cut.part', complete.subarray(0, complete.length - 5)); // marker says longer than the file
    const flipped = Buffer.from(complete);
    flipped[flipped.length - 1]! ^= 1;
    put('corrupt.part', flipped); // length right, CRC wrong
    put('nomarker.part', Buffer.concat([Buffer.alloc(128), body])); // data written, never completed
    put('empty.part', Buffer.alloc(0)); // an unused pool file
    fs.writeFileSync(path.join(spool, 'old.part'), body); // previous layout: never acknowledged
    fs.writeFileSync(path.join(spool, 'queued.dcm'), complete); // inbox: left alone
    expect(isCompleteSpoolFile(complete)).toBe(true);
    expect(await recoverSpool(spool)).toEqual({ recovered: 1, partials: 4 });
    expect(fs.readdirSync(incoming)).toEqual([]);
    expect(fs.readdirSync(spool).sort()).toEqual(['done.dcm', 'incoming', 'queued.dcm']);
    expect(fs.readFileSync(path.join(spool, 'done.dcm')).equals(complete)).toBe(true);
  });
});
