// The value of Specific Character Set (0008,0005) read into what decoding needs: the character
// set of the first value (in force at the start of every value and after every delimiter), and
// whether the value uses code extensions (PS3.3 C.12.1.1.2, PS3.5 6.1.2.5).
import { ASCII, CODE_ELEMENTS, STAND_ALONE, type CodeElement, type StandAloneTerm } from './codeElements.js';

export interface SpecificCharacterSet {
  /** The defined terms as read (trimmed, upper case); value 1 may be '' (the default repertoire). */
  readonly terms: readonly string[];
  /** Set when value 1 is a character set used without code extensions (UTF-8, GB18030, GBK). */
  readonly standAlone: StandAloneTerm | null;
  /** G0 and G1 in force at the start of each value and after each delimiter. */
  readonly initialG0: CodeElement;
  readonly initialG1: CodeElement | null;
  /** The code elements the value declares (escape sequences may invoke any known one). */
  readonly declared: readonly CodeElement[];
  /** True when a term is an ISO 2022 one: values may switch sets by escape sequences. */
  readonly extensions: boolean;
  /** Terms that are not defined terms nor a known alias: decoded as if absent. */
  readonly unknownTerms: readonly string[];
}

/** Aliases seen in the wild, and PS3.3's older terms, to a defined term. */
const ALIASES: Record<string, string> = {
  'UTF-8': 'ISO_IR 192',
  UTF8: 'ISO_IR 192',
  'ISO 2022 GBK': 'GBK',
  'ISO 2022 58': 'ISO 2022 IR 58',
  GB2312: 'ISO 2022 IR 58',
};

/** The code element of a term ('ISO_IR 100' and 'ISO 2022 IR 100' are the same), or undefined. */
function elementOf(term: string): CodeElement | undefined {
  const m = /^ISO[ _-]?(?:2022[ _-]?)?IR[ _-]?(\d+)$/.exec(term);
  return m ? CODE_ELEMENTS.get(`IR ${m[1]}`) : undefined;
}

/**
 * Reads a Specific Character Set value: a string as found in the element (values separated by
 * backslashes) or the values themselves. An absent or empty value is the default repertoire
 * (ISO-IR 6). Unknown terms are listed in `unknownTerms` and otherwise ignored; bytes no
 * designated set covers are later read as Latin-1, as pydicom does.
 */
export function parseSpecificCharacterSet(value: string | readonly string[] | undefined): SpecificCharacterSet {
  const raw = typeof value === 'string' ? value.split('\\') : [...(value ?? [])];
  const terms = raw.map((t) => t.replace(/\0/g, '').trim().toUpperCase().replace(/\s+/g, ' '));
  if (terms.length === 0) terms.push('');
  const unknownTerms: string[] = [];
  const declared: CodeElement[] = [];
  let standAlone: StandAloneTerm | null = null;
  terms.forEach((t, i) => {
    const term = ALIASES[t] ?? t;
    if (term === '') {
      if (i === 0) declared.push(ASCII);
      return;
    }
    if (term in STAND_ALONE) {
      // PS3.5 6.1.2.5.4: these cannot be combined with code extensions; value 1 decides.
      if (i === 0) standAlone = term as StandAloneTerm;
      return;
    }
    const el = elementOf(term);
    if (el) declared.push(el);
    else unknownTerms.push(t);
  });
  const first = standAlone === null ? (elementOf(ALIASES[terms[0]!] ?? terms[0]!) ?? ASCII) : ASCII;
  let initialG0 = ASCII;
  let initialG1: CodeElement | null = null;
  if (first.id === 'IR 13') {
    // JIS X 0201: Romaji in G0, Katakana in G1 (PS3.3 Table C.12-2).
    initialG0 = CODE_ELEMENTS.get('IR 14')!;
    initialG1 = first;
  } else if (first.graphic === 'G1') {
    initialG1 = first;
  }
  // A two-byte G0 set as value 1 is not allowed; like Python's iso2022 codecs, start in ASCII.
  const extensions = standAlone === null && terms.some((t) => (ALIASES[t] ?? t).startsWith('ISO 2022'));
  return { terms, standAlone, initialG0, initialG1, declared, extensions, unknownTerms };
}

/** No Specific Character Set: the default repertoire (ISO-IR 6). */
export const DEFAULT_CHARACTER_SET: SpecificCharacterSet = parseSpecificCharacterSet(undefined);
