// Text folded for comparing identifiers: Unicode compatibility forms joined (NFKC: full-width
// letters, half-width katakana), case folded, accents ignored ('MULLER' names 'Müller'), and
// katakana read as hiragana (a phonetic name may be written in either).

/** Combining marks that are accents on Latin, Greek and Cyrillic letters (not kana voicing). */
// eslint-disable-next-line no-misleading-character-class -- ranges of combining marks are meant
const ACCENTS = /[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]/g;

/** Letters that are accented forms without a Unicode decomposition. */
const LETTERS: Record<string, string> = { ø: 'o', æ: 'ae', œ: 'oe', ł: 'l', đ: 'd', ð: 'd', þ: 'th', ı: 'i', ħ: 'h' };
const LETTERS_RE = new RegExp(`[${Object.keys(LETTERS).join('')}]`, 'g');

/** Case folding (full: 'ß' -> 'ss', final sigma -> sigma) after NFKC. */
function caseFold(s: string): string {
  return s.normalize('NFKC').toUpperCase().toLowerCase();
}

function stripAccents(s: string): string {
  return s
    .normalize('NFD')
    .replace(ACCENTS, '')
    .normalize('NFC')
    .replace(LETTERS_RE, (c) => LETTERS[c]!);
}

/** Katakana (U+30A1-U+30F6) to the hiragana of the same sound. */
function katakanaToHiragana(s: string): string {
  return s.replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60));
}

/** True when `s` is ASCII only (then NFKC leaves it as it is, and folding is lower-casing). */
export function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** `s` folded for comparison: NFKC, case folded, accents removed, katakana as hiragana. */
export function fold(s: string): string {
  if (isAscii(s)) return s.toLowerCase();
  return katakanaToHiragana(stripAccents(caseFold(s)));
}

/**
 * The spellings of a name token to look for: its folded form and, when it has a German umlaut,
 * the transliterated one too ('Müller' is also written 'Mueller').
 */
export function foldVariants(s: string): string[] {
  const folded = fold(s);
  const cf = caseFold(s);
  if (!/[äöü]/.test(cf)) return [folded];
  const translit = fold(cf.replace(/ä/g, 'ae').replace(/ö/g, 'oe').replace(/ü/g, 'ue'));
  return translit === folded ? [folded] : [folded, translit];
}

/** Han, kana and Hangul: scripts whose names are matched by component, whatever their length. */
const CJK = String.raw`\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc\u3005\u3006`;
export const CJK_CHAR = new RegExp(`[${CJK}]`, 'u');
const CJK_RUN = new RegExp(`[${CJK}]+`, 'gu');
/** Between a CJK and a non-CJK letter, either way. */
const SCRIPT_CHANGE = new RegExp(`(?<=[${CJK}])(?=[^${CJK}])|(?<=[^${CJK}])(?=[${CJK}])`, 'u');
/** Camel-case humps: 'testPat' -> 'test', 'Pat'; 'RHOScout' -> 'RHO', 'Scout'. */
const HUMP = /(?<=\p{Ll})(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})/u;

/** Runs of CJK characters in `s` (already folded). */
export function cjkRuns(s: string): string[] {
  return s.match(CJK_RUN) ?? [];
}

/** Runs of letters (with their marks) of the other scripts in `s` (already folded). */
export function letterRuns(s: string): string[] {
  return s.replace(CJK_RUN, ' ').match(/[\p{L}\p{M}]+/gu) ?? [];
}

/**
 * The words of a text as written (NFKC applied, not folded): runs of letters split at
 * non-letters, at changes between CJK and other scripts, and at camel-case humps.
 */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const run of text.normalize('NFKC').match(/[\p{L}\p{M}]+/gu) ?? []) {
    for (const part of run.split(SCRIPT_CHANGE)) out.push(...part.split(HUMP));
  }
  return out.filter((w) => w !== '');
}
