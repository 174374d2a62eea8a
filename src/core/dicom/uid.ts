// UIDs as they arrive (PS3.5 9.1): the one place padding is removed and syntax is checked.

const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

/**
 * A UID value without the padding a peer added: the trailing NUL (the standard's padding for UI)
 * or space (a common mistake), and stray leading whitespace. `undefined` gives ''.
 */
export function trimUid(uid: string | undefined): string {
  return (uid ?? '').replace(/^[\s\0]+|[\s\0]+$/g, '');
}

/** True for a syntactically valid DICOM UID (PS3.5 9.1: digits and dots, at most 64 chars). */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && UID_RE.test(uid);
}

/** A UI value read from `buf` (Latin-1 bytes), padding removed. */
export function readUid(buf: Buffer, start: number, length: number): string {
  return trimUid(buf.toString('latin1', start, start + length));
}
