// Finds in a text the identifiers of the OTHER patients of a run: every MRN and Accession of the
// mapping CSV, and (in batch) the PatientIDs, AccessionNumbers, Other Patient IDs and names of
// every file of the input tree. The leak guard and the path plan look for the file's own patient
// with matcher.ts; a study can also name another patient ('prior of ROE JANE 7654321' in a
// SeriesDescription, a folder 'compare with Roe Jane'), which this finds.
//
// The cohort can hold thousands of patients, so its rules are stricter than matcher.ts's (and
// cost one pass over the text, map lookups only, whatever the cohort's size):
//   - an ID counts from 5 letters and digits (a 4-digit number is as often a year or a size),
//     with a digit (letters alone, 'WATER', are a word), found as a whole run of letters and
//     digits of the text, or as up to 4 adjacent runs joined ('MRN-7654321', 'CX-55-1234'), or as a number of 5+ digits that does not touch other
//     digits, leading zeros aside ('7654321' in 'IM_7654321'); never inside a dotted number (a
//     UID: '10008' is in every SOP Class UID the output keeps);
//   - a name counts when its family name and a given name both stand as whole words of the text,
//     in any order ('Roe Jane', 'JANE ROE', 'ROE^JANE', 'RoeJane'): a family name alone is too
//     often a word ('Head', 'Long', 'White') to hold a file on. In Han, kana or Hangul, where words
//     are not spaced, both found anywhere in the text.
// Each identifier has owners (research IDs): the patient whose output is scanned is left out,
// its own identifiers being matcher.ts's to find. Pure: no I/O.
import { CJK_CHAR, cjkRuns, fold, letterRuns, words } from './fold.js';
import type { IdentifierKind } from './matcher.js';

/** Three or more numbers joined by dots: a UID (kept ones such as SOP Class UIDs are in every output). */
const UID_LIKE = /\d+(?:\.\d+){2,}/g;

/** Runs of letters and digits joined to find an ID written in pieces ('AB-12-345-6': 4). */
const JOINED = 4;

/** A number the way the cohort compares it: without leading zeros. */
function numberKey(digits: string): string {
  return digits.replace(/^0+/, '');
}

/** Owners by kind of one key. */
type Owned = Map<IdentifierKind, Set<string>>;

function own(map: Map<string, Owned>, key: string, kind: IdentifierKind, owner: string): void {
  let byKind = map.get(key);
  if (!byKind) map.set(key, (byKind = new Map()));
  let owners = byKind.get(kind);
  if (!owners) byKind.set(kind, (owners = new Set()));
  owners.add(owner);
}

/** The letters of a name component, folded, as whole-word tokens (2+ letters). */
function nameTokens(component: string): string[] {
  return letterRuns(fold(component)).filter((t) => [...t].length >= 2);
}

/** One identifier of a run's patient: what CohortMatcher.of takes (and what batch sends its workers). */
export interface CohortEntry {
  kind: IdentifierKind;
  /** The value as decoded (a PN value with its '^' and '=' for a name). */
  value: string;
  /** The research ID of its patient; for a file no mapping row matched, any other text that is not ''. */
  owner: string;
}

/** The kinds CohortMatcher reads as names (the others as IDs). */
const NAME_KINDS: ReadonlySet<IdentifierKind> = new Set(['patient-name']);

/**
 * The identifiers of a run's patients, found in text by the rules above. Build it once per run
 * (or per mapping CSV) with `addId` and `addName`; `find` never returns a value, only kinds.
 */
export class CohortMatcher {
  /** Compact IDs (folded letters and digits, 5 or more). */
  private readonly ids = new Map<string, Owned>();
  /** Numbers of 5+ digits in IDs, without leading zeros. */
  private readonly numbers = new Map<string, Owned>();
  /** Family name token -> the given name tokens that make a name with it, and their owners. */
  private readonly names = new Map<string, { given: string; kind: IdentifierKind; owner: string }[]>();
  /** Names written in Han, kana or Hangul: their family and given runs, found anywhere in the text. */
  private readonly cjkNames: { family: string; given: string; kind: IdentifierKind; owner: string }[] = [];
  private count = 0;

  /** A matcher of `entries` (names for 'patient-name', IDs for the other kinds). */
  static of(entries: Iterable<CohortEntry>): CohortMatcher {
    const m = new CohortMatcher();
    for (const e of entries) {
      if (NAME_KINDS.has(e.kind)) m.addName(e.kind, e.value, e.owner);
      else m.addId(e.kind, e.value, e.owner);
    }
    return m;
  }

  /** True when nothing can match. */
  get empty(): boolean {
    return this.count === 0;
  }

  /** An ID (PatientID, AccessionNumber, the CSV's MRN or Accession) of the patient `owner` (a research ID). */
  addId(kind: IdentifierKind, value: string, owner: string): void {
    const c = fold(value.normalize('NFKC')).replace(/[^\p{L}\p{N}]/gu, '');
    // Letters only ('WATER', 'ORIGINAL': a phantom's or QA file's PatientID) is a word, not an ID.
    if ([...c].length < 5 || !/\p{N}/u.test(c)) return;
    own(this.ids, c, kind, owner);
    for (const digits of value.normalize('NFKC').match(/\d{5,}/g) ?? []) {
      const key = numberKey(digits);
      if (key.length >= 5) own(this.numbers, key, kind, owner);
    }
    this.count++;
  }

  /** A person name (PN: 'Family^Given^Middle', '=' between groups) of the patient `owner`. */
  addName(kind: IdentifierKind, value: string, owner: string): void {
    for (const group of value.split('=')) {
      const [family = '', ...rest] = group.split('^');
      const cjkFamily = cjkRuns(fold(family)).join('');
      const cjkGiven = cjkRuns(fold(rest.join(''))).join('');
      if (cjkFamily !== '' && cjkGiven !== '') {
        this.cjkNames.push({ family: cjkFamily, given: cjkGiven, kind, owner });
        this.count++;
        continue;
      }
      const families = nameTokens(family);
      const givens = rest.flatMap(nameTokens);
      if (families.length === 0 || givens.length === 0) continue;
      for (const f of families) {
        const list = this.names.get(f) ?? [];
        for (const g of givens) if (g !== f) list.push({ given: g, kind, owner });
        this.names.set(f, list);
      }
      this.count++;
    }
  }

  /** The kinds of identifier of patients other than `except` (a research ID) found in `text`. */
  find(text: string, except: string): IdentifierKind[] {
    if (this.count === 0) return [];
    const found = new Set<IdentifierKind>();
    const hit = (owned: Owned | undefined) => {
      owned?.forEach((owners, kind) => {
        for (const o of owners) if (o !== except) return void found.add(kind);
      });
    };
    // A dotted number (a UID: '1.2.840.10008.5.1.4.1.1.2') is no ID: its parts would be numbers.
    const plain = text.normalize('NFKC').replace(UID_LIKE, ' ');
    const folded = fold(plain);
    const runs = folded.match(/[\p{L}\p{N}]+/gu) ?? [];
    // An ID written with dashes or spaces ('CX-55-1234', '123 45 6789'): up to JOINED runs joined.
    for (let i = 0; i < runs.length; i++) {
      let joined = '';
      for (let k = i; k < runs.length && k < i + JOINED; k++) {
        joined += runs[k]!;
        hit(this.ids.get(joined));
      }
    }
    for (const digits of plain.match(/\d{5,}/g) ?? []) hit(this.numbers.get(numberKey(digits)));
    if (this.names.size > 0) {
      const seen = new Set(words(text).map((w) => fold(w)));
      for (const w of seen) {
        for (const n of this.names.get(w) ?? []) if (n.owner !== except && seen.has(n.given)) found.add(n.kind);
      }
    }
    if (this.cjkNames.length > 0 && CJK_CHAR.test(folded)) {
      for (const n of this.cjkNames) {
        if (n.owner !== except && folded.includes(n.family) && folded.includes(n.given)) found.add(n.kind);
      }
    }
    return [...found];
  }
}
