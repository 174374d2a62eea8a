// The node's quarantine: instances it accepted but could not file (no mapping row, not
// de-identifiable, or held by the leak guard: an identifier of the source in the output), kept as received (Part 10) with a JSON sidecar of the keys tried. It is key
// material (the files are the original, identified instances) and lives outside the output tree.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
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
  file: string;
  sidecar: QuarantineSidecar;
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
      try {
        const sidecar = JSON.parse(await fsp.readFile(`${file}.json`, 'utf8')) as QuarantineSidecar;
        out.push({ file, sidecar });
      } catch {
        out.push({
          file,
          sidecar: { reason: 'unreadable', message: 'sidecar missing', receivedAt: '', callingAet: '', keys: {} },
        });
      }
    }
  }
  return out;
}

/** Removes a quarantined instance (after a successful replay). */
export async function removeFromQuarantine(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await fsp.rm(`${file}.json`, { force: true });
}
