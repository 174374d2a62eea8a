// The ACSE codec (src/dimse/acse.ts): round trips, strict decoding of garbage, and the real test:
// dcmtk's echoscu's own A-ASSOCIATE-RQ decoded, and our A-ASSOCIATE-AC / -RJ understood by it.

import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContextResult,
  DICOM_APPLICATION_CONTEXT,
  RejectResult,
  RejectSource,
  checkReleasePdu,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeAssociateRq,
  describeAbort,
  describeReject,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodeAssociateRq,
  encodeReleaseRp,
  encodeReleaseRq,
  type AssociateAc,
  type AssociateRq,
} from '../../src/dimse/acse.js';
import { CommandField, commandPdu, encodeResponse, parseCommand } from '../../src/dimse/commandSet.js';
import { parsePdvs } from '../../src/dimse/pdataTf.js';
import { PduError, PduReader, PduType } from '../../src/dimse/pduReader.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';

const rq: AssociateRq = {
  protocolVersion: 1,
  calledAeTitle: 'RESEARCH',
  callingAeTitle: 'DEID_NODE',
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  presentationContexts: [
    { id: 1, abstractSyntaxUid: CT, transferSyntaxUids: [EXPLICIT] },
    { id: 3, abstractSyntaxUid: CT, transferSyntaxUids: [EXPLICIT, IMPLICIT] },
    { id: 5, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT] },
  ],
  userInformation: {
    maxPduLength: 262144,
    implementationClassUid: '2.25.284931705384462313129838186547853740817',
    implementationVersionName: 'DICOMDEID_0_1',
    asyncOps: { maxInvoked: 1, maxPerformed: 1 },
    roleSelections: [{ sopClassUid: CT, scuRole: false, scpRole: true }],
    other: [{ type: 0x58, value: Buffer.from([1, 0, 0, 4, 0x75, 0x73, 0x65, 0x72, 0, 0]) }],
  },
};

const ac: AssociateAc = {
  protocolVersion: 1,
  calledAeTitle: 'RESEARCH',
  callingAeTitle: 'DEID_NODE',
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  presentationContexts: [
    { id: 1, result: ContextResult.TransferSyntaxesNotSupported, transferSyntaxUid: '' },
    { id: 3, result: ContextResult.Acceptance, transferSyntaxUid: IMPLICIT },
    { id: 5, result: ContextResult.Acceptance, transferSyntaxUid: IMPLICIT },
  ],
  userInformation: { maxPduLength: 16384, implementationClassUid: '1.2.3.4', implementationVersionName: 'PEER' },
};

describe('ACSE codec: round trips', () => {
  it('A-ASSOCIATE-RQ and -AC decode to what was encoded, every sub-item included', () => {
    const rqPdu = encodeAssociateRq(rq);
    expect(rqPdu[0]).toBe(PduType.AssociateRq);
    expect(rqPdu.readUInt32BE(2)).toBe(rqPdu.length - 6);
    expect(rqPdu.toString('latin1', 10, 26)).toBe('RESEARCH        '); // space-padded AE titles
    expect(decodeAssociateRq(rqPdu)).toEqual(rq);
    expect(decodeAssociateAc(encodeAssociateAc(ac))).toEqual(ac);
  });

  it('A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT', () => {
    const rj = { result: RejectResult.Transient, source: RejectSource.ServiceProviderPresentation, reason: 2 };
    expect(decodeAssociateRj(encodeAssociateRj(rj))).toEqual(rj);
    expect(describeReject(rj)).toBe('association rejected (transient): local limit exceeded');
    expect(describeReject({ result: 1, source: 1, reason: 3 })).toBe(
      'association rejected (permanent): calling AE title not recognized',
    );
    expect(encodeReleaseRq()).toEqual(Buffer.from([5, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    expect(() => checkReleasePdu(encodeReleaseRq())).not.toThrow();
    expect(() => checkReleasePdu(encodeReleaseRp())).not.toThrow();
    expect(decodeAbort(encodeAbort({ source: 2, reason: 6 }))).toEqual({ source: 2, reason: 6 });
    expect(describeAbort({ source: 2, reason: 6 })).toBe('source 2, reason 6: invalid PDU parameter value');
  });

  it('UIDs padded with NUL and AE titles padded with spaces by a peer are read without their padding', () => {
    const padded = encodeAssociateAc({
      ...ac,
      presentationContexts: [{ id: 3, result: ContextResult.Acceptance, transferSyntaxUid: `${IMPLICIT}\0` }],
      userInformation: { maxPduLength: 0, implementationClassUid: '1.2.3.4\0' },
    });
    const d = decodeAssociateAc(padded);
    expect(d.presentationContexts[0]!.transferSyntaxUid).toBe(IMPLICIT);
    expect(d.userInformation.implementationClassUid).toBe('1.2.3.4');
    expect(d.calledAeTitle).toBe('RESEARCH');
  });

  it('refuses what it cannot encode: an AE title of 17 characters', () => {
    expect(() => encodeAssociateRq({ ...rq, callingAeTitle: 'A'.repeat(17) })).toThrow(RangeError);
  });
});

describe('ACSE codec: garbage', () => {
  const good = encodeAssociateAc(ac);
  const cases: [string, Buffer][] = [
    ['an RQ given as AC', encodeAssociateRq(rq)],
    ['a length field that lies', Buffer.concat([good, Buffer.from([0, 0])])],
    ['a truncated PDU', good.subarray(0, 70)],
    [
      'an item running past the end',
      (() => {
        const b = Buffer.from(good);
        b.writeUInt16BE(0xfff0, 76); // application context item length
        return b;
      })(),
    ],
    [
      'an unknown item type',
      (() => {
        const b = Buffer.from(good);
        b[74] = 0x99;
        return b;
      })(),
    ],
    [
      'an accepted context without a transfer syntax',
      encodeAssociateAc({ ...ac, presentationContexts: [{ id: 1, result: 0, transferSyntaxUid: '' }] }).subarray(0),
    ],
    ['random bytes with a valid header', Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 80]), Buffer.alloc(80, 0xa5)])],
  ];
  for (const [what, bytes] of cases) {
    it(`A-ASSOCIATE-AC decoding throws PduError for ${what}`, () => {
      expect(() => decodeAssociateAc(bytes)).toThrow(PduError);
    });
  }
  it('A-ASSOCIATE-RJ / A-ABORT of the wrong length throw PduError', () => {
    expect(() => decodeAssociateRj(Buffer.from([3, 0, 0, 0, 0, 3, 0, 1, 1]))).toThrow(PduError);
    expect(() => decodeAbort(Buffer.from([7, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]))).toThrow(PduError);
  });
});

// ---------------------------------------------------------------------------------------------
// Against dcmtk's echoscu: a tiny acceptor built on the codec (decode its RQ, answer with our AC
// or RJ, answer its C-ECHO-RQ) shows the bytes are what a real implementation writes and reads.

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Seen {
  rq?: AssociateRq;
  echoes: number;
  released: boolean;
}

async function acceptor(answer: (rq: AssociateRq) => Buffer): Promise<{ port: number; seen: Seen }> {
  const seen: Seen = { echoes: 0, released: false };
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    let acceptedCtx = 0;
    const reader = new PduReader({
      maxLength: () => 1 << 20,
      onPdu: (type, pdu) => {
        if (type === PduType.AssociateRq) {
          seen.rq = decodeAssociateRq(pdu);
          acceptedCtx = seen.rq.presentationContexts[0]!.id;
          sock.write(answer(seen.rq));
        } else if (type === PduType.PDataTf) {
          const pdv = parsePdvs(pdu)[0]!;
          const cmd = parseCommand(pdv.value);
          expect(cmd.commandField).toBe(CommandField.CEchoRq);
          seen.echoes++;
          const rsp = encodeResponse({
            commandField: CommandField.CEchoRsp,
            messageIdBeingRespondedTo: cmd.messageId,
            status: 0,
            affectedSopClassUid: VERIFICATION,
          });
          sock.write(commandPdu(acceptedCtx, rsp));
        } else if (type === PduType.ReleaseRq) {
          seen.released = true;
          sock.end(encodeReleaseRp());
        }
      },
    });
    sock.on('data', (c: Buffer) => reader.push(c));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, seen };
}

function echoscu(port: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('echoscu', ['-v', '-aet', 'MODALITY1', '-aec', 'RESEARCH', '127.0.0.1', String(port)], {
      env: { ...process.env, TCP_NODELAY: '1' },
    });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

describe('ACSE codec against dcmtk echoscu', () => {
  it("decodes echoscu's A-ASSOCIATE-RQ; echoscu accepts our A-ASSOCIATE-AC and echoes", async () => {
    const { port, seen } = await acceptor((r) =>
      encodeAssociateAc({
        protocolVersion: 1,
        calledAeTitle: r.calledAeTitle,
        callingAeTitle: r.callingAeTitle,
        applicationContextName: DICOM_APPLICATION_CONTEXT,
        presentationContexts: r.presentationContexts.map((c) => ({
          id: c.id,
          result: ContextResult.Acceptance,
          transferSyntaxUid: c.transferSyntaxUids[0]!,
        })),
        userInformation: { maxPduLength: 16384, implementationClassUid: '1.2.3.4', implementationVersionName: 'TEST' },
      }),
    );
    const r = await echoscu(port);
    expect(r.code, r.out).toBe(0);
    expect(seen.rq).toMatchObject({
      protocolVersion: 1,
      callingAeTitle: 'MODALITY1',
      calledAeTitle: 'RESEARCH',
      applicationContextName: DICOM_APPLICATION_CONTEXT,
      presentationContexts: [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT] }],
    });
    expect(seen.rq!.userInformation.maxPduLength).toBe(16384);
    expect(seen.rq!.userInformation.implementationClassUid).toMatch(/^1\.2\.276\.0\.7230010\.3\./); // dcmtk's root
    expect(seen.echoes).toBe(1);
    expect(seen.released).toBe(true);
  });

  it('echoscu reads our A-ASSOCIATE-RJ with its result, source and reason', async () => {
    const { port } = await acceptor(() =>
      encodeAssociateRj({ result: RejectResult.Permanent, source: RejectSource.ServiceUser, reason: 3 }),
    );
    const r = await echoscu(port);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Rejected Permanent/i);
    expect(r.out).toMatch(/Calling AE Title Not Recognized/i);
  });
});
