// The journal that lets a batch run continue after an interruption. A run appends one line per
// file whose outcome it recorded (JSON, written as it goes, so a crash or power cut keeps it
// too) to `<log dir>/batch_resume_<hash of input and output>.jsonl`, and removes the journal
// when it completes. Running the same command again after an interruption finds the journal and
// takes the outcomes in it as done: those files are not processed again (their audit rows are in
// the interrupted run's audit log), the others are, and the run completes as an uninterrupted
// one would have (README "Interruptions"). The journal holds source paths and research IDs: it
// is key material, like the audit log beside it.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FileOutcome } from './protocol.js';
import { describeSystemError } from '../errors.js';
import { mkdirRecursiveSync, writevAll } from '../io/durableWrite.js';
import { escapeControlCharacters } from '../printable.js';

/** What must be the same for a run to continue another. */
export interface JournalKey {
  input: string;
  output: string;
  db: string;
  /** SHA-256 (hex) of the mapping CSV's bytes. */
  csvSha256: string;
  copyOtherFiles: boolean;
}

type JournalLine =
  | ({ v: 1 } & JournalKey)
  /** The audit log of a run that wrote to this journal. */
  | { auditLog: string }
  | { rel: string; o: FileOutcome };

/** What earlier, interrupted runs of the same command recorded. */
export interface EarlierRuns {
  /** Source path -> its outcome. */
  outcomes: Map<string, FileOutcome>;
  /** Their audit logs, oldest first. */
  auditLogs: string[];
}

/** SHA-256 (hex) of a file's bytes. */
export function fileSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Whether the file ends with a line feed (or is empty). */
function endsWithNewline(fd: number): boolean {
  const size = fs.fstatSync(fd).size;
  if (size === 0) return true;
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  return last[0] === 0x0a;
}

function sameKey(a: JournalKey, b: JournalKey): boolean {
  return (
    a.input === b.input &&
    a.output === b.output &&
    a.db === b.db &&
    a.csvSha256 === b.csvSha256 &&
    a.copyOtherFiles === b.copyOtherFiles
  );
}

/**
 * The resume journal of batch runs from one input to one output (see above), a JSON-lines file in the log
 * folder: made by ResumeJournal.for(). A journal that cannot be written is one warning (write), never a throw.
 */
export class ResumeJournal {
  private fd: number | null = null;
  /** Lines recorded, not yet written (record, flush). */
  private pending: string[] = [];
  /** A write failed: the journal is written no more (write). */
  private broken = false;

  private constructor(
    readonly file: string,
    private readonly key: JournalKey,
  ) {}

  /** The journal of runs from `key.input` to `key.output`, in `logDir`. Reads nothing yet. */
  static for(logDir: string, key: JournalKey): ResumeJournal {
    const id = createHash('sha256').update(`${key.input}\0${key.output}`).digest('hex').slice(0, 16);
    return new ResumeJournal(path.join(logDir, `batch_resume_${id}.jsonl`), key);
  }

  /**
   * What earlier runs of the same command recorded: null when there is no journal. A journal of
   * a run with another CSV (by content), state or --copy-other-files is not continued: `stale`
   * is true and `start` replaces it. A torn last line (a crash mid-write) is ignored.
   */
  read(): (EarlierRuns & { stale: false }) | { stale: true } | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const runs: EarlierRuns = { outcomes: new Map(), auditLogs: [] };
    let header = true;
    for (const raw of text.split('\n')) {
      if (raw === '') continue;
      let line: JournalLine;
      try {
        line = JSON.parse(raw) as JournalLine;
      } catch {
        continue;
      }
      if (header) {
        if (!('v' in line) || line.v !== 1 || !sameKey(line, this.key)) return { stale: true };
        header = false;
      } else if ('auditLog' in line) runs.auditLogs.push(line.auditLog);
      else if ('rel' in line) runs.outcomes.set(line.rel, line.o);
    }
    return header ? null : { ...runs, stale: false };
  }

  /**
   * Opens the journal for this run, whose audit log is `auditLog`: appends to the journal of
   * the run it continues (`continuing`), or starts a new one. Mode 0600. Throws the system error when it
   * cannot be opened.
   */
  start(auditLog: string, continuing: boolean): void {
    mkdirRecursiveSync(path.dirname(this.file));
    this.fd = fs.openSync(this.file, continuing ? 'a+' : 'w', 0o600);
    if (continuing && !endsWithNewline(this.fd)) fs.writeSync(this.fd, '\n'); // after a torn line
    if (!continuing) this.append({ v: 1, ...this.key });
    this.append({ auditLog: path.basename(auditLog) });
  }

  /**
   * Records the outcome of one file: its line is written at the next `flush` (after the audit
   * rows of the same files: a crash between the two repeats those files, never loses one).
   */
  record(rel: string, outcome: FileOutcome): void {
    if (this.broken) return;
    if (this.fd === null) throw new Error('resume journal not started');
    this.pending.push(JSON.stringify({ rel, o: outcome } satisfies JournalLine) + '\n');
  }

  /** Writes the recorded lines (one write). */
  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    this.write(this.pending.join(''));
    this.pending = [];
  }

  private append(line: JournalLine): void {
    if (this.fd === null) throw new Error('resume journal not started');
    this.write(JSON.stringify(line) + '\n');
  }

  /**
   * Appends `text`. The journal only saves work: one that cannot be written (a full disk) is a
   * warning and is written no more, and the run goes on (an interrupted run then starts over).
   */
  private write(text: string): void {
    try {
      writevAll(this.fd!, [Buffer.from(text)]);
    } catch (e) {
      this.broken = true;
      fs.closeSync(this.fd!);
      this.fd = null;
      process.stderr.write(
        `dicom-deid: warning: cannot write the resume journal ${escapeControlCharacters(this.file)}: ` +
          `${describeSystemError(e)}; if this run is interrupted, the next one starts over\n`,
      );
    }
  }

  /** Closes the journal; `completed`: the run finished, the journal is removed. */
  close(completed: boolean): void {
    if (this.fd !== null) {
      this.flush();
      fs.closeSync(this.fd);
    }
    this.fd = null;
    if (completed) fs.rmSync(this.file, { force: true });
  }
}
