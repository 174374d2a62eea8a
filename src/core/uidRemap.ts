// Deterministic UID remapping: 2.25.<128-bit HMAC-SHA256(secret, uid)>.
//
// The same input UID and secret always give the same output, so references between instances
// (Study/Series/Frame of Reference/referenced SOP Instance UIDs) stay consistent across files,
// runs and processes that share the project secret (kept in the SQLite state).

import { createHmac } from 'node:crypto';
import { trimUid } from './dicom/uid.js';

/** Root of UIDs defined by the DICOM standard itself (SOP classes, transfer syntaxes, ...). */
export const STANDARD_UID_ROOT = '1.2.840.10008.';

/**
 * True for UIDs defined by the standard (under `1.2.840.10008.`): SOP Class UIDs, Transfer
 * Syntax UIDs, coding schemes, well-known frames of reference, ... These identify nothing and
 * must be kept. Padding is ignored.
 */
export function isStandardUid(uid: string): boolean {
  const t = trimUid(uid);
  return t === '1.2.840.10008' || t.startsWith(STANDARD_UID_ROOT);
}

function remapOne(uid: string, secret: Buffer): string {
  const t = trimUid(uid);
  if (t === '' || isStandardUid(t)) return t;
  const digest = createHmac('sha256', secret).update(t, 'utf8').digest();
  // First 16 bytes as an unsigned 128-bit integer; BigInt decimal has no leading zeros and a 0
  // value gives "2.25.0", which is still a valid UID component. Max length 5 + 39 = 44 chars.
  const n = BigInt('0x' + digest.subarray(0, 16).toString('hex'));
  return `2.25.${n.toString(10)}`;
}

/**
 * Remaps a UID: padding (trailing NUL/space) is trimmed; '' and standard UIDs come back
 * unchanged (trimmed); anything else becomes `2.25.` + the decimal of the first 16 bytes of
 * HMAC-SHA256(secret, uid). A multi-valued value (`\`-separated; `\` can't occur inside a UID)
 * is remapped value by value. Throws when the secret is empty.
 */
export function remapUid(uid: string, secret: Buffer): string {
  if (secret.length === 0) throw new Error('remapUid: empty secret');
  if (uid.includes('\\')) {
    return uid
      .split('\\')
      .map((u) => remapOne(u, secret))
      .join('\\');
  }
  return remapOne(uid, secret);
}

/**
 * A remapper bound to one secret with an LRU cache (default 100,000 entries): the same Study and
 * Series UIDs repeat for every instance of a study. Behaves exactly like remapUid.
 */
export function createUidRemapper(secret: Buffer, maxEntries = 100_000): (uid: string) => string {
  if (secret.length === 0) throw new Error('createUidRemapper: empty secret');
  const key = Buffer.from(secret); // private copy: later changes to the caller's buffer don't matter
  const cache = new Map<string, string>();
  return (uid: string): string => {
    const hit = cache.get(uid);
    if (hit !== undefined) {
      cache.delete(uid); // move to most recently used
      cache.set(uid, hit);
      return hit;
    }
    const out = remapUid(uid, key);
    if (maxEntries > 0) {
      if (cache.size >= maxEntries) {
        const oldest = cache.keys().next();
        if (!oldest.done) cache.delete(oldest.value);
      }
      cache.set(uid, out);
    }
    return out;
  };
}
