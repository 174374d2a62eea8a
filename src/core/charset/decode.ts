// Decoding the bytes of a text value under its Specific Character Set (PS3.5 6.1, PS3.3
// C.12.1.1.2): single-byte sets, UTF-8, GB18030 and GBK, and ISO 2022 code extensions switched by
// escape sequences, with the escape state reset at every delimiter (PS3.5 6.1.2.5.3).
import { ASCII, BY_ESCAPE, LATIN1_FALLBACK, STAND_ALONE, type CodeElement } from './codeElements.js';
import type { SpecificCharacterSet } from './specificCharacterSet.js';

const ESC = 0x1b;
const REPLACEMENT = '\ufffd';

/** The value representations whose text Specific Character Set applies to (PS3.5 6.1.2.3). */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN']);

/** Single-valued text VRs: a backslash in them is a character, not a value separator. */
const SINGLE_VALUED = new Set(['ST', 'LT', 'UT', 'UR']);

/**
 * The bytes after which the character set of value 1 is in force again (PS3.5 6.1.2.5.3): CR,
 * LF, TAB and FF; the backslash between values; and in PN the '^' and '=' delimiters.
 */
function delimiters(vr: string): ReadonlySet<number> {
  const d = [0x0d, 0x0a, 0x09, 0x0c];
  if (!SINGLE_VALUED.has(vr)) d.push(0x5c);
  if (vr === 'PN') d.push(0x5e, 0x3d);
  return new Set(d);
}
const DELIMITERS = new Map<string, ReadonlySet<number>>();

/** Length of the escape sequence at `i` (ESC, intermediates 0x20-0x2F, a final 0x30-0x7E). */
function escapeLength(bytes: Uint8Array, i: number): number {
  let j = i + 1;
  while (j < bytes.length && bytes[j]! >= 0x20 && bytes[j]! <= 0x2f) j++;
  if (j < bytes.length && bytes[j]! >= 0x30 && bytes[j]! <= 0x7e) return j + 1 - i;
  return 1; // a lone ESC: dropped
}

/** Decodes under ISO 2022 (also right for a single-byte set with no escape in the value). */
function decodeIso2022(bytes: Uint8Array, cs: SpecificCharacterSet, delims: ReadonlySet<number>): string {
  let g0 = cs.initialG0;
  let g1 = cs.initialG1;
  let out = '';
  let run: number[] = [];
  let runElement: CodeElement = ASCII;
  const flush = (): void => {
    if (run.length > 0) out += runElement.decode(Uint8Array.from(run));
    run = [];
  };
  const put = (el: CodeElement, a: number, b?: number): void => {
    if (el !== runElement) {
      flush();
      runElement = el;
    }
    run.push(a);
    if (b !== undefined) run.push(b);
  };
  const n = bytes.length;
  for (let i = 0; i < n;) {
    const b = bytes[i]!;
    if (b === ESC) {
      const len = escapeLength(bytes, i);
      const el = BY_ESCAPE.get(Buffer.from(bytes.subarray(i + 1, i + len)).toString('latin1'));
      // An escape to a set DICOM does not define is dropped; the bytes after it stay readable.
      if (el?.graphic === 'G0') g0 = el;
      else if (el) g1 = el;
      i += len;
    } else if (b < 0x80) {
      const next = bytes[i + 1];
      if (g0.width === 2 && b >= 0x21 && b <= 0x7e) {
        if (next !== undefined && next >= 0x21 && next <= 0x7e) {
          put(g0, b, next);
          i += 2;
        } else {
          flush();
          out += REPLACEMENT;
          i += 1;
        }
        continue;
      }
      put(g0.width === 1 ? g0 : ASCII, b);
      if (delims.has(b)) {
        g0 = cs.initialG0;
        g1 = cs.initialG1;
      }
      i += 1;
    } else {
      const el = g1 ?? LATIN1_FALLBACK;
      if (el.width === 1) {
        put(el, b);
        i += 1;
      } else if (bytes[i + 1] !== undefined && bytes[i + 1]! >= 0x80) {
        put(el, b, bytes[i + 1]!);
        i += 2;
      } else {
        flush();
        out += REPLACEMENT;
        i += 1;
      }
    }
  }
  flush();
  return out;
}

function isPlainAscii(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b >= 0x80 || b === ESC) return false;
  return true;
}

/**
 * The Unicode text of a value's bytes (all its values, with their separators and padding, as
 * stored). VRs that Specific Character Set does not apply to are read as the default repertoire
 * (bytes above 0x7F as Latin-1). Bytes a set does not map become U+FFFD; never throws.
 * Follows PS3.5 6.1 and PS3.3 C.12.1.1.2; tables from iconv-lite (see codeElements.ts).
 */
export function decodeText(bytes: Uint8Array, cs: SpecificCharacterSet, vr: string): string {
  if (isPlainAscii(bytes) || !CHARSET_VRS.has(vr)) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }
  if (cs.standAlone !== null) return STAND_ALONE[cs.standAlone].decode(bytes);
  let delims = DELIMITERS.get(vr);
  if (!delims) DELIMITERS.set(vr, (delims = delimiters(vr)));
  return decodeIso2022(bytes, cs, delims);
}

/** VRs whose leading spaces are padding too (PS3.5 Table 6.2-1). */
const LEADING_INSIGNIFICANT = new Set(['SH', 'LO', 'PN', 'AE', 'CS', 'DS', 'IS', 'DA', 'DT', 'TM', 'UI', 'AS']);

/**
 * The values of a text element (split at backslashes, except in ST, LT, UT and UR), without
 * their padding: trailing spaces and NULs, and leading spaces where PS3.5 says they are not
 * significant. An empty value gives [].
 */
export function decodeValues(bytes: Uint8Array, cs: SpecificCharacterSet, vr: string): string[] {
  const text = decodeText(bytes, cs, vr);
  const values = SINGLE_VALUED.has(vr) ? [text] : text.split('\\');
  const trimmed = values.map((v) => {
    const t = v.replace(/[\0 ]+$/, '');
    return LEADING_INSIGNIFICANT.has(vr) ? t.replace(/^ +/, '') : t;
  });
  return trimmed.length === 1 && trimmed[0] === '' ? [] : trimmed;
}
