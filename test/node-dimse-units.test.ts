// Pure parts of the DIMSE receiver: PDU framing, PDV parsing, negotiation policy, file meta.
import { describe, expect, it } from 'vitest';
import { decideAssociation, negotiateContext, ContextResult } from '../src/node/dimse/associationPolicy.js';
import { buildFileMeta } from '../src/node/dimse/part10Meta.js';
import { parsePdvs } from '../src/node/dimse/pdataTf.js';
import { PduError, PduReader } from '../src/node/dimse/pduReader.js';
import { isAcceptedStorageSyntax } from '../src/node/dimse/storageSopClasses.js';
import { pickTransferSyntax } from '../src/node/dimse/transferSyntaxes.js';

function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function collect(max = 1 << 20) {
  const got: Buffer[] = [];
  const reader = new PduReader({ maxLength: () => max, onPdu: (_t, p) => got.push(Buffer.from(p)) });
  return { got, reader };
}

describe('PduReader', () => {
  const stream = Buffer.concat([
    pdu(0x01, Buffer.alloc(300, 1)),
    pdu(0x04, Buffer.alloc(5000, 2)),
    pdu(0x05, Buffer.alloc(4)),
    pdu(0x04, Buffer.alloc(0)),
    pdu(0x07, Buffer.alloc(4, 7)),
  ]);

  it('yields the same PDUs whatever the chunking', () => {
    const reference = collect();
    reference.reader.push(stream);
    expect(reference.got.map((p) => p[0])).toEqual([1, 4, 5, 4, 7]);
    expect(Buffer.concat(reference.got).equals(stream)).toBe(true);
    for (const size of [1, 2, 5, 6, 7, 13, 299, 306, 4096, 5006]) {
      const c = collect();
      for (let off = 0; off < stream.length; off += size) c.reader.push(stream.subarray(off, off + size));
      expect(Buffer.concat(c.got).equals(stream), `chunk size ${size}`).toBe(true);
      expect(c.got.length).toBe(5);
    }
  });

  it('rejects garbage at the first byte and oversized PDUs from the header', () => {
    expect(() => collect().reader.push(Buffer.from('G'))).toThrow(PduError);
    const c = collect(1000);
    expect(() => c.reader.push(pdu(0x04, Buffer.alloc(1001)).subarray(0, 6))).toThrow(/exceeds/);
  });
});

describe('parsePdvs', () => {
  it('splits PDV items as zero-copy views and validates lengths', () => {
    const item = (pc: number, ctl: number, v: Buffer) => {
      const h = Buffer.alloc(6);
      h.writeUInt32BE(v.length + 2, 0);
      h[4] = pc;
      h[5] = ctl;
      return Buffer.concat([h, v]);
    };
    const p = pdu(0x04, Buffer.concat([item(1, 0x03, Buffer.from('cmd')), item(3, 0x02, Buffer.from('data!'))]));
    const pdvs = parsePdvs(p);
    expect(pdvs.map((x) => [x.getPresentationContextId(), x.isCommand(), x.isLastFragment(), x.getValue().toString()])).toEqual([
      [1, true, true, 'cmd'],
      [3, false, true, 'data!'],
    ]);
    expect(pdvs[1]!.getValue().buffer).toBe(p.buffer);
    const bad = Buffer.from(p);
    bad.writeUInt32BE(999, 6);
    expect(() => parsePdvs(bad)).toThrow(PduError);
  });
});

describe('negotiation policy', () => {
  it("takes the proposer's first acceptable transfer syntax (so the sender never transcodes)", () => {
    expect(pickTransferSyntax(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1'])).toBe('1.2.840.10008.1.2');
    expect(pickTransferSyntax(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2'])).toBe('1.2.840.10008.1.2.4.90');
    expect(pickTransferSyntax(['1.2.840.10008.1.2.1\0'])).toBe('1.2.840.10008.1.2.1');
    expect(pickTransferSyntax(['1.2.840.10008.1.2.4.94', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.5'])).toBe(
      '1.2.840.10008.1.2.4.91',
    );
    expect(pickTransferSyntax(['1.2.840.10008.1.2.2'])).toBe('1.2.840.10008.1.2.2');
    expect(pickTransferSyntax(['1.2.3.4'])).toBeUndefined();
    expect(pickTransferSyntax(['1.2.840.10008.1.2.2'], true)).toBeUndefined();
  });

  it('accepts storage classes (known, and unknown UIDs), refuses known non-storage services', () => {
    expect(isAcceptedStorageSyntax('1.2.840.10008.5.1.4.1.1.481.5')).toBe(true); // RT Plan
    expect(isAcceptedStorageSyntax('1.2.840.10008.5.1.4.1.1.88.59')).toBe(true); // KOS
    expect(isAcceptedStorageSyntax('1.3.12.2.1107.5.9.1')).toBe(true); // Siemens CSA Non-Image (private)
    expect(isAcceptedStorageSyntax('1.2.840.10008.5.1.4.1.2.2.1')).toBe(false); // Study Root FIND
    expect(isAcceptedStorageSyntax('1.2.840.10008.5.1.4.31')).toBe(false); // MWL
    expect(isAcceptedStorageSyntax('1.2.840.10008.1.20.1')).toBe(false); // Storage Commitment
    expect(isAcceptedStorageSyntax('1.2.840.10008.3.1.2.3.3')).toBe(false); // MPPS
    expect(isAcceptedStorageSyntax('not a uid')).toBe(false);
    expect(negotiateContext('1.2.840.10008.1.1', ['1.2.840.10008.1.2'])).toEqual({
      result: ContextResult.Accept,
      transferSyntaxUid: '1.2.840.10008.1.2',
    });
    expect(negotiateContext('1.2.840.10008.5.1.4.1.2.2.2', ['1.2.840.10008.1.2']).result).toBe(
      ContextResult.AbstractSyntaxNotSupported,
    );
  });

  it('rejects wrong called AE permanently and over-limit associations transiently', () => {
    const cfg = { aeTitle: 'DEID', allowedCallingAets: ['MOD1'], maxAssociations: 2 };
    expect(decideAssociation('MOD1', 'DEID', cfg, 0, false)).toEqual({ accept: true });
    expect(decideAssociation('MOD1', 'OTHER', cfg, 0, false)).toMatchObject({ accept: false, result: 1, source: 1, reason: 7 });
    expect(decideAssociation('MOD2', 'DEID', cfg, 0, false)).toMatchObject({ accept: false, result: 1, source: 1, reason: 3 });
    expect(decideAssociation('MOD1', 'DEID', cfg, 2, false)).toMatchObject({ accept: false, result: 2, source: 3, reason: 2 });
  });
});

describe('buildFileMeta', () => {
  it('writes preamble, DICM and an even-padded group 0002 with its length', () => {
    const meta = buildFileMeta({ sopClassUid: '1.2.3', sopInstanceUid: '1.2.3.4', transferSyntaxUid: '1.2.840.10008.1.2', sourceAeTitle: 'MOD' });
    expect(meta.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(meta.toString('latin1', 128, 132)).toBe('DICM');
    expect(144 + meta.readUInt32LE(140)).toBe(meta.length);
    expect(meta.length % 2).toBe(0);
    expect(meta.includes(Buffer.from('1.2.840.10008.1.2\0'))).toBe(true);
    expect(meta.includes(Buffer.from('MOD '))).toBe(true);
  });
});
