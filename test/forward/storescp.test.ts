// End-to-end forwarding against dcmtk storescp as the research PACS (real peer, no mocks).

import net from 'node:net';
import { readdirSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDestination, type Destination } from '../../src/forward/destination.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { QueueItem, StateStore } from '../../src/state/stateStore.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { readP10Header } from '../../src/dimse/part10.js';
import { sendFiles } from '../../src/forward/storeScu.js';
import {
  dataSetBytes,
  F,
  freePort,
  memoryLogger,
  receivedBySopInstance,
  rmrf,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
  testConverter,
  writeFileIn,
} from '../helpers/forward-helpers.js';

dimse.log.setLevel('silent');

const CALLING = 'DEID';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await stopAllPeers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(port: number): Promise<{ db: StateStore; dest: Destination; key: string; out: string }> {
  const db = await openStateStore(':memory:', { create: true });
  const out = tempDir('scp');
  cleanups.push(() => rmrf(out));
  cleanups.push(() => db.close());
  const dest = parseDestination(`RESEARCH@127.0.0.1:${port}`);
  return { db, dest, key: dest.name, out };
}

function items(db: StateStore, key: string): Promise<QueueItem[]> {
  return db.forwardItems(key);
}

/** Queues one file for one destination. */
async function enqueue(db: StateStore, request: { filePath: string; destination: string }) {
  return (await db.enqueueForwards([request]))[0]!;
}

async function startForwarder(
  db: StateStore,
  dest: Destination,
  extra: Partial<ConstructorParameters<typeof Forwarder>[0]> = {},
) {
  const logger = memoryLogger();
  const fwd = new Forwarder({
    state: db,
    destinations: [dest],
    callingAet: CALLING,
    logger,
    backoff: { initialMs: 100, maxMs: 400 },
    scu: { connectTimeoutMs: 3000, associationTimeoutMs: 5000, pduTimeoutMs: 10_000, overallTimeoutMs: 20_000 },
    converter: testConverter(),
    ...extra,
  });
  await fwd.start();
  cleanups.push(() => fwd.stop());
  return { fwd, logger };
}

describe('forwarding to storescp', () => {
  it('delivers explicit LE, implicit LE, JPEG 2000 and JPEG files with byte-identical data sets', async () => {
    const port = await freePort();
    const { db, dest, key, out } = await setup(port);
    await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], port, out);
    const files = [F.ctExplicit, F.mrImplicit, F.jpeg2000, F.jpegLossy, F.rtplanImplicit];
    for (const f of files) await enqueue(db, { filePath: f, destination: key });
    const { fwd, logger } = await startForwarder(db, dest, { maxPerAssociation: 3 });
    fwd.kick();
    await waitFor(async () => (await db.forwardCounts())[0]?.delivered === files.length, 20_000, 'all delivered');
    await fwd.stop();

    const got = receivedBySopInstance(out);
    for (const f of files) {
      const h = readP10Header(f);
      const rec = got.get(h.sopInstanceUid);
      expect(rec, f).toHaveLength(1);
      expect(rec![0]!.ts, f).toBe(h.transferSyntaxUid); // sent verbatim, in its own TS
      expect(dataSetBytes(rec![0]!.path).equals(dataSetBytes(f)), `data set bytes of ${f}`).toBe(true);
    }
    expect((await items(db, key)).every((i) => i.state === 'delivered' && i.lastStatus === 0)).toBe(true);
    expect(logger.lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });

  it('keeps items pending while the destination is down, then delivers each exactly once', async () => {
    const port = await freePort();
    const { db, dest, key, out } = await setup(port);
    const files = [F.ctExplicit, F.mrImplicit, F.jpeg2000];
    for (const f of files) await enqueue(db, { filePath: f, destination: key });
    const { fwd, logger } = await startForwarder(db, dest, { maxPerAssociation: 2 });
    fwd.kick();

    // Nobody listens: retried with backoff, nothing lost, "down" logged once.
    await waitFor(async () => (await items(db, key)).some((i) => i.attempts >= 3), 15_000, 'several failed attempts');
    const during = await items(db, key);
    expect(during.every((i) => i.state === 'pending' || i.state === 'in_flight')).toBe(true);
    expect(during[0]!.lastError).toMatch(/ECONNREFUSED/);
    // Its status says so: down since the first failure, why, and what waits.
    const down = fwd.destinationStatus()[0]!;
    expect(down).toMatchObject({ name: key, address: key, health: 'down', lastDeliveryAt: null });
    expect(down.lastError?.message).toMatch(/ECONNREFUSED/);
    expect(fwd.status().state).toBe('degraded');
    await waitFor(
      () => fwd.destinationStatus()[0]!.pending + fwd.destinationStatus()[0]!.inFlight === files.length,
      3000,
      'the queue counts in the status',
    );

    await startStorescp(['+B', '+xa', '+uf', '-aet', 'RESEARCH'], port, out);
    await waitFor(
      async () => (await db.forwardCounts())[0]?.delivered === files.length,
      20_000,
      'all delivered after recovery',
    );
    await fwd.stop();

    const got = receivedBySopInstance(out);
    expect(readdirSync(out)).toHaveLength(files.length); // +uf: a duplicate would be a second file
    for (const f of files) expect(got.get(readP10Header(f).sopInstanceUid), f).toHaveLength(1);
    const warn = logger.lines.filter((l) => l.level !== 'debug');
    expect(warn.filter((l) => /is down/.test(l.msg))).toHaveLength(1);
    expect(warn.filter((l) => /is back/.test(l.msg))).toHaveLength(1);
    expect(warn).toHaveLength(2);
    const up = fwd.destinationStatus()[0]!;
    expect(up).toMatchObject({ health: 'up', pending: 0, inFlight: 0, dead: 0, deliveredSinceStart: files.length });
    expect(Date.parse(up.lastDeliveryAt!)).toBeGreaterThanOrEqual(Date.parse(up.since!));
    expect(Date.parse(up.since!)).toBeGreaterThan(Date.parse(down.since!));
    expect(fwd.status()).toMatchObject({
      name: 'forwarder',
      state: 'stopped',
      backlog: 0,
      counts: { destinations: 1, destinationsDown: 0, pending: 0, dead: 0, deliveredSinceStart: files.length },
      lastError: { message: expect.stringMatching(/ECONNREFUSED/) },
    });
  });

  it('a refused SOP class ends dead at once with a reason naming it; others are delivered', async () => {
    const port = await freePort();
    const { db, dest, key, out } = await setup(port);
    const cfg = writeFileIn(
      out,
      '../ctonly-' + port + '.cfg',
      [
        '[[TransferSyntaxes]]',
        '[Uncompressed]',
        'TransferSyntax1 = LocalEndianExplicit',
        'TransferSyntax2 = LittleEndianImplicit',
        '[[PresentationContexts]]',
        '[CTOnly]',
        'PresentationContext1 = VerificationSOPClass\\Uncompressed',
        'PresentationContext2 = CTImageStorage\\Uncompressed',
        '[[Profiles]]',
        '[CTOnly]',
        'PresentationContexts = CTOnly',
        '',
      ].join('\n'),
    );
    cleanups.push(() => rmrf(cfg));
    await startStorescp(['+B', '-xf', cfg, 'CTOnly', '-aet', 'RESEARCH'], port, out);
    const ct = (await enqueue(db, { filePath: F.ctExplicit, destination: key })).id;
    const mr = (await enqueue(db, { filePath: F.mrImplicit, destination: key })).id;
    const { fwd, logger } = await startForwarder(db, dest);
    fwd.kick();
    await waitFor(
      async () => (await db.forwardItem(mr))!.state === 'dead' && (await db.forwardItem(ct))!.state === 'delivered',
      15_000,
      'outcomes',
    );
    await fwd.stop();
    expect((await db.forwardItem(mr))!.lastError).toMatch(/MrImageStorage \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.4\)/);
    expect((await db.forwardItem(mr))!.attempts).toBe(1);
    expect(logger.lines.filter((l) => l.level === 'warn' && /is dead/.test(l.msg))).toHaveLength(1);
    expect([...receivedBySopInstance(out).keys()]).toEqual([readP10Header(F.ctExplicit).sopInstanceUid]);
  });

  it('a peer accepting only implicit LE gets the explicit file converted to it, the implicit one as stored', async () => {
    const port = await freePort();
    const { db, dest, key, out } = await setup(port);
    await startStorescp(['+B', '+xi', '-aet', 'RESEARCH'], port, out);
    const ct = (await enqueue(db, { filePath: F.ctExplicit, destination: key })).id; // explicit LE
    const mr = (await enqueue(db, { filePath: F.mrImplicit, destination: key })).id; // implicit LE
    const { fwd, logger } = await startForwarder(db, dest);
    fwd.kick();
    await waitFor(
      async () =>
        (await db.forwardItem(ct))!.state === 'delivered' && (await db.forwardItem(mr))!.state === 'delivered',
      15_000,
      'outcomes',
    );
    await fwd.stop();
    const got = receivedBySopInstance(out);
    const mrGot = got.get(readP10Header(F.mrImplicit).sopInstanceUid)!;
    expect(dataSetBytes(mrGot[0]!.path).equals(dataSetBytes(F.mrImplicit))).toBe(true);
    const ctGot = got.get(readP10Header(F.ctExplicit).sopInstanceUid)!;
    expect(ctGot[0]!.ts).toBe('1.2.840.10008.1.2');
    // Converted, not truncated (what dcmjs-dimse's Client once sent here was nearly empty).
    expect(dataSetBytes(ctGot[0]!.path).length).toBeGreaterThan(dataSetBytes(F.ctExplicit).length - 2000);
    expect(logger.lines.filter((l) => l.level !== 'debug')).toEqual([]);
    // The status tells how many went converted.
    expect(fwd.destinationStatus()[0]).toMatchObject({ deliveredSinceStart: 2, convertedSinceStart: 1 });
    expect(fwd.status().counts).toMatchObject({ deliveredSinceStart: 2, convertedSinceStart: 1 });
  });

  it('resumes items left in flight by a process that died', async () => {
    const port = await freePort();
    const { db, dest, key, out } = await setup(port);
    await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], port, out);
    await enqueue(db, { filePath: F.ctExplicit, destination: key });
    await enqueue(db, { filePath: F.jpeg2000, destination: key });
    expect(await db.claimDueForwards(key, 10)).toHaveLength(2); // "crash" after claiming
    const { fwd, logger } = await startForwarder(db, dest);
    await waitFor(async () => (await db.forwardCounts())[0]?.delivered === 2, 15_000, 'resumed delivery');
    await fwd.stop();
    expect(logger.lines.some((l) => /2 interrupted item/.test(l.msg))).toBe(true);
  });
});

describe('other writers', () => {
  it('an idle destination picks up items enqueued (or revived) by another process without a kick', async () => {
    const port = await freePort();
    const out = tempDir('scp');
    cleanups.push(() => rmrf(out));
    const dbDir = tempDir('polldb');
    cleanups.push(() => rmrf(dbDir));
    const dbPath = `${dbDir}/state.sqlite`;
    const db = await openStateStore(dbPath, { create: true });
    cleanups.push(() => db.close());
    const dest = parseDestination(`RESEARCH@127.0.0.1:${port}`);
    const key = dest.name;
    await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], port, out);
    const { fwd } = await startForwarder(db, dest, { idlePollMs: 200 });
    await new Promise((r) => setTimeout(r, 300)); // the loop is idle now
    // "Another process": a second connection writes the queue; nobody calls fwd.kick().
    const other = await openStateStore(dbPath, { create: false });
    try {
      await enqueue(other, { filePath: F.ctExplicit, destination: key });
      const dead = (await enqueue(other, { filePath: F.mrImplicit, destination: key })).id;
      await other.recordForwardRound({ destination: key, outcomes: [{ id: dead, outcome: 'dead', reason: 'x' }] });
      await waitFor(async () => (await db.forwardCounts())[0]?.delivered === 1, 5000, 'polled delivery');
      expect(await other.retryDeadForwards()).toBe(1); // `dicom-deid queue retry` from another process
      await waitFor(async () => (await db.forwardCounts())[0]?.delivered === 2, 5000, 'revived item delivered');
    } finally {
      await other.close();
    }
    await fwd.stop();
    expect([...receivedBySopInstance(out).keys()].sort()).toEqual(
      [F.ctExplicit, F.mrImplicit].map((f) => readP10Header(f).sopInstanceUid).sort(),
    );
  });
});

describe('giving up', () => {
  it('an item failing transiently for longer than giveUpAfterMs goes dead with its last reason', async () => {
    const port = await freePort(); // nobody listens
    const { db, dest, key } = await setup(port);
    const ids = (
      await db.enqueueForwards([F.ctExplicit, F.mrImplicit].map((f) => ({ filePath: f, destination: key })))
    ).map((r) => r.id);
    const { fwd, logger } = await startForwarder(db, dest, { giveUpAfterMs: 500 });
    fwd.kick();
    await waitFor(
      async () => (await Promise.all(ids.map((id) => db.forwardItem(id)))).every((i) => i!.state === 'dead'),
      10_000,
      'dead after giving up',
    );
    await fwd.stop();
    for (const id of ids)
      expect((await db.forwardItem(id))!.lastError).toMatch(/^gave up after .* of failures; last: .*ECONNREFUSED/);
    const warns = logger.lines.filter((l) => l.level === 'warn');
    expect(warns.filter((l) => /is down/.test(l.msg))).toHaveLength(1);
    expect(warns.filter((l) => /2 items are dead: .*gave up after/.test(l.msg))).toHaveLength(1);
  });
});

describe('storeScu failure modes', () => {
  it('association refused -> permanent; abort after C-STORE-RQ -> transient without hanging', async () => {
    const port = await freePort();
    const out = tempDir('scp');
    cleanups.push(() => rmrf(out));
    const dest = parseDestination(`RESEARCH@127.0.0.1:${port}`);
    const refusing = await startStorescp(['--refuse', '-aet', 'RESEARCH'], port, out);
    const r1 = await sendFiles([F.ctExplicit], dest, { callingAet: CALLING });
    expect(r1.outcomes[0]!.outcome).toMatchObject({
      kind: 'permanent-failure',
      reason: expect.stringMatching(/association rejected \(permanent\)/),
    });
    await refusing.stop();

    await startStorescp(['--abort-after', '+xa', '-aet', 'RESEARCH'], port, out);
    const t0 = Date.now();
    const r2 = await sendFiles([F.ctExplicit, F.mrImplicit], dest, { callingAet: CALLING });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r2.connectionProblem).toBeTruthy();
    for (const o of r2.outcomes) expect(o.outcome.kind).toBe('transient-failure');
    expect(r2.outcomes[0]!.outcome).toMatchObject({ reason: expect.stringMatching(/abort|closed/) });
  });

  it('a peer that accepts TCP but never answers cannot hang the sender', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as net.AddressInfo).port;
    const t0 = Date.now();
    const r = await sendFiles([F.ctExplicit], parseDestination(`RESEARCH@127.0.0.1:${port}`), {
      callingAet: CALLING,
      associationTimeoutMs: 1500,
      overallTimeoutMs: 4000,
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.outcomes[0]!.outcome.kind).toBe('transient-failure');
    expect(r.connectionProblem).toBeTruthy();
  });
});
