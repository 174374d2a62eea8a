// Text from outside (a peer's AE title, a file or folder name) made safe to print on a terminal
// or in a log line: the characters that could move the cursor, end the line or start an escape
// sequence are written `\xNN` instead. The audit log, the key holder's file, keeps the real text.

/**
 * `text` with each character that `unsafe` (a global RegExp) matches written `\xNN`, its code in
 * lower-case hex (two digits for a latin1 byte or a control character).
 */
export function escapeCharacters(text: string, unsafe: RegExp): string {
  return text.replace(unsafe, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** C0 controls (newline, ESC...), DEL and C1 controls. */
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f-\x9f]/g;

/**
 * `text` with its control characters (C0, DEL, C1) written `\xNN`: a newline `\x0a`, ESC `\x1b`.
 * Other characters (letters of any script) stay as they are.
 */
export function escapeControlCharacters(text: string): string {
  return escapeCharacters(text, CONTROL_CHARACTERS);
}
