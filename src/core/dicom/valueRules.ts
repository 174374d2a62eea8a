// The rules a text value must follow for its VR (PS3.5 Table 6.2-1: character repertoire, form
// and maximum length of each value), checked on the values de-identification copies unchanged.
// The same rules pydicom checks when it reads a value (pydicom/valuerep.py, VALIDATORS).
//
// Two repairs are safe and made: a Code String in lower case is upper-cased (CS holds upper-case
// letters only; the value's meaning does not change), and a time written with ACR-NEMA colons
// (HH:MM:SS) loses them. Anything else invalid cannot be put right without guessing: the caller
// passes such a kept value on as received and says so in the audit log (deidentify.ts), rather
// than lose a clinically valid instance over a CS `L-SPINE` or a 70-character description.

/** Most characters of one value, by VR (PS3.5 Table 6.2-1; UT, UC and UR are unbounded). */
const MAX_CHARS: Readonly<Record<string, number>> = {
  AE: 16,
  CS: 16,
  DS: 16,
  IS: 12,
  LO: 64,
  LT: 10240,
  SH: 16,
  ST: 1024,
  UI: 64,
};

/** DA, DT and TM may be ranges (PS3.4 C.2.2.2.5), as pydicom allows. */
function ranged(one: string): RegExp {
  return new RegExp(`^${one}$|^-${one} ?$|^${one}- ?$|^${one}-${one} ?$`);
}

/** The form of one value, by VR (PS3.5 Table 6.2-1). */
const FORM: Readonly<Record<string, RegExp>> = {
  AE: /^[\x20-\x7e]*$/,
  AS: /^\d\d\d[DWMY]$/,
  CS: /^[A-Z0-9 _]*$/,
  DS: /^ *[+-]?(\d+|\d+\.\d*|\.\d+)([eE][+-]?\d+)? *$/,
  IS: /^ *[+-]?\d+ *$/,
  DA: ranged('\\d{4}(0[1-9]|1[0-2])([0-2]\\d|3[01])'),
  DT: ranged(
    '\\d{4}((0[1-9]|1[0-2])(([0-2]\\d|3[01])(([01]\\d|2[0-3])([0-5]\\d((60|[0-5]\\d)(\\.\\d{1,6} ?)?)?)?)?)?)?([+-][01]\\d\\d\\d)?',
  ),
  TM: ranged('([01]\\d|2[0-3])([0-5]\\d((60|[0-5]\\d)(\\.\\d{1,6} ?)?)?)?'),
  UI: /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/,
  UR: /^[A-Za-z_\d:/?#[\]@!$&'()*+,;=%\-.~]* *$/,
};

/** VRs holding one value (a backslash in them is a character). */
const SINGLE_VALUED = new Set(['LT', 'ST', 'UT', 'UR']);

/** The VRs whose values these rules check. */
export const CHECKED_VRS: ReadonlySet<string> = new Set([...Object.keys(MAX_CHARS), ...Object.keys(FORM), 'PN']);

/** What checkValue found. */
export type ValueCheck =
  | { ok: true }
  /** Repaired: `text` is the whole new value (unpadded), `repair` says what was done. */
  | { ok: 'repaired'; text: string; repair: string }
  /** Invalid beyond repair: `problem` says why, without the value (it may identify). */
  | { ok: false; problem: string };

/** The number of characters (code points) of `value`, counted only when it may matter. */
function tooLong(value: string, max: number): number | null {
  if (value.length <= max) return null; // code points never outnumber UTF-16 units
  const n = [...value].length;
  return n > max ? n : null;
}

function valueProblem(vr: string, value: string): string | null {
  const max = MAX_CHARS[vr];
  const long = max === undefined ? null : tooLong(value, max);
  if (long !== null) return `has a value of ${long} characters, more than the ${max} a ${vr} may hold`;
  const form = FORM[vr];
  if (form && value !== '' && (!form.test(value) || value.endsWith('\n')))
    return `has a value that is not a valid ${vr}`;
  if (vr === 'PN' && value.includes('=')) {
    const groups = value.split('=');
    if (groups.length > 3 || groups.some((g) => tooLong(g, 64) !== null)) {
      return 'has a person name of more than 3 component groups or of a group longer than 64 characters';
    }
  } else if (vr === 'PN' && tooLong(value, 64) !== null) {
    return 'has a person name longer than 64 characters';
  }
  return null;
}

/** The values of an element's text without their trailing padding (CS and AE: leading spaces too). */
function valuesOf(vr: string, text: string): string[] {
  const values = SINGLE_VALUED.has(vr) || !text.includes('\\') ? [text] : text.split('\\');
  return values.map((v) => {
    let end = v.length;
    while (end > 0 && (v.charCodeAt(end - 1) === 0x20 || v.charCodeAt(end - 1) === 0)) end--;
    let begin = 0;
    if (vr === 'CS' || vr === 'AE') while (begin < end && v.charCodeAt(begin) === 0x20) begin++;
    return begin === 0 && end === v.length ? v : v.slice(begin, end);
  });
}

const OK: ValueCheck = { ok: true };

/**
 * Checks the text of an element of VR `vr` (all its values, as decoded, padding included) against
 * PS3.5 Table 6.2-1. Pure.
 */
export function checkValue(vr: string, text: string): ValueCheck {
  if (!CHECKED_VRS.has(vr)) return OK;
  const values = valuesOf(vr, text);
  const problem = firstProblem(vr, values);
  if (problem === null) return OK;
  // The repairs that change nothing a reader relies on, when they make the value valid.
  const repair =
    vr === 'CS'
      ? { values: values.map((v) => v.toUpperCase()), repair: 'Code String in lower case upper-cased' }
      : vr === 'TM'
        ? { values: values.map((v) => v.replace(/:/g, '')), repair: 'time with colons (HH:MM:SS) written HHMMSS' }
        : null;
  if (repair && firstProblem(vr, repair.values) === null) {
    return { ok: 'repaired', text: repair.values.join('\\'), repair: repair.repair };
  }
  return { ok: false, problem };
}

function firstProblem(vr: string, values: readonly string[]): string | null {
  for (const v of values) {
    const problem = valueProblem(vr, v);
    if (problem !== null) return problem;
  }
  return null;
}
