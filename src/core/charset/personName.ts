// Person Name (PN) values: up to three component groups (alphabetic, ideographic, phonetic)
// separated by '=', each of up to five components (family, given, middle, prefix, suffix)
// separated by '^' (PS3.5 6.2.1).
import { decodeValues } from './decode.js';
import type { SpecificCharacterSet } from './specificCharacterSet.js';

export interface PersonName {
  /** The whole value as decoded: groups separated by '=', components by '^'. */
  readonly value: string;
  /** The alphabetic, ideographic and phonetic component groups ('' when absent). */
  readonly groups: readonly [alphabetic: string, ideographic: string, phonetic: string];
  /** The non-empty components of all groups, in order, without surrounding spaces. */
  readonly components: readonly string[];
}

/** Splits a decoded PN value (one value, no backslash) into its groups and components. */
export function personName(value: string): PersonName {
  const [a = '', i = '', p = ''] = value.split('=');
  const groups = [a, i, p] as const;
  const components = groups
    .flatMap((g) => g.split('^'))
    .map((c) => c.trim())
    .filter((c) => c !== '');
  return { value, groups, components };
}

/**
 * The person names of a PN element's bytes (one per value), decoded under `cs`: the escape
 * state resets at each '^', '=' and '\' (PS3.5 6.1.2.5.3), so each component is decoded right.
 */
export function decodePersonNames(bytes: Uint8Array, cs: SpecificCharacterSet): PersonName[] {
  return decodeValues(bytes, cs, 'PN').map(personName);
}
