// One study, one research patient (PS3.3 C.7.2.1: a study belongs to one patient). Before any
// file is written, every study the survey found is claimed in the state for the research patient
// of its first file in walk order (sorted paths: the same choice on every run), unless the state
// already gives it to one (an earlier run, or the node). A file whose row names another research
// patient is then held (status `conflict`), so the research PACS never sees one study under two
// patients.
import { remapUid } from '../core/uidRemap.js';
import type { StateStore } from '../state/stateStore.js';
import type { SurveyedStudy } from './survey.js';

/**
 * The research ID that owns the study of each surveyed file (relative path -> research ID),
 * claiming unowned studies in the order given, in one transaction. Studies are keyed by their
 * de-identified Study Instance UID (`secret`: the project's UID secret), as the node keys them.
 */
export async function claimStudyOwners(
  state: StateStore,
  studies: readonly SurveyedStudy[],
  secret: Buffer,
): Promise<Map<string, string>> {
  const { claims, newUid } = firstClaims(studies, secret);
  const owners = await state.claimStudies(claims);
  const ownerOf = new Map(claims.map((c, i) => [c.studyUid, owners[i]!]));
  return new Map(studies.map((s) => [s.rel, ownerOf.get(newUid.get(s.studyInstanceUid)!)!]));
}

/**
 * What claimStudyOwners would return, claiming nothing (`batch --dry-run`): the owners `state`
 * (read only; null: none yet) already gives, else the research ID of each study's first file.
 */
export async function previewStudyOwners(
  state: Pick<StateStore, 'knownStudyOwners'> | null,
  studies: readonly SurveyedStudy[],
  secret: Buffer,
): Promise<Map<string, string>> {
  const { claims, newUid } = firstClaims(studies, secret);
  const known = state ? await state.knownStudyOwners(claims.map((c) => c.studyUid)) : new Map<string, string>();
  const ownerOf = new Map(claims.map((c) => [c.studyUid, known.get(c.studyUid) ?? c.researchId]));
  return new Map(studies.map((s) => [s.rel, ownerOf.get(newUid.get(s.studyInstanceUid)!)!]));
}

/** One claim per study, by its first file in the order given; each original study UID's new one. */
function firstClaims(
  studies: readonly SurveyedStudy[],
  secret: Buffer,
): { claims: { studyUid: string; researchId: string }[]; newUid: Map<string, string> } {
  const newUid = new Map<string, string>();
  const claims: { studyUid: string; researchId: string }[] = [];
  const claimed = new Set<string>();
  for (const s of studies) {
    let uid = newUid.get(s.studyInstanceUid);
    if (uid === undefined) newUid.set(s.studyInstanceUid, (uid = remapUid(s.studyInstanceUid, secret)));
    // The first file of a study claims it; the others are told the owner.
    if (!claimed.has(uid)) {
      claimed.add(uid);
      claims.push({ studyUid: uid, researchId: s.researchId });
    }
  }
  return { claims, newUid };
}
