// Keeps the mapping CSV current while the node runs: reloaded when the file changes on disk; an
// edit that does not validate keeps the previous mapping and logs one clear error.
import { statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { MappingTable } from '../core/mapping/mappingTable.js';
import { readMappingFile } from '../io/mappingFile.js';
import type { Logger } from '../log.js';

/** Reads and validates the CSV; throws MappingError (message names the row and value). */
export function loadMapping(file: string): MappingTable {
  return new MappingTable(readMappingFile(file));
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
    this.table = loadMapping(file);
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
      this.table = loadMapping(this.file);
      this.onReload(this.table);
      this.logger.info(`mapping CSV reloaded: ${this.table.rows.length} rows`);
      return true;
    } catch (e) {
      // The application log must not carry identifiers: the quoted CSV values are masked here
      // (the line number still points the researcher at the row).
      const msg = (e as Error).message.replace(/"[^"]*"/g, '"…"');
      this.logger.error(`mapping CSV not reloaded, keeping the previous mapping: ${msg}`);
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
