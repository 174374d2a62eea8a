// The output tree's project marker: `<output>/.dicom-deid-project` records which project secret
// (the UID secret in the state) made the tree. New UIDs are an HMAC of the original under that
// secret, so a run with another state (another --db, or a lost one) would write every instance a
// second time under other UIDs, beside the first copy, and nothing would say so. With the marker,
// batch, the node and quarantine replay refuse an output tree made with another secret; a tree
// without a marker (made before the marker existed, or new) is adopted: the marker is written.
//
// The marker holds a fingerprint, never the secret: the first 12 hex digits of an HMAC-SHA256 of
// a fixed label under the secret. It reveals nothing about the secret or any patient (the leak
// guard has nothing to find in it), so it may sit in the shared tree.
import { createHmac } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, describeSystemError } from '../errors.js';
import { fsyncPathSync, mkdirRecursiveSync } from './durableWrite.js';

/** The marker's file name, at the root of the output tree. */
export const PROJECT_MARKER = '.dicom-deid-project';

const FINGERPRINT_LABEL = 'dicom-deid output tree fingerprint v1';
const FIRST_LINE = /^dicom-deid project ([0-9a-f]{12})\r?$/;

/** The fingerprint of a project secret: 12 lower-case hex digits (48 bits of an HMAC-SHA256). */
export function projectFingerprint(secret: Buffer): string {
  return createHmac('sha256', secret).update(FINGERPRINT_LABEL).digest('hex').slice(0, 12);
}

/** How the output tree and the state are named to the user: `--output`/`--db` (batch), `output`/`db` (node config). */
export interface MarkerNames {
  output: { label: string; value: string };
  db: { label: string; value: string };
}

/**
 * Checks that the output tree `outputDir` was made with this project secret, and adopts a tree
 * without a marker (writes the marker durably, creating `outputDir` if needed) unless
 * `write` is false (a dry run writes nothing). `secret` null means the state does not exist yet:
 * a new state makes a new secret, which cannot be the one of a marked tree.
 *
 * Throws UsageError (exit 2, one line naming both the state and the output) when the marker
 * names another secret, or when the marker is unreadable or not one dicom-deid wrote. A marker
 * that cannot be written (a read-only or full disk) throws UsageError too, unless `unwritable`
 * is given: the node, which keeps receiving into its spool while its output is unwritable,
 * reports it there and goes on (nothing to compare with yet; the next start writes it).
 */
export function claimOutputTree(
  outputDir: string,
  secret: Buffer | null,
  names: MarkerNames,
  write: boolean,
  unwritable?: (message: string) => void,
): void {
  const marked = readMarker(outputDir, write);
  const mine = secret && projectFingerprint(secret);
  if (marked !== undefined) {
    if (marked !== mine) throw otherProject(names, secret === null);
    return;
  }
  if (!write || mine === null) return;
  const file = join(outputDir, PROJECT_MARKER);
  try {
    mkdirRecursiveSync(outputDir);
    // Exclusive create: of two runs adopting the same new tree at once, one writes, the other
    // reads what it wrote and compares.
    const fd = openSync(file, 'wx', 0o644);
    try {
      writeSync(fd, markerText(mine));
    } finally {
      closeSync(fd);
    }
    fsyncPathSync(file);
    fsyncPathSync(outputDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      const message = `cannot write ${file}: ${describeSystemError(e)}`;
      if (!unwritable) throw new UsageError(message);
      unwritable(`${message}; it is written at the next start`);
      return;
    }
    if (readMarker(outputDir, false) !== mine) throw otherProject(names, false);
  }
}

/**
 * The fingerprint in the marker, or undefined when there is none, or when it is empty (a crash
 * between its creation and its write), which is removed when `write`.
 */
function readMarker(outputDir: string, write: boolean): string | undefined {
  const file = join(outputDir, PROJECT_MARKER);
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`cannot read ${file}: ${describeSystemError(e)}`);
  }
  if (text.trim() === '') {
    // Left empty by a crash between create and write: removed, so the exclusive create can retry.
    if (write) unlinkQuietly(file);
    return undefined;
  }
  const m = FIRST_LINE.exec(text.split('\n')[0]!);
  if (!m) {
    throw new UsageError(
      `${file} is not a dicom-deid project marker: move it away if this folder is meant as an output tree`,
    );
  }
  return m[1]!;
}

function unlinkQuietly(file: string): void {
  try {
    rmSync(file);
  } catch {
    // another process removed it
  }
}

function markerText(fingerprint: string): string {
  return (
    `dicom-deid project ${fingerprint}\n` +
    'This tree was written by dicom-deid with the state (--db) whose project secret has this fingerprint\n' +
    '(an HMAC of a fixed label: it reveals nothing). dicom-deid refuses to add files to it with another state,\n' +
    'whose UIDs would differ. Keep this file.\n'
  );
}

function otherProject(names: MarkerNames, newState: boolean): UsageError {
  const { output, db } = names;
  const state = newState
    ? `${db.label} ${db.value}, a new state (it would make a new project secret)`
    : `the state ${db.label} ${db.value}`;
  return new UsageError(
    `${output.label} ${output.value} was made with another project secret than ${state}: every instance ` +
      `would be written again under other UIDs; use the ${db.label} that made it, or a new ${output.label} folder`,
  );
}
