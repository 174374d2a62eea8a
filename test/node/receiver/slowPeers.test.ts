// Slow peers cannot take the node: trickling peers hold associations only until the message
// deadline cuts them off (logged, counted), one address cannot hold more than its share of the
// association slots, and a peer that sends slowly but steadily above the minimum rate is served.
// Raw sockets from several loopback addresses (127.0.0.2...) play the peers; storescu plays the
// legitimate sender, from 127.0.0.1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DicomListener, type ListenerOptions } from '../../../src/node/receiver/listener.js';
import type { ReceivedInstance } from '../../../src/node/receiver/storeSink.js';
import { Spool } from '../../../src/node/spool/spool.js';
import type { SpoolRef } from '../../../src/node/spool/spoolRef.js';
import { runAsync } from '../../helpers/forward-helpers.js';
import { CT_STORAGE, EXPLICIT_LE, associateRq, cStoreRq, pdata, rawClient } from '../../helpers/raw-dicom.js';

const AET = 'DEID_TEST';
const CT = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';

function storescu(port: number, callingAet = 'STORESCU'): Promise<{ code: number | null; out: string }> {
  return runAsync('storescu', ['-aet', callingAet, '-aec', AET, '127.0.0.1', String(port), CT]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The data set of a Part 10 file (after group 0002). */
function dataSet(file: Buffer): Buffer {
  return file.subarray(144 + file.readUInt32LE(140));
}

type Raw = ReturnType<typeof rawClient>;

/**
 * A peer that associates, sends a C-STORE-RQ and the start of a data set PDU announcing 8 KiB,
 * then one byte every `everyMs` for as long as it is connected. Resolves once associated, or with
 * `rejected` when the association was rejected.
 */
async function trickler(port: number, localAddress: string, everyMs = 250): Promise<{ raw: Raw; rejected: boolean }> {
  const raw = rawClient(port, { localAddress });
  await raw.connected;
  raw.sock.write(associateRq('SLOW', AET, CT_STORAGE, EXPLICIT_LE));
  await raw.waitBytes(6, 10_000);
  if (raw.received()[0] !== 0x02) return { raw, rejected: true };
  raw.sock.write(pdata(1, 0x03, cStoreRq(CT_STORAGE, '1.2.826.0.1.3680043.8.498.1')));
  const header = pdata(1, 0x02, Buffer.alloc(8192)).subarray(0, 12); // PDU + PDV headers only
  raw.sock.write(header);
  const timer = setInterval(() => {
    if (!raw.sock.destroyed) raw.sock.write(Buffer.from([0]));
  }, everyMs);
  void raw.closed.then(() => clearInterval(timer));
  return { raw, rejected: false };
}

describe('slow peers and the limits per address', () => {
  let tmp: string;
  let spool: Spool | undefined;
  let listener: DicomListener<SpoolRef> | undefined;
  const clients: Raw[] = [];
  const lines: string[] = [];
  const stored: ReceivedInstance<SpoolRef>[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'slow-peers-'));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.sock.destroy();
    await listener?.stop();
    await spool?.close();
    listener = undefined;
    spool = undefined;
    lines.length = 0;
    stored.length = 0;
  });

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function start(name: string, options: Partial<ListenerOptions<SpoolRef>>): Promise<number> {
    spool = new Spool(path.join(tmp, name), { reserveBytes: 0 });
    await spool.recover();
    await spool.prepare();
    const rec = (level: string) => (msg: string, meta?: object) =>
      lines.push(`${level} ${msg} ${JSON.stringify(meta ?? {})}`);
    listener = new DicomListener<SpoolRef>({
      aeTitle: AET,
      host: '127.0.0.1',
      port: 0,
      sinks: spool,
      logger: { info: rec('info'), warn: rec('warn'), error: rec('error'), debug: rec('debug') },
      onStore: async (inst) => {
        stored.push(inst);
        return 0;
      },
      ...options,
    });
    return (await listener.start()).port;
  }

  const count = (key: string) => listener!.status().counts[key];
  const cutOffLines = () => lines.filter((l) => l.startsWith('warn peer cut off: too slow'));

  it('trickling peers holding every slot are cut off at the message deadline, and storescu then stores', async () => {
    const port = await start('all-slots', {
      maxAssociations: 8,
      maxAssociationsPerAddress: 1,
      timeouts: { message: 3000 },
    });
    // Eight peers from eight addresses take the eight slots, each trickling one byte every 250 ms
    // (which restarts the PDU and idle timers every time).
    const t0 = Date.now();
    const peers = await Promise.all([2, 3, 4, 5, 6, 7, 8, 9].map((n) => trickler(port, `127.0.0.${n}`)));
    clients.push(...peers.map((p) => p.raw));
    expect(peers.every((p) => !p.rejected)).toBe(true);
    expect(count('associationsOpen')).toBe(8);
    // A legitimate sender is turned away while they hold the slots...
    const turnedAway = await storescu(port);
    expect(turnedAway.code).not.toBe(0);
    expect(turnedAway.out).toMatch(/Local Limit Exceeded/i);
    expect(Date.now() - t0).toBeLessThan(3000); // (still within the deadline: the test is meaningful)
    // ...and stores once they are cut off, within the message deadline (3 s) plus the sweep.
    for (;;) {
      const r = await storescu(port);
      if (r.code === 0) break;
      expect(r.out).toMatch(/Local Limit Exceeded/i);
      expect(Date.now() - t0).toBeLessThan(15_000);
      await sleep(200);
    }
    expect(stored).toHaveLength(1);
    // Every trickler was aborted (A-ABORT), each cut-off logged once with its address and AE title.
    await Promise.all(peers.map((p) => p.raw.closed));
    for (const p of peers)
      expect(p.raw.received().includes(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04]))).toBe(true);
    const cut = cutOffLines();
    expect(cut).toHaveLength(8);
    for (const n of [2, 3, 4, 5, 6, 7, 8, 9]) {
      expect(
        cut.filter((l) => l.includes(`"remoteAddress":"127.0.0.${n}"`) && l.includes('"callingAet":"SLOW"')),
      ).toHaveLength(1);
    }
    expect(count('slowPeersCutOff')).toBe(8);
    expect(count('instancesStored')).toBe(1);
  });

  it('one address gets at most its share of the slots; another address stores meanwhile', async () => {
    const port = await start('per-address', { maxAssociations: 8, timeouts: { message: 20_000 } });
    expect(listener!.status().details).toMatchObject({ maxAssociationsPerAddress: 4 });
    const peers = [];
    for (let i = 0; i < 8; i++) peers.push(await trickler(port, '127.0.0.2'));
    clients.push(...peers.map((p) => p.raw));
    expect(peers.filter((p) => !p.rejected)).toHaveLength(4);
    expect(peers.filter((p) => p.rejected)).toHaveLength(4);
    for (const p of peers.filter((x) => x.rejected)) {
      // A-ASSOCIATE-RJ, transient (2), source 3 (service provider, presentation), reason 2 (local limit exceeded)
      expect([...p.raw.received().subarray(0, 10)]).toEqual([0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2]);
    }
    expect(count('associationsRejected.addressLimit')).toBe(4);
    expect(
      lines.some((l) => l.includes('too many concurrent associations from this address') && l.includes('127.0.0.2')),
    ).toBe(true);
    // The slow address holds 4 of 8 slots; a sender from elsewhere is served at once.
    const r = await storescu(port);
    expect(r.code, r.out).toBe(0);
    expect(stored).toHaveLength(1);
    // storescu may exit before the listener has seen its association close.
    await waitFor(() => count('associationsOpen') === 4, 5000, "storescu's association closed");
    expect(count('associationsOpen')).toBe(4);
  });

  it('a peer sending slowly but above the minimum rate is served; one below it is cut off', async () => {
    const port = await start('rate', { timeouts: { message: 1000 }, minReceiveBytesPerSecond: 8192 });
    const ds = dataSet(fs.readFileSync(CT));
    expect(ds.length).toBeGreaterThan(30_000);
    const send = async (localAddress: string, bytesPerTick: number): Promise<Raw> => {
      const raw = rawClient(port, { localAddress });
      clients.push(raw);
      await raw.connected;
      raw.sock.write(associateRq('STEADY', AET, CT_STORAGE, EXPLICIT_LE));
      await raw.waitBytes(6);
      expect(raw.received()[0]).toBe(0x02);
      raw.sock.write(pdata(1, 0x03, cStoreRq(CT_STORAGE, '1.2.826.0.1.3680043.8.498.2')));
      // One PDV per 100 ms tick: bytesPerTick * 10 bytes per second.
      for (let off = 0; off < ds.length && !raw.sock.destroyed; off += bytesPerTick) {
        const end = Math.min(ds.length, off + bytesPerTick);
        raw.sock.write(pdata(1, end === ds.length ? 0x02 : 0x00, ds.subarray(off, end)));
        await sleep(100);
      }
      return raw;
    };
    // ~16 KiB/s: about 2.4 s for this data set, past the 1 s base deadline, but every byte earns
    // time at 8 KiB/s: served.
    const t0 = Date.now();
    const steady = await send('127.0.0.2', 1638);
    await waitFor(() => stored.length === 1, 10_000, 'the steady sender stored');
    expect(Date.now() - t0).toBeGreaterThan(1500);
    steady.sock.destroy();
    expect(cutOffLines()).toEqual([]);
    // ~1 KiB/s: cut off after the base second plus what its few bytes earned.
    const slow = await send('127.0.0.3', 102);
    await slow.closed;
    expect(stored).toHaveLength(1);
    const cut = cutOffLines();
    expect(cut).toHaveLength(1);
    expect(cut[0]).toContain('"remoteAddress":"127.0.0.3"');
    expect(cut[0]).toContain('"callingAet":"STEADY"');
    expect(count('slowPeersCutOff')).toBe(1);
  });
});
