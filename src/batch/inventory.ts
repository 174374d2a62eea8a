// The walked input files grouped by where they sit (layout.ts): inside a session folder
// (`<patient>/<session>/...`) or not, and each patient folder's session folders. Pure.
import { sourceLayout } from './layout.js';

/** Code point order (not the locale's): the order session numbers are first assigned in. */
export function codePointOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface TreeInventory {
  /** Files inside a session folder, in walk order. The worker pool takes these first. */
  foldered: string[];
  /** Files outside any session folder (in a patient folder, or at the top), in walk order. */
  loose: string[];
  /** Patient folder -> its session folders (those holding files), in code point order. */
  sessionFolders: Map<string, string[]>;
  /** `patient/session` -> the files in that session folder, in walk order. */
  filesOfSession: Map<string, string[]>;
}

/** Groups `files` (relative, '/'-separated paths in walk order). */
export function inventoryTree(files: readonly string[]): TreeInventory {
  const inv: TreeInventory = { foldered: [], loose: [], sessionFolders: new Map(), filesOfSession: new Map() };
  for (const rel of files) {
    const l = sourceLayout(rel);
    if (l.patientFolder === null || l.sessionFolder === null) {
      inv.loose.push(rel);
      continue;
    }
    inv.foldered.push(rel);
    const list = inv.sessionFolders.get(l.patientFolder) ?? [];
    if (list[list.length - 1] !== l.sessionFolder && !list.includes(l.sessionFolder)) list.push(l.sessionFolder);
    inv.sessionFolders.set(l.patientFolder, list);
    const sessionRel = `${l.patientFolder}/${l.sessionFolder}`;
    const inSession = inv.filesOfSession.get(sessionRel) ?? [];
    inSession.push(rel);
    inv.filesOfSession.set(sessionRel, inSession);
  }
  for (const list of inv.sessionFolders.values()) list.sort(codePointOrder);
  return inv;
}
