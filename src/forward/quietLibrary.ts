// Silences dcmjs-dimse's own console logging on the client (forwarding) side.
//
// dcmjs-dimse logs through a process-wide loglevel logger at TRACE by default: every association
// negotiation and C-STORE request (with SOP Instance UIDs) goes to stdout via console.info/log.
// The node's console must stay clean and UIDs must not leak into logs, and the forwarder reports
// every outcome itself, so the library logger is set to 'silent' (as the receiving side does in
// src/node/dimse/silenceLibraryLogs.ts; 'silent' there and here, so neither undoes the other).
// The copy of dcmjs bundled by dcmjs-dimse is silenced too (RawP10Dataset never parses, but the
// library's Dataset constructor goes through dcmjs).
import { createRequire } from 'node:module';
import path from 'node:path';
import dimse from 'dcmjs-dimse';

interface LevelLogger {
  setLevel(level: 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace'): void;
}

let done = false;

/** Idempotent; called before the first association. */
export function quietDimseLibrary(): void {
  if (done) return;
  done = true;
  (dimse.log as unknown as LevelLogger).setLevel('silent');
  try {
    const require = createRequire(import.meta.url);
    const dimseDir = path.dirname(require.resolve('dcmjs-dimse'));
    const bundled = require(require.resolve('dcmjs', { paths: [dimseDir] })) as { log?: LevelLogger };
    bundled.log?.setLevel('silent');
  } catch {
    // dcmjs not resolvable from dcmjs-dimse's folder: nothing to silence.
  }
}
