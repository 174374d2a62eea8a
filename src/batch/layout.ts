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
// Deeper folder names and file names are kept unless they hold an identifier (pathPlan.ts
// decides): such a file is renamed to `<new SOPInstanceUID>.dcm`, such a folder to
// `folder_<10 hex>` where the hex is an HMAC-SHA256 of its original relative path under the
// project secret (stable across runs and workers, reveals nothing).
import { createHmac } from 'node:crypto';

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

/** `folder_<10 hex>`: the HMAC-SHA256 of a folder's relative source path under the project secret. */
export function hashedFolderName(secret: Buffer, originalRelDir: string): string {
  return (
    'folder_' +
    createHmac('sha256', secret)
      .update('folder:' + originalRelDir)
      .digest('hex')
      .slice(0, 10)
  );
}
