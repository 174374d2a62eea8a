// Recursive walk of the input tree: relative '/'-separated paths of regular files, sorted.
// Symbolic links are followed, to files and to folders alike (a scan folder linked in from
// another disk is walked as if it were there). A link to a folder above it, or in a cycle of
// links, would be walked forever: each folder's identity (device and inode) on the way down is
// remembered, and such a link is one error instead; so is a link to a folder that holds the input
// (`/`: the whole disk), and a second path to a folder already walked (its files would be written
// twice). A link to nothing, a folder that cannot be read, and the output or key material folders
// reached through a link are reported too, and the walk goes on. An aborted `signal` ends it.
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describeSystemError } from '../errors.js';

export interface WalkResult {
  files: string[];
  /** Paths that could not be walked (relative path + reason): unreadable folders, links to nothing, loops. */
  errors: { rel: string; message: string }[];
}

/** True when folder `outer` (a real path) is `inner` or holds it. */
function holds(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith(path.sep) ? outer : outer + path.sep);
}

/** A folder's identity whatever the path it is reached by. */
function folderId(st: { dev: number | bigint; ino: number | bigint }): string {
  return `${st.dev}:${st.ino}`;
}

/**
 * Every regular file under `root` (links to files and to folders followed) as a '/'-separated path relative
 * to `root`, each folder's entries sorted by name (UTF-16 code units). Goes to `errors`, one line each, and
 * is not walked: a sub-folder that cannot be listed, a link to nothing ("a link to nothing"), a link to a
 * folder that holds it (a loop), and a folder that is one of `skip` (absolute paths: the output folder,
 * reached through a link). Rejects with the system error only when `root` itself cannot be read.
 */
export async function walkTree(root: string, skip: readonly string[] = [], signal?: AbortSignal): Promise<WalkResult> {
  const files: string[] = [];
  const errors: WalkResult['errors'] = [];
  const skipped = new Set<string>();
  for (const s of skip) {
    const st = await fs.stat(s).catch(() => undefined);
    if (st?.isDirectory()) skipped.add(folderId(st));
  }
  // A link to a folder that holds the input (`/`, a parent) would walk the whole disk.
  const rootReal = await fs.realpath(root);
  /** Every folder walked: a second path to one (a link to a sibling) would write its files twice. */
  const walked = new Set<string>();
  /** The folders from `root` down to the one being walked. */
  const above = new Set<string>();
  async function visit(dir: string, rel: string, id: string): Promise<void> {
    if (signal?.aborted) return;
    walked.add(id);
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (rel === '') throw err;
      errors.push({ rel, message: `unreadable folder: ${describeSystemError(err)}` });
      return;
    }
    above.add(id);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // The real sub-folders are theirs to walk: a sibling link to one ('latest -> s1') is the
    // second path, whichever sorts first.
    const folderStats = new Map<string, Stats>();
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
      if (!st) continue;
      folderStats.set(e.name, st);
      walked.add(folderId(st));
    }
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, e.name);
      if (e.isFile()) {
        files.push(childRel);
        continue;
      }
      if (!e.isDirectory() && !e.isSymbolicLink()) continue; // sockets, pipes, devices: no scans
      let st = folderStats.get(e.name);
      try {
        st ??= await fs.stat(abs); // through the link
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const message =
          code === 'ENOENT' || code === 'ENOTDIR'
            ? 'a link to nothing: not followed'
            : code === 'ELOOP'
              ? 'a link in a loop of links: not followed'
              : `unreadable: ${describeSystemError(err)}`;
        errors.push({ rel: childRel, message });
        continue;
      }
      if (st.isFile()) files.push(childRel);
      else if (st.isDirectory()) {
        const childId = folderId(st);
        if (above.has(childId)) {
          errors.push({ rel: childRel, message: 'a link to a folder that holds it (a loop): not followed' });
        } else if (skipped.has(childId)) {
          errors.push({
            rel: childRel,
            message:
              'the output folder or a folder of key material (audit log, state), reached through a link: not walked',
          });
        } else if (e.isSymbolicLink() && holds(await fs.realpath(abs).catch(() => abs), rootReal)) {
          errors.push({ rel: childRel, message: 'a link to a folder that holds the input (a loop): not followed' });
        } else if (e.isSymbolicLink() && walked.has(childId)) {
          errors.push({ rel: childRel, message: 'a second path to a folder already walked: not walked again' });
        } else await visit(abs, childRel, childId);
      }
    }
    above.delete(id);
  }
  await visit(root, '', folderId(await fs.stat(root)));
  return { files, errors };
}

/**
 * The walk's order of two relative paths: folder by folder, names in UTF-16 code unit order, as JavaScript compares strings (a
 * folder's files come at the folder's place among its siblings). The audit log's order.
 */
export function compareWalkOrder(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}
