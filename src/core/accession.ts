import { isNoInformation } from './mapping/mappingCsv.js';

/** The session folder name `{researchId}_{n}`. */
export function sessionFolderName(researchId: string, n: number): string {
  return `${researchId}_${n}`;
}

/** AccessionNumber is SH: at most 16 characters (PS3.5 Table 6.2-1). */
export const ACCESSION_MAX_LENGTH = 16;

/** How many leading characters of the research ID the AccessionNumber of session `n` keeps. */
export function accessionIdLength(n: number): number {
  return Math.max(0, ACCESSION_MAX_LENGTH - `_${n}`.length);
}

/**
 * The new AccessionNumber `{researchId}_{n}`, at most 16 characters (the SH limit). When too
 * long, the research ID is shortened, never the index: cutting the suffix would give two
 * sessions of one patient the same accession.
 */
export function newAccessionNumber(researchId: string, n: number): string {
  return researchId.slice(0, accessionIdLength(n)) + `_${n}`;
}

/**
 * The largest session number of one research patient for which distinct research IDs are
 * guaranteed distinct AccessionNumbers (see ACCESSION_DISTINCT_LENGTH): four digits, far more
 * studies than one research patient has.
 */
export const MAX_SESSION_NUMBER = 9999;

/**
 * Two research IDs give distinct AccessionNumbers for every session number 1..MAX_SESSION_NUMBER
 * if and only if their first ACCESSION_DISTINCT_LENGTH (11) characters differ; IDs of at most 11
 * characters therefore always work.
 *
 * Proof. newAccessionNumber(a, n) = a[:k(n)] + "_" + n with k(n) = 15 - digits(n). The digits of
 * n hold no "_", so the last "_" of an accession separates the two parts: equal accessions have
 * the same n and equal cut IDs, a[:k(n)] = b[:k(n)]. k(n) only falls as n grows, and equal
 * prefixes of length k are equal at every shorter length, so the pair collides for some
 * n <= MAX_SESSION_NUMBER exactly when a[:k(MAX)] = b[:k(MAX)], k(9999) = 11. (Session numbers
 * above 9999 keep fewer characters and are not covered.) test/core/accession.test.ts checks this
 * against newAccessionNumber for every n up to 99999.
 */
export const ACCESSION_DISTINCT_LENGTH = accessionIdLength(MAX_SESSION_NUMBER);

/**
 * The smallest session number for which research IDs `a` and `b` give the same AccessionNumber,
 * or undefined when none up to MAX_SESSION_NUMBER does. It is 1, 10, 100 or 1000: within one
 * number of digits, the cut (and so a collision) is the same.
 */
export function firstAccessionCollision(a: string, b: string): number | undefined {
  if (a === b) return 1;
  for (let n = 1; n <= MAX_SESSION_NUMBER; n *= 10) {
    if (newAccessionNumber(a, n) === newAccessionNumber(b, n)) return n;
  }
  return undefined;
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
