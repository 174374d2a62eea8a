// The spool journal (src/node/spool/spoolJournal.ts): records written through SpoolWriter, what a
// restart recovers (complete, retired, cut, corrupt, stale-generation records), segment reuse,
// the fallback to files, and the reserve's limit.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BLOCK, JournalCursor, SpoolJournal } from '../../../src/node/spool/spoolJournal.js';
import {
  readSpoolItemCopy,
  SMALL,
  SpoolItemGone,
  SpoolItemReader,
  SpoolRecordCorrupt,
} from '../../../src/node/spool/spoolReader.js';
import { formatSpoolRef, type JournalRef, type SpoolRef } from '../../../src/node/spool/spoolRef.js';
import { SpoolPool, isCompleteSpoolFile } from '../../../src/node/spool/fileSpool.js';
import { SpoolWriter } from '../../../src/node/spool/spoolWriter.js';

const MiB = 1024 * 1024;
/** The journal record a spool reference names, or null for a file. */
function record(ref: SpoolRef): JournalRef | null {
  return ref.kind === 'journal' ? ref : null;
}

/** The references' text forms, sorted (to compare sets of references). */
function ids(refs: SpoolRef[]): string[] {
  return refs.map(formatSpoolRef).sort();
}
let tmp: string;
let spool: string;
let pool: SpoolPool;
const open: SpoolJournal[] = [];

beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-journal-'));
  spool = path.join(tmp, 'spool');
  fs.mkdirSync(path.join(spool, 'incoming'), { recursive: true });
  pool = new SpoolPool(spool, () => 2);
  await pool.fill();
});

afterEach(async () => {
  await pool.close();
  for (const j of open.splice(0)) await j.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function journalAt(opts: { reserveBytes?: number; segmentBytes?: number } = {}): Promise<SpoolJournal> {
  const j = new SpoolJournal(spool, {
    reserveBytes: opts.reserveBytes ?? 16 * MiB,
    segmentBytes: opts.segmentBytes ?? 8 * MiB,
  });
  open.push(j);
  await j.recover();
  await j.prepare();
  return j;
}

/** Part 10 preamble + "DICM" + a few meta bytes, as the receiver writes before the data set. */
const META = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('meta-bytes')]);

/** A data set of `n` bytes, distinct per seed. */
function dataSet(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

/** A SpoolWriter as the receiver makes one (`alone`: the fdatasync blocks, else it yields). */
function writer(journal: SpoolJournal, cursor: JournalCursor | undefined, alone = true): SpoolWriter {
  return new SpoolWriter({
    spoolDir: spool,
    pool,
    cursor,
    journal,
    meta: META,
    alone: () => alone,
  });
}

/** Writes one instance through a SpoolWriter in chunks of assorted sizes; returns its reference. */
async function store(journal: SpoolJournal, cursor: JournalCursor | undefined, body: Buffer): Promise<SpoolRef> {
  const w = writer(journal, cursor);
  for (let off = 0, i = 0; off < body.length; i++) {
    const n = [1000, 7, 16000, 333, 70000][i % 5]!;
    w.write(body.subarray(off, off + n));
    off += n;
  }
  return w.finish();
}

function payload(item: SpoolRef): Buffer {
  return readSpoolItemCopy(item).subarray(META.length);
}

describe('spool journal', () => {
  it('writes instances as records of one segment, each complete and block-aligned', async () => {
    const journal = await journalAt();
    const cursor = new JournalCursor(journal);
    const bodies = [dataSet(300_000, 1), dataSet(5, 2), dataSet(600_000, 3)];
    const items: SpoolRef[] = [];
    for (const b of bodies) items.push(await store(journal, cursor, b));
    const refs = items.map((i) => record(i)!);
    expect(refs.every((r) => r !== null)).toBe(true);
    expect(new Set(refs.map((r) => r.segment)).size).toBe(1);
    expect(refs[0]!.offset).toBe(BLOCK);
    for (let i = 0; i < items.length; i++) {
      expect(refs[i]!.offset % BLOCK).toBe(0);
      expect(refs[i]!.length).toBe(META.length + bodies[i]!.length);
      expect(payload(items[i]!).equals(bodies[i]!)).toBe(true);
      // The preamble holds the marker; the rest is the Part 10 file as received.
      expect(readSpoolItemCopy(items[i]!).toString('latin1', 128, 132)).toBe('DICM');
    }
    expect(refs[1]!.offset).toBeGreaterThanOrEqual(refs[0]!.offset + refs[0]!.length);
    expect(ids(journal.liveRecords())).toEqual(ids(items));
  });

  it('recovers exactly the complete, unretired records after a crash', async () => {
    const journal = await journalAt();
    const cursor = new JournalCursor(journal);
    const a = await store(journal, cursor, dataSet(400_000, 1));
    const b = await store(journal, cursor, dataSet(400_000, 2));
    const c = await store(journal, cursor, dataSet(400_000, 3));
    journal.release(record(b)!); // filed: flagged retired
    // A fourth instance is cut off mid-way (never finished, never answered): 300 kB reached disk.
    const w = writer(journal, cursor);
    w.write(dataSet(300_000, 4));
    // The process dies here: a second journal on the same folder sees what a restart would.
    const again = new SpoolJournal(spool, { reserveBytes: 64 * MiB, segmentBytes: 8 * MiB });
    open.push(again);
    const { records } = await again.recover();
    expect(records).toEqual([a, c]);
    expect(payload(records[1]!).equals(dataSet(400_000, 3))).toBe(true);
  });

  it('tells a record cut by a crash (the last, never answered) from one the disk damaged later', async () => {
    const journal = await journalAt();
    const cursor = new JournalCursor(journal);
    const a = await store(journal, cursor, dataSet(100_000, 1));
    const b = await store(journal, cursor, dataSet(100_000, 2));
    const c = await store(journal, cursor, dataSet(100_000, 3));
    const damage = (item: SpoolRef) => {
      const ref = record(item)!;
      const fd = fs.openSync(ref.segment, 'r+');
      fs.writeSync(fd, Buffer.from([0xee]), 0, 1, ref.offset + 50_000);
      fs.closeSync(fd);
    };
    const recovered = async () => {
      const again = new SpoolJournal(spool, { reserveBytes: 16 * MiB, segmentBytes: 8 * MiB });
      open.push(again);
      return (await again.recover()).records;
    };
    // b damaged, c complete after it: b was written (and answered) before c; it is handed on, and
    // reads as corrupt, never as good bytes.
    damage(b);
    expect(() => readSpoolItemCopy(b)).toThrow(SpoolRecordCorrupt);
    expect(readSpoolItemCopy(b, true).length).toBe(record(b)!.length); // as it is, for quarantine
    expect(await recovered()).toEqual([a, b, c]);
    // c damaged too, and nothing complete after: both look like the record a crash cut.
    damage(c);
    expect(await recovered()).toEqual([a]);
  });

  it('reads a small record whole and a large one by position, each checked against its marker first', async () => {
    const journal = await journalAt();
    const cursor = new JournalCursor(journal);
    const small = await store(journal, cursor, dataSet(200_000, 1));
    const large = await store(journal, cursor, dataSet(SMALL + 3 * MiB, 2)); // beyond the whole-read buffer
    const reader = new SpoolItemReader();
    for (const [item, body] of [
      [small, dataSet(200_000, 1)],
      [large, dataSet(SMALL + 3 * MiB, 2)],
    ] as const) {
      const opened = reader.open(item);
      try {
        expect(opened.source.size).toBe(record(item)!.length);
        expect(opened.source.read(META.length, 1000).equals(body.subarray(0, 1000))).toBe(true);
        const piece = opened.piece({ offset: META.length, length: body.length });
        if (item === small) {
          expect(Buffer.isBuffer(piece) && piece.equals(body)).toBe(true); // a view of the reader's buffer
        } else {
          // A range of the segment, to copy without reading it: the reader holds none of it.
          expect(piece).toMatchObject({ offset: record(item)!.offset + META.length, length: body.length });
        }
      } finally {
        opened.close();
      }
    }
    // A byte damaged deep inside either one: the checksum catches it before anything is read.
    for (const [item, at] of [
      [small, 150_000],
      [large, SMALL + 2 * MiB],
    ] as const) {
      const ref = record(item)!;
      const fd = fs.openSync(ref.segment, 'r+');
      fs.writeSync(fd, Buffer.from([0xee]), 0, 1, ref.offset + at);
      fs.closeSync(fd);
      expect(() => reader.open(item)).toThrow(SpoolRecordCorrupt);
      expect(() => readSpoolItemCopy(item)).toThrow(SpoolRecordCorrupt);
      const unchecked = reader.open(item, { unchecked: true }); // as it is, for quarantine
      expect(unchecked.source.size).toBe(ref.length);
      unchecked.close();
    }
  });

  it('reuses a segment once all its records are retired, and ignores the old generation', async () => {
    const journal = await journalAt();
    const cursor = new JournalCursor(journal);
    const first = [
      await store(journal, cursor, dataSet(200_000, 1)),
      await store(journal, cursor, dataSet(200_000, 2)),
    ];
    cursor.end();
    for (const item of first) journal.release(record(item)!);
    await journal.close(); // waits for the new generation to be durable
    const again = await journalAt();
    expect(again.liveRecords()).toEqual([]);
    const next = await store(again, new JournalCursor(again), dataSet(1000, 3));
    const ref = record(next)!;
    expect(ref.segment).toBe(record(first[0]!)!.segment);
    expect(ref.offset).toBe(BLOCK); // from the start again
    expect(ref.generation).toBe(record(first[0]!)!.generation + 1);
    // A name of the earlier use reads as gone, though its bytes are partly still there.
    expect(() => readSpoolItemCopy(first[1]!)).toThrow(SpoolItemGone);
    // The bytes behind the new record still hold the old generation's second record: not recovered.
    const third = new SpoolJournal(spool, { reserveBytes: 64 * MiB, segmentBytes: 8 * MiB });
    open.push(third);
    expect((await third.recover()).records).toEqual([next]);
  });

  it('moves an instance that does not fit its segment into a file, and goes on in the journal after', async () => {
    const journal = await journalAt({ segmentBytes: 2 * MiB, reserveBytes: 8 * MiB });
    const cursor = new JournalCursor(journal);
    const small = await store(journal, cursor, dataSet(700_000, 1));
    const big = await store(journal, cursor, dataSet(3 * MiB, 2)); // larger than a segment
    expect(record(small)).not.toBeNull();
    expect(record(big)).toBeNull();
    expect(big.kind === 'file' && path.dirname(big.path)).toBe(spool);
    expect(isCompleteSpoolFile(readSpoolItemCopy(big))).toBe(true);
    expect(payload(big).equals(dataSet(3 * MiB, 2))).toBe(true);
    // Smaller instances go to the journal again, writing over what the moved one left behind.
    let next = await store(journal, cursor, dataSet(100_000, 3));
    if (!record(next)) next = await store(journal, cursor, dataSet(100_000, 3)); // asked for room for 3 MiB
    const ref = record(next)!;
    expect(ref.offset).toBeGreaterThan(record(small)!.offset);
    expect(payload(next).equals(dataSet(100_000, 3))).toBe(true);
    expect(ids(journal.liveRecords())).toEqual(ids([small, next]));
  });

  it('keeps to its reserve: past it, instances go to files', async () => {
    const journal = await journalAt({ segmentBytes: 4 * MiB, reserveBytes: 4 * MiB }); // one segment
    const one = new JournalCursor(journal);
    const two = new JournalCursor(journal);
    const a = await store(journal, one, dataSet(1000, 1));
    await new Promise((r) => setTimeout(r, 50));
    const b = await store(journal, two, dataSet(1000, 2)); // the only segment is held by `one`
    expect(record(a)).not.toBeNull();
    expect(record(b)).toBeNull();
    expect(fs.readdirSync(path.join(spool, 'journal'))).toEqual(['0000.seg']);
    one.end();
    const c = await store(journal, two, dataSet(1000, 3));
    expect(record(c)!.segment).toBe(record(a)!.segment);
  });

  it('prepares the whole reserve at its full size, and completes a short segment without touching its records', async () => {
    const prepared = await journalAt({ reserveBytes: 16 * MiB, segmentBytes: 8 * MiB });
    const files = fs.readdirSync(path.join(spool, 'journal')).sort();
    expect(files).toEqual(['0000.seg', '0001.seg']);
    for (const f of files) expect(fs.statSync(path.join(spool, 'journal', f)).size).toBe(8 * MiB);
    expect(prepared.missingBytes()).toBe(0);
    await prepared.close();
    fs.rmSync(path.join(spool, 'journal'), { recursive: true });
    // Without prepare(), a segment is created small and grows as records are appended.
    const growing = new SpoolJournal(spool, { reserveBytes: 16 * MiB, segmentBytes: 8 * MiB });
    open.push(growing);
    await growing.recover();
    const cursor = new JournalCursor(growing);
    let item = await store(growing, cursor, dataSet(300_000, 1));
    for (let i = 0; i < 20 && !record(item); i++) {
      await new Promise((r) => setTimeout(r, 20));
      item = await store(growing, cursor, dataSet(300_000, 1));
    }
    const ref = record(item)!;
    expect(fs.statSync(ref.segment).size).toBeLessThan(MiB);
    expect(growing.missingBytes()).toBe(16 * MiB - fs.statSync(ref.segment).size);
    await growing.close();
    const later = await journalAt({ reserveBytes: 16 * MiB, segmentBytes: 8 * MiB });
    expect(fs.statSync(ref.segment).size).toBe(8 * MiB);
    expect(later.liveRecords()).toEqual([item]);
    expect(payload(item).equals(dataSet(300_000, 1))).toBe(true);
  });

  it('keeps a segment held until the record being made durable settles, even when its association ends', async () => {
    const journal = await journalAt({ reserveBytes: 8 * MiB, segmentBytes: 8 * MiB }); // one segment
    const a = new JournalCursor(journal);
    const w = writer(journal, a, false); // fdatasync through the thread pool: finish() yields
    w.write(dataSet(2 * MiB, 1));
    const finishing = w.finish();
    a.end(); // the peer went away while its instance is being made durable
    const b = new JournalCursor(journal);
    const other = await store(journal, b, dataSet(1000, 2));
    expect(record(other)).toBeNull(); // not into the segment a's record still occupies
    const item = await finishing;
    expect(payload(item).equals(dataSet(2 * MiB, 1))).toBe(true);
    // Settled: the segment is free again, and the next record follows a's.
    const next = await store(journal, b, dataSet(1000, 3));
    expect(record(next)!.offset).toBeGreaterThanOrEqual(record(item)!.offset + record(item)!.length);
    expect(ids(journal.liveRecords())).toEqual(ids([item, next]));
  });

  it('sends instances too large for a segment straight to files, and returns to the journal after', async () => {
    const journal = await journalAt({ reserveBytes: 4 * MiB, segmentBytes: 2 * MiB });
    const cursor = new JournalCursor(journal);
    const big1 = await store(journal, cursor, dataSet(3 * MiB, 1)); // moved to a file mid-way
    const big2 = await store(journal, cursor, dataSet(3 * MiB, 2)); // straight to a file
    expect(record(big1)).toBeNull();
    expect(record(big2)).toBeNull();
    expect(payload(big2).equals(dataSet(3 * MiB, 2))).toBe(true);
    const small = await store(journal, cursor, dataSet(10_000, 3));
    const small2 = await store(journal, cursor, dataSet(10_000, 4));
    expect(record(small) ?? record(small2)).not.toBeNull();
  });

  it('leaves the disk space it must keep free: the reserve stays short, instances go to files', async () => {
    const journal = new SpoolJournal(spool, { reserveBytes: 16 * MiB, segmentBytes: 8 * MiB, keepFreeBytes: 2 ** 60 });
    open.push(journal);
    await journal.recover();
    expect(await journal.prepare()).toEqual({ preparedBytes: 0, error: 'LOWDISK' });
    const item = await store(journal, new JournalCursor(journal), dataSet(1000, 1));
    expect(record(item)).toBeNull();
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(path.join(spool, 'journal'))).toBe(false); // nor grown at run time
  });

  it('never gives two records the same name, even when a segment is recreated under the same path', async () => {
    const journal = await journalAt({ reserveBytes: 8 * MiB, segmentBytes: 8 * MiB });
    const cursor = new JournalCursor(journal);
    const first = await store(journal, cursor, dataSet(300_000, 1));
    cursor.end();
    fs.rmSync(path.join(spool, 'journal'), { recursive: true }); // removed while the node runs
    let second = await store(journal, cursor, dataSet(300_000, 2));
    for (let i = 0; i < 20 && !record(second); i++) {
      await new Promise((r) => setTimeout(r, 20)); // 0000.seg is being created again
      second = await store(journal, cursor, dataSet(300_000, 2));
    }
    const [a, b] = [record(first)!, record(second)!];
    expect([b.segment, b.offset, b.length, b.generation]).toEqual([a.segment, a.offset, a.length, a.generation]);
    expect(formatSpoolRef(second)).not.toBe(formatSpoolRef(first)); // the nonce differs
    expect(() => readSpoolItemCopy(first)).toThrow(SpoolItemGone);
    journal.release(record(first)!); // the first one's instance is filed: that must not retire the second
    expect(journal.liveRecords()).toEqual([second]);
    expect(payload(second).equals(dataSet(300_000, 2))).toBe(true);
  });

  it('says once, with an error code, when it cannot create a segment', async () => {
    const warnings: string[] = [];
    const journal = new SpoolJournal(spool, {
      reserveBytes: 8 * MiB,
      segmentBytes: 8 * MiB,
      warn: (m, code) => warnings.push(`${code}: ${m}`),
    });
    open.push(journal);
    await journal.recover();
    await journal.prepare();
    fs.rmSync(spool, { recursive: true });
    fs.writeFileSync(spool, 'not a folder'); // the spool folder is gone for good
    expect(journal.take(MiB)).toBeUndefined(); // its segment lost its name; a new one cannot be made
    await new Promise((r) => setTimeout(r, 50));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^E[A-Z]+: spool journal segment could not be created/);
    fs.rmSync(spool);
    fs.mkdirSync(path.join(spool, 'incoming'), { recursive: true }); // for afterEach
  });

  it('with a reserve of 0, writes a file per instance', async () => {
    const journal = await journalAt({ reserveBytes: 0 });
    const item = await store(journal, new JournalCursor(journal), dataSet(1000, 1));
    expect(record(item)).toBeNull();
    expect(fs.existsSync(path.join(spool, 'journal'))).toBe(false);
  });
});
