import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { createUidRemapper, isStandardUid, remapUid } from '../../src/core/uidRemap.js';

const secret = Buffer.alloc(32, 7);
const other = Buffer.alloc(32, 8);
const UID_RE = /^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$/;

describe('remapUid', () => {
  it('is deterministic and secret-dependent', () => {
    const uid = '1.2.826.0.1.3680043.8.498.12345';
    const a = remapUid(uid, secret);
    expect(remapUid(uid, Buffer.from(secret))).toBe(a);
    expect(remapUid(uid, other)).not.toBe(a);
    expect(remapUid(uid + '1', secret)).not.toBe(a);
  });

  it('is 2.25.<first 16 bytes of HMAC-SHA256 as unsigned decimal>', () => {
    const uid = '1.3.6.1.4.1.9590.100.1.2.1';
    const d = createHmac('sha256', secret).update(uid).digest().subarray(0, 16);
    expect(remapUid(uid, secret)).toBe(`2.25.${BigInt('0x' + d.toString('hex'))}`);
  });

  it('produces valid UIDs of at most 64 characters', () => {
    for (let i = 0; i < 2000; i++) {
      const out = remapUid(`1.2.3.${i}`, secret);
      expect(out.length).toBeLessThanOrEqual(64);
      expect(out).toMatch(UID_RE);
      expect(out.startsWith('2.25.')).toBe(true);
    }
  });

  it('trims padding before hashing', () => {
    expect(remapUid('1.2.3.4\0', secret)).toBe(remapUid('1.2.3.4', secret));
    expect(remapUid('1.2.3.4 ', secret)).toBe(remapUid('1.2.3.4', secret));
  });

  it('keeps standard UIDs and empty values', () => {
    for (const std of ['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.50\0']) {
      expect(isStandardUid(std)).toBe(true);
      expect(remapUid(std, secret)).toBe(std.replace('\0', ''));
    }
    expect(remapUid('', secret)).toBe('');
    // Not under the standard root, even if similar.
    expect(isStandardUid('1.2.840.100081.1')).toBe(false);
    expect(isStandardUid('1.2.840.113619.2.1')).toBe(false);
    expect(remapUid('1.2.840.113619.2.1', secret)).toMatch(/^2\.25\./);
  });

  it('remaps multi-valued values value by value', () => {
    expect(remapUid('1.2.3\\1.2.840.10008.1.2', secret)).toBe(`${remapUid('1.2.3', secret)}\\1.2.840.10008.1.2`);
  });

  it('cached remapper gives the same results and evicts beyond its size', () => {
    const r = createUidRemapper(secret, 2);
    for (const u of ['1.2.3', '1.2.4', '1.2.5', '1.2.3', '1.2.840.10008.1.2']) expect(r(u)).toBe(remapUid(u, secret));
  });
});
