// Drops dcmjs-dimse's and its bundled dcmjs's console logging.
//
// dcmjs-dimse logs at level TRACE by default (every PDU, association dumps, C-STORE requests
// with their SOP Instance UIDs) straight to the console; the bundled dcmjs prints a multi-line
// warning per private tag. Neither may reach our logs (UIDs are identifying, and the volume
// would swamp the node), so both are set to 'silent'. The receiver logs its own events, without
// identifiers. Note: dcmjs-dimse's `Dataset` assigns `dcmjsLog.level = 'error'`, which does not
// silence dcmjs; the level must be set with setLevel() on the copy dcmjs-dimse bundles
// (node_modules/dcmjs-dimse/node_modules/dcmjs), not on the top-level dcmjs.
// These loggers are process-wide singletons: the receiver (src/node/receiver) and the forwarder
// (src/forward) both call this before their first association.
import { createRequire } from 'node:module';
import path from 'node:path';
import dimse from 'dcmjs-dimse';

interface LevelLogger {
  setLevel(level: 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace'): void;
}

let done = false;

/**
 * Sets dcmjs-dimse's logger and its bundled dcmjs's to 'silent' (see above); once per process, later calls do
 * nothing. A bundled dcmjs that cannot be found is skipped; never throws.
 */
export function silenceLibraryLogs(): void {
  if (done) return;
  done = true;
  (dimse.log as unknown as LevelLogger).setLevel('silent');
  try {
    const require = createRequire(import.meta.url);
    const dimseDir = path.dirname(require.resolve('dcmjs-dimse'));
    const bundled = require(require.resolve('dcmjs', { paths: [dimseDir] })) as { log?: LevelLogger };
    bundled.log?.setLevel('silent');
  } catch {
    // dcmjs not resolvable from here: nothing to silence.
  }
}
