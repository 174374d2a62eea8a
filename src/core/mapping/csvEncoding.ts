// Turns the bytes of a mapping CSV into text, exactly or not at all.
//
// Accepted: UTF-8 (with or without BOM), UTF-16 LE/BE with BOM (Excel's "Unicode text") and
// Windows-1252 (what Excel's plain "CSV" writes on a Western Windows). A BOM decides; without one,
// bytes that are valid UTF-8 are UTF-8; otherwise chardet (a statistical detector) is asked, and
// the file is read as Windows-1252 only when chardet ranks a Windows-1252/ISO-8859-1 reading
// first. That last case is a guess, and the result says so. Every decoding is exact: the UTF
// decoders are fatal on any invalid sequence, and a Windows-1252 reading must encode back to the
// same bytes (iconv-lite); a character is never replaced by U+FFFD or `?`. Workbooks (.xlsx,
// .xls) are recognised by their signature and refused with what to do.

import chardet from 'chardet';
import iconv from 'iconv-lite';

export type CsvEncoding = 'UTF-8' | 'UTF-16LE' | 'UTF-16BE' | 'Windows-1252';

export interface DecodedCsv {
  text: string;
  encoding: CsvEncoding;
  /** Whether the file started with a byte order mark (which decided the encoding). */
  bom: boolean;
  /** True when the encoding was inferred by chardet, not known (then tell the user). */
  guessed: boolean;
}

/** Why the bytes cannot be read, for the researcher; `line` 0 = the whole file. */
export interface EncodingProblem {
  line: number;
  text: string;
}

/** What to do about any encoding problem, in Excel's words. */
export const SAVE_AS_CSV_UTF8 =
  'in Excel, use File > Save As and choose "CSV UTF-8 (Comma delimited) (*.csv)", then use that file';

const ZIP = [0x50, 0x4b, 0x03, 0x04];
const OLE2 = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

function startsWith(bytes: Uint8Array, sig: readonly number[]): boolean {
  return bytes.length >= sig.length && sig.every((b, i) => bytes[i] === b);
}

/** 1-based line of byte `offset` (CRLF, LF and lone CR each end a line). */
function lineAtByte(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i++) {
    if (bytes[i] === 0x0a || (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a)) line++;
  }
  return line;
}

/** 1-based line of character `index` of `text`. */
function lineAtChar(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) line++;
  }
  return line;
}

function decodeUtf(bytes: Uint8Array, label: 'utf-8' | 'utf-16le' | 'utf-16be'): string | null {
  try {
    return new TextDecoder(label, { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** The first line (1-based) that is not valid UTF-8: UTF-8 sequences never contain 0x0A. */
function firstBadUtf8Line(bytes: Uint8Array): number {
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    if (decodeUtf(bytes.subarray(start, end), 'utf-8') === null) return lineAtByte(bytes, start);
    start = end + 1;
  }
  return 1;
}

/** Windows-1252 exactly: every byte a defined character, and encoding back gives the same bytes. */
function decodeWindows1252(bytes: Uint8Array): { text: string } | { badLine: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = iconv.decode(buf, 'windows-1252');
  // 0x81, 0x8D, 0x8F, 0x90 and 0x9D are undefined in Windows-1252: iconv-lite gives U+FFFD.
  const bad = text.indexOf('\uFFFD');
  if (bad >= 0) return { badLine: lineAtByte(bytes, bad) }; // one byte per character
  if (!iconv.encode(text, 'windows-1252').equals(buf)) return { badLine: 1 };
  return { text };
}

/** Up to 64 KiB of the lines holding non-ASCII bytes: where the encoding shows (chardet takes
 *  ~0.5 s per MB, and pure-ASCII lines tell it nothing). */
function nonAsciiLines(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  let start = 0;
  while (start < bytes.length && size < 64 * 1024) {
    let end = bytes.indexOf(0x0a, start);
    end = end < 0 ? bytes.length : end + 1;
    const line = bytes.subarray(start, end);
    if (line.some((b) => b >= 0x80)) {
      const part = line.subarray(0, 64 * 1024 - size); // a lone-CR file is one long "line"
      parts.push(part);
      size += part.length;
    }
    start = end;
  }
  return Buffer.concat(parts);
}

function problem(line: number, text: string): { problem: EncodingProblem } {
  return { problem: { line, text } };
}

/**
 * Decodes a mapping CSV's bytes (see the file comment for the rules). Returns the text (BOM
 * removed) and how it was read, or the one problem that stops it from being read exactly; never
 * throws. Sources: the WHATWG Encoding Standard decoders (fatal mode), iconv-lite, chardet.
 */
export function decodeCsvBytes(bytes: Uint8Array): { decoded: DecodedCsv } | { problem: EncodingProblem } {
  if (startsWith(bytes, ZIP)) {
    return problem(0, `this is an Excel workbook (.xlsx) or another zipped document, not a CSV: ${SAVE_AS_CSV_UTF8}`);
  }
  if (startsWith(bytes, OLE2))
    return problem(0, `this is an Excel 97-2003 workbook (.xls), not a CSV: ${SAVE_AS_CSV_UTF8}`);

  let decoded: DecodedCsv;
  if (startsWith(bytes, [0xef, 0xbb, 0xbf])) {
    const text = decodeUtf(bytes.subarray(3), 'utf-8');
    if (text === null) {
      return problem(
        firstBadUtf8Line(bytes),
        `the file says it is UTF-8 (it starts with a UTF-8 mark) but this line holds bytes that are not UTF-8 (a damaged file?): ${SAVE_AS_CSV_UTF8}`,
      );
    }
    decoded = { text, encoding: 'UTF-8', bom: true, guessed: false };
  } else if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff])) {
    const le = bytes[0] === 0xff;
    const text = decodeUtf(bytes.subarray(2), le ? 'utf-16le' : 'utf-16be');
    if (text === null) {
      return problem(
        0,
        `the file says it is UTF-16 ("Unicode text") but it is not valid UTF-16 (a damaged file?): ${SAVE_AS_CSV_UTF8}`,
      );
    }
    decoded = { text, encoding: le ? 'UTF-16LE' : 'UTF-16BE', bom: true, guessed: false };
  } else {
    const utf8 = decodeUtf(bytes, 'utf-8');
    if (utf8 !== null) decoded = { text: utf8, encoding: 'UTF-8', bom: false, guessed: false };
    else {
      const candidates = chardet.analyse(nonAsciiLines(bytes));
      const top = candidates[0];
      const latin1 = candidates.find((c) => c.name === 'windows-1252' || c.name === 'ISO-8859-1');
      if (top?.name === 'UTF-8') {
        return problem(
          firstBadUtf8Line(bytes),
          `the file is UTF-8 except this line, which holds bytes that are not UTF-8 (a damaged file?): ${SAVE_AS_CSV_UTF8}`,
        );
      }
      if (top === undefined || latin1 === undefined || latin1.confidence < top.confidence) {
        return problem(
          0,
          `the file is neither UTF-8 nor Windows-1252 (it looks like ${top?.name ?? 'an unknown encoding'}), so its accents and symbols cannot be read reliably: ${SAVE_AS_CSV_UTF8}`,
        );
      }
      const w = decodeWindows1252(bytes);
      if ('badLine' in w) {
        return problem(
          w.badLine,
          `the file is not UTF-8, and this line holds a byte that is no Windows-1252 character either: ${SAVE_AS_CSV_UTF8}`,
        );
      }
      decoded = { text: w.text, encoding: 'Windows-1252', bom: false, guessed: true };
    }
  }
  const nul = decoded.text.indexOf('\0');
  if (nul >= 0) {
    return problem(
      lineAtChar(decoded.text, nul),
      `this line holds NUL characters: the file looks like UTF-16 or UTF-32 text without its byte order mark: ${SAVE_AS_CSV_UTF8}`,
    );
  }
  return { decoded };
}
