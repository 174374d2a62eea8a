// Encoding Unicode text into the bytes of a value under a Specific Character Set: the reverse of
// decode.ts. With code extensions (ISO 2022 terms) each character is written in the first set
// that has it (the set in force, then the declared ones in order), with the escape sequences
// that invoke it; the character set of value 1 is restored before every delimiter and at the
// end of the value (PS3.5 6.1.2.5.3), as in the examples of PS3.5 Annex H and I.
import iconv from 'iconv-lite';
import { ASCII, STAND_ALONE, type CodeElement } from './codeElements.js';
import { CHARSET_VRS } from './decode.js';
import type { SpecificCharacterSet } from './specificCharacterSet.js';

export interface UnencodableCharacter {
  /** Offset of the character in the text, in UTF-16 code units. */
  readonly index: number;
  /** The character (one code point). */
  readonly char: string;
}

export interface EncodedText {
  /** The value's bytes, without padding to an even length. */
  readonly bytes: Buffer;
  /** Characters the character set cannot represent: each was written as '?'. */
  readonly unencodable: readonly UnencodableCharacter[];
}

const ESC = 0x1b;
const QUESTION = 0x3f;

const cache = new Map<CodeElement, Map<string, Uint8Array | null>>();
function encodeChar(el: CodeElement, char: string): Uint8Array | null {
  let m = cache.get(el);
  if (!m) cache.set(el, (m = new Map()));
  let b = m.get(char);
  if (b === undefined) {
    b = el.encodeChar(char);
    if (m.size < 10_000) m.set(char, b);
  }
  return b;
}

function escapeBytes(el: CodeElement): number[] {
  return [ESC, ...Buffer.from(el.escape, 'latin1')];
}

function delimiterChars(vr: string): ReadonlySet<string> {
  const d = ['\r', '\n', '\t', '\f'];
  if (!['ST', 'LT', 'UT', 'UR'].includes(vr)) d.push('\\');
  if (vr === 'PN') d.push('^', '=');
  return new Set(d);
}

function encodeStandAlone(text: string, encoding: string): EncodedText {
  const parts: Buffer[] = [];
  const unencodable: UnencodableCharacter[] = [];
  let index = 0;
  for (const char of text) {
    const lone = char.length === 1 && char.charCodeAt(0) >= 0xd800 && char.charCodeAt(0) <= 0xdfff;
    const b = lone ? null : iconv.encode(char, encoding);
    if (b === null || iconv.decode(b, encoding) !== char) {
      unencodable.push({ index, char });
      parts.push(Buffer.of(QUESTION));
    } else parts.push(b);
    index += char.length;
  }
  return { bytes: Buffer.concat(parts), unencodable };
}

/**
 * The bytes of `text` as the value of an element of VR `vr` (several values joined by '\')
 * under `cs`, and the characters it cannot represent (written as '?'). VRs that Specific
 * Character Set does not apply to are written in the default repertoire (ASCII). Never throws.
 * Follows PS3.5 6.1.2.5 and PS3.3 C.12.1.1.2; tables from iconv-lite (see codeElements.ts).
 */
export function encodeText(text: string, cs: SpecificCharacterSet, vr: string): EncodedText {
  if (CHARSET_VRS.has(vr) && cs.standAlone !== null) return encodeStandAlone(text, STAND_ALONE[cs.standAlone].encoding);
  const applies = CHARSET_VRS.has(vr);
  const initialG0 = applies ? cs.initialG0 : ASCII;
  const initialG1 = applies ? cs.initialG1 : null;
  // Without code extensions only the sets of value 1 can be used.
  const others = applies && cs.extensions ? cs.declared : [];
  const delims = delimiterChars(vr);
  const out: number[] = [];
  const unencodable: UnencodableCharacter[] = [];
  let g0 = initialG0;
  let g1 = initialG1;
  const restoreG0 = (): void => {
    if (g0 !== initialG0) out.push(...escapeBytes(initialG0));
    g0 = initialG0;
  };
  let index = 0;
  for (const char of text) {
    const at = index;
    index += char.length;
    if (delims.has(char)) {
      restoreG0();
      g1 = initialG1;
      out.push(char.charCodeAt(0));
      continue;
    }
    const code = char.codePointAt(0)!;
    if (code < 0x80 && (g0.width === 1 || code <= 0x20 || code === 0x7f)) {
      // ASCII (or JIS X 0201 Romaji, read the same); space and controls exist in every G0 state.
      out.push(code);
      continue;
    }
    const inG0 = encodeChar(g0, char);
    if (inG0) {
      out.push(...inG0);
      continue;
    }
    const inG1 = g1 ? encodeChar(g1, char) : null;
    if (inG1) {
      out.push(...inG1);
      continue;
    }
    let done = false;
    for (const el of code < 0x80 ? [initialG0.width === 1 ? initialG0 : ASCII] : others) {
      const b = encodeChar(el, char);
      if (!b) continue;
      out.push(...escapeBytes(el), ...b);
      if (el.graphic === 'G0') g0 = el;
      else g1 = el;
      done = true;
      break;
    }
    if (!done) {
      unencodable.push({ index: at, char });
      if (g0.width === 2) restoreG0();
      out.push(QUESTION);
    }
  }
  restoreG0();
  return { bytes: Buffer.from(out), unencodable };
}
