// Session numbers as a run would assign them, assigned nowhere (`batch --dry-run`): the numbers
// the state already holds, read only, and for the rest the next free numbers in the order a run
// asks for them, kept in memory.
import type { StateStore } from '../state/stateStore.js';
import type { SessionNumberSource } from './sessionNumbers.js';

/**
 * The SessionNumberSource of `batch --dry-run` (see above): numbers the state holds, read only, and new ones
 * counted on from its highest per research ID, in memory. Rejects with the state's read errors.
 */
export class SessionPreview implements SessionNumberSource {
  /** `researchId \0 key` -> the number this preview gave it (not in the state). */
  private readonly given = new Map<string, number>();
  /** researchId -> numbers this preview gave (new sessions). */
  private readonly fresh = new Map<string, Set<number>>();
  private readonly nextFree = new Map<string, number>();

  /** `state`: opened read only, or null when there is none yet (every number is new). */
  constructor(private readonly state: Pick<StateStore, 'knownSessionIndex' | 'highestSessionIndex'> | null) {}

  /** The number this preview gave (researchId, key), else the state's; undefined when neither has one. */
  async knownSessionIndex(researchId: string, key: string): Promise<number | undefined> {
    return this.given.get(researchId + '\0' + key) ?? (await this.state?.knownSessionIndex(researchId, key));
  }

  /** As StateStore.sessionIndices, in memory: the state is never written. */
  async sessionIndices(
    researchId: string,
    keys: readonly string[],
    sameAs?: ReadonlyMap<string, string>,
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const key of keys) {
      if (out.has(key)) continue;
      let n = await this.knownSessionIndex(researchId, key);
      const other = sameAs?.get(key);
      if (n === undefined && other !== undefined) n = await this.knownSessionIndex(researchId, other);
      if (n === undefined) {
        n = this.nextFree.get(researchId) ?? ((await this.state?.highestSessionIndex(researchId)) ?? 0) + 1;
        this.nextFree.set(researchId, n + 1);
        const set = this.fresh.get(researchId) ?? new Set<number>();
        set.add(n);
        this.fresh.set(researchId, set);
      }
      this.given.set(researchId + '\0' + key, n);
      out.set(key, n);
    }
    return out;
  }

  /** True when session `n` of `researchId` is new (not in the state before this preview). */
  isNew(researchId: string, n: number): boolean {
    return this.fresh.get(researchId)?.has(n) === true;
  }
}
