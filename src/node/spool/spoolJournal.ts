// The spool journal: a reserve of large segment files that received instances are written into,
// one after another, and that are reused once every instance in them is filed.
//
// Why: the C-STORE answer waits for the instance to be durable, and with one association that
// wait is the node's speed. Measured here (0.5 MB CT slices), fdatasync of a new file, or of an
// append, costs ~0.5-1 ms, because the file system must commit the newly allocated blocks in its
// journal; writing over blocks a file already owns needs no such commit and costs ~0.3 ms. A
// reused segment is such a file: one association pushing 600 slices went from 0.5-0.6x the speed
// of `storescp +B` (a file per instance) to 0.8-0.9x (segments).
//
// Layout of `<spool>/journal/<n>.seg` (spoolRecordFormat.ts):
//   bytes 0..4095   header: generation (raised each time the segment is reused) and a random nonce
//   from 4096 on    records, each at a 4096-byte boundary: one instance as a Part 10 file whose
//                   preamble holds the record marker: length, CRC-32, the segment's generation
//                   and nonce, and a "retired" flag set once it is filed.
// A record is complete when its marker matches its bytes and carries the segment's stamp;
// records are written in order and each is answered only after it is durable, so the records of
// the current generation from 4096 on, up to the first one that does not match, are every
// instance of that segment that may have been acknowledged. The others are never-answered
// partial writes or left over from an earlier generation.
//
// One association writes into one segment at a time (it holds it, JournalCursor), so records of
// a segment never interleave. The whole reserve (config spoolReserveMB) is written at start-up on
// a new spool (prepare()), so that even the first instances write over allocated blocks; when all
// segments are held or full, or an instance does not fit, the writer falls back to a file of its
// own. A segment is reused once no association holds it and all its records are
// retired (filed durably, or quarantined): its generation is raised and made durable first.
//
// The segments keep the bytes of filed instances until they are overwritten, as deleted files
// keep theirs on disk: the spool, like the quarantine, is key material (files are mode 0600).
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { closeQuietly, fdatasyncAsync, fsyncPathSync } from '../../io/durableWrite.js';
import {
  BLOCK,
  RETIRED_AT,
  newStamp,
  readMarker,
  readSegmentHeader,
  recordMarker,
  segmentHeader,
  type Stamp,
} from './spoolRecordFormat.js';
import type { JournalRef } from './spoolRef.js';
import { errorCode } from '../../errors.js';

export { BLOCK };
export const JOURNAL = 'journal';
/** Each instance is copied into a staging buffer of this size and written in whole blocks. */
const STAGING = 256 * 1024;

/** `n` bytes rounded up to a whole number of BLOCKs (4096 bytes). */
export function alignUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function preadAll(fd: number, buf: Buffer, position: number): number {
  let off = 0;
  while (off < buf.length) {
    const n = fs.readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

function pwriteAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, position + off);
}

export interface Segment {
  readonly path: string;
  readonly fd: number;
  /** This use of the segment (replaced, as a new object, each time it is reused). */
  stamp: Stamp;
  /** Where the next record starts. */
  head: number;
  /** The records acknowledged and not yet retired: offset -> length. */
  readonly live: Map<number, number>;
  /** Held by an association's cursor. */
  held: boolean;
  /** Its generation is being raised (not usable meanwhile), or it failed and is out of use. */
  unavailable: boolean;
}

export interface SpoolJournalOptions {
  /** Most bytes the segments may take together; 0 turns the journal off (a file per instance). */
  reserveBytes: number;
  /** Size of one segment (64 MiB). */
  segmentBytes?: number;
  /**
   * Disk space the reserve never takes (default: 1/20 of the file system, at least 1 GiB and at
   * most 10 GiB): the outputs, the quarantine and the state need it more.
   */
  keepFreeBytes?: number;
  /** Told when a segment goes out of use or cannot be created (an error code, no identifier). */
  warn?: (message: string, code: string) => void;
}

/**
 * The reserve of segment files in `<spool>/journal/` (see above): recover(), then prepare() writes the
 * reserve (`reserveBytes`, whole `segmentBytes` segments, never taking the disk's keep-free space);
 * JournalCursor writes records, release() retires them once filed. A segment that fails an I/O goes
 * out of use and is reported through `warn`; the writers then fall back to files.
 */
export class SpoolJournal {
  readonly dir: string;
  readonly segmentBytes: number;
  private readonly maxSegments: number;
  private readonly segments = new Map<string, Segment>();
  private creating: Promise<void> | undefined;
  private retryAfter = 0;
  private growFailing = false;
  private readonly busy = new Set<Promise<unknown>>();
  private closed = false;
  private readonly keepFreeBytes: number | undefined;
  private readonly warn: (message: string, code: string) => void;

  /** `spoolDir`: the spool folder (segments go to its journal/ subfolder). Touches no file. */
  constructor(spoolDir: string, opts: SpoolJournalOptions) {
    this.dir = path.join(spoolDir, JOURNAL);
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.maxSegments = Math.floor(opts.reserveBytes / this.segmentBytes);
    this.keepFreeBytes = opts.keepFreeBytes;
    this.warn = opts.warn ?? (() => undefined);
  }

  /** Whether `bytes` more can go to the reserve and still leave the disk space it must not take. */
  private diskAllows(bytes: number): boolean {
    let st: fs.StatsFs;
    try {
      st = fs.statfsSync(path.dirname(this.dir));
    } catch {
      return true; // cannot tell: the write itself will say
    }
    const keep = this.keepFreeBytes ?? Math.min(10 * 1024 ** 3, Math.max(1024 ** 3, (st.blocks * st.bsize) / 20));
    return st.bavail * st.bsize - bytes >= keep;
  }

  get enabled(): boolean {
    return this.maxSegments > 0;
  }

  /**
   * Opens the segments a previous run left and returns its complete, unretired records (each may
   * have been acknowledged: they are processed again). Run once, before receiving.
   */
  async recover(): Promise<{ records: JournalRef[]; segments: number }> {
    const records: JournalRef[] = [];
    let names: string[] = [];
    try {
      names = (await fs.promises.readdir(this.dir)).filter((n) => /^\d+\.seg$/.test(n)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names) {
      const p = path.join(this.dir, name);
      const fd = fs.openSync(p, 'r+');
      const header = Buffer.alloc(BLOCK);
      let stamp: Stamp | null;
      try {
        stamp = preadAll(fd, header, 0) === BLOCK ? readSegmentHeader(header) : null;
      } catch (err) {
        closeQuietly(fd);
        throw err;
      }
      const seg: Segment = {
        path: p,
        fd,
        stamp: stamp ?? newStamp(0),
        head: BLOCK,
        live: new Map(),
        held: false,
        unavailable: false,
      };
      this.segments.set(p, seg);
      if (stamp === null) {
        // A segment whose header never became durable held no acknowledged record: start it over.
        await this.raiseGeneration(seg);
        continue;
      }
      this.scan(seg, records);
      // Nothing left to process in it: reuse it from the start.
      if (seg.live.size === 0 && seg.head > BLOCK) await this.raiseGeneration(seg);
    }
    return { records, segments: this.segments.size };
  }

  /**
   * Reads the records of the segment's current use, from the first block on (see the header).
   * A record whose marker is of this use but whose bytes do not match it is either the last one,
   * cut by the crash (never acknowledged), or, when a complete record follows it, one the disk
   * damaged after it was acknowledged: that one is handed on too, and its reader finds it corrupt
   * (spoolRef.ts: the node quarantines it as it is).
   */
  private scan(seg: Segment, out: JournalRef[]): void {
    const marker = Buffer.alloc(128);
    let chunk = Buffer.alloc(0);
    let offset = BLOCK;
    /** Records that do not match their marker, not yet followed by one that does. */
    let mismatched: { offset: number; length: number; retired: boolean }[] = [];
    for (;;) {
      if (offset + 132 > this.segmentBytes || preadAll(seg.fd, marker, offset) < 128) break;
      const m = readMarker(marker, seg.stamp);
      if (!m || m.length < 132 || offset + m.length > this.segmentBytes) break;
      let crc = 0;
      let pos = 128;
      let complete = true;
      while (pos < m.length) {
        const n = Math.min(m.length - pos, 1024 * 1024);
        if (chunk.length < n) chunk = Buffer.alloc(1024 * 1024);
        if (preadAll(seg.fd, chunk.subarray(0, n), offset + pos) < n) {
          complete = false;
          break;
        }
        crc = crc32(chunk.subarray(0, n), crc);
        pos += n;
      }
      if (!complete) break;
      if (crc >>> 0 !== m.crc) {
        mismatched.push({ offset, length: m.length, retired: m.retired });
      } else {
        for (const r of [...mismatched, { offset, length: m.length, retired: m.retired }]) {
          if (r.retired) continue;
          seg.live.set(r.offset, r.length);
          out.push(this.refOf(seg, r.offset, r.length));
        }
        mismatched = [];
      }
      offset = alignUp(offset + m.length);
    }
    seg.head = mismatched[0]?.offset ?? offset;
  }

  private refOf(seg: Segment, offset: number, length: number): JournalRef {
    return {
      kind: 'journal',
      segment: seg.path,
      offset,
      length,
      generation: seg.stamp.generation,
      nonce: seg.stamp.nonce.toString('hex'),
    };
  }

  /** Bytes prepare() would write (0 once the reserve is ready). */
  missingBytes(): number {
    if (!this.enabled) return 0;
    let missing = (this.maxSegments - this.segments.size) * this.segmentBytes;
    for (const seg of this.segments.values()) {
      try {
        missing += Math.max(0, this.segmentBytes - fs.fstatSync(seg.fd).size);
      } catch {
        /* closed: not prepared again */
      }
    }
    return Math.max(0, missing);
  }

  /**
   * Makes the whole reserve ready, before receiving starts: creates the missing segments and
   * writes zeros over every block a segment does not own yet, so that the very first burst
   * already writes over allocated blocks. Costs a few seconds once, on a new spool (1 GiB took
   * 0.7-3 s here); later starts find it done. Stops at the first error, or before it would leave
   * the disk less free space than keepFreeBytes ('LOWDISK'): the segments that are ready are
   * used, and instances beyond them go to files.
   */
  prepare(): Promise<{ preparedBytes: number; error?: string }> {
    const p = this.fillReserve();
    this.busy.add(p);
    void p.finally(() => this.busy.delete(p));
    return p;
  }

  private async fillReserve(): Promise<{ preparedBytes: number; error?: string }> {
    let preparedBytes = 0;
    if (!this.enabled) return { preparedBytes };
    try {
      for (const seg of this.segments.values()) {
        if (!this.diskAllows(this.segmentBytes - fs.fstatSync(seg.fd).size)) return { preparedBytes, error: 'LOWDISK' };
        preparedBytes += await this.zeroFill(seg.fd);
      }
      while (this.segments.size < this.maxSegments && !this.closed) {
        if (!this.diskAllows(this.segmentBytes)) return { preparedBytes, error: 'LOWDISK' };
        preparedBytes += await this.createSegment(true);
      }
    } catch (err) {
      return { preparedBytes, error: (err as NodeJS.ErrnoException).code ?? 'Error' };
    }
    return { preparedBytes };
  }

  /** Writes zeros from the end of a segment file to its full size, durably; returns the bytes written. */
  private async zeroFill(fd: number): Promise<number> {
    const size = fs.fstatSync(fd).size;
    if (size >= this.segmentBytes) return 0;
    const zeros = Buffer.alloc(Math.min(8 * 1024 * 1024, this.segmentBytes));
    for (let pos = size; pos < this.segmentBytes;) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.write(fd, zeros, 0, Math.min(zeros.length, this.segmentBytes - pos), pos, (err, written) =>
          err ? reject(err) : resolve(written),
        ),
      );
      pos += n;
    }
    await fdatasyncAsync(fd);
    return this.segmentBytes - size;
  }

  /** Counts for the spool's status (cheap: no I/O). */
  stats(): {
    segments: number;
    segmentsHeld: number;
    segmentsUnavailable: number;
    liveRecords: number;
    reserveBytes: number;
  } {
    let segmentsHeld = 0;
    let segmentsUnavailable = 0;
    let liveRecords = 0;
    for (const seg of this.segments.values()) {
      if (seg.held) segmentsHeld++;
      if (seg.unavailable) segmentsUnavailable++;
      liveRecords += seg.live.size;
    }
    return {
      segments: this.segments.size,
      segmentsHeld,
      segmentsUnavailable,
      liveRecords,
      reserveBytes: this.maxSegments * this.segmentBytes,
    };
  }

  /** Every acknowledged, unretired record (for a rescan of the spool). */
  liveRecords(): JournalRef[] {
    const out: JournalRef[] = [];
    for (const seg of this.segments.values())
      for (const [offset, length] of seg.live) out.push(this.refOf(seg, offset, length));
    return out;
  }

  /**
   * A segment with at least `room` bytes free that nobody holds, now held by the caller; or
   * undefined (none free: the caller writes a file of its own, and a segment is created in the
   * background while the reserve allows).
   */
  take(room: number): Segment | undefined {
    if (this.closed || !this.enabled) return undefined;
    let best: Segment | undefined;
    for (const seg of [...this.segments.values()]) {
      if (seg.held || seg.unavailable || this.segmentBytes - seg.head < room) continue;
      if (!this.linked(seg)) continue;
      // Prefer the fullest one that fits: empty segments stay whole for large instances.
      if (!best || seg.head > best.head) best = seg;
    }
    if (best) {
      best.held = true;
      return best;
    }
    this.grow();
    return undefined;
  }

  /**
   * Whether the segment file still has its name (the spool folder may be removed while the node
   * runs: a record written to a nameless file would be lost at the next start). One that lost it
   * is dropped, with its records (their reads fail as gone: spoolRef.ts).
   */
  linked(seg: Segment): boolean {
    try {
      if (fs.fstatSync(seg.fd).nlink > 0) return true;
    } catch {
      /* closed */
    }
    seg.unavailable = true;
    if (this.segments.get(seg.path) === seg) this.segments.delete(seg.path);
    closeQuietly(seg.fd);
    return false;
  }

  /** The holder lets the segment go (association ended, or the segment is full). */
  letGo(seg: Segment): void {
    seg.held = false;
    this.reuseIfDone(seg);
  }

  /**
   * A record was made durable and is about to be acknowledged. Refused (the store then fails)
   * unless the segment is still held, in the same use, as when the record was begun.
   */
  committed(seg: Segment, stamp: Stamp, offset: number, length: number): JournalRef {
    if (!seg.held || seg.unavailable || seg.stamp !== stamp || offset !== seg.head) {
      throw new Error('spool segment changed while a record was written');
    }
    seg.live.set(offset, length);
    seg.head = alignUp(offset + length);
    return this.refOf(seg, offset, length);
  }

  /**
   * The record's instance no longer needs the spool (filed durably, quarantined, or never
   * answered): flags it retired (not fsync'd: after a crash it is at worst processed again, which
   * is idempotent) and reuses the segment once nothing in it is live.
   */
  release(r: JournalRef): void {
    const seg = this.segments.get(r.segment);
    if (!seg || seg.stamp.generation !== r.generation || seg.stamp.nonce.toString('hex') !== r.nonce) return;
    if (seg.live.get(r.offset) !== r.length) return;
    seg.live.delete(r.offset);
    try {
      const flag = Buffer.alloc(4);
      flag.writeUInt32LE(1);
      pwriteAll(seg.fd, flag, r.offset + RETIRED_AT);
    } catch {
      /* the flag only saves work after a crash */
    }
    this.reuseIfDone(seg);
  }

  private reuseIfDone(seg: Segment): void {
    if (seg.held || seg.unavailable || seg.live.size > 0 || seg.head === BLOCK || this.closed) return;
    this.track(this.raiseGeneration(seg));
  }

  /** Starts the segment over: a new stamp, durable before any record of it is written. */
  private async raiseGeneration(seg: Segment): Promise<void> {
    seg.unavailable = true;
    try {
      const next = newStamp(seg.stamp.generation + 1);
      pwriteAll(seg.fd, segmentHeader(next), 0);
      await fdatasyncAsync(seg.fd);
      seg.stamp = next;
      seg.head = BLOCK;
      seg.unavailable = false;
    } catch (err) {
      // Left out of use; its records (all retired) need nothing more.
      this.warn('spool journal segment could not be reused; it stays out of use until restart', errorCode(err));
    }
  }

  /**
   * Creates one more segment in the background, while the reserve allows (when one was lost, or
   * prepare() could not make them all): small at first, it grows as records are appended.
   */
  private grow(): void {
    if (this.creating || this.closed || this.segments.size >= this.maxSegments || Date.now() < this.retryAfter) return;
    if (!this.diskAllows(this.segmentBytes)) {
      this.retryAfter = Date.now() + 60_000;
      return;
    }
    this.creating = this.createSegment()
      .then(() => {
        this.growFailing = false;
      })
      .catch((err: unknown) => {
        this.retryAfter = Date.now() + 1000;
        if (!this.growFailing)
          this.warn('spool journal segment could not be created; instances go to files meanwhile', errorCode(err));
        this.growFailing = true; // said once, until one can be created again
      })
      .finally(() => {
        this.creating = undefined;
      });
  }

  /** Creates a segment (with `fill`, at its full size: see prepare()); returns the bytes written. */
  private async createSegment(fill = false): Promise<number> {
    try {
      await fs.promises.mkdir(this.dir); // not recursive: without the spool folder, stores fail
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    fsyncPathSync(path.dirname(this.dir)); // the folder's name is durable before anything in it
    let n = 0;
    for (const name of await fs.promises.readdir(this.dir)) {
      if (/^\d+\.seg$/.test(name)) n = Math.max(n, Number(name.slice(0, -4)) + 1);
    }
    const p = path.join(this.dir, `${String(n).padStart(4, '0')}.seg`);
    const stamp = newStamp(1);
    const fd = await new Promise<number>((resolve, reject) =>
      fs.open(p, 'wx+', 0o600, (err, f) => (err ? reject(err) : resolve(f))),
    );
    let written = BLOCK;
    try {
      pwriteAll(fd, segmentHeader(stamp), 0);
      if (fill) written += await this.zeroFill(fd);
      else await fdatasyncAsync(fd);
      fsyncPathSync(this.dir);
    } catch (err) {
      closeQuietly(fd);
      await fs.promises.rm(p, { force: true });
      throw err;
    }
    if (this.closed) {
      closeQuietly(fd);
      return written;
    }
    this.segments.set(p, { path: p, fd, stamp, head: BLOCK, live: new Map(), held: false, unavailable: false });
    return written;
  }

  private track(p: Promise<void>): void {
    this.busy.add(p);
    void p.finally(() => this.busy.delete(p));
  }

  /** Waits for background work and closes the segments (their records stay for the next start). */
  async close(): Promise<void> {
    this.closed = true; // no new background work; what runs is awaited
    await this.creating;
    while (this.busy.size > 0) await Promise.allSettled([...this.busy]);
    for (const seg of this.segments.values()) closeQuietly(seg.fd);
    this.segments.clear();
  }
}

/**
 * One association's place in the journal: the segment it holds, and a staging buffer through
 * which records are written in whole blocks (a partial block of a reused segment would first be
 * read back from disk, and fewer, larger writes cost less).
 */
export class JournalCursor {
  private segment: Segment | undefined;
  private staging: Buffer | undefined;
  /** The record being written (a peer must wait for an answer before its next instance). */
  private active: RecordWriter | undefined;
  /** end() came while a record was being written: the segment is let go once it settles. */
  private endWhenSettled = false;
  /** Size of this association's last instance: the next one likely needs as much room. */
  private lastBytes = 0;

  /** A cursor of `journal` holding no segment until its first begin(). */
  constructor(private readonly journal: SpoolJournal) {}

  /** A writer for the next record, or undefined (the caller writes a file instead). */
  begin(): RecordWriter | undefined {
    if (!this.journal.enabled || this.active) return undefined;
    const room = Math.max(1024 * 1024, Math.ceil(1.5 * this.lastBytes));
    if (room > this.journal.segmentBytes - BLOCK) {
      this.letGo(); // instances this large go to files (until a smaller one comes)
      return undefined;
    }
    const seg = this.segment;
    if (seg && (seg.unavailable || this.journal.segmentBytes - seg.head < room || !this.journal.linked(seg)))
      this.letGo();
    this.segment ??= this.journal.take(room);
    if (!this.segment) return undefined;
    this.staging ??= Buffer.allocUnsafeSlow(STAGING);
    const writer = new RecordWriter(this.journal, this.segment, this.staging, (outcome) => {
      if (this.active === writer) this.active = undefined;
      if (outcome === 'failed') writer.segment.unavailable = true; // its state on disk is unknown
      // Failed or full (moved): the next instance takes another segment.
      if (outcome === 'failed' || outcome === 'moved' || this.endWhenSettled) this.letGo();
    });
    this.active = writer;
    return writer;
  }

  /** The size of the instance just stored (wherever it went): the room the next one asks for. */
  stored(bytes: number): void {
    this.lastBytes = bytes;
  }

  /** Association ended: the segment is free for others (once the record being written settles). */
  end(): void {
    if (this.active) this.endWhenSettled = true;
    else this.letGo();
  }

  private letGo(): void {
    this.endWhenSettled = false;
    if (this.segment) this.journal.letGo(this.segment);
    this.segment = undefined;
  }
}

type RecordOutcome = 'done' | 'failed' | 'moved' | 'abandoned';

/**
 * Writes one record at its segment's head. append() returns false when the record would not fit:
 * the caller then moves what was written so far (copyOut) into a file and goes on there.
 */
export class RecordWriter {
  readonly offset: number;
  /** The segment's use the record belongs to. */
  private readonly stamp: Stamp;
  /** Bytes of the record so far (staged ones included). */
  length = 0;
  /** Bytes already written to the segment (a multiple of BLOCK). */
  private flushed = 0;
  private staged = 0;
  /** A write failed: the segment is not used again. */
  private broken = false;
  private settled = false;

  /**
   * A record at `segment`'s head of the segment's current use (its stamp); `staging` is the
   * cursor's buffer; `onSettled` is told once how the record ended.
   */
  constructor(
    private readonly journal: SpoolJournal,
    readonly segment: Segment,
    private readonly staging: Buffer,
    private readonly onSettled: (outcome: RecordOutcome) => void,
  ) {
    this.offset = segment.head;
    this.stamp = segment.stamp;
  }

  private settle(outcome: RecordOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.onSettled(outcome);
  }

  /** The record will not be completed (the caller drops the instance, or moved it to a file). */
  abandon(moved = false): void {
    this.settle(this.broken ? 'failed' : moved ? 'moved' : 'abandoned');
  }

  /**
   * Adds `chunk` to the record through the staging buffer (whole 256 KiB blocks are written to the segment at
   * once). Returns false, writing nothing, when the record would pass the segment's end. Throws the write's
   * system error (the segment is then out of use).
   */
  append(chunk: Buffer): boolean {
    if (this.offset + this.length + chunk.length > this.journal.segmentBytes) return false;
    let pos = 0;
    while (pos < chunk.length) {
      const n = chunk.copy(this.staging, this.staged, pos);
      this.staged += n;
      pos += n;
      if (this.staged === this.staging.length) this.flush(this.staged);
    }
    this.length += chunk.length;
    return true;
  }

  private flush(bytes: number): void {
    try {
      pwriteAll(this.segment.fd, this.staging.subarray(0, bytes), this.offset + this.flushed);
    } catch (err) {
      this.broken = true;
      throw err;
    }
    this.flushed += bytes;
    this.staged = 0;
  }

  /** Every byte so far, in order, for a move to a file (the segment's copy is then abandoned). */
  *copyOut(): Generator<Buffer> {
    const chunk = Buffer.allocUnsafe(Math.min(this.flushed, 1024 * 1024));
    for (let pos = 0; pos < this.flushed; pos += chunk.length) {
      const n = Math.min(chunk.length, this.flushed - pos);
      if (preadAll(this.segment.fd, chunk.subarray(0, n), this.offset + pos) < n)
        throw new Error('spool segment read short');
      yield chunk.subarray(0, n);
    }
    if (this.staged > 0) yield this.staging.subarray(0, this.staged);
  }

  /**
   * Writes the rest (its last block padded with zeros) and the marker, makes the record durable
   * (`sync`: blocking fdatasync, else through the thread pool) and returns its reference.
   */
  async finish(crc: number, sync: boolean): Promise<JournalRef> {
    let item: JournalRef;
    try {
      await this.complete(crc, sync);
      item = this.journal.committed(this.segment, this.stamp, this.offset, this.length);
    } catch (err) {
      // Never acknowledged: take the marker back (best effort), so that a restart does not file
      // it either; only while the place is still this record's (the segment held, same use).
      if (this.segment.held && this.segment.stamp === this.stamp) {
        try {
          pwriteAll(this.segment.fd, Buffer.alloc(128), this.offset);
        } catch {
          /* the segment goes out of use anyway */
        }
      }
      this.settle('failed');
      throw err;
    }
    this.settle('done');
    return item;
  }

  private async complete(crc: number, sync: boolean): Promise<void> {
    const marker = recordMarker(this.length, crc, this.stamp);
    if (this.flushed === 0) {
      // The first block is still staged: the marker goes in with it.
      marker.copy(this.staging, 0);
    } else {
      pwriteAll(this.segment.fd, marker, this.offset);
    }
    if (this.staged > 0) {
      const padded = alignUp(this.staged);
      this.staging.fill(0, this.staged, padded);
      this.flush(padded);
    }
    if (sync) fs.fdatasyncSync(this.segment.fd);
    else await fdatasyncAsync(this.segment.fd);
  }
}
