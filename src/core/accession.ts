import { isNoInformation } from './mapping/mappingCsv.js';

/** The session folder name `{researchId}_{n}`. */
export function sessionFolderName(researchId: string, n: number): string {
  return `${researchId}_${n}`;
}

/**
 * The new AccessionNumber `{researchId}_{n}`, at most 16 characters (the SH limit). When too
 * long, the research ID is shortened, never the index: cutting the suffix would give two
 * sessions of one patient the same accession.
 */
export function newAccessionNumber(researchId: string, n: number): string {
  const suffix = `_${n}`;
  return researchId.slice(0, Math.max(0, 16 - suffix.length)) + suffix;
}

/**
 * The session key of a study, shared by the node and batch mode (for files outside session
 * folders): the original AccessionNumber, or the StudyInstanceUID when the accession is empty
 * or "no information". Key material: it is stored in the SQLite state only.
 */
export function studySessionKey(accessionNumber: string, studyInstanceUid: string): string {
  if (!isNoInformation(accessionNumber)) return `study:${accessionNumber.trim()}`;
  return `study-uid:${studyInstanceUid.trim() || 'unknown'}`;
}
