// The node's processing thread: de-identifies and files spooled instances one at a time with
// synchronous I/O, so the receiving thread's event loop and libuv's thread pool stay free for
// the network and the spool. It owns its own SQLite connection and the audit log.
import { parentPort, workerData } from 'node:worker_threads';
import { AuditLog } from '../batch/auditLog.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import type { MappingRow } from '../core/types.js';
import { StateDb } from '../state/stateDb.js';
import { processInstance, type Outcome } from './instanceProcessor.js';

export interface ProcessingInit {
  db: string;
  output: string;
  quarantine: string;
  logDir: string;
  forwardTo: string[];
  rows: MappingRow[];
}

export type ToWorker =
  | { type: 'process'; file: string; callingAet: string; receivedAt: number }
  | { type: 'mapping'; rows: MappingRow[] }
  | { type: 'close' };

export type FromWorker =
  | { type: 'done'; file: string; outcome: Outcome }
  | { type: 'failed'; file: string; error: string }
  | { type: 'closed' };

const init = workerData as ProcessingInit;
const port = parentPort!;
const state = StateDb.open(init.db);
const audit = new AuditLog(init.logDir);
let table = new MappingTable(init.rows);
const deps = {
  state,
  mapping: () => table,
  outputDir: init.output,
  quarantineDir: init.quarantine,
  forwardTo: init.forwardTo,
  audit: (row: Parameters<AuditLog['write']>[0]) => {
    audit.write(row);
    audit.flush();
  },
};

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'mapping') {
    table = new MappingTable(msg.rows);
  } else if (msg.type === 'process') {
    let reply: FromWorker;
    try {
      const outcome = processInstance(deps, msg.file, { callingAet: msg.callingAet, receivedAt: new Date(msg.receivedAt) });
      reply = { type: 'done', file: msg.file, outcome };
    } catch (e) {
      // Only an error code or name: messages of I/O errors carry paths, which carry no
      // identifiers here (spool names are random), but keep the contract simple.
      const err = e as NodeJS.ErrnoException;
      reply = { type: 'failed', file: msg.file, error: err.code ?? err.name ?? 'Error' };
    }
    port.postMessage(reply);
  } else if (msg.type === 'close') {
    audit.close();
    state.close();
    port.postMessage({ type: 'closed' } satisfies FromWorker);
    port.close();
  }
});
