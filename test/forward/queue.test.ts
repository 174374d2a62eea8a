import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  destinationLabel,
  DestinationError,
  destinationFromConfig,
  destinationsFromConfig,
  formatDestination,
  parseDestination,
} from '../../src/forward/destination.js';
import { classifyStoreStatus } from '../../src/forward/storeScu.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { ForwardRequest, StateStore } from '../../src/state/stateStore.js';

/** A private in-memory state. */
function db(): Promise<StateStore> {
  return openStateStore(':memory:', { create: true });
}

/** Queues one file. */
async function enqueue(d: StateStore, request: ForwardRequest, now?: number) {
  return (await d.enqueueForwards([request], now))[0]!;
}
const D1 = 'RESEARCH@127.0.0.1:11112';
const D2 = 'OTHER@pacs.example.org:104';

describe('destination', () => {
  it('parses and formats AET@host:port', () => {
    expect(parseDestination('RESEARCH@127.0.0.1:11112')).toEqual({
      name: 'RESEARCH@127.0.0.1:11112',
      aeTitle: 'RESEARCH',
      host: '127.0.0.1',
      port: 11112,
    });
    expect(parseDestination(' PACS@pacs.example.org:104 ')).toEqual({
      name: 'PACS@pacs.example.org:104', // the normalized string: the queue key it always was
      aeTitle: 'PACS',
      host: 'pacs.example.org',
      port: 104,
    });
    expect(parseDestination('A B@[::1]:4242')).toEqual({
      name: 'A B@[::1]:4242',
      aeTitle: 'A B',
      host: '::1',
      port: 4242,
    });
    expect(formatDestination({ aeTitle: 'X', host: '::1', port: 5 })).toBe('X@[::1]:5');
    expect(formatDestination(parseDestination('RESEARCH@h:1'))).toBe('RESEARCH@h:1');
  });
  it('rejects bad input with one-line messages', () => {
    const bad = [
      '',
      'RESEARCH',
      'RESEARCH@host',
      '@host:1',
      'A@:1',
      'A@host:0',
      'A@host:65536',
      'A@host:x',
      'THIS_AE_IS_TOO_LONG@h:1',
      'A\\B@h:1',
      'A@bad_host!:1',
      'A@[::1]1',
    ];
    for (const s of bad) {
      let err: unknown;
      try {
        parseDestination(s);
      } catch (e) {
        err = e;
      }
      expect(err, s).toBeInstanceOf(DestinationError);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('reads config objects with a name and per-destination settings', () => {
    expect(
      destinationFromConfig({
        name: 'research',
        aeTitle: 'RESEARCH',
        host: 'pacs.example.org',
        port: 104,
        callingAeTitle: 'DEID_RESEARCH',
        transferSyntaxes: ['1.2.840.10008.1.2.1'],
      }),
    ).toEqual({
      name: 'research',
      aeTitle: 'RESEARCH',
      host: 'pacs.example.org',
      port: 104,
      callingAeTitle: 'DEID_RESEARCH',
      transferSyntaxes: ['1.2.840.10008.1.2.1'],
    });
    expect(destinationFromConfig({ name: 'v6', aeTitle: 'A', host: '[::1]', port: 5 }).host).toBe('::1');
    // A string keeps its string as its name (existing queue rows are keyed by it).
    expect(destinationFromConfig('RESEARCH@h:1').name).toBe('RESEARCH@h:1');
    // The same destination twice counts once; two different ones under one name are an error.
    expect(destinationsFromConfig(['A@h:1', 'A@h:1', { name: 'b', aeTitle: 'B', host: 'h', port: 2 }])).toHaveLength(2);
    expect(() => destinationsFromConfig([{ name: 'A@h:1', aeTitle: 'X', host: 'h', port: 3 }, 'A@h:1'])).toThrow(
      /two different forward destinations are named "A@h:1"/,
    );
  });

  it('reads TLS settings: true, or files (resolved against the working directory), a name, verify', () => {
    const base = { name: 'research', aeTitle: 'RESEARCH', host: '10.0.0.5', port: 2762 };
    expect(destinationFromConfig({ ...base, tls: true }).tls).toEqual({});
    expect(destinationFromConfig({ ...base, tls: false }).tls).toBeUndefined();
    const d = destinationFromConfig({
      ...base,
      tls: {
        caFile: 'ca.pem',
        certFile: '/etc/deid/c.pem',
        keyFile: '/etc/deid/c.key',
        serverName: 'pacs.example.org',
      },
    });
    expect(d.tls).toEqual({
      caFile: resolve('ca.pem'),
      certFile: '/etc/deid/c.pem',
      keyFile: '/etc/deid/c.key',
      serverName: 'pacs.example.org',
    });
    expect(destinationFromConfig({ ...base, tls: { verify: false } }).tls).toEqual({ verify: false });
    expect(destinationLabel(d)).toBe('research (RESEARCH@10.0.0.5:2762, TLS)');
  });

  it('refuses bad config objects with one line naming the setting', () => {
    const base = { name: 'research', aeTitle: 'RESEARCH', host: 'h', port: 104 };
    const bad: [unknown, RegExp][] = [
      [42, /must be "AET@host:port" or an object/],
      [{ ...base, name: '' }, /"name" must be 1-64/],
      [{ ...base, name: 'has space' }, /"name" must be 1-64/],
      [{ ...base, aeTitle: 'THIS_AE_IS_TOO_LONG' }, /destination "research": aeTitle .* is invalid/],
      [{ ...base, host: 'bad_host!' }, /host "bad_host!" is not a valid/],
      [{ ...base, port: '104' }, /"port" must be a whole number 1-65535/],
      [{ ...base, port: 70000 }, /"port" must be a whole number 1-65535/],
      [{ ...base, callingAeTitle: 'A\\B' }, /callingAeTitle .* is invalid/],
      [
        { ...base, transferSyntaxes: ['explicit'] },
        /"transferSyntaxes" must be a non-empty list of transfer syntax UIDs/,
      ],
      [{ ...base, tls: 'yes' }, /"tls" must be true or an object/],
      [{ ...base, tls: { ca: '/etc/ca.pem' } }, /unknown TLS setting "ca"/],
      [{ ...base, tls: { caFile: '' } }, /"tls.caFile" must be a file path/],
      [{ ...base, tls: { certFile: '/etc/c.pem' } }, /"tls.certFile" and "tls.keyFile" go together/],
      [{ ...base, tls: { serverName: 'bad name' } }, /"tls.serverName" must be a host name/],
      [{ ...base, tls: { verify: 'no' } }, /"tls.verify" must be true or false/],
      [{ ...base, calledAet: 'X' }, /unknown setting "calledAet"/],
    ];
    for (const [value, re] of bad) {
      let err: unknown;
      try {
        destinationFromConfig(value);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(value)).toBeInstanceOf(DestinationError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('classifyStoreStatus', () => {
  it('maps C-STORE statuses', () => {
    expect(classifyStoreStatus(0).kind).toBe('delivered');
    for (const s of [0xb000, 0xb006, 0xb007, 0x0111]) expect(classifyStoreStatus(s).kind).toBe('warning');
    for (const s of [0xa700, 0xa7ff, 0x0110, 0x0213]) expect(classifyStoreStatus(s).kind).toBe('transient-failure');
    for (const s of [0xa900, 0xc000, 0xc123, 0x0122]) expect(classifyStoreStatus(s).kind).toBe('permanent-failure');
  });
});

describe('forward queue', () => {
  it('enqueue is idempotent per file+destination; a list is queued all or nothing', async () => {
    const { tempDir, rmrf } = await import('../helpers/forward-helpers.js');
    const dir = tempDir('q-enqueue');
    try {
      const file = `${dir}/state.sqlite`;
      const d = await openStateStore(file, { create: true });
      const a = await enqueue(d, { filePath: '/out/a.dcm', destination: D1 }, 1000);
      const again = await enqueue(d, { filePath: '/out/a.dcm', destination: D1 }, 2000);
      expect(a.inserted).toBe(true);
      expect(again).toEqual({ id: a.id, inserted: false });
      expect((await d.forwardItem(a.id))?.enqueuedAt).toBe(1000);
      expect((await enqueue(d, { filePath: '/out/a.dcm', destination: D2 })).inserted).toBe(true);
      const both = await d.enqueueForwards([
        { filePath: '/out/b.dcm', destination: D1 },
        { filePath: '/out/a.dcm', destination: D1 },
      ]);
      expect(both.map((r) => r.inserted)).toEqual([true, false]);
      expect(both[1]!.id).toBe(a.id);

      // A failure in the middle of a list queues none of it.
      const other = new Database(file);
      other.exec(`CREATE TRIGGER boom BEFORE INSERT ON forward_queue WHEN NEW.file_path = '/out/bad.dcm'
                  BEGIN SELECT RAISE(ABORT, 'boom'); END`);
      other.close();
      await expect(
        d.enqueueForwards([
          { filePath: '/out/c.dcm', destination: D1 },
          { filePath: '/out/bad.dcm', destination: D1 },
        ]),
      ).rejects.toThrow(/boom/);
      expect((await d.forwardItems(D1)).map((i) => i.filePath)).toEqual(['/out/a.dcm', '/out/b.dcm']);
      await d.close();
    } finally {
      rmrf(dir);
    }
  });

  it('claims due items once, retries, kills, counts and revives', async () => {
    const d = await db();
    const ids: number[] = [];
    for (const i of [1, 2, 3, 4])
      ids.push((await enqueue(d, { filePath: `/out/${i}.dcm`, destination: D1 }, 1000 + i)).id);
    await enqueue(d, { filePath: '/out/x.dcm', destination: D2 }, 500);

    const first = await d.claimDueForwards(D1, 3, 5000);
    expect(first.map((i) => i.id)).toEqual(ids.slice(0, 3));
    expect(first.every((i) => i.state === 'in_flight')).toBe(true);
    expect((await d.claimDueForwards(D1, 10, 5000)).map((i) => i.id)).toEqual([ids[3]]); // not re-claimed
    expect(await d.claimDueForwards(D1, 10, 5000)).toEqual([]);

    await d.recordForwardRound({
      destination: D1,
      now: 6000,
      outcomes: [
        { id: ids[0]!, outcome: 'delivered', status: 0 },
        { id: ids[1]!, outcome: 'retry', reason: 'no response: connection refused', nextAttemptAt: 9000 },
        { id: ids[2]!, outcome: 'dead', reason: 'peer does not accept SOP class X', status: 0x0122 },
      ],
    });
    expect(await d.forwardItem(ids[0]!)).toMatchObject({ state: 'delivered', deliveredAt: 6000, lastStatus: 0 });
    expect(await d.forwardItem(ids[1]!)).toMatchObject({
      state: 'pending',
      attempts: 1,
      firstFailureAt: 6000,
      nextAttemptAt: 9000,
    });
    expect(await d.forwardItem(ids[2]!)).toMatchObject({
      state: 'dead',
      lastError: 'peer does not accept SOP class X',
      lastStatus: 0x0122,
    });
    expect(await d.nextForwardDueAt(D1)).toBe(9000);
    expect(await d.nextForwardDueAt('NOBODY@h:1')).toBeNull();

    expect(await d.claimDueForwards(D1, 10, 8999)).toEqual([]); // retry not due yet
    expect(await d.forwardCounts()).toEqual([
      { destination: D2, pending: 1, inFlight: 0, delivered: 0, dead: 0, oldestPendingAt: 500 },
      { destination: D1, pending: 1, inFlight: 1, delivered: 1, dead: 1, oldestPendingAt: 1002 },
    ]);
    expect(await d.deadForwardReasons()).toEqual([
      { destination: D1, reason: 'peer does not accept SOP class X', count: 1 },
    ]);
    expect((await d.forwardItems(D1, { state: 'dead' })).map((i) => i.id)).toEqual([ids[2]]);
    expect((await d.forwardItems(D1, { limit: 2 })).map((i) => i.id)).toEqual(ids.slice(0, 2));

    // a process that died with items in flight: they are pending again on the next start
    expect(await d.recoverInFlightForwards(D1)).toBe(1);
    expect((await d.forwardItem(ids[3]!))?.state).toBe('pending');

    expect(await d.retryDeadForwards(D2)).toBe(0);
    expect(await d.retryDeadForwards(D1, 7000)).toBe(1);
    expect(await d.forwardItem(ids[2]!)).toMatchObject({
      state: 'pending',
      attempts: 0,
      firstFailureAt: null,
      nextAttemptAt: 7000,
    });
    expect(await d.deadForwardReasons()).toEqual([]);
    expect((await d.claimDueForwards(D1, 10, 9000)).map((i) => i.id).sort()).toEqual([ids[1], ids[2], ids[3]].sort());
    await d.close();
  });

  it("a destination's health starts and stops the give-up clock of items it never attempted", async () => {
    const d = await db();
    const [tried, waiting] = (
      await d.enqueueForwards([
        { filePath: '/out/1.dcm', destination: D1 },
        { filePath: '/out/2.dcm', destination: D1 },
      ])
    ).map((r) => r.id);
    const [elsewhere] = (await d.enqueueForwards([{ filePath: '/out/3.dcm', destination: D2 }])).map((r) => r.id);
    await d.claimDueForwards(D1, 1, 1000);
    // Down: the failed item and the one that waited both count from now; other destinations not.
    await d.recordForwardRound({
      destination: D1,
      now: 2000,
      destinationHealth: 'down',
      outcomes: [{ id: tried!, outcome: 'retry', reason: 'refused', nextAttemptAt: 3000 }],
    });
    expect((await d.forwardItem(tried!))?.firstFailureAt).toBe(2000);
    expect((await d.forwardItem(waiting!))?.firstFailureAt).toBe(2000);
    expect((await d.forwardItem(elsewhere!))?.firstFailureAt).toBeNull();
    // Still down later: the clock keeps its start.
    await d.recordForwardRound({ destination: D1, now: 5000, destinationHealth: 'down', outcomes: [] });
    expect((await d.forwardItem(waiting!))?.firstFailureAt).toBe(2000);
    // Up: the item that never failed forgets the outage; the one that failed keeps its clock.
    await d.recordForwardRound({ destination: D1, now: 6000, destinationHealth: 'up', outcomes: [] });
    expect((await d.forwardItem(waiting!))?.firstFailureAt).toBeNull();
    expect((await d.forwardItem(tried!))?.firstFailureAt).toBe(2000);
    // Down again, then a round saying neither: the clock stays where the first one put it.
    await d.recordForwardRound({ destination: D1, now: 7000, destinationHealth: 'down', outcomes: [] });
    await d.recordForwardRound({ destination: D1, now: 8000, outcomes: [] });
    expect((await d.forwardItem(waiting!))?.firstFailureAt).toBe(7000);
    await d.close();
  });

  it('persists across reopening the database file', async () => {
    const { tempDir, rmrf } = await import('../helpers/forward-helpers.js');
    const dir = tempDir('q');
    try {
      const path = `${dir}/state.sqlite`;
      const d1 = await openStateStore(path, { create: true });
      const { id } = await enqueue(d1, { filePath: '/out/a.dcm', destination: D1 });
      await d1.claimDueForwards(D1, 10); // claimed, then the "process dies"
      await d1.close();
      const d2 = await openStateStore(path, { create: false });
      expect((await d2.forwardItem(id))?.state).toBe('in_flight');
      await d2.recoverInFlightForwards();
      expect((await d2.claimDueForwards(D1, 10)).map((i) => i.id)).toEqual([id]);
      await d2.close();
    } finally {
      rmrf(dir);
    }
  });
});

describe('forwarder dead-item log throttling (injected send)', () => {
  it('one full line per reason per window, then one "N more" summary; other reasons are logged at once', async () => {
    const { Forwarder } = await import('../../src/forward/forwarder.js');
    const { memoryLogger, waitFor } = await import('../helpers/forward-helpers.js');
    const d = await db();
    const dest = parseDestination(D1);
    const logger = memoryLogger();
    const refuse = 'peer does not accept SOP class MrImageStorage (1.2.840.10008.5.1.4.1.1.4)';
    const fwd = new Forwarder({
      state: d,
      destinations: [dest],
      callingAet: 'DEID',
      logger,
      idlePollMs: 20,
      // Long enough that the six items below die within one window on a loaded machine.
      deadLogWindowMs: 4000,
      send: async (files) => ({
        associations: 1,
        outcomes: files.map((filePath) => ({
          filePath,
          outcome: filePath.includes('ct')
            ? { kind: 'permanent-failure' as const, reason: 'error 0xA900: data set does not match SOP class' }
            : { kind: 'permanent-failure' as const, reason: refuse },
        })),
      }),
    });
    await fwd.start();
    try {
      // Files arrive one by one (one round each), as they do at a node.
      for (let i = 0; i < 5; i++) {
        await enqueue(d, { filePath: `/out/mr${i}.dcm`, destination: D1 });
        fwd.kick();
        await waitFor(async () => (await d.forwardCounts())[0]?.dead === i + 1, 2000, `mr${i} dead`);
      }
      await enqueue(d, { filePath: '/out/ct.dcm', destination: D1 });
      fwd.kick();
      await waitFor(async () => (await d.forwardCounts())[0]?.dead === 6, 2000, 'ct dead');
      const warns = () => logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
      expect(warns().filter((m) => m.includes('MrImageStorage'))).toHaveLength(1);
      expect(warns().filter((m) => m.includes('0xA900'))).toHaveLength(1);
      await waitFor(() => warns().length === 3, 8000, 'summary at the end of the window');
      expect(warns()[2]).toBe(`forward ${D1}: 4 more items are dead (since the last such message): ${refuse}`);
    } finally {
      await fwd.stop();
      await d.close();
    }
  });
});

describe('queue under concurrent writers (SQLite WAL, several connections)', () => {
  it('claims while another connection keeps committing, without "database is locked"', async () => {
    const { join } = await import('node:path');
    const { Worker } = await import('node:worker_threads');
    const { tempDir } = await import('../helpers/forward-helpers.js');
    const file = join(tempDir('queue-wal'), 'state.sqlite');
    const main = await openStateStore(file, { create: true });
    const setup = new Database(file);
    setup.exec('CREATE TABLE noise (x INTEGER)');
    setup.close();
    // Another connection (as a processing thread is) committing as fast as it can.
    const writer = new Worker(
      `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
       const db = new Database(${JSON.stringify(file)});
       db.pragma('busy_timeout = 10000');
       const insert = db.prepare('INSERT INTO noise (x) VALUES (?)');
       const until = Date.now() + 1500;
       let n = 0;
       while (Date.now() < until) insert.run(n++);
       db.close();`,
      { eval: true },
    );
    const done = new Promise<void>((resolve, reject) => {
      writer.on('exit', () => resolve());
      writer.on('error', reject);
    });
    let claimed = 0;
    let stop = false;
    void done.then(() => (stop = true));
    for (let i = 0; !stop; i++) {
      await enqueue(main, { filePath: `/x/${i}.dcm`, destination: D1 });
      claimed += (await main.claimDueForwards(D1, 10)).length; // threw SQLITE_BUSY with a deferred transaction
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(claimed).toBeGreaterThan(0);
    await main.close();
  });
});
