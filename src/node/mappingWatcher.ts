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

export class MappingWatcher {
  private table: MappingTable;
  private readonly listener = (cur: Stats, prev: Stats) => this.onChange(cur, prev);

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

  start(): void {
    // Polling, not fs.watch: editors replace files (rename), network shares drop inotify events.
    watchFile(this.file, { interval: this.intervalMs }, this.listener);
  }

  stop(): void {
    unwatchFile(this.file, this.listener);
  }

  /** Reloads now; returns whether the new mapping was taken. */
  reload(): boolean {
    try {
      this.table = loadLogged(this.file, this.logger);
      this.onReload(this.table);
      this.logger.info(`mapping CSV reloaded: ${this.table.rows.length} rows`);
      return true;
    } catch (e) {
      if (e instanceof MappingError && e.problems.length > 0) {
        for (const line of formatProblems(e.problems, 'error', basename(this.file), true)) {
          this.logger.error(`mapping CSV not reloaded: ${line}`);
        }
        this.logger.error(
          `mapping CSV not reloaded, keeping the previous mapping: the values are not logged; dicom-deid check-csv ${this.file} shows them`,
        );
      } else {
        // Unreadable: the message names the file and the reason in words, no CSV value.
        this.logger.error(`mapping CSV not reloaded, keeping the previous mapping: ${(e as Error).message}`);
      }
      return false;
    }
  }

  private onChange(cur: Stats, prev: Stats): void {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
    if (cur.nlink === 0 && cur.size === 0) {
      this.logger.error('mapping CSV disappeared: keeping the previous mapping');
      return;
    }
    this.reload();
  }
}
