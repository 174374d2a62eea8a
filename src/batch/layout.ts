// Where each input file goes in the output tree. Pure functions: no I/O.
//
//   <input>/<patient folder>/<session folder>/<deeper...>/<file>
//     -> <output>/<New_Patient_ID>/<New_Patient_ID>_<N>/<deeper...>/<file>
//
// Files directly inside a patient folder, or at the top level of the input, have no session
// folder: they are grouped by study (key `study:<AccessionNumber>`, or
// `study-uid:<StudyInstanceUID>` when the accession is empty or "no information") and go to
// `<New_Patient_ID>/<New_Patient_ID>_<N>/<file>`.
//
// Deeper folder names and file names are kept unless they contain an identifier (MRN,
// accession, original patient folder name, patient name part): such a file is renamed to
// `<new SOPInstanceUID>.dcm`, such a folder to `folder_<10 hex>` where the hex is an
// HMAC-SHA256 of its original relative path under the project secret (stable across runs and
// workers, reveals nothing).
import { createHmac } from 'node:crypto';
import { isNoInformation } from '../core/mapping/mappingCsv.js';
import type { MappingRow } from '../core/types.js';

export interface SourceLayout {
  /** Top-level folder (a patient) or null for a file at the top level of the input. */
  patientFolder: string | null;
  /** Second-level folder (a session) or null when the file is not inside one. */
  sessionFolder: string | null;
  /** Folders below the session folder, in order. */
  deeperDirs: string[];
  fileName: string;
}

/** `rel` uses '/' separators. */
export function sourceLayout(rel: string): SourceLayout {
  const parts = rel.split('/');
  const fileName = parts[parts.length - 1]!;
  if (parts.length === 1) return { patientFolder: null, sessionFolder: null, deeperDirs: [], fileName };
  if (parts.length === 2) return { patientFolder: parts[0]!, sessionFolder: null, deeperDirs: [], fileName };
  return { patientFolder: parts[0]!, sessionFolder: parts[1]!, deeperDirs: parts.slice(2, -1), fileName };
}

/** The session key (in the state) of a session folder. */
export function folderSessionKey(patientFolder: string, sessionFolder: string): string {
  return `folder:${patientFolder}/${sessionFolder}`;
}

/** The session key (in the state) of a study outside any session folder. */
export { studySessionKey } from '../core/accession.js';

/** Normalised identifier strings worth looking for in names (lower case, non-trivial). */
export function identifierSet(values: Iterable<string | null | undefined>): string[] {
  const out = new Set<string>();
  for (const v of values) {
    if (isNoInformation(v)) continue;
    const t = v!.trim().toLowerCase();
    if (t.length >= 2) out.add(t);
  }
  return [...out];
}

/** The MRNs and accessions of every row, by research ID (a patient may have one row per accession). */
export function rowIdentifiers(rows: readonly MappingRow[]): Map<string, string[]> {
  const byId = new Map<string, string[]>();
  for (const row of rows) {
    const list = byId.get(row.researchId) ?? [];
    if (row.mrn) list.push(row.mrn);
    if (row.accession) list.push(row.accession);
    byId.set(row.researchId, list);
  }
  return byId;
}

/** Person-name parts (PN: '^' and '=' separated) long enough to be meaningful in a name. */
export function nameParts(pn: string): string[] {
  return pn
    .split(/[\^=\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s.length >= 3);
}

export function containsIdentifier(name: string, identifiers: readonly string[]): boolean {
  const n = name.toLowerCase();
  return identifiers.some((id) => n.includes(id));
}

export function hashedFolderName(secret: Buffer, originalRelDir: string): string {
  return (
    'folder_' +
    createHmac('sha256', secret)
      .update('folder:' + originalRelDir)
      .digest('hex')
      .slice(0, 10)
  );
}

/**
 * Output directories below the session folder. `dirIdentifiers` must depend only on the
 * research ID and patient folder so every file of a folder gets the same decision.
 */
export function outputDeeperDirs(layout: SourceLayout, dirIdentifiers: readonly string[], secret: Buffer): string[] {
  const prefix = [layout.patientFolder, layout.sessionFolder].filter((s): s is string => s !== null);
  return layout.deeperDirs.map((d, i) =>
    containsIdentifier(d, dirIdentifiers)
      ? hashedFolderName(secret, [...prefix, ...layout.deeperDirs.slice(0, i + 1)].join('/'))
      : d,
  );
}
