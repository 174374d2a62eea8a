// The character sets of DICOM text values (PS3.3 C.12.1.1.2, Tables C.12-2 to C.12-5) as code
// elements: which graphic set (G0 or G1) each one occupies, the escape sequence that designates
// it (PS3.5 6.1.2.5), and how its bytes map to Unicode. The byte <-> Unicode tables are
// iconv-lite's; a few code points are corrected where iconv-lite follows a vendor table rather
// than the standard's (the same mapping Python's codecs, and so pydicom, use).
import iconv from 'iconv-lite';

/** A code element: one graphic character set that can be invoked in G0 or G1. */
export interface CodeElement {
  /** The defined term's number, e.g. 'IR 100', 'IR 87' (the same element in ISO_IR and ISO 2022 form). */
  readonly id: string;
  /** G0 (bytes 0x21-0x7E) or G1 (bytes 0xA0-0xFF). */
  readonly graphic: 'G0' | 'G1';
  /** Bytes per character: 1, or 2 for the multi-byte sets (JIS X 0208/0212, KS X 1001, GB 2312). */
  readonly width: 1 | 2;
  /** The escape sequence designating it (ESC excluded), e.g. '-A', '$B', '$)C'. */
  readonly escape: string;
  /** Decodes a run of this element's bytes (as found in the value: 7-bit for G0, 8-bit for G1). */
  decode(bytes: Uint8Array): string;
  /** This element's bytes for one character (as they go into the value), or null when it has none. */
  encodeChar(char: string): Uint8Array | null;
}

const REPLACEMENT = '\ufffd';

/** Decodes with iconv-lite, then corrects the code points listed in `fix` (vendor -> standard). */
function iconvDecoder(encoding: string, fix: Record<string, string> = {}) {
  const keys = Object.keys(fix);
  const re = keys.length > 0 ? new RegExp(`[${keys.join('')}]`, 'gu') : null;
  return (bytes: Uint8Array): string => {
    const s = iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), encoding);
    return re ? s.replace(re, (c) => fix[c]!) : s;
  };
}

/**
 * The encoder of an element: the inverse of its decoder over all its codes, built on first use
 * (so encoding gives back exactly the bytes that decode to the character).
 */
function reverseOf(codes: () => Iterable<Uint8Array>, decode: (bytes: Uint8Array) => string) {
  let table: Map<string, Uint8Array> | null = null;
  return (char: string): Uint8Array | null => {
    if (table === null) {
      table = new Map();
      for (const code of codes()) {
        const c = decode(code);
        if (c !== REPLACEMENT && !table.has(c)) table.set(c, code);
      }
    }
    return table.get(char) ?? null;
  };
}

/** A single-byte G1 element over an ISO 8859-like iconv-lite table (bytes 0xA0-0xFF). */
function singleByte(id: string, escape: string, encoding: string, fix: Record<string, string> = {}): CodeElement {
  const decode = iconvDecoder(encoding, fix);
  const codes = function* () {
    for (let b = 0xa0; b <= 0xff; b++) yield Uint8Array.of(b);
  };
  return { id, graphic: 'G1', width: 1, escape, decode, encodeChar: reverseOf(codes, decode) };
}

/**
 * A two-byte element (94 x 94 codes) decoded through an EUC table: the value's bytes get their
 * high bit set (G0 sets) and `prefix` (0x8F for JIS X 0212), and must give one character.
 */
function doubleByte(
  id: string,
  graphic: 'G0' | 'G1',
  escape: string,
  encoding: string,
  prefix: number[],
  fix: Record<string, string>,
): CodeElement {
  const decodeEuc = iconvDecoder(encoding, fix);
  const high = graphic === 'G0' ? 0x80 : 0;
  const decode = (bytes: Uint8Array): string => {
    let out = '';
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      const c = decodeEuc(Uint8Array.from([...prefix, bytes[i]! | high, bytes[i + 1]! | high]));
      // One character per byte pair: anything else is a code the set does not have.
      out += [...c].length === 1 ? c : REPLACEMENT;
    }
    return bytes.length % 2 === 1 ? out + REPLACEMENT : out;
  };
  const low = graphic === 'G0' ? 0x21 : 0xa1;
  const codes = function* () {
    for (let a = low; a < low + 94; a++) for (let b = low; b < low + 94; b++) yield Uint8Array.of(a, b);
  };
  return { id, graphic, width: 2, escape, decode, encodeChar: reverseOf(codes, decode) };
}

/** ASCII (ISO-IR 6) in G0, also used for JIS X 0201 Romaji (ISO-IR 14), as Python's shift_jis does. */
export const ASCII: CodeElement = {
  id: 'IR 6',
  graphic: 'G0',
  width: 1,
  escape: '(B',
  decode: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'),
  encodeChar: (char) => (char.length === 1 && char.charCodeAt(0) < 0x80 ? Uint8Array.of(char.charCodeAt(0)) : null),
};

/** JIS X 0201 Romaji (ISO-IR 14) in G0: read as ASCII (0x5C and 0x7E as '\' and '~', like pydicom). */
const JIS_X_0201_ROMAJI: CodeElement = { ...ASCII, id: 'IR 14', escape: '(J' };

/** JIS X 0201 Katakana (ISO-IR 13) in G1: 0xA1-0xDF are the half-width katakana U+FF61-U+FF9F. */
const JIS_X_0201_KATAKANA: CodeElement = {
  id: 'IR 13',
  graphic: 'G1',
  width: 1,
  escape: ')I',
  decode: (bytes) =>
    String.fromCharCode(...Array.from(bytes, (b) => (b >= 0xa1 && b <= 0xdf ? b - 0xa1 + 0xff61 : 0xfffd))),
  encodeChar(char) {
    const c = char.length === 1 ? char.charCodeAt(0) : 0;
    return c >= 0xff61 && c <= 0xff9f ? Uint8Array.of(c - 0xff61 + 0xa1) : null;
  },
};

/** Latin-1 for bytes no designated set covers (what pydicom does with its default, too). */
export const LATIN1_FALLBACK = singleByte('IR 100', '-A', 'latin1');

// JIS X 0208: iconv-lite's EUC-JP follows Microsoft's table for six codes.
const JIS0208_FIX = {
  '\uff5e': '\u301c', // 0x2141 WAVE DASH
  '\u2225': '\u2016', // 0x2142 DOUBLE VERTICAL LINE
  '\uff0d': '\u2212', // 0x215D MINUS SIGN
  '\uffe0': '\u00a2', // 0x2171 CENT SIGN
  '\uffe1': '\u00a3', // 0x2172 POUND SIGN
  '\uffe2': '\u00ac', // 0x224C NOT SIGN
};
// GB 2312: iconv-lite reads it as GBK, which differs from GB 2312 in two codes.
const GB2312_FIX = { '\u00b7': '\u30fb', '\u2014': '\u2015' };

/** Every code element, keyed by its defined term's number. */
export const CODE_ELEMENTS: ReadonlyMap<string, CodeElement> = new Map(
  [
    ASCII,
    JIS_X_0201_ROMAJI,
    JIS_X_0201_KATAKANA,
    singleByte('IR 100', '-A', 'latin1'),
    singleByte('IR 101', '-B', 'iso88592'),
    singleByte('IR 109', '-C', 'iso88593'),
    singleByte('IR 110', '-D', 'iso88594'),
    singleByte('IR 144', '-L', 'iso88595'),
    singleByte('IR 127', '-G', 'iso88596'),
    singleByte('IR 126', '-F', 'iso88597'),
    singleByte('IR 138', '-H', 'iso88598'),
    singleByte('IR 148', '-M', 'iso88599'),
    // TIS 620-2533 is ISO 8859-11 without the no-break space at 0xA0.
    singleByte('IR 166', '-T', 'iso885911', { '\u00a0': REPLACEMENT }),
    singleByte('IR 203', '-b', 'iso885915'),
    doubleByte('IR 87', 'G0', '$B', 'eucjp', [], JIS0208_FIX),
    doubleByte('IR 159', 'G0', '$(D', 'eucjp', [0x8f], { '\uff5e': '~' }), // 0x2237 TILDE
    doubleByte('IR 149', 'G1', '$)C', 'euckr', [], {}),
    doubleByte('IR 58', 'G1', '$)A', 'gb2312', [], GB2312_FIX),
  ].map((e) => [e.id, e]),
);

/** The code element an escape sequence (ESC excluded) designates, if it is one DICOM defines. */
export const BY_ESCAPE: ReadonlyMap<string, CodeElement> = new Map(
  [...CODE_ELEMENTS.values()].map((e) => [e.escape, e]),
);

/** Decoders of the character sets used without code extensions (PS3.3 Table C.12-5). */
export const STAND_ALONE = {
  'ISO_IR 192': { decode: iconvDecoder('utf8'), encoding: 'utf8' },
  GB18030: { decode: iconvDecoder('gb18030'), encoding: 'gb18030' },
  GBK: { decode: iconvDecoder('gbk'), encoding: 'gbk' },
} as const;
export type StandAloneTerm = keyof typeof STAND_ALONE;
