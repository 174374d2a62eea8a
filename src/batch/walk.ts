// Recursive walk of the input tree: relative '/'-separated paths of regular files, sorted.
// Symbolic links to files are followed; links to folders are not (no cycles). A folder that
// cannot be read is reported, and the walk goes on.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describeSystemError } from '../errors.js';

export interface WalkResult {
  files: string[];
  /** Sub-folders that could not be listed (relative path + reason). */
  errors: { rel: string; message: string }[];
}

/**
 * Every regular file under `root` (links to files included, links to folders not followed) as a '/'-separated
 * path relative to `root`, each folder's entries sorted by name (UTF-16 code units). A sub-folder that cannot
 * be listed goes to `errors` with a one-line reason; rejects with the system error only when `root` itself
 * cannot be read.
 */
export async function walkTree(root: string): Promise<WalkResult> {
  const files: string[] = [];
  const errors: WalkResult['errors'] = [];
  async function visit(dir: string, rel: string): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (rel === '') throw err;
      errors.push({ rel, message: `unreadable folder: ${describeSystemError(err)}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) await visit(abs, childRel);
      else if (e.isFile()) files.push(childRel);
      else if (e.isSymbolicLink()) {
        try {
          if ((await fs.stat(abs)).isFile()) files.push(childRel);
        } catch {
          /* dangling link */
        }
      }
    }
  }
  await visit(root, '');
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
