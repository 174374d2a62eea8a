// The node's quarantine: instances it accepted but could not file (no mapping row, not
// de-identifiable, or held by the leak guard: an identifier of the source in the output), kept as received (Part 10) with a JSON sidecar of the keys tried. It is key
// material (the files are the original, identified instances) and lives outside the output tree.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { InstanceKeys } from '../core/types.js';
import { moveFileDurableSync, writeFileDurableSync } from '../io/durableWrite.js';
import { openSpoolItem } from './spool/spoolReader.js';
import { formatSpoolRef, spoolRefName, type SpoolRef } from './spool/spoolRef.js';

/**
 * Why an instance is in quarantine: no mapping row; not readable or not de-identifiable; the
 * C-STORE request and the data set disagree on its SOP Instance (or Class) UID (`uid-mismatch`);
 * its study belongs to another research patient (`study-patient-conflict`); Burned In Annotation
 * YES while the node holds such instances (`burned-in`); the leak guard found an identifier of the
 * source in its output (`leak-guard`).
 */
export type QuarantineReason =
  | 'no-mapping'
  | 'unreadable'
  | 'not-deidentifiable'
  | 'uid-mismatch'
  | 'study-patient-conflict'
  | 'burned-in'
  | 'leak-guard';

/**
 * Reasons a replay never files: 'unreadable' is a record that failed its spool checksum (filing
 * it would file damaged bytes) or a file the parser refused (it would be refused again).
 */
export const NOT_REPLAYABLE: ReadonlySet<string> = new Set<QuarantineReason>(['unreadable']);

export interface QuarantineSidecar {
  reason: QuarantineReason;
  message: string;
  receivedAt: string;
  callingAet: string;
  /** The keys tried against the mapping CSV (identifying: this folder is key material). */
  keys: Partial<
    Pick<InstanceKeys, 'patientId' | 'accessionNumber' | 'studyInstanceUid' | 'sopInstanceUid' | 'studyDate'>
  >;
}

export interface QuarantinedInstance {
  /** `<study folder>/<file name>`: names the item in the API (no identifier: a hash and a spool name). */
  id: string;
  /** The study folder's name: a hash of the study's UID (or accession), not the UID. */
  study: string;
  file: string;
  sidecar: QuarantineSidecar;
}

/** Which quarantined items an operation applies to: one item, one study, one reason (all given must match). */
export interface QuarantineSelection {
  item?: string;
  study?: string;
  reason?: string;
}

const STUDY_RE = /^[0-9a-z-]{1,64}$/;
const ITEM_RE = /^[0-9a-z-]{1,64}\/[A-Za-z0-9._-]{1,200}\.dcm$/;

/** Whether `id` has the form of an item id (so it can never name a path outside the quarantine). */
export function isQuarantineItemId(id: string): boolean {
  return ITEM_RE.test(id) && !id.includes('..');
}

/** Whether `study` has the form of a study folder name. */
export function isQuarantineStudyId(study: string): boolean {
  return STUDY_RE.test(study);
}

/** The items a selection names (every item when the selection is empty). */
export function selectQuarantined(
  items: readonly QuarantinedInstance[],
  sel: QuarantineSelection,
): QuarantinedInstance[] {
  return items.filter(
    (q) =>
      (sel.item === undefined || q.id === sel.item) &&
      (sel.study === undefined || q.study === sel.study) &&
      (sel.reason === undefined || q.sidecar.reason === sel.reason),
  );
}

/** Folder per study, named by a hash so no identifier appears in a path. */
function studyFolder(root: string, keys: QuarantineSidecar['keys']): string {
  const id = keys.studyInstanceUid || keys.accessionNumber || 'unknown-study';
  return join(root, createHash('sha256').update(id).digest('hex').slice(0, 16));
}

/**
 * Moves a spooled instance (spool/spoolRef.ts) into quarantine, durably, with its sidecar; returns
 * its new path. A file is moved; a journal record is copied by range (its owner then releases it
 * from the journal). `unchecked`: a record is copied even when its bytes fail its checksum.
 */
export function quarantineFile(
  root: string,
  ref: SpoolRef,
  sidecar: QuarantineSidecar,
  opts: { unchecked?: boolean } = {},
): string {
  // A record's short name repeats when a journal starts over (a new spool): a hash of its id
  // (which holds its segment's nonce) keeps it unique, and the same on a retry.
  const name =
    ref.kind === 'journal'
      ? `${spoolRefName(ref)}-${createHash('sha256').update(formatSpoolRef(ref)).digest('hex').slice(0, 12)}`
      : basename(ref.path);
  const dest = join(studyFolder(root, sidecar.keys), name.replace(/(\.dcm)?$/, '.dcm'));
  // Sidecar first: a crash between the two leaves a sidecar without a file (ignored by list),
  // never a file that nobody knows why it is there.
  writeFileDurableSync(`${dest}.json`, JSON.stringify(sidecar, null, 2) + '\n', 0o600);
  if (ref.kind === 'journal') copyRecordDurably(ref, dest, opts.unchecked);
  else moveFileDurableSync(ref.path, dest);
  return dest;
}

/** A journal record copied to `dest` by range (never whole in memory: it may be gigabytes). */
function copyRecordDurably(ref: SpoolRef, dest: string, unchecked = false): void {
  const item = openSpoolItem(ref, { unchecked });
  try {
    writeFileDurableSync(dest, [item.piece({ offset: 0, length: item.source.size })], 0o600);
  } finally {
    item.close();
  }
}

/**
 * Gives a quarantined instance a new reason and message (its sidecar rewritten durably): a replay
 * that found a row for it but whose output the leak guard held.
 */
export function requarantine(q: QuarantinedInstance, reason: QuarantineReason, message: string): void {
  writeFileDurableSync(`${q.file}.json`, JSON.stringify({ ...q.sidecar, reason, message }, null, 2) + '\n', 0o600);
}

/**
 * Every quarantined instance under `root` (the quarantine folder), sorted by study folder then file name:
 * each `.dcm` with its parsed `.json` sidecar; one whose sidecar is missing or not JSON is listed with reason
 * 'unreadable'. A sidecar without its `.dcm` (a crash between the two writes) is not listed. An absent or
 * unreadable `root` or study folder gives no entries; never rejects.
 */
export async function listQuarantine(root: string): Promise<QuarantinedInstance[]> {
  const out: QuarantinedInstance[] = [];
  let dirs: string[];
  try {
    dirs = await fsp.readdir(root);
  } catch {
    return out;
  }
  for (const d of dirs.sort()) {
    const dir = join(root, d);
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch {
      continue;
    }
    for (const f of files.sort()) {
      if (!f.endsWith('.dcm')) continue;
      const file = join(dir, f);
      const id = `${d}/${f}`;
      try {
        const sidecar = JSON.parse(await fsp.readFile(`${file}.json`, 'utf8')) as QuarantineSidecar;
        out.push({ id, study: d, file, sidecar });
      } catch (e) {
        // Missing (ENOENT), or there but not JSON (a crash mid-write, an edit by hand).
        const message = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'sidecar missing' : 'sidecar unreadable';
        out.push({
          id,
          study: d,
          file,
          sidecar: { reason: 'unreadable', message, receivedAt: '', callingAet: '', keys: {} },
        });
      }
    }
  }
  return out;
}

/** Removes a quarantined instance (after a successful replay, or deleted by a person), and its study folder once empty. */
export async function removeFromQuarantine(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await fsp.rm(`${file}.json`, { force: true });
  await fsp.rmdir(dirname(file)).catch(() => undefined); // ENOTEMPTY: other items remain
}
