// The node's processing thread: de-identifies and files spooled instances with synchronous I/O,
// so the receiving thread's event loop and libuv's thread pool stay free for the network and the
// spool. It has its own connection to the state (its own StateStore); its audit rows go to the
// main thread.
//
// Filed instances are made durable by checkpoints, not one by one: an instance is 'done' once its
// output is written and its filing committed, and 'retired' (spool file deleted, or journal
// record released by the main thread) after a checkpoint has fsync'd its output. Each fsync is a
// journal commit of the file system, and the receiving thread's fdatasync before every
// acknowledgement waits behind them: fsyncing outputs per instance slowed acknowledgements
// measurably. A checkpoint runs when the main thread asks
// (no worker has work left), when CHECKPOINT_MAX instances wait, and before the thread closes.
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditRow } from '../audit/auditLog.js';
import { MappingTable } from '../core/mapping/mappingTable.js';
import type { MappingRow } from '../core/types.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import type { SpoolRef } from './spool/spoolRef.js';
import {
  commitStaged,
  isStaged,
  retireStaged,
  stageInstance,
  type Outcome,
  type ProcessorDeps,
  type Staged,
} from './instanceProcessor.js';
import { errorCode } from '../errors.js';

export interface ProcessingInit {
  db: string;
  output: string;
  quarantine: string;
  forwardTo: string[];
  rows: MappingRow[];
  /** File instances whose Burned In Annotation is YES instead of quarantining them (config allowBurnedIn). */
  allowBurnedIn: boolean;
  /** Attributes (tags) whose leak guard hits are warnings only. */
  leakGuardWarnOnly: number[];
  /** Tests only: attributes the profile keeps whatever its rules say (DeidOptions.testOnlyKeep). */
  testOnlyKeep: number[];
}

/** Messages to and from the thread; a spooled instance travels as its SpoolRef (plain data). */
export type ToWorker =
  | { type: 'process'; ref: SpoolRef; callingAet: string; receivedAt: number }
  | { type: 'mapping'; rows: MappingRow[] }
  | { type: 'checkpoint' }
  | { type: 'close' };

export type FromWorker =
  | { type: 'audit'; rows: AuditRow[] }
  /** Filed (committed, output written) or quarantined; a filed one is retired later. */
  | { type: 'done'; ref: SpoolRef; outcome: Outcome }
  /** Outputs durable, spool files deleted (journal records are released by the main thread). */
  | { type: 'retired'; refs: SpoolRef[] }
  | { type: 'failed'; ref: SpoolRef; error: string }
  | { type: 'closed' };

const init = workerData as ProcessingInit;
const port = parentPort!;
/** Audit rows go to the main thread, which owns the one audit log of the node. */
const auditRows: AuditRow[] = [];
let table = new MappingTable(init.rows);
/** Set once this thread's store is open; messages that come before wait in `early`. */
let deps: ProcessorDeps | undefined;
const early: ToWorker[] = [];

/** Instances waiting; processed in groups so that they share the commit of the state. */
const pending: Extract<ToWorker, { type: 'process' }>[] = [];
/** A drain is scheduled or running: never two at once (stageInstance takes one at a time). */
let scheduled = false;
const GROUP = 16;
/** Filed instances whose outputs are not fsync'd yet (their spool files stay until they are). */
const unsynced: Staged[] = [];
const CHECKPOINT_MAX = 500;

async function drain(deps: ProcessorDeps): Promise<void> {
  const group = pending.splice(0, GROUP);
  const staged: Staged[] = [];
  const replies: FromWorker[] = [];
  for (const msg of group) {
    try {
      const r = await stageInstance(deps, msg.ref, {
        callingAet: msg.callingAet,
        receivedAt: new Date(msg.receivedAt),
      });
      if (isStaged(r)) staged.push(r);
      else replies.push({ type: 'done', ref: msg.ref, outcome: r });
    } catch (e) {
      replies.push({ type: 'failed', ref: msg.ref, error: errorCode(e) });
    }
  }
  try {
    const outcomes = await commitStaged(deps, staged);
    staged.forEach((s, i) => replies.push({ type: 'done', ref: s.ref, outcome: outcomes[i]! }));
    unsynced.push(...staged);
  } catch (e) {
    // Nothing of the group is committed; the spool files stay and are retried.
    for (const s of staged) replies.push({ type: 'failed', ref: s.ref, error: errorCode(e) });
  }
  if (auditRows.length > 0) port.postMessage({ type: 'audit', rows: auditRows.splice(0) } satisfies FromWorker);
  for (const r of replies) port.postMessage(r);
  if (unsynced.length >= CHECKPOINT_MAX) checkpoint();
  scheduled = false;
  if (pending.length > 0) schedule();
}

/** Makes every filed output durable, then lets their spool files go. */
function checkpoint(): void {
  if (unsynced.length === 0) return;
  const batch = unsynced.splice(0);
  try {
    retireStaged(batch);
    port.postMessage({ type: 'retired', refs: batch.map((s) => s.ref) } satisfies FromWorker);
  } catch (e) {
    // An output may not be durable: its spool file stays and is processed again (idempotent).
    for (const s of batch) port.postMessage({ type: 'failed', ref: s.ref, error: errorCode(e) } satisfies FromWorker);
  }
}

/**
 * Waits a few milliseconds for more instances unless a full group is ready: larger groups share
 * one commit of the state (one fsync of SQLite's log).
 */
const GATHER_MS = 10;
let gatherTimer: NodeJS.Timeout | undefined;

function schedule(): void {
  if (pending.length >= GROUP) {
    if (gatherTimer) clearTimeout(gatherTimer);
    gatherTimer = undefined;
    if (!scheduled) {
      scheduled = true;
      setImmediate(() => void drain(deps!));
    }
    return;
  }
  if (scheduled || gatherTimer) return;
  gatherTimer = setTimeout(() => {
    gatherTimer = undefined;
    if (!scheduled) {
      scheduled = true;
      void drain(deps!);
    }
  }, GATHER_MS);
}

function onMessage(msg: ToWorker, state: StateStore): void {
  if (msg.type === 'mapping') {
    table = new MappingTable(msg.rows);
  } else if (msg.type === 'process') {
    pending.push(msg);
    schedule();
  } else if (msg.type === 'checkpoint') {
    checkpoint();
  } else if (msg.type === 'close') {
    checkpoint();
    void state.close().finally(() => {
      port.postMessage({ type: 'closed' } satisfies FromWorker);
      port.close();
    });
  }
}

port.on('message', (msg: ToWorker) => {
  if (deps) onMessage(msg, deps.state);
  else early.push(msg);
});
// The node created the state before starting this thread: never create one here (a new state
// would mean a new UID secret). An error opening it ends the thread ('error' event), and the
// main thread starts another, as for any other failure.
openStateStore(init.db, { create: false }).then(
  (state) => {
    deps = {
      state,
      mapping: () => table,
      outputDir: init.output,
      quarantineDir: init.quarantine,
      forwardTo: init.forwardTo,
      audit: (row: AuditRow) => auditRows.push(row),
      sessionCache: new Map<string, number>(),
      studyOwnerCache: new Map<string, string>(),
      allowBurnedIn: init.allowBurnedIn,
      leakGuardWarnOnly: new Set(init.leakGuardWarnOnly),
      deidOptions: init.testOnlyKeep.length > 0 ? { testOnlyKeep: new Set(init.testOnlyKeep) } : undefined,
    };
    for (const msg of early.splice(0)) onMessage(msg, state);
  },
  (e: unknown) =>
    setImmediate(() => {
      throw e;
    }),
);
