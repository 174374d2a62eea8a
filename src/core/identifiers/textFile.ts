// Whether a file that is not DICOM is text a person could read, and its text: the only kind of
// other file batch mode copies (--copy-other-files), and only after its text was searched for
// the patient's identifiers. Anything else (images, PDFs, archives, spreadsheets, text in an
// encoding that cannot be told) cannot be searched, so it is not copied. Pure: bytes in.
import iconv from 'iconv-lite';

/** Largest file read as text (bytes): reports and notes are far smaller. */
export const MAX_TEXT_FILE_BYTES = 1 << 20;

/** What readTextFile made of a file's bytes. */
export type TextFile =
  | { kind: 'text'; text: string; encoding: 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252' }
  /** Not text, or not text this tool can read: `why` says which, in a few words. */
  | { kind: 'not-text'; why: string };

/** Control characters text may hold: tab, line feed, vertical tab, form feed, carriage return. */
const TEXT_CONTROLS = /[\x00-\x08\x0e-\x1f\x7f]/;

/**
 * The text of a file's `bytes`: UTF-8 (with or without BOM), UTF-16 with a BOM, or, for bytes
 * that are not UTF-8 but hold no NUL, Windows-1252 (every byte is a character, so accented names
 * are found as the matcher folds them). Bytes holding control characters other than line breaks
 * and tabs are not text (a binary format). Files over MAX_TEXT_FILE_BYTES are not read.
 */
export function readTextFile(bytes: Uint8Array): TextFile {
  if (bytes.length > MAX_TEXT_FILE_BYTES) {
    return { kind: 'not-text', why: `larger than ${MAX_TEXT_FILE_BYTES >> 20} MiB, too large to check` };
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let decoded: TextFile;
  if (buf[0] === 0xff && buf[1] === 0xfe) {
    decoded = { kind: 'text', text: iconv.decode(buf.subarray(2), 'utf-16le'), encoding: 'utf-16le' };
  } else if (buf[0] === 0xfe && buf[1] === 0xff) {
    decoded = { kind: 'text', text: iconv.decode(buf.subarray(2), 'utf-16be'), encoding: 'utf-16be' };
  } else if (buf.includes(0)) {
    return { kind: 'not-text', why: 'not a text file (binary content)' };
  } else {
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(buf).replace(/^\uFEFF/, '');
      decoded = { kind: 'text', text, encoding: 'utf-8' };
    } catch {
      decoded = { kind: 'text', text: iconv.decode(buf, 'windows-1252'), encoding: 'windows-1252' };
    }
  }
  if (decoded.kind === 'text' && (TEXT_CONTROLS.test(decoded.text) || decoded.text.includes('\ufffd'))) {
    return { kind: 'not-text', why: 'not a text file (binary content)' };
  }
  return decoded;
}
