/**
 * The new AccessionNumber / session folder name `{researchId}_{n}`, at most 16 characters
 * (the SH limit of AccessionNumber). When too long, the research ID is shortened, never the
 * index: cutting the suffix would give two sessions the same accession.
 */
export function sessionName(researchId: string, n: number): string {
  const suffix = `_${n}`;
  return researchId.slice(0, Math.max(0, 16 - suffix.length)) + suffix;
}
