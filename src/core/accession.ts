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
