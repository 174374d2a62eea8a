// Pure parts of the receiver's path: PDU framing, PDV parsing and message assembly, negotiation
// policy, command sets, file meta.
import { describe, expect, it } from 'vitest';
import {
  decideAssociation,
  escapeAet,
  isDefaultRepertoireAet,
  negotiateContext,
} from '../../../src/node/receiver/associationPolicy.js';
import { ContextResult } from '../../../src/dimse/acse.js';
import { CallingAeList } from '../../../src/node/receiver/callingAes.js';
import { CommandSetError, commandPdu, encodeResponse, parseCommand } from '../../../src/dimse/commandSet.js';
import { buildFileMeta } from '../../../src/core/dicom/fileMeta.js';
import { parsePdvs } from '../../../src/dimse/pdataTf.js';
import { PduError, PduReader } from '../../../src/dimse/pduReader.js';
import { MessageAssembly, type CommandMessage } from '../../../src/node/receiver/messageAssembly.js';
import { isAcceptedStorageSyntax } from '../../../src/node/receiver/storageSopClasses.js';
import { pickTransferSyntax } from '../../../src/node/receiver/transferSyntaxes.js';

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

describe('MessageAssembly', () => {
  const CT = '1.2.840.10008.5.1.4.1.1.2';
  const contexts = new Map([
    [1, { abstractSyntaxUid: CT, transferSyntaxUid: '1.2.840.10008.1.2.1' }],
    [3, { abstractSyntaxUid: CT, transferSyntaxUid: '1.2.840.10008.1.2' }],
  ]);
  /** A P-DATA-TF PDU of the given PDVs: [presentation context ID, message control header, value]. */
  function pdata(...pdvs: [number, number, Buffer][]): Buffer {
    return pdu(
      0x04,
      Buffer.concat(
        pdvs.map(([pc, ctl, v]) => {
          const h = Buffer.alloc(6);
          h.writeUInt32BE(v.length + 2, 0);
          h[4] = pc;
          h[5] = ctl;
          return Buffer.concat([h, v]);
        }),
      ),
    );
  }
  const el = (element: number, value: Buffer) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(element, 2);
    h.writeUInt32LE(value.length, 4);
    return Buffer.concat([h, value]);
  };
  const us = (v: number) => Buffer.from([v & 0xff, v >> 8]);
  /** A C-STORE-RQ command set (with a data set) or a C-ECHO-RQ (without). */
  const store = Buffer.concat([
    el(0x0002, Buffer.from(`${CT}\0`, 'latin1')),
    el(0x0100, us(0x0001)),
    el(0x0800, us(0x0000)),
    el(0x1000, Buffer.from('1.2.3.4 ', 'latin1')),
  ]);
  const echo = Buffer.concat([el(0x0100, us(0x0030)), el(0x0800, us(0x0101))]);

  /** An assembly whose handler records every command and gives C-STOREs (only) a recording consumer. */
  function assembly() {
    const events: string[] = [];
    const commands: CommandMessage[] = [];
    const data: Buffer[] = [];
    const a = new MessageAssembly(contexts, (m) => {
      commands.push(m);
      events.push(`command 0x${m.command.commandField.toString(16)}`);
      if (m.command.commandField !== 0x0001) return undefined;
      return {
        write: (f) => data.push(Buffer.from(f)),
        end: () => events.push('end'),
        abandon: () => events.push('abandon'),
      };
    });
    return { a, events, commands, data };
  }

  it('joins command fragments, and hands the data set on fragment by fragment, in order', () => {
    const { a, events, commands, data } = assembly();
    a.push(pdata([1, 0x01, store.subarray(0, 10)]));
    expect(a.midMessage).toBe(true);
    a.push(pdata([1, 0x03, store.subarray(10)], [1, 0x00, Buffer.from('abc')]));
    expect(a.receivingDataSet).toBe(true);
    a.push(pdata([1, 0x00, Buffer.from('de')], [1, 0x02, Buffer.from('f')], [1, 0x03, echo]));
    expect(events).toEqual(['command 0x1', 'end', 'command 0x30']);
    expect(commands[0]).toMatchObject({ presentationContextId: 1, command: { affectedSopInstanceUid: '1.2.3.4' } });
    expect(Buffer.concat(data).toString()).toBe('abcdef');
    expect(a.midMessage).toBe(false);
  });

  it('refuses PDVs out of place instead of mixing them into a data set', () => {
    const cases: [string, Buffer[]][] = [
      ['data PDV without a pending command', [pdata([1, 0x02, Buffer.from('x')])]],
      [
        'command PDV in the middle of a data set',
        [pdata([1, 0x03, store], [1, 0x00, Buffer.from('x')], [1, 0x03, echo])],
      ],
      ['PDV on a presentation context that was not accepted', [pdata([5, 0x03, echo])]],
      [
        'command fragments on different contexts',
        [pdata([1, 0x01, echo.subarray(0, 4)]), pdata([3, 0x03, echo.subarray(4)])],
      ],
      [
        'a data set for a command that takes none',
        [pdata([1, 0x03, Buffer.concat([el(0x0100, us(0x0030)), el(0x0800, us(0))])])],
      ],
      ['command set without a Command Field', [pdata([1, 0x03, el(0x0800, us(0x0101))])]],
    ];
    for (const [why, pdus] of cases) {
      const { a } = assembly();
      let error: unknown;
      try {
        for (const p of pdus) a.push(p);
      } catch (e) {
        error = e;
      }
      expect(error, why).toBeInstanceOf(PduError);
      expect((error as Error).message).toBe(why);
    }
  });

  it('abandons the data set being received when stopped, and ignores the rest of the PDU', () => {
    const { a, events } = assembly();
    a.push(pdata([1, 0x03, store], [1, 0x00, Buffer.from('abc')]));
    expect(a.stop()).toBe(true);
    expect(events).toEqual(['command 0x1', 'abandon']);
    expect(a.receivingDataSet).toBe(false);
    // A consumer that stops the assembly while writing (an instance over its size cap) never ends.
    const ended: string[] = [];
    const b: MessageAssembly = new MessageAssembly(contexts, () => ({
      write: () => b.stop(),
      end: () => ended.push('end'),
      abandon: () => ended.push('abandon'),
    }));
    b.push(pdata([1, 0x03, store], [1, 0x02, Buffer.from('last fragment')], [1, 0x03, echo]));
    expect(ended).toEqual(['abandon']);
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
      result: ContextResult.Acceptance,
      transferSyntaxUid: '1.2.840.10008.1.2',
    });
    expect(negotiateContext('1.2.840.10008.5.1.4.1.2.2.2', ['1.2.840.10008.1.2']).result).toBe(
      ContextResult.AbstractSyntaxNotSupported,
    );
  });

  it('rejects wrong called AE permanently and over-limit associations transiently', async () => {
    const cfg = {
      aeTitle: 'DEID',
      callingAes: await CallingAeList.resolve(['MOD1', 'CT@10.1.2.0/24']),
      maxAssociations: 3,
      maxAssociationsPerAddress: 2,
    };
    const rq = {
      callingAet: 'MOD1',
      calledAet: 'DEID',
      remoteAddress: '10.9.9.9',
      activeAssociations: 0,
      activeFromAddress: 0,
      stopping: false,
    };
    expect(decideAssociation(rq, cfg)).toEqual({ accept: true });
    expect(decideAssociation({ ...rq, calledAet: 'OTHER' }, cfg)).toMatchObject({
      accept: false,
      result: 1,
      source: 1,
      reason: 7,
    });
    expect(decideAssociation({ ...rq, callingAet: 'MOD2' }, cfg)).toMatchObject({
      accept: false,
      result: 1,
      source: 1,
      reason: 3,
      why: 'calling AE title not recognized',
      code: 'callingAeTitle',
    });
    // An AE title bound to a network: from it, accepted; from elsewhere, "not recognized" too.
    expect(decideAssociation({ ...rq, callingAet: 'CT', remoteAddress: '::ffff:10.1.2.77' }, cfg)).toEqual({
      accept: true,
    });
    expect(decideAssociation({ ...rq, callingAet: 'CT' }, cfg)).toMatchObject({
      accept: false,
      result: 1,
      source: 1,
      reason: 3,
      code: 'callingAeAddress',
    });
    expect(decideAssociation({ ...rq, activeAssociations: 3 }, cfg)).toMatchObject({
      accept: false,
      result: 2,
      source: 3,
      reason: 2,
      code: 'associationLimit',
    });
    expect(decideAssociation({ ...rq, activeAssociations: 2, activeFromAddress: 2 }, cfg)).toMatchObject({
      accept: false,
      result: 2,
      source: 3,
      reason: 2,
      code: 'addressLimit',
    });
    expect(decideAssociation({ ...rq, stopping: true }, cfg)).toMatchObject({ accept: false, result: 2, reason: 1 });
  });

  it('rejects a calling AE title outside its repertoire (PS3.5 6.2) even with every title allowed; escapes it for logs', async () => {
    const cfg = {
      aeTitle: 'DEID',
      callingAes: await CallingAeList.resolve([]),
      maxAssociations: 3,
      maxAssociationsPerAddress: 2,
    };
    const rq = {
      callingAet: 'ANY ~SCU!',
      calledAet: 'DEID',
      remoteAddress: '10.9.9.9',
      activeAssociations: 0,
      activeFromAddress: 0,
      stopping: false,
    };
    expect(decideAssociation(rq, cfg)).toEqual({ accept: true });
    for (const bad of ['CT\x85', 'A\\B', 'MR\x7f', 'CT\x00X', 'É']) {
      expect(decideAssociation({ ...rq, callingAet: bad }, cfg)).toMatchObject({
        accept: false,
        result: 1,
        source: 1,
        reason: 3,
        code: 'callingAeTitle',
      });
      expect(isDefaultRepertoireAet(bad)).toBe(false);
    }
    expect(escapeAet('CT\x85\x9b1')).toBe('CT\\x85\\x9b1');
    expect(escapeAet('A\\B É\x00')).toBe('A\\x5cB \\xc9\\x00');
    expect(escapeAet('ANY ~SCU!')).toBe('ANY ~SCU!');
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
