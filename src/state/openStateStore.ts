// The one way to open the project's state: the node, its processing threads, batch mode and
// the commands all call this, and know the store only by its interface (stateStore.ts).
import { SqliteStateStore } from './sqliteStateStore.js';
import type { OpenStateOptions, StateStore } from './stateStore.js';

/**
 * Opens the state at `location`: today a SQLite file path (or ':memory:' in tests). A second
 * backend (e.g. PostgreSQL for several nodes sharing one state) is chosen here, by the form of
 * `location` (a `postgres://` URL), without a change to any caller.
 *
 * With `create: false` nothing is ever created: rejects with StateNotFoundError when there is no
 * state. Rejects with StateSchemaError when the state was written by a newer version, or with the
 * backend's error (e.g. SQLITE_BUSY after 10 s, EACCES).
 */
export function openStateStore(location: string, options: OpenStateOptions): Promise<StateStore> {
  return SqliteStateStore.open(location, options);
}
