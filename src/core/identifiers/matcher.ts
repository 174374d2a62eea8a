// Finds identifying values in any text (a folder or file name, a decoded element value), the way
// a person would recognise them, and says which kind matched (never the value).
//
// All comparison is on folded text (fold.ts: NFKC, case folded, accents ignored, katakana as
// hiragana). By the shape of the identifier:
//   - names (patient, physician, operator, institution, patient folder): each component is cut
//     into tokens. A run of Han, kana or Hangul is a token whatever its length and is found
//     anywhere, also inside a longer run ('山田' in '山田太郎.dcm'). Elsewhere a token is a run of
//     2 or more letters: from `wordOnlyBelow` letters (default 4) it is found anywhere
//     ('testpat' in 'TESTPATRHO'); a shorter one only as a whole word of the text, words being
//     split at non-letters and camel-case humps ('Rho' in 'Testpat_Rho_localizer' and
//     'TestpatRho', not in 'Rhombus'). The letters of a multi-token component joined are a
//     token too ('vanderberg'); 'Müller' is also looked for as 'mueller'. Numbers of 4 or more
//     digits in a name are identifiers as IDs are.
//   - IDs (PatientID, Other Patient IDs, AccessionNumber, the CSV's MRN and Accession): the
//     value's letters and digits are looked for in the text's letters and digits
//     ('MRN-1717' in 'mrn1717_ct'), and so is each number of 4 or more digits in it ('1717' in
//     'IM_1717'); a number must not touch other digits ('1717' is not in '21717'), leading
//     zeros aside. Values of fewer than 4 letters and digits count as name tokens.
//   - UIDs: a dotted number in the text equal to the UID, or starting with it and a dot.
//   - dates (birth date, study and acquisition dates; DA or DT values): any date in the text,
//     in any form textDates.ts reads, equal to one of them (both readings of 03-04-2024).
import { cjkRuns, fold, foldVariants, letterRuns, words } from './fold.js';
import { findDates, toDA } from './textDates.js';

export type IdentifierKind =
  | 'patient-name'
  | 'patient-id'
  | 'other-patient-id'
  | 'accession-number'
  | 'mrn'
  | 'csv-accession'
  | 'patient-folder'
  | 'uid'
  | 'birth-date'
  | 'date'
  | 'institution'
  | 'physician'
  | 'operator';

export interface Identifier {
  kind: IdentifierKind;
  /** The value as decoded: a PN value with its '^' and '=', an ID, a UID, a DA or DT value. */
  value: string;
}

export interface MatcherOptions {
  /** Letter tokens (outside CJK scripts) shorter than this are found only as whole words. Default 4. */
  wordOnlyBelow?: number;
}

type Shape = 'name' | 'id' | 'uid' | 'date';
const SHAPE: Record<IdentifierKind, Shape> = {
  'patient-name': 'name',
  'patient-folder': 'name',
  institution: 'name',
  physician: 'name',
  operator: 'name',
  'patient-id': 'id',
  'other-patient-id': 'id',
  'accession-number': 'id',
  mrn: 'id',
  'csv-accession': 'id',
  uid: 'uid',
  'birth-date': 'date',
  date: 'date',
};

/** A number the way it is compared: without leading zeros, unless that leaves fewer than 4 digits. */
function numberKey(digits: string): string {
  const stripped = digits.replace(/^0+/, '');
  return stripped.length >= 4 ? stripped : digits;
}

/** An identifier's letters and digits, searched in the text's letters and digits. */
interface CompactPattern {
  text: string;
  kinds: Set<IdentifierKind>;
}

/**
 * Finds identifiers (rules above) in text. `find` costs one NFKC/fold pass over the text plus
 * one substring search per name token of 4+ letters and per ID; words, numbers, UIDs and dates
 * are looked up in maps. Never throws; never returns a value, only kinds.
 */
export class IdentifierMatcher {
  private readonly wordOnlyBelow: number;
  /** Folded tokens found anywhere in the folded text. */
  private readonly anywhere = new Map<string, Set<IdentifierKind>>();
  /** Folded tokens found only as a whole word. */
  private readonly wholeWords = new Map<string, Set<IdentifierKind>>();
  /** Compact forms of IDs (letters and digits only). */
  private readonly compact = new Map<string, CompactPattern>();
  /** Numbers of 4+ digits (numberKey). */
  private readonly numbers = new Map<string, Set<IdentifierKind>>();
  private readonly uids = new Map<string, Set<IdentifierKind>>();
  /** Dates as YYYYMMDD. */
  private readonly dates = new Map<string, Set<IdentifierKind>>();

  /**
   * A matcher for `identifiers` (any number; values that are empty or "no information" — a run
   * of 5 or more underscores — are ignored). More can be added later with `add`.
   */
  constructor(identifiers: Iterable<Identifier> = [], options: MatcherOptions = {}) {
    this.wordOnlyBelow = options.wordOnlyBelow ?? 4;
    for (const id of identifiers) this.add(id);
  }

  /** True when no identifier was usable (nothing can match). */
  get empty(): boolean {
    return (
      this.anywhere.size +
        this.wholeWords.size +
        this.compact.size +
        this.numbers.size +
        this.uids.size +
        this.dates.size ===
      0
    );
  }

  /** Adds one identifier. */
  add(id: Identifier): void {
    const value = id.value.replace(/\0/g, '').trim();
    if (value === '' || /_{5,}/.test(value)) return;
    switch (SHAPE[id.kind]) {
      case 'name':
        return this.addName(value, id.kind);
      case 'id':
        return this.addId(value, id.kind);
      case 'uid':
        return put(this.uids, value, id.kind);
      case 'date': {
        const m = /^((?:19|20)\d{2})(\d{2})(\d{2})/.exec(value.replace(/[-.]/g, ''));
        if (m) put(this.dates, m[0], id.kind);
        return;
      }
    }
  }

  private addName(value: string, kind: IdentifierKind): void {
    // PN: '=' between groups, '^' between components; other names: spaces and punctuation.
    for (const component of value.split(/[=^]/)) {
      const folded = fold(component);
      for (const run of cjkRuns(folded)) put(this.anywhere, run, kind);
      const tokens = letterRuns(component).filter((t) => [...fold(t)].length >= 2);
      for (const token of tokens) this.addToken(token, kind);
      if (tokens.length > 1) this.addToken(tokens.join(''), kind);
      for (const digits of component.normalize('NFKC').match(/\d{4,}/g) ?? [])
        put(this.numbers, numberKey(digits), kind);
    }
  }

  private addToken(token: string, kind: IdentifierKind): void {
    for (const v of foldVariants(token)) {
      if ([...v].length < 2) continue;
      put([...v].length >= this.wordOnlyBelow ? this.anywhere : this.wholeWords, v, kind);
    }
  }

  private addId(value: string, kind: IdentifierKind): void {
    const c = fold(value).replace(/[^\p{L}\p{N}]/gu, '');
    if ([...c].length < 4) return this.addName(value, kind);
    const p = this.compact.get(c) ?? { text: c, kinds: new Set<IdentifierKind>() };
    p.kinds.add(kind);
    this.compact.set(c, p);
    for (const digits of value.normalize('NFKC').match(/\d{4,}/g) ?? []) put(this.numbers, numberKey(digits), kind);
  }

  /** The kinds of identifier found in `text` ([] when none). */
  find(text: string): IdentifierKind[] {
    const found = new Set<IdentifierKind>();
    const hit = (kinds: Set<IdentifierKind> | undefined) => kinds?.forEach((k) => found.add(k));
    const nfkc = text.normalize('NFKC');
    const folded = fold(nfkc);
    for (const [token, kinds] of this.anywhere) if (folded.includes(token)) hit(kinds);
    if (this.wholeWords.size > 0) {
      for (const w of words(nfkc)) hit(this.wholeWords.get(fold(w)));
    }
    if (this.compact.size > 0) {
      const c = folded.replace(/[^\p{L}\p{N}]/gu, '');
      for (const p of this.compact.values()) if (containsBounded(c, p.text)) hit(p.kinds);
    }
    if (this.numbers.size > 0) {
      for (const digits of nfkc.match(/\d{4,}/g) ?? []) hit(this.numbers.get(numberKey(digits)));
    }
    if (this.uids.size > 0) {
      for (const run of nfkc.match(/\d+(?:\.\d+)+/g) ?? []) {
        const parts = run.split('.');
        for (let i = 2; i <= parts.length; i++) hit(this.uids.get(parts.slice(0, i).join('.')));
      }
    }
    if (this.dates.size > 0) {
      for (const m of findDates(nfkc)) for (const r of m.readings) hit(this.dates.get(toDA(r)));
    }
    return [...found];
  }

  /** True when `text` holds any identifier. */
  matches(text: string): boolean {
    return this.find(text).length > 0;
  }
}

function put(map: Map<string, Set<IdentifierKind>>, key: string, kind: IdentifierKind): void {
  const set = map.get(key);
  if (set) set.add(kind);
  else map.set(key, new Set([kind]));
}

/** `needle` in `hay` where a digit at either end of the needle does not touch another digit. */
function containsBounded(hay: string, needle: string): boolean {
  const digitStart = /^\d/.test(needle);
  const digitEnd = /\d$/.test(needle);
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) {
    if (digitStart && /\d/.test(hay[i - 1] ?? '')) continue;
    if (digitEnd && /\d/.test(hay[i + needle.length] ?? '')) continue;
    return true;
  }
  return false;
}
