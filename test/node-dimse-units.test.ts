// Pure parts of the DIMSE receiver: PDU framing, PDV parsing, negotiation policy, file meta.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decideAssociation, negotiateContext, ContextResult } from '../src/node/receiver/associationPolicy.js';
import { CommandSetError, commandPdu, encodeResponse, parseCommand } from '../src/dimse/commandSet.js';
import { buildFileMeta } from '../src/core/dicom/fileMeta.js';
import { completionMarker, isCompleteSpoolFile, recoverSpool } from '../src/node/spool/spoolWriter.js';
import { parsePdvs } from '../src/dimse/pdataTf.js';
import { PduError, PduReader } from '../src/dimse/pduReader.js';
import { isAcceptedStorageSyntax } from '../src/node/receiver/storageSopClasses.js';
import { pickTransferSyntax } from '../src/node/receiver/transferSyntaxes.js';

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
    expect(pdvs.map((x) => [x.presentationContextId, x.isCommand(), x.isLastFragment(), x.value.toString()])).toEqual([
      [1, true, true, 'cmd'],
      [3, false, true, 'data!'],
    ]);
    expect(pdvs[1]!.value.buffer).toBe(p.buffer);
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
    expect(decideAssociation('MOD1', 'OTHER', cfg, 0, false)).toMatchObject({
      accept: false,
      result: 1,
      source: 1,
      reason: 7,
    });
    expect(decideAssociation('MOD2', 'DEID', cfg, 0, false)).toMatchObject({
      accept: false,
      result: 1,
      source: 1,
      reason: 3,
    });
    expect(decideAssociation('MOD1', 'DEID', cfg, 2, false)).toMatchObject({
      accept: false,
      result: 2,
      source: 3,
      reason: 2,
    });
  });
});

describe('buildFileMeta', () => {
  it('writes preamble, DICM and an even-padded group 0002 with its length', () => {
    const meta = buildFileMeta({
      sopClassUid: '1.2.3',
      sopInstanceUid: '1.2.3.4',
      transferSyntaxUid: '1.2.840.10008.1.2',
      sourceAeTitle: 'MOD',
    });
    expect(meta.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(meta.toString('latin1', 128, 132)).toBe('DICM');
    expect(144 + meta.readUInt32LE(140)).toBe(meta.length);
    expect(meta.length % 2).toBe(0);
    expect(meta.includes(Buffer.from('1.2.840.10008.1.2\0'))).toBe(true);
    expect(meta.includes(Buffer.from('MOD '))).toBe(true);
  });
});

describe('command sets', () => {
  function el(element: number, value: Buffer): Buffer {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(element, 2);
    h.writeUInt32LE(value.length, 4);
    return Buffer.concat([h, value]);
  }
  const us = (v: number) => Buffer.from([v & 0xff, v >> 8]);
  const CT = '1.2.840.10008.5.1.4.1.1.2';

  it('reads a C-STORE-RQ as dcmtk writes it (odd UIDs NUL-padded, group length first)', () => {
    const body = Buffer.concat([
      el(0x0002, Buffer.from(`${CT}\0`, 'latin1')),
      el(0x0100, us(0x0001)),
      el(0x0110, us(77)),
      el(0x0700, us(0)),
      el(0x0800, us(0x0000)),
      el(0x1000, Buffer.from('1.2.3.4 ', 'latin1')),
      el(0x1030, Buffer.from('MOVER ', 'latin1')),
    ]);
    const cmd = parseCommand(Buffer.concat([el(0x0000, Buffer.from([body.length, 0, 0, 0])), body]));
    expect(cmd).toEqual({
      commandField: 1,
      messageId: 77,
      affectedSopClassUid: CT,
      affectedSopInstanceUid: '1.2.3.4',
      hasDataSet: true,
    });
    expect(parseCommand(Buffer.concat([el(0x0100, us(0x0030)), el(0x0800, us(0x0101))])).hasDataSet).toBe(false);
  });

  it('refuses malformed command sets', () => {
    const bad = [
      Buffer.alloc(5), // truncated element header
      Buffer.concat([el(0x0100, us(1)), el(0x0800, us(0x0101))]).subarray(0, 17), // value cut short
      Buffer.concat([el(0x0100, Buffer.alloc(4)), el(0x0800, us(0x0101))]), // US of 4 bytes
      el(0x0800, us(0x0101)), // no command field
      el(0x0100, us(0x0001)), // no data set type
      (() => {
        const b = el(0x0100, us(1));
        b.writeUInt16LE(0x0008, 0); // not group 0000
        return b;
      })(),
    ];
    for (const b of bad) expect(() => parseCommand(b), b.toString('hex')).toThrow(CommandSetError);
  });

  it('writes a C-STORE-RSP with ascending tags, a correct group length and even UIDs, in one PDV', () => {
    const rsp = encodeResponse({
      commandField: 0x8001,
      messageIdBeingRespondedTo: 77,
      status: 0xb000,
      affectedSopClassUid: CT,
      affectedSopInstanceUid: '1.2.3',
    });
    const tags: number[] = [];
    for (let off = 0; off < rsp.length; off += 8 + rsp.readUInt32LE(off + 4)) {
      expect(rsp.readUInt16LE(off)).toBe(0);
      expect(rsp.readUInt32LE(off + 4) % 2).toBe(0);
      tags.push(rsp.readUInt16LE(off + 2));
    }
    expect(tags).toEqual([0x0000, 0x0002, 0x0100, 0x0120, 0x0800, 0x0900, 0x1000]);
    expect(rsp.readUInt32LE(8)).toBe(rsp.length - 12);
    const back = parseCommand(rsp);
    expect(back).toMatchObject({
      commandField: 0x8001,
      affectedSopClassUid: CT,
      affectedSopInstanceUid: '1.2.3',
      hasDataSet: false,
    });
    expect(rsp.readUInt16LE(rsp.indexOf(Buffer.from([0, 0, 0x20, 0x01])) + 8)).toBe(77);
    expect(rsp.readUInt16LE(rsp.indexOf(Buffer.from([0, 0, 0x00, 0x09])) + 8)).toBe(0xb000);
    // C-ECHO-RSP: no Affected SOP Instance UID.
    const echo = encodeResponse({
      commandField: 0x8030,
      messageIdBeingRespondedTo: 1,
      status: 0,
      affectedSopClassUid: '1.2.840.10008.1.1',
    });
    expect(echo.indexOf(Buffer.from([0, 0, 0x00, 0x10]))).toBe(-1);
    const framed = commandPdu(5, echo);
    const [pdv, ...rest] = parsePdvs(framed);
    expect(rest).toEqual([]);
    expect(framed[0]).toBe(0x04);
    expect(pdv!.presentationContextId).toBe(5);
    expect(pdv!.isCommand() && pdv!.isLastFragment()).toBe(true);
    expect(pdv!.value.equals(echo)).toBe(true);
  });
});

describe('spool recovery after a crash', () => {
  const meta = buildFileMeta({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    sopInstanceUid: '1.2.3',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
  });
  const body = Buffer.concat([meta.subarray(128), Buffer.from('data set bytes as received...')]);
  const complete = Buffer.concat([completionMarker(128 + body.length, crc32(body)), body]);

  it('moves complete files to the inbox and deletes every partial one', async () => {
    const spool = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-recover-'));
    const incoming = path.join(spool, 'incoming');
    fs.mkdirSync(incoming);
    const put = (name: string, bytes: Buffer) => fs.writeFileSync(path.join(incoming, name), bytes);
    put('done.part', complete); // marker written and synced, rename lost
    put('cut.part', complete.subarray(0, complete.length - 5)); // marker says longer than the file
    const flipped = Buffer.from(complete);
    flipped[flipped.length - 1]! ^= 1;
    put('corrupt.part', flipped); // length right, CRC wrong
    put('nomarker.part', Buffer.concat([Buffer.alloc(128), body])); // data written, never completed
    put('empty.part', Buffer.alloc(0)); // an unused pool file
    fs.writeFileSync(path.join(spool, 'old.part'), body); // previous layout: never acknowledged
    fs.writeFileSync(path.join(spool, 'queued.dcm'), complete); // inbox: left alone
    expect(isCompleteSpoolFile(complete)).toBe(true);
    expect(await recoverSpool(spool)).toEqual({ recovered: 1, partials: 4 });
    expect(fs.readdirSync(incoming)).toEqual([]);
    expect(fs.readdirSync(spool).sort()).toEqual(['done.dcm', 'incoming', 'queued.dcm']);
    expect(fs.readFileSync(path.join(spool, 'done.dcm')).equals(complete)).toBe(true);
  });
});
