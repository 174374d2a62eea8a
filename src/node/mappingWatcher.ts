// Keeps the mapping CSV current while the node runs: reloaded when the file changes on disk; an
// edit that does not validate keeps the previous mapping and logs each problem (line and words,
// never the value: an MRN or accession is an identifier, and the log is meant to be shareable).
import { statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { basename } from 'node:path';
import { formatProblems } from '../core/mapping/csvProblem.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { rowsOrThrow } from '../core/mapping/mappingCsv.js';
import { MappingError } from '../core/types.js';
import { checkMappingFile, readMappingFile } from '../io/mappingFile.js';
import type { Logger } from '../log.js';
import { StatusTracker, type ComponentStatus, type StatusReporter } from '../status.js';
import { shellQuote } from '../shellQuote.js';
import { plural } from '../words.js';

/** Reads and validates the CSV; throws MappingError (message names the row and value). */
export function loadMapping(file: string): MappingTable {
  return new MappingTable(readMappingFile(file));
}

/** Loads the CSV, logging its warnings without values; throws MappingError (with values). */
function loadLogged(file: string, logger: Logger): MappingTable {
  const csv = checkMappingFile(file);
  const table = new MappingTable(rowsOrThrow(csv, csv.source));
  for (const line of formatProblems(csv.problems, 'warning', csv.source, true)) {
    logger.warn(`mapping CSV warning: ${line}`);
  }
  return table;
}

/**
 * The mapping CSV in use by the node, reloaded when the file changes (fs.watchFile polling every `intervalMs`
 * ms, default 1000): an edit that validates replaces it and calls `onReload`; one that does not is refused,
 * logged by line and reason without values, and the previous mapping stays. Constructing it throws
 * MappingError when the CSV cannot be read or does not validate.
 */
export class MappingWatcher implements StatusReporter {
  private table: MappingTable;
  private readonly listener = (cur: Stats, prev: Stats) => this.onChange(cur, prev);
  private readonly tracker = new StatusTracker('mapping');
  private reloads = 0;
  private refusedReloads = 0;
  /** ISO times: the mapping in use was loaded; the last edit that did not validate was refused. */
  private loadedAt = new Date().toISOString();
  private lastRefusedAt: string | undefined;

  /** Loads the CSV now (throws when it does not validate: the node must not start without a key). */
  constructor(
    readonly file: string,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
    private readonly onReload: (table: MappingTable) => void = () => undefined,
  ) {
    this.table = loadLogged(file, logger);
    statSync(file);
  }

  get current(): MappingTable {
    return this.table;
  }

  /** Starts polling the file; reports 'running'. */
  start(): void {
    this.tracker.set('running');
    // Polling, not fs.watch: editors replace files (rename), network shares drop inotify events.
    watchFile(this.file, { interval: this.intervalMs }, this.listener);
  }

  /** Stops polling the file; reports 'stopped'. */
  stop(): void {
    unwatchFile(this.file, this.listener);
    this.tracker.set('stopped');
  }

  /**
   * The mapping's status: rows in use, reloads taken and refused since start, when the mapping in
   * use was loaded and when an edit was last refused. Degraded while the file on disk is not the
   * mapping in use (its last edit was refused, or it disappeared). No CSV value ever goes in.
   */
  status(): ComponentStatus {
    return this.tracker.report(
      { rows: this.table.rows.length, reloads: this.reloads, refusedReloads: this.refusedReloads },
      { details: { loadedAt: this.loadedAt, ...(this.lastRefusedAt ? { lastRefusedAt: this.lastRefusedAt } : {}) } },
    );
  }

  private refused(message: string): void {
    this.refusedReloads++;
    this.lastRefusedAt = new Date().toISOString();
    this.tracker.error(message);
    this.tracker.set('degraded');
  }

  /** Reloads now; returns whether the new mapping was taken. */
  reload(): boolean {
    try {
      this.table = loadLogged(this.file, this.logger);
      this.onReload(this.table);
      this.reloads++;
      this.loadedAt = new Date().toISOString();
      this.tracker.set('running');
      this.logger.info(`mapping CSV reloaded: ${plural(this.table.rows.length, 'row')}`);
      return true;
    } catch (e) {
      if (e instanceof MappingError && e.problems.length > 0) {
        const lines = formatProblems(e.problems, 'error', basename(this.file), true);
        for (const line of lines) this.logger.error(`mapping CSV not reloaded: ${line}`);
        this.logger.error(
          `mapping CSV not reloaded, keeping the previous mapping: the values are not logged; dicom-deid check-csv ${shellQuote(this.file)} shows them`,
        );
        this.refused(
          `mapping CSV not reloaded: ${lines[0] ?? 'invalid'}${lines.length > 1 ? ` (+${lines.length - 1} more)` : ''}`,
        );
      } else {
        // Unreadable: the message names the file and the reason in words, no CSV value.
        this.logger.error(`mapping CSV not reloaded, keeping the previous mapping: ${(e as Error).message}`);
        this.refused(`mapping CSV not reloaded: ${(e as Error).message}`);
      }
      return false;
    }
  }

  private onChange(cur: Stats, prev: Stats): void {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
    if (cur.nlink === 0 && cur.size === 0) {
      this.logger.error('mapping CSV disappeared: keeping the previous mapping');
      this.refused('mapping CSV disappeared');
      return;
    }
    this.reload();
  }
}
