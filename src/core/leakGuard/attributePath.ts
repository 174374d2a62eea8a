// Where an element sits in a data set, written for people and logs:
// '(0008,103E) SeriesDescription' at the top level, '(0040,0275)[0]/(0032,1060)
// RequestedProcedureDescription' inside the first item of a sequence. Tags are PS3.5 (group,
// element) in upper-case hex; keywords are PS3.6's. A path never carries a value.
import { hexTag } from '../dicom/parser.js';
import { keywordOf, tagOfKeyword } from '../dicom/keywordDictionary.js';

/** One step of a path: an element, and the item of it the path goes into (sequences only). */
export interface PathStep {
  readonly tag: number;
  /** 0-based item index when the path continues inside this sequence. */
  readonly item?: number;
  readonly parent?: PathStep;
}

/** The steps from the top level down to `step`. */
function stepsOf(step: PathStep): PathStep[] {
  const out: PathStep[] = [];
  for (let s: PathStep | undefined = step; s; s = s.parent) out.unshift(s);
  return out;
}

/**
 * The path of `step` as text: tags joined by '/', each sequence step with its item index in
 * brackets, then the keyword of the last element when the dictionary knows it (private and
 * unknown tags: the tag alone).
 */
export function formatAttributePath(step: PathStep): string {
  const text = stepsOf(step)
    .map((s) => hexTag(s.tag) + (s.item !== undefined ? `[${s.item}]` : ''))
    .join('/');
  const keyword = keywordOf(step.tag);
  return keyword ? `${text} ${keyword}` : text;
}

/** True when `step` or any element above it has one of `tags`. */
export function pathHasTag(step: PathStep, tags: ReadonlySet<number>): boolean {
  for (let s: PathStep | undefined = step; s; s = s.parent) if (tags.has(s.tag)) return true;
  return false;
}

/**
 * The entries of a comma-separated list of attributes, where a tag keeps its own comma:
 * 'StudyDescription,0008,103E,(0018,99A1)' -> ['StudyDescription', '0008,103E', '(0018,99A1)'].
 */
export function splitAttributeList(text: string): string[] {
  return (text.match(/\s*\(?[0-9a-f]{4},[0-9a-f]{4}\)?(?![0-9a-z])|[^,]+/gi) ?? [])
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/**
 * Reads a list of attributes, each a PS3.6 keyword (case ignored: 'StudyDescription') or a tag
 * ('(0008,1030)', '0008,1030', '00081030'). Returns the tags, and the entries that are neither
 * (for the caller's one-line error naming them).
 */
export function parseAttributeList(entries: Iterable<string>): { tags: Set<number>; unknown: string[] } {
  const tags = new Set<number>();
  const unknown: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = /^\(?([0-9a-f]{4}),?([0-9a-f]{4})\)?$/i.exec(entry);
    const tag = m ? parseInt(m[1]! + m[2]!, 16) : tagOfKeyword(entry);
    if (tag === undefined) unknown.push(entry);
    else tags.add(tag);
  }
  return { tags, unknown };
}
