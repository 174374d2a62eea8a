// The node's spool: the durable inbox between the receiver and the processing threads. It holds
// the spool journal (spoolJournal.ts: reused segments, most instances) and the file spool
// (fileSpool.ts: a file per instance, when the journal has no room), recovers both after a crash,
// prepares the journal's reserve, and gives the receiver its sinks (a StoreSinkFactory: one
// journal cursor per association, one SpoolWriter per instance).
//
// An instance is acknowledged only once it is durable here, and stays until released: a journal
// record is retired, a spool file deleted or moved by the processing (after its output is
// durable, or into the quarantine). Whatever is not released is processed again after a restart.
import fs from 'node:fs';
import path from 'node:path';
import { buildFileMeta } from '../../core/dicom/fileMeta.js';
import { StatusTracker, type ComponentStatus, type StatusReporter } from '../../status.js';
import type { AssociationSinks, IncomingInstance, StoreSink, StoreSinkFactory } from '../receiver/storeSink.js';
import { SpoolPool, recoverSpool } from './fileSpool.js';
import { JournalCursor, SpoolJournal } from './spoolJournal.js';
import { fileRef, type SpoolRef } from './spoolRef.js';
import { SpoolWriter } from './spoolWriter.js';
import { mkdirRecursiveSync } from '../../io/durableWrite.js';

export interface SpoolOptions {
  /** Most bytes the journal's segments may take together (spoolReserveMB); 0: a file per instance. */
  reserveBytes: number;
  /** Size of one journal segment in bytes (default 64 MiB). */
  segmentBytes?: number;
  /** Told when a journal segment goes out of use or cannot be created (an error code, no identifier). */
  warn?: (message: string, code: string) => void;
}

/** What recover() found of a previous run. */
export interface SpoolRecovery {
  /** Complete, unretired journal records (acknowledged, maybe not filed). */
  journalRecords: number;
  /** Complete files moved from incoming/ to the inbox (acknowledged, maybe not filed). */
  filesRecovered: number;
  /** Partial files deleted (never acknowledged: their senders send them again). */
  partialsDeleted: number;
}

/** An acknowledged instance the spool holds, not released yet. */
export interface SpooledInstance {
  ref: SpoolRef;
  /** Its size in bytes (file meta included). */
  bytes: number;
  /** When it was spooled, as far as the spool knows (a file's mtime; now for a record). */
  spooledAt: Date;
}

/**
 * The node's spool in `dir` (see above): recover() once, then prepare(), then the receiver's sinks; release()
 * each instance once it is filed or quarantined. Reports status 'spool'. Journal problems go to the status
 * and `warn` (an error code, no identifier).
 */
export class Spool implements StoreSinkFactory<SpoolRef>, StatusReporter {
  readonly journal: SpoolJournal;
  private readonly pool: SpoolPool;
  private readonly tracker = new StatusTracker('spool');
  private recovered: Promise<SpoolRecovery> | undefined;
  /** Associations receiving into the spool now. */
  private associations = 0;
  /** Spool files acknowledged and not released (journal records are counted by the journal). */
  private readonly liveFiles = new Set<string>();
  /** Instances written to files since start because the journal had no room for them. */
  private filesWritten = 0;
  private recordsWritten = 0;
  private reserveError: string | undefined;

  /** `dir`: the spool folder (created by recover()). Constructing touches no file. */
  constructor(
    readonly dir: string,
    opts: SpoolOptions,
  ) {
    const warn = opts.warn ?? (() => undefined);
    this.journal = new SpoolJournal(dir, {
      reserveBytes: opts.reserveBytes,
      segmentBytes: opts.segmentBytes,
      warn: (message, code) => {
        this.tracker.error(`${message} (${code})`);
        warn(message, code);
      },
    });
    // Refill when fewer than 4 ready files per receiving association (plus 4) are left.
    this.pool = new SpoolPool(dir, () => 4 * (this.associations + 1));
  }

  /**
   * Run once, before receiving and before anything reads the spool (repeat calls return the
   * first result): complete files a crash left in incoming/ go to the inbox, partial ones are
   * deleted, and the journal's segments are opened and scanned (spoolJournal.ts).
   */
  recover(): Promise<SpoolRecovery> {
    this.recovered ??= (async () => {
      mkdirRecursiveSync(this.dir);
      const { recovered, partials } = await recoverSpool(this.dir);
      const journal = await this.journal.recover();
      return { journalRecords: journal.records.length, filesRecovered: recovered, partialsDeleted: partials };
    })();
    return this.recovered;
  }

  /** Bytes prepare() will write for the journal's reserve (0 once it is ready). */
  missingBytes(): number {
    return this.journal.missingBytes();
  }

  /**
   * After recover(), before receiving: creates the first ready files of the file spool and writes
   * the journal's whole reserve (seconds, once, on a new spool: spoolJournal.ts prepare()).
   * Resolves with the bytes written and, when the reserve stayed short, why ('LOWDISK' or an
   * error code): instances beyond it go to files.
   */
  async prepare(): Promise<{ preparedBytes: number; error?: string }> {
    await this.recover();
    await this.pool.fill();
    const reserve = await this.journal.prepare();
    this.reserveError = reserve.error;
    if (reserve.error) this.tracker.error(`spool reserve incomplete (${reserve.error})`);
    this.tracker.set(reserve.error ? 'degraded' : 'running');
    return reserve;
  }

  /**
   * Every acknowledged instance the spool holds and nobody released: the journal's live records
   * and the complete files of the inbox, in name order. After recover(); again whenever the
   * holder rescans (it skips those it is processing already).
   */
  async pending(): Promise<SpooledInstance[]> {
    const out: SpooledInstance[] = this.journal
      .liveRecords()
      .map((ref) => ({ ref, bytes: ref.length, spooledAt: new Date() }));
    for (const name of (await fs.promises.readdir(this.dir)).sort()) {
      if (!name.endsWith('.dcm')) continue;
      const file = path.join(this.dir, name);
      const st = await fs.promises.stat(file).catch(() => null);
      if (!st) continue;
      this.liveFiles.add(file);
      out.push({ ref: fileRef(file), bytes: st.size, spooledAt: st.mtime });
    }
    return out;
  }

  /** The receiver's sinks for one association: a cursor in the journal, a writer per instance. */
  forAssociation(): AssociationSinks<SpoolRef> {
    this.associations++;
    let cursor: JournalCursor | undefined;
    let closed = false;
    return {
      open: (instance) => {
        if (closed) throw new Error('association already ended');
        cursor ??= new JournalCursor(this.journal);
        return this.sink(instance, cursor);
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.associations--;
        cursor?.end();
      },
    };
  }

  private sink(instance: IncomingInstance, cursor: JournalCursor): StoreSink<SpoolRef> {
    const writer = new SpoolWriter({
      spoolDir: this.dir,
      pool: this.pool,
      cursor,
      journal: this.journal,
      meta: buildFileMeta({
        sopClassUid: instance.sopClassUid,
        sopInstanceUid: instance.sopInstanceUid,
        transferSyntaxUid: instance.transferSyntaxUid,
        sourceAeTitle: instance.callingAet,
      }),
      alone: () => this.associations <= 1,
    });
    let ref: SpoolRef | undefined;
    return {
      write: (fragment) => writer.write(fragment),
      finish: async () => {
        ref = await writer.finish();
        if (ref.kind === 'journal') {
          this.recordsWritten++;
        } else {
          this.filesWritten++;
          this.liveFiles.add(ref.path);
        }
        return ref;
      },
      discard: async () => {
        if (ref?.kind === 'file') this.liveFiles.delete(ref.path);
        await writer.discard();
      },
    };
  }

  /**
   * The instance no longer needs the spool: its output is durable, or it was quarantined (the
   * processing deleted or moved a spool file itself). A journal record is retired (its segment is
   * reused once all its records are). Never throws.
   */
  release(ref: SpoolRef): void {
    if (ref.kind === 'journal') this.journal.release(ref);
    else this.liveFiles.delete(ref.path);
  }

  /**
   * The spool's status: journal segments (total, held by an association, unavailable: out of use
   * or being readied for reuse), live records, the reserve (bytes it may take, bytes still to
   * prepare), instances written since start as records and as fallback files, live files;
   * backlog = acknowledged instances not released yet.
   */
  status(): ComponentStatus {
    const journal = this.journal.stats();
    return this.tracker.report(
      {
        segments: journal.segments,
        segmentsHeld: journal.segmentsHeld,
        segmentsUnavailable: journal.segmentsUnavailable,
        liveRecords: journal.liveRecords,
        reserveBytes: journal.reserveBytes,
        reserveMissingBytes: this.journal.missingBytes(),
        recordsWritten: this.recordsWritten,
        fallbackFilesWritten: this.filesWritten,
        liveFiles: this.liveFiles.size,
        associations: this.associations,
      },
      {
        backlog: journal.liveRecords + this.liveFiles.size,
        ...(this.reserveError ? { details: { reserveError: this.reserveError } } : {}),
      },
    );
  }

  /**
   * After receiving and processing stopped: deletes the unused ready files and closes the journal
   * (its records stay for the next start).
   */
  async close(): Promise<void> {
    this.tracker.set('stopping');
    await this.pool.close();
    await this.journal.close();
    this.tracker.set('stopped');
  }
}
