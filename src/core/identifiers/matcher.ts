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
//     digits in a name are identifiers as IDs are. A component with digits ('CT1',
//     'CQ500-CT-310') is a code, not a name: its letters and digits together are looked for as
//     an ID's are, and of its letter runs only those of 4 or more letters ('CT' of 'CT1' is not
//     a name, and is the Modality of every CT image).
//   - IDs (PatientID, Other Patient IDs, AccessionNumber, the CSV's MRN and Accession): the
//     value's letters and digits are looked for in the text's letters and digits
//     ('MRN-1717' in 'mrn1717_ct'), and so is each number of 4 or more digits in it ('1717' in
//     'IM_1717'); a number must not touch other digits ('1717' is not in '21717'), leading
//     zeros aside. Values of fewer than 4 letters and digits count as name tokens.
//   - UIDs: a dotted number in the text equal to the UID, or starting with it and a dot.
//   - dates (birth date, study and acquisition dates; DA or DT values): any date in the text,
//     in any form textDates.ts reads, equal to one of them (both readings of 03-04-2024).
import { cjkRuns, fold, foldVariants, isAscii, letterRuns, words } from './fold.js';
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
  /** Their years: every date form findDates reads has its year as 4 digits in a row. */
  private readonly years = new Set<string>();

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
        if (m) {
          put(this.dates, m[0], id.kind);
          this.years.add(m[1]!);
        }
        return;
      }
    }
  }

  private addName(value: string, kind: IdentifierKind): void {
    // PN: '=' between groups, '^' between components; other names: spaces and punctuation.
    for (const component of value.split(/[=^]/)) {
      const folded = fold(component);
      for (const run of cjkRuns(folded)) put(this.anywhere, run, kind);
      const code = /\d/.test(component.normalize('NFKC'));
      const tokens = letterRuns(component).filter((t) => [...fold(t)].length >= (code ? this.wordOnlyBelow : 2));
      for (const token of tokens) this.addToken(token, kind);
      if (tokens.length > 1 && !code) this.addToken(tokens.join(''), kind);
      if (code) this.addCompact(folded.replace(/[^\p{L}\p{N}]/gu, ''), kind);
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
    this.addCompact(c, kind);
    for (const digits of value.normalize('NFKC').match(/\d{4,}/g) ?? []) put(this.numbers, numberKey(digits), kind);
  }

  /** Letters and digits `c` (already folded and compacted), when at least 4 of them. */
  private addCompact(c: string, kind: IdentifierKind): void {
    if ([...c].length < 4) return;
    const p = this.compact.get(c) ?? { text: c, kinds: new Set<IdentifierKind>() };
    p.kinds.add(kind);
    this.compact.set(c, p);
  }

  /** The kinds of identifier found in `text` ([] when none). */
  find(text: string): IdentifierKind[] {
    const found = new Set<IdentifierKind>();
    const hit = (kinds: Set<IdentifierKind> | undefined) => kinds?.forEach((k) => found.add(k));
    // Shortcuts (the leak guard searches every value of an instance): ASCII text, which NFKC and
    // folding leave alone but for case; and before any splitting, a plain search for what each
    // rule needs in the text (a whole word's letters, an ID's letters and digits in order, a
    // number's digits, a UID, a date's year).
    const ascii = isAscii(text);
    const nfkc = ascii ? text : text.normalize('NFKC');
    const folded = ascii ? nfkc.toLowerCase() : fold(nfkc);
    for (const [token, kinds] of this.anywhere) if (folded.includes(token)) hit(kinds);
    if (this.wholeWords.size > 0 && (!ascii || [...this.wholeWords.keys()].some((w) => folded.includes(w)))) {
      for (const w of words(nfkc)) hit(this.wholeWords.get(fold(w)));
    }
    const compact = [...this.compact.values()].filter((p) => hasSubsequence(folded, p.text));
    if (compact.length > 0) {
      const c = ascii ? folded.replace(/[^a-z0-9]+/g, '') : folded.replace(/[^\p{L}\p{N}]+/gu, '');
      for (const p of compact) if (containsBounded(c, p.text)) hit(p.kinds);
    }
    if (this.numbers.size > 0 && [...this.numbers.keys()].some((n) => nfkc.includes(n))) {
      for (const digits of nfkc.match(/\d{4,}/g) ?? []) hit(this.numbers.get(numberKey(digits)));
    }
    if (this.uids.size > 0 && [...this.uids.keys()].some((u) => nfkc.includes(u))) {
      for (const run of nfkc.match(/\d+(?:\.\d+)+/g) ?? []) {
        const parts = run.split('.');
        for (let i = 2; i <= parts.length; i++) hit(this.uids.get(parts.slice(0, i).join('.')));
      }
    }
    if (this.dates.size > 0) {
      for (const part of aroundYears(nfkc, this.years)) {
        for (const m of findDates(part)) for (const r of m.readings) hit(this.dates.get(toDA(r)));
      }
    }
    return [...found];
  }

  /** True when `text` holds any identifier. */
  matches(text: string): boolean {
    return this.find(text).length > 0;
  }
}

/**
 * Characters a written date may take before its year ('September 30th, ': 16) and after it
 * ('-September-30': 13), with room to spare.
 */
const BEFORE_YEAR = 20;
const AFTER_YEAR = 16;

/**
 * The stretches of `text` around each occurrence of one of `years` (every date form findDates
 * reads has its year as 4 digits in a row), widened to whole runs of letters and digits so that
 * a stretch never starts or ends inside a number: findDates finds in them exactly the dates of
 * `text` with one of those years. Long texts are cut down this way; a short one is kept whole.
 */
function aroundYears(text: string, years: ReadonlySet<string>): string[] {
  if (text.length <= 64) return [...years].some((y) => text.includes(y)) ? [text] : [];
  const spans: [number, number][] = [];
  for (const y of years) {
    for (let i = text.indexOf(y); i >= 0; i = text.indexOf(y, i + 1)) {
      let start = Math.max(0, i - BEFORE_YEAR);
      let end = Math.min(text.length, i + 4 + AFTER_YEAR);
      while (start > 0 && /[\p{L}\p{N}]/u.test(text[start - 1]!)) start--;
      while (end < text.length && /[\p{L}\p{N}]/u.test(text[end]!)) end++;
      spans.push([start, end]);
    }
  }
  spans.sort((a, b) => a[0] - b[0]);
  const out: string[] = [];
  let cur: [number, number] | undefined;
  for (const s of spans) {
    if (cur && s[0] <= cur[1]) cur[1] = Math.max(cur[1], s[1]);
    else {
      if (cur) out.push(text.slice(cur[0], cur[1]));
      cur = [s[0], s[1]];
    }
  }
  if (cur) out.push(text.slice(cur[0], cur[1]));
  return out;
}

function put(map: Map<string, Set<IdentifierKind>>, key: string, kind: IdentifierKind): void {
  const set = map.get(key);
  if (set) set.add(kind);
  else map.set(key, new Set([kind]));
}

/** True when the characters of `needle` occur in `hay` in order (not necessarily together). */
function hasSubsequence(hay: string, needle: string): boolean {
  let at = 0;
  for (const ch of needle) {
    const i = hay.indexOf(ch, at);
    if (i < 0) return false;
    at = i + ch.length;
  }
  return true;
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
