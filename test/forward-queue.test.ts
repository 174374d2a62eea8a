import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  DestinationError,
  destinationFromConfig,
  destinationsFromConfig,
  formatDestination,
  parseDestination,
} from '../src/forward/destination.js';
import {
  claimDue,
  counts,
  enqueue,
  ensureSchema,
  getItem,
  markDead,
  markDelivered,
  markRetry,
  recoverInFlight,
  retryDead,
} from '../src/forward/forwardQueue.js';
import { classifyStoreStatus } from '../src/forward/storeScu.js';

function db(): Database.Database {
  const d = new Database(':memory:');
  ensureSchema(d);
  ensureSchema(d); // idempotent
  return d;
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

  it('refuses bad config objects with one line naming the setting, and TLS until it is supported', () => {
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
      [{ ...base, tls: { caFile: '/etc/ca.pem' } }, /DICOM TLS \("tls"\) is not supported yet/],
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
  it('enqueue is idempotent per file+destination and works inside the caller transaction', () => {
    const d = db();
    const a = enqueue(d, { filePath: '/out/a.dcm', destination: D1 }, 1000);
    const again = enqueue(d, { filePath: '/out/a.dcm', destination: D1 }, 2000);
    expect(a.inserted).toBe(true);
    expect(again).toEqual({ id: a.id, inserted: false });
    expect(enqueue(d, { filePath: '/out/a.dcm', destination: D2 }).inserted).toBe(true);

    // committed together with the caller's own write
    d.exec('CREATE TABLE filing(x TEXT)');
    d.transaction(() => {
      d.prepare('INSERT INTO filing VALUES (?)').run('b');
      enqueue(d, { filePath: '/out/b.dcm', destination: D1 });
    })();
    // rolled back together with the caller's own write
    expect(() =>
      d.transaction(() => {
        d.prepare('INSERT INTO filing VALUES (?)').run('c');
        enqueue(d, { filePath: '/out/c.dcm', destination: D1 });
        throw new Error('filing failed');
      })(),
    ).toThrow('filing failed');
    const paths = d.prepare('SELECT file_path FROM forward_queue WHERE destination = ? ORDER BY id').all(D1);
    expect(paths).toEqual([{ file_path: '/out/a.dcm' }, { file_path: '/out/b.dcm' }]);
  });

  it('claims due items once, retries, kills, counts and revives', () => {
    const d = db();
    const ids = [1, 2, 3, 4].map((i) => enqueue(d, { filePath: `/out/${i}.dcm`, destination: D1 }, 1000 + i).id);
    enqueue(d, { filePath: '/out/x.dcm', destination: D2 }, 500);

    const first = claimDue(d, D1, 3, 5000);
    expect(first.map((i) => i.id)).toEqual(ids.slice(0, 3));
    expect(first.every((i) => i.state === 'in_flight')).toBe(true);
    expect(claimDue(d, D1, 10, 5000).map((i) => i.id)).toEqual([ids[3]]); // not re-claimed
    expect(claimDue(d, D1, 10, 5000)).toEqual([]);

    markDelivered(d, ids[0]!, 0, null, 6000);
    markRetry(d, ids[1]!, 'no response: connection refused', 9000, null, 6000);
    markDead(d, ids[2]!, 'peer does not accept SOP class X', 0x0122, 6000);
    expect(getItem(d, ids[1]!)).toMatchObject({
      state: 'pending',
      attempts: 1,
      firstFailureAt: 6000,
      nextAttemptAt: 9000,
    });
    expect(getItem(d, ids[2]!)).toMatchObject({
      state: 'dead',
      lastError: 'peer does not accept SOP class X',
      lastStatus: 0x0122,
    });

    expect(claimDue(d, D1, 10, 8999)).toEqual([]); // retry not due yet
    expect(counts(d)).toEqual([
      { destination: D2, pending: 1, inFlight: 0, delivered: 0, dead: 0, oldestPendingAt: 500 },
      { destination: D1, pending: 1, inFlight: 1, delivered: 1, dead: 1, oldestPendingAt: 1002 },
    ]);

    // a process that died with items in flight: they are pending again on the next start
    expect(recoverInFlight(d, D1)).toBe(1);
    expect(getItem(d, ids[3]!)?.state).toBe('pending');

    expect(retryDead(d, D2)).toBe(0);
    expect(retryDead(d, D1, 7000)).toBe(1);
    expect(getItem(d, ids[2]!)).toMatchObject({
      state: 'pending',
      attempts: 0,
      firstFailureAt: null,
      nextAttemptAt: 7000,
    });
    expect(
      claimDue(d, D1, 10, 9000)
        .map((i) => i.id)
        .sort(),
    ).toEqual([ids[1], ids[2], ids[3]].sort());
  });

  it('persists across reopening the database file', async () => {
    const { tempDir, rmrf } = await import('./forward-helpers.js');
    const dir = tempDir('q');
    try {
      const path = `${dir}/state.sqlite`;
      const d1 = new Database(path);
      ensureSchema(d1);
      const { id } = enqueue(d1, { filePath: '/out/a.dcm', destination: D1 });
      claimDue(d1, D1, 10); // claimed, then the "process dies"
      d1.close();
      const d2 = new Database(path);
      ensureSchema(d2);
      expect(getItem(d2, id)?.state).toBe('in_flight');
      recoverInFlight(d2);
      expect(claimDue(d2, D1, 10).map((i) => i.id)).toEqual([id]);
      d2.close();
    } finally {
      rmrf(dir);
    }
  });
});

describe('forwarder dead-item log throttling (injected send)', () => {
  it('one full line per reason per window, then one "N more" summary; other reasons are logged at once', async () => {
    const { Forwarder } = await import('../src/forward/forwarder.js');
    const { memoryLogger, waitFor } = await import('./forward-helpers.js');
    const d = db();
    const dest = parseDestination(D1);
    const logger = memoryLogger();
    const refuse = 'peer does not accept SOP class MrImageStorage (1.2.840.10008.5.1.4.1.1.4)';
    const fwd = new Forwarder({
      db: d,
      destinations: [dest],
      callingAet: 'DEID',
      logger,
      idlePollMs: 20,
      deadLogWindowMs: 400,
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
    fwd.start();
    try {
      // Files arrive one by one (one round each), as they do at a node.
      for (let i = 0; i < 5; i++) {
        enqueue(d, { filePath: `/out/mr${i}.dcm`, destination: D1 });
        fwd.kick();
        await waitFor(() => counts(d)[0]?.dead === i + 1, 2000, `mr${i} dead`);
      }
      enqueue(d, { filePath: '/out/ct.dcm', destination: D1 });
      fwd.kick();
      await waitFor(() => counts(d)[0]?.dead === 6, 2000, 'ct dead');
      const warns = () => logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
      expect(warns().filter((m) => m.includes('MrImageStorage'))).toHaveLength(1);
      expect(warns().filter((m) => m.includes('0xA900'))).toHaveLength(1);
      await waitFor(() => warns().length === 3, 2000, 'summary at the end of the window');
      expect(warns()[2]).toBe(`forward ${D1}: 4 more items are dead (since the last such message): ${refuse}`);
    } finally {
      await fwd.stop();
      d.close();
    }
  });
});

describe('queue under concurrent writers (WAL, several connections)', () => {
  it('claims while another connection keeps committing, without "database is locked"', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { Worker } = await import('node:worker_threads');
    const file = join(mkdtempSync(join(tmpdir(), 'queue-wal-')), 'state.sqlite');
    const main = new Database(file);
    main.pragma('journal_mode = WAL');
    main.pragma('busy_timeout = 10000');
    ensureSchema(main);
    main.exec('CREATE TABLE noise (x INTEGER)');
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
      enqueue(main, { filePath: `/x/${i}.dcm`, destination: D1 });
      claimed += claimDue(main, D1, 10).length; // threw SQLITE_BUSY with a deferred transaction
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(claimed).toBeGreaterThan(0);
    main.close();
  });
});
