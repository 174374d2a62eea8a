// The SCU association (src/dimse/scu) against real peers: C-ECHO to storescp and Orthanc, C-STORE
// in small PDUs, and every way an association ends early: the peer rejects (permanently or for
// now), aborts mid-send, closes, goes silent, outlives the overall cap, or sends garbage.

import { join } from 'node:path';
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readP10Header } from '../../src/dimse/part10.js';
import { execFileSync } from 'node:child_process';
import { encodeText } from '../../src/core/dicom/encoder.js';
import { EXPLICIT_LE, EXPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { CommandField } from '../../src/dimse/commandSet.js';
import {
  AssociationError,
  ScuAssociation,
  type DimseResponse,
  type ScuAssociationOptions,
} from '../../src/dimse/scu/association.js';
import { VERIFICATION_CONTEXT, cEcho, echo } from '../../src/dimse/scu/cEcho.js';
import { cStore } from '../../src/dimse/scu/cStore.js';
import { bufferDataSet, openFileDataSet } from '../../src/dimse/scu/dataSetSource.js';
import {
  dataSetBytes,
  F,
  freePort,
  ORTHANC_BIN,
  receivedBySopInstance,
  rmrf,
  startOrthanc,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
  writeLargeInstance,
} from '../helpers/forward-helpers.js';
import { startNode, stopAllNodes, writeMappingCsv } from '../helpers/serve-helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await stopAllNodes();
  await stopAllPeers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

let bigFile = '';
/** A 24 MiB instance: large enough that the peer acts while we are still sending it. */
function big(): string {
  if (!bigFile) {
    const dir = tempDir('scu-big');
    afterAll(() => rmrf(dir));
    bigFile = join(dir, 'big.dcm');
    writeLargeInstance(bigFile, 24 << 20, '1.2.826.0.1.3680043.8.498.4242.1');
  }
  return bigFile;
}

function target(
  port: number,
  extra: Partial<ScuAssociationOptions> = {},
): Omit<ScuAssociationOptions, 'presentationContexts'> {
  return { host: '127.0.0.1', port, callingAeTitle: 'DEID', calledAeTitle: 'RESEARCH', ...extra };
}

/** Opens an association proposing `file`'s SOP class in its stored syntax and sends it by C-STORE. */
async function storeOne(port: number, file: string, extra: Partial<ScuAssociationOptions> = {}): Promise<number> {
  const h = readP10Header(file);
  const a = await ScuAssociation.open({
    ...target(port, extra),
    presentationContexts: [{ abstractSyntaxUid: h.sopClassUid, transferSyntaxUids: [h.transferSyntaxUid] }],
  });
  const ctx = a.acceptedContext(h.sopClassUid, h.transferSyntaxUid);
  expect(ctx).toBeDefined();
  const dataSet = await openFileDataSet(file, h.dataSetOffset, h.fileSize - h.dataSetOffset);
  try {
    const rsp = await cStore(a, {
      contextId: ctx!.id,
      sopClassUid: h.sopClassUid,
      sopInstanceUid: h.sopInstanceUid,
      dataSet,
    });
    await a.release();
    return rsp.status;
  } finally {
    await dataSet.close();
    a.abort();
  }
}

/** (0020,000D) of a file, as dcmdump reads it. */
function studyUidOf(file: string): string {
  const out = execFileSync('dcmdump', ['+P', '0020,000d', file], { encoding: 'utf8' });
  return /\[([0-9.]+)\]/.exec(out)![1]!;
}

/** What `fn` rejects with; fails the test when it resolves or throws anything else. */
async function failure(fn: () => Promise<unknown>): Promise<AssociationError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AssociationError);
    return e as AssociationError;
  }
  throw new Error('expected an AssociationError');
}

describe('C-ECHO', () => {
  it('storescp answers success; the association is released', async () => {
    const port = await freePort();
    const out = tempDir('echo');
    cleanups.push(() => rmrf(out));
    const peer = await startStorescp(['-v', '-aet', 'RESEARCH'], port, out);
    const r = await echo(target(port));
    expect(r.status).toBe(0x0000);
    await waitFor(() => /Association Release/i.test(peer.output()), 5000, 'storescp to see the release');
  });

  it.skipIf(!ORTHANC_BIN)('Orthanc answers success (and two echoes on one association)', async () => {
    const dir = tempDir('echo-orthanc');
    cleanups.push(() => rmrf(dir));
    const orthanc = await startOrthanc(dir, 'ORTHANC');
    const a = await ScuAssociation.open({
      ...target(orthanc.dicomPort, { calledAeTitle: 'ORTHANC' }),
      presentationContexts: [VERIFICATION_CONTEXT],
    });
    expect(await cEcho(a)).toBe(0);
    expect(await cEcho(a)).toBe(0);
    expect(a.acceptance?.userInformation.implementationClassUid).toMatch(/^1\.2\.276\.0\.7230010\.3\./); // dcmtk inside
    await a.release();
    expect(a.isOpen).toBe(false);
  });
});

describe('C-FIND (the request/response shape retrieval will use)', () => {
  it.skipIf(!ORTHANC_BIN)(
    'Orthanc: one pending response per match, with its identifier, then the final one',
    async () => {
      const dir = tempDir('find-orthanc');
      cleanups.push(() => rmrf(dir));
      const orthanc = await startOrthanc(dir, 'ORTHANC', { DicomAlwaysAllowFind: true });
      const at = target(orthanc.dicomPort, { calledAeTitle: 'ORTHANC' });
      for (const f of [F.ctExplicit, F.mrImplicit]) {
        expect(await storeOne(orthanc.dicomPort, f, { calledAeTitle: 'ORTHANC' })).toBe(0);
      }

      const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
      const a = await ScuAssociation.open({
        ...at,
        presentationContexts: [{ abstractSyntaxUid: STUDY_ROOT_FIND, transferSyntaxUids: [EXPLICIT_VR_LE] }],
      });
      const ctx = a.acceptedContext(STUDY_ROOT_FIND, EXPLICIT_VR_LE);
      expect(ctx).toBeDefined();
      // Identifier: every study, asking for its Study Instance UID.
      const identifier = Buffer.concat([
        encodeText(0x00080052, 'CS', 'STUDY', EXPLICIT_LE),
        encodeText(0x0020000d, 'UI', '', EXPLICIT_LE),
      ]);
      const pending: DimseResponse[] = [];
      const final = await a.request({
        contextId: ctx!.id,
        command: { commandField: CommandField.CFindRq, affectedSopClassUid: STUDY_ROOT_FIND },
        dataSet: bufferDataSet(identifier),
        onPending: (r) => pending.push(r),
      });
      await a.release();
      expect(final.command.commandField).toBe(CommandField.CFindRsp);
      expect(final.command.status).toBe(0x0000);
      expect(final.dataSet).toBeUndefined();
      const studies = pending.map((r) => {
        expect(r.command.status).toBe(0xff00);
        // The study UID is in the identifier, Explicit VR LE: find its value after the tag and VR.
        const tag = Buffer.from([0x20, 0x00, 0x0d, 0x00, 0x55, 0x49]);
        const pos = r.dataSet!.indexOf(tag);
        expect(pos).toBeGreaterThanOrEqual(0);
        const len = r.dataSet!.readUInt16LE(pos + 6);
        return r.dataSet!.toString('latin1', pos + 8, pos + 8 + len).replace(/\0$/, '');
      });
      const expected = [F.ctExplicit, F.mrImplicit].map(studyUidOf);
      expect(studies.sort()).toEqual(expected.sort());
    },
  );
});

describe('C-STORE', () => {
  it('a data set split into many small PDUs (storescp -pdu 4096) arrives byte for byte', async () => {
    const port = await freePort();
    const out = tempDir('pdu');
    cleanups.push(() => rmrf(out));
    await startStorescp(['+B', '-pdu', '4096', '-aet', 'RESEARCH'], port, out);
    expect(await storeOne(port, F.ctExplicit)).toBe(0);
    const got = receivedBySopInstance(out).get(readP10Header(F.ctExplicit).sopInstanceUid);
    expect(got).toHaveLength(1);
    expect(dataSetBytes(got![0]!.path).equals(dataSetBytes(F.ctExplicit))).toBe(true);
  });
});

describe('how an association ends early', () => {
  it('storescp --refuse: rejected, permanent', async () => {
    const port = await freePort();
    const out = tempDir('refuse');
    cleanups.push(() => rmrf(out));
    await startStorescp(['--refuse', '-aet', 'RESEARCH'], port, out);
    const e = await failure(() => echo(target(port)));
    expect(e.kind).toBe('rejected');
    expect(e.permanent).toBe(true);
    expect(e.message).toMatch(/^association rejected \(permanent\): .* by RESEARCH@127\.0\.0\.1:\d+ \(.*\)$/);
    // A rejection without a reason names the usual cause: our calling AE title, unknown to the peer.
    expect(e.message).toContain('no reason given: most often the peer does not know our calling AE title "DEID"');
  });

  it('our own node at its association limit: rejected, transient (local limit exceeded)', async () => {
    const dir = tempDir('limit');
    cleanups.push(() => rmrf(dir));
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'X1', accession: 'A1', researchId: 'RS_01' }]);
    const node = await startNode({ dir, csv, config: { maxAssociations: 1 } });
    const opts = { ...target(node.port, { calledAeTitle: 'DEID' }), presentationContexts: [VERIFICATION_CONTEXT] };
    const first = await ScuAssociation.open(opts);
    cleanups.push(() => first.abort());
    const e = await failure(() => ScuAssociation.open(opts));
    expect(e.kind).toBe('rejected');
    expect(e.permanent).toBe(false);
    expect(e.message).toBe(`association rejected (transient): local limit exceeded by DEID@127.0.0.1:${node.port}`);
    expect(await cEcho(first)).toBe(0); // the first one is unharmed
    await first.release();
  });

  it('storescp --abort-during: the peer aborts while we send a data set', async () => {
    const port = await freePort();
    const out = tempDir('abort');
    cleanups.push(() => rmrf(out));
    await startStorescp(['--abort-during', '-aet', 'RESEARCH'], port, out);
    const t0 = Date.now();
    const e = await failure(() => storeOne(port, big()));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(['aborted', 'closed']).toContain(e.kind); // its A-ABORT, or the reset that follows it, whichever is read first
    expect(e.message).toMatch(/peer aborted the association|closed|network error/);
  });

  it('a peer killed mid-association: closed', async () => {
    const port = await freePort();
    const out = tempDir('killed');
    cleanups.push(() => rmrf(out));
    const peer = await startStorescp(['--sleep-during', '30', '-aet', 'RESEARCH'], port, out);
    const sending = failure(() => storeOne(port, big()));
    await new Promise((r) => setTimeout(r, 500));
    peer.proc.kill('SIGKILL');
    const e = await sending;
    expect(e.kind).toBe('closed');
    expect(e.message).toMatch(/connection to RESEARCH@127\.0\.0\.1:\d+ closed|network error/);
  });

  it('a silent peer (storescp --sleep-during): timeout after the silence limit, not the overall cap', async () => {
    const port = await freePort();
    const out = tempDir('silent');
    cleanups.push(() => rmrf(out));
    await startStorescp(['--sleep-during', '20', '-aet', 'RESEARCH'], port, out);
    const t0 = Date.now();
    const e = await failure(() => storeOne(port, F.ctExplicit, { timeouts: { silenceMs: 1000, overallMs: 15_000 } }));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(e.kind).toBe('timeout');
    expect(e.message).toMatch(/^no answer from RESEARCH@127\.0\.0\.1:\d+ within 1000 ms while waiting for a response$/);
  });

  it('the overall cap ends an association whatever the peer does', async () => {
    const port = await freePort();
    const out = tempDir('overall');
    cleanups.push(() => rmrf(out));
    await startStorescp(['--sleep-after', '20', '-aet', 'RESEARCH'], port, out);
    const t0 = Date.now();
    const e = await failure(() => storeOne(port, F.ctExplicit, { timeouts: { silenceMs: 60_000, overallMs: 1500 } }));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(e.kind).toBe('timeout');
    expect(e.message).toMatch(/^timed out after 1500 ms \(association to RESEARCH@127\.0\.0\.1:\d+\)$/);
  });

  it('a peer answering garbage: protocol error, and we abort (A-ABORT, provider, unrecognized PDU)', async () => {
    const received: Buffer[] = [];
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (b: Buffer) => {
        received.push(b);
        if (received.length === 1) s.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as net.AddressInfo).port;
    const e = await failure(() => echo(target(port)));
    expect(e.kind).toBe('protocol');
    expect(e.message).toMatch(/protocol error from RESEARCH@127\.0\.0\.1:\d+: unrecognized PDU type 0x48/);
    const rqLength = () => received[0]!.readUInt32BE(2) + 6;
    await waitFor(() => Buffer.concat(received).length >= rqLength() + 10, 2000, 'the A-ABORT');
    const all = Buffer.concat(received);
    expect(all[0]).toBe(0x01); // our A-ASSOCIATE-RQ
    expect([...all.subarray(rqLength())]).toEqual([7, 0, 0, 0, 0, 4, 0, 0, 2, 1]);
  });

  it('nobody listening: connect failure naming the system error', async () => {
    const port = await freePort();
    const e = await failure(() => echo(target(port)));
    expect(e.kind).toBe('connect');
    expect(e.message).toBe(`cannot connect to RESEARCH@127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
  });
});
