// The node's folders (spool, state, output, quarantine, logs), made at start with one line naming
// the setting when they cannot be: found by a fresh-user trial, where a folder the node's user may
// not write was a raw "EACCES: permission denied, mkdir ..." that guessed between two causes.
import { accessSync, constants } from 'node:fs';
import { UsageError, describeSystemError } from '../errors.js';
import { mkdirRecursiveSync } from '../io/durableWrite.js';
import { settingLabel } from './nodeConfig.js';

/**
 * Makes `dir` (and its parents; `mode` for the ones made) and, with `mustWrite`, checks that this
 * user may write in it. Throws a UsageError naming the folder, the setting and its flag, and the
 * cause in words: "cannot create the folder /srv/ro/out (output, --output): permission denied",
 * or "cannot write in the folder ..." for one that exists but is not writable (read-only disk,
 * another owner). Without `mustWrite` (the output, the quarantine) an existing folder the node
 * cannot write yet is the readiness check's to report: the node starts, acknowledges into the
 * spool and files once the folder is writable again.
 */
export function makeNodeFolder(dir: string, setting: string, opts: { mode?: number; mustWrite?: boolean } = {}): void {
  try {
    mkdirRecursiveSync(dir, opts.mode);
  } catch (e) {
    throw new UsageError(`cannot create the folder ${dir} (${settingLabel(setting)}): ${describeSystemError(e)}`);
  }
  if (!opts.mustWrite) return;
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new UsageError(`cannot write in the folder ${dir} (${settingLabel(setting)}): ${describeSystemError(e)}`);
  }
}
