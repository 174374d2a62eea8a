// The state store (src/state): session numbers, the UID secret, filing, migrations, and what
// several processes sharing one SQLite file see. The forward queue's operations are tested in
// forward-queue.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import Database from 'better-sqlite3';
import { STATE_SCHEMA_VERSION } from '../../src/state/migrations.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import { StateNotFoundError, StateSchemaError, type InstanceFiling } from '../../src/state/stateStore.js';

const root = resolve(import.meta.dirname, '..', '..');
let tmp: string;
let compiledModule: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'statestore-test-'));
  // Child processes can't load TypeScript: transpile the real src/state (it imports nothing from
  // outside it) into node_modules/.cache so that `better-sqlite3` resolves from the project.
  const cacheDir = join(root, 'node_modules', '.cache', 'dicom-deid-test', String(process.pid));
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, 'package.json'), '{ "type": "module" }\n');
  for (const f of readdirSync(join(root, 'src/state')).filter((n) => n.endsWith('.ts'))) {
    const src = readFileSync(join(root, 'src/state', f), 'utf8');
    expect(src, `${f} imports only from src/state`).not.toMatch(/from '\.\.\//);
    const out = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    writeFileSync(join(cacheDir, f.replace(/\.ts$/, '.js')), out.outputText);
  }
  compiledModule = join(cacheDir, 'openStateStore.js');
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  rmSync(join(compiledModule, '..'), { recursive: true, force: true });
});

interface Op {
  kind: 'one' | 'many' | 'claim';
  researchId: string;
  keys: string[];
}

function runWorker(
  dbFile: string,
  startAt: number,
  ops: Op[],
): Promise<{ secret: string; results: Record<string, number | string> }> {
  return new Promise((resolvePromise, reject) => {
    const arg = JSON.stringify({ modulePath: pathToFileURL(compiledModule).href, dbFile, startAt, ops });
    const child = spawn(process.execPath, [join(root, 'test/fixtures/stateStoreWorker.mjs'), arg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`worker exited ${code}: ${stderr}`));
      else resolvePromise(JSON.parse(stdout));
    });
  });
}

/** Deterministic shuffle (so a failure is reproducible). */
function shuffled<T>(items: T[], seed: number): T[] {
  const a = [...items];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Reads a state file with a connection of its own (what another process would see). */
function raw<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const open = (file: string) => openStateStore(file, { create: true });

describe('state store (SQLite)', () => {
  it('creates parent dirs, WAL, schema version, a private file in a private folder', async () => {
    const file = join(tmp, 'a', 'b', 'state.sqlite');
    const store = await open(file);
    await store.close();
    raw(file, (db) => {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(STATE_SCHEMA_VERSION);
    });
    if (process.platform !== 'win32') {
      expect(statSync(file).mode & 0o077).toBe(0);
      expect(statSync(join(tmp, 'a', 'b')).mode & 0o077).toBe(0);
    }
  });

  it('sets busy_timeout and synchronous=FULL on its own connection', async () => {
    // Pragmas are per connection: ask the store's own.
    const file = join(tmp, 'pragmas.sqlite');
    const store = await open(file);
    const db = (store as unknown as { db: Database.Database }).db;
    expect(db.pragma('busy_timeout', { simple: true })).toBe(10000);
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    await store.close();
  });

  it('keeps the UID secret across reopen', async () => {
    const file = join(tmp, 'secret.sqlite');
    const a = await open(file);
    const s1 = await a.uidSecret();
    expect(s1).toHaveLength(32);
    expect((await a.uidSecret()).equals(s1)).toBe(true);
    s1.fill(0); // a copy: the caller cannot change the store's secret
    expect((await a.uidSecret()).equals(s1)).toBe(false);
    const kept = await a.uidSecret();
    await a.close();
    const b = await open(file);
    expect((await b.uidSecret()).equals(kept)).toBe(true);
    await b.close();
    const c = await open(join(tmp, 'other-secret.sqlite'));
    expect((await c.uidSecret()).equals(kept)).toBe(false);
    await c.close();
  });

  it('assigns indices per research ID, reuses known keys, and persists them across reopen', async () => {
    const file = join(tmp, 'idx.sqlite');
    const a = await open(file);
    expect(await a.sessionIndex('R1', 'study:A1')).toBe(1);
    expect(await a.sessionIndex('R1', 'study:A2')).toBe(2);
    expect(await a.sessionIndex('R2', 'study:A3')).toBe(1);
    expect(await a.sessionIndex('R1', 'study:A1')).toBe(1);
    await a.close();
    const b = await open(file);
    expect(await b.sessionIndex('R1', 'study:A2')).toBe(2);
    expect(await b.sessionIndex('R1', 'study:A9')).toBe(3);
    await b.close();
  });

  it('batch mode numbers new keys in the order given, keeps known ones, ignores duplicates', async () => {
    const db = await open(join(tmp, 'batch.sqlite'));
    expect(await db.sessionIndex('P', 'folder:p/b')).toBe(1);
    const m = await db.sessionIndices('P', ['folder:p/a', 'folder:p/b', 'folder:p/c', 'folder:p/a']);
    expect([...m]).toEqual([
      ['folder:p/a', 2],
      ['folder:p/b', 1],
      ['folder:p/c', 3],
    ]);
    expect((await db.sessionIndices('P', [])).size).toBe(0);
    await db.close();
  });

  it('a new key that names the same session as a numbered one takes its number (sameAs)', async () => {
    const db = await open(join(tmp, 'same-as.sqlite'));
    expect(await db.sessionIndex('R1', 'study:X')).toBe(1); // the node numbered study X
    const folders = ['folder:p/a', 'folder:p/b', 'folder:p/c'];
    // p/b holds X; p/c holds a study nobody numbered: it is new like p/a.
    const sameAs = new Map([
      ['folder:p/b', 'study:X'],
      ['folder:p/c', 'study:Y'],
    ]);
    expect([...(await db.sessionIndices('R1', folders, sameAs))]).toEqual([
      ['folder:p/a', 2],
      ['folder:p/b', 1],
      ['folder:p/c', 3],
    ]);
    expect(await db.knownSessionIndex('R1', 'folder:p/b')).toBe(1);
    expect(await db.knownSessionIndex('R1', 'study:Y')).toBeUndefined(); // not linked by this call
    // Stable afterwards, with or without the hint; the next new key continues after 3.
    expect([...(await db.sessionIndices('R1', folders))]).toEqual([
      ...(await db.sessionIndices('R1', folders, sameAs)),
    ]);
    expect(await db.sessionIndex('R1', 'study:Z')).toBe(4);
    await db.close();
  });

  it('links other keys to a session number, never over a key that has its own', async () => {
    const db = await open(join(tmp, 'links.sqlite'));
    expect(await db.sessionIndices('R', ['folder:p/a', 'folder:p/b'])).toEqual(
      new Map([
        ['folder:p/a', 1],
        ['folder:p/b', 2],
      ]),
    );
    await db.linkSessionKeys('R', [
      ['study:A', 1],
      ['folder:p/b', 1], // has its own number: not changed
    ]);
    expect(await db.knownSessionIndex('R', 'study:A')).toBe(1);
    expect(await db.sessionIndex('R', 'study:A')).toBe(1); // the node files a re-sent study under 1
    expect(await db.knownSessionIndex('R', 'folder:p/b')).toBe(2);
    expect(await db.knownSessionIndex('OTHER', 'study:A')).toBeUndefined();
    expect(await db.sessionIndex('R', 'study:B')).toBe(3);
    await db.close();
  });

  it('a failed transaction assigns nothing (no gaps)', async () => {
    const file = join(tmp, 'rollback.sqlite');
    const db = await open(file);
    await db.sessionIndex('R', 'k1');
    await expect(db.sessionIndices('', ['x'])).rejects.toThrow(/empty research ID/);
    // Make the second insert of a batch fail: the whole batch must roll back.
    raw(file, (other) =>
      other.exec(`CREATE TRIGGER boom BEFORE INSERT ON session_index WHEN NEW.key = 'bad'
                  BEGIN SELECT RAISE(ABORT, 'boom'); END`),
    );
    await expect(db.sessionIndices('R', ['k2', 'bad'])).rejects.toThrow(/boom/);
    expect(await db.sessionIndex('R', 'k3')).toBe(2); // k2 was rolled back with 'bad'
    await db.close();
  });

  it('files instances and queues their forwards in one transaction, idempotently', async () => {
    const file = join(tmp, 'filing.sqlite');
    const db = await open(file);
    const filing = (i: number): InstanceFiling => ({
      newSopUid: `2.25.${i}`,
      originalSopUid: `1.2.3.${i}`,
      originalStudyUid: i === 2 ? null : '1.2.3',
      researchId: 'R',
      sessionN: 1,
      outputPath: `R/R_1/CT_S1_00000000/2.25.${i}.dcm`,
      callingAet: 'PACS',
      forwardFile: `/out/R/R_1/CT_S1_00000000/2.25.${i}.dcm`,
    });
    expect(await db.filedInstanceMark()).toBe(0); // nothing filed yet
    await db.fileInstances([filing(1), filing(2)], ['A@h:1', 'B@h:2'], 1000);
    expect(await db.filedInstanceCount()).toBe(2);
    const mark = await db.filedInstanceMark();
    expect(await db.filedInstancesSince(0)).toBe(2);
    expect(await db.filedInstancesSince(mark)).toBe(0);
    expect(await db.filedInstance('2.25.1')).toEqual({
      newSopUid: '2.25.1',
      originalSopUid: '1.2.3.1',
      originalStudyUid: '1.2.3',
      researchId: 'R',
      sessionN: 1,
      outputPath: 'R/R_1/CT_S1_00000000/2.25.1.dcm',
      callingAet: 'PACS',
      filedAt: 1000,
    });
    expect((await db.forwardItems('A@h:1')).map((i) => [i.filePath, i.state, i.enqueuedAt])).toEqual([
      ['/out/R/R_1/CT_S1_00000000/2.25.1.dcm', 'pending', 1000],
      ['/out/R/R_1/CT_S1_00000000/2.25.2.dcm', 'pending', 1000],
    ]);
    expect(await db.forwardItems('B@h:2')).toHaveLength(2);

    // Filed again (a replay after a crash): the record is updated, the queue item left as it is.
    const [sent] = await db.claimDueForwards('A@h:1', 1, 1500);
    await db.recordForwardRound({
      destination: 'A@h:1',
      outcomes: [{ id: sent!.id, outcome: 'delivered', status: 0 }],
    });
    await db.fileInstances([{ ...filing(1), outputPath: 'moved.dcm' }], ['A@h:1', 'B@h:2'], 2000);
    expect(await db.filedInstanceCount()).toBe(2);
    expect(await db.filedInstancesSince(mark)).toBe(0); // filed again: not a new instance
    expect(await db.filedInstance('2.25.1')).toMatchObject({ outputPath: 'moved.dcm', filedAt: 2000 });
    // Per original study: the instance without a recorded study is not counted.
    expect(await db.filedCountsByStudy(['1.2.3', '1.2.4', '1.2.3'])).toEqual(
      new Map([
        ['1.2.3', 1],
        ['1.2.4', 0],
      ]),
    );
    // Filed again without its study (an older caller): the study recorded before is kept.
    await db.fileInstances([{ ...filing(1), originalStudyUid: undefined }], [], 2100);
    expect(await db.filedInstance('2.25.1')).toMatchObject({ originalStudyUid: '1.2.3' });
    expect((await db.forwardItem(sent!.id))?.state).toBe('delivered');
    expect((await db.forwardCounts()).map((c) => c.pending + c.inFlight + c.delivered)).toEqual([2, 2]);
    expect(await db.filedInstance('2.25.9')).toBeUndefined();

    // All or nothing: a failure in the middle files nothing and queues nothing.
    raw(file, (other) =>
      other.exec(`CREATE TRIGGER boom BEFORE INSERT ON forward_queue WHEN NEW.destination = 'BAD@h:3'
                  BEGIN SELECT RAISE(ABORT, 'boom'); END`),
    );
    await expect(db.fileInstances([filing(3)], ['A@h:1', 'BAD@h:3'])).rejects.toThrow(/boom/);
    expect(await db.filedInstance('2.25.3')).toBeUndefined();
    expect(await db.forwardItems('A@h:1')).toHaveLength(2);
    await db.fileInstances([filing(4)], ['A@h:1']);
    expect(await db.filedInstancesSince(mark)).toBe(1); // the failed one left no row
    await db.fileInstances([], ['A@h:1']); // nothing to file: nothing to do
    await db.close();
    await expect(db.filedInstanceCount()).rejects.toThrow();
    await db.close(); // twice: harmless
  });

  it('lists the most recently filed studies with their counts and forward states; drops a removed destination', async () => {
    const db = await open(join(tmp, 'studies.sqlite'));
    const filing = (rid: string, n: number, i: number, modality: string): InstanceFiling => ({
      newSopUid: `2.25.${rid}${n}${i}`,
      originalSopUid: `1.2.3.${i}`,
      researchId: rid,
      sessionN: n,
      outputPath: `${rid}/${rid}_${n}/x/${i}.dcm`,
      callingAet: 'PACS',
      forwardFile: `/out/${rid}/${rid}_${n}/x/${i}.dcm`,
      studyDate: '20240615',
      modality,
    });
    await db.fileInstances([filing('R1', 1, 1, 'CT'), filing('R1', 1, 2, 'SR')], ['A@h:1'], 1000);
    await db.fileInstances([filing('R2', 1, 1, 'MR')], ['A@h:1'], 2000);
    await db.fileInstances([filing('R1', 2, 1, 'CT')], [], 3000);
    const [item] = await db.claimDueForwards('A@h:1', 1, 5000);
    await db.recordForwardRound({ destination: 'A@h:1', outcomes: [{ id: item!.id, outcome: 'dead', reason: 'x' }] });

    const studies = await db.recentStudies(10);
    expect(studies.map((s) => [s.researchId, s.sessionN, s.instances, s.modalities, s.lastFiledAt])).toEqual([
      ['R1', 2, 1, ['CT'], 3000],
      ['R2', 1, 1, ['MR'], 2000],
      ['R1', 1, 2, ['CT', 'SR'], 1000],
    ]);
    expect(studies[0]!.forward).toEqual({});
    expect(studies[2]).toMatchObject({
      studyDate: '20240615',
      firstFiledAt: 1000,
      forward: { 'A@h:1': { dead: 1, pending: 1 } },
    });
    expect(await db.recentStudies(1)).toHaveLength(1);
    expect(await db.filedInstance('2.25.R111')).toMatchObject({ studyDate: '20240615', modality: 'CT' });

    expect(await db.dropForwards('A@h:1')).toBe(3);
    expect(await db.forwardCounts()).toEqual([]);
    expect((await db.recentStudies(10))[2]!.forward).toEqual({});
    await db.close();
  });

  it('refuses a database from a newer schema version, in one line naming the file', async () => {
    const file = join(tmp, 'future.sqlite');
    await (await open(file)).close();
    raw(file, (db) => db.pragma(`user_version = ${STATE_SCHEMA_VERSION + 1}`));
    const err = await open(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateSchemaError);
    expect((err as Error).message).toMatch(/schema version/);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).not.toContain('\n');
  });

  it('names the file when it is not a database', async () => {
    const file = join(tmp, 'not-a-db.sqlite');
    writeFileSync(file, 'this is not an SQLite database, but it is long enough to have a header......');
    await expect(open(file)).rejects.toThrow(`state database ${file}: not an SQLite database`);
  });

  it('with create: false, creates nothing and says where it looked', async () => {
    const dir = join(tmp, 'nothing-here');
    const file = join(dir, 'state.sqlite');
    const err = await openStateStore(file, { create: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateNotFoundError);
    expect((err as StateNotFoundError).location).toBe(file);
    expect(existsSync(dir)).toBe(false);
    mkdirSync(dir);
    await expect(openStateStore(file, { create: false })).rejects.toBeInstanceOf(StateNotFoundError);
    expect(readdirSync(dir)).toEqual([]);
    // An existing state opens as usual.
    await (await open(file)).close();
    const again = await openStateStore(file, { create: false });
    expect(await again.sessionIndex('R', 'k')).toBe(1);
    await again.close();
  });

  it('read only (batch --dry-run): reads numbers and the secret, writes nothing, leaves no file behind', async () => {
    const dir = join(tmp, 'read-only');
    const file = join(dir, 'state.sqlite');
    await expect(openStateStore(file, { create: false, readOnly: true })).rejects.toBeInstanceOf(StateNotFoundError);
    expect(existsSync(dir)).toBe(false);
    const rw = await open(file);
    const secret = await rw.uidSecret();
    await rw.sessionIndices('R', ['folder:p/a', 'folder:p/b']);
    await rw.linkSessionKeys('R', [['study:A', 2]]);
    await rw.claimStudies([{ studyUid: '2.25.1', researchId: 'R' }]);
    await rw.close();
    const before = readFileSync(file);
    const mtime = statSync(file).mtimeMs;

    const ro = await openStateStore(file, { create: false, readOnly: true });
    expect(await ro.uidSecret()).toEqual(secret);
    expect(await ro.knownSessionIndex('R', 'study:A')).toBe(2);
    expect(await ro.highestSessionIndex('R')).toBe(2);
    expect(await ro.highestSessionIndex('OTHER')).toBe(0);
    expect(await ro.knownStudyOwners(['2.25.1', '2.25.2'])).toEqual(new Map([['2.25.1', 'R']]));
    await expect(ro.claimStudies([{ studyUid: '2.25.2', researchId: 'R' }])).rejects.toMatchObject({
      code: 'SQLITE_READONLY',
    });
    await expect(ro.sessionIndex('R', 'folder:p/c')).rejects.toMatchObject({ code: 'SQLITE_READONLY' });
    await ro.close();
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(statSync(file).mtimeMs).toBe(mtime);
    expect(readdirSync(dir)).toEqual(['state.sqlite']);
    // Nothing was assigned: the writer gives the next number.
    const again = await open(file);
    expect(await again.sessionIndex('R', 'folder:p/c')).toBe(3);
    await again.close();

    // An older schema is not migrated by a reader: it says what to do instead.
    const old = join(dir, 'old.sqlite');
    const db = new Database(old);
    db.pragma('user_version = 1');
    db.close();
    await expect(openStateStore(old, { create: false, readOnly: true })).rejects.toThrow(
      /schema version 1, .*a run that writes \(without --dry-run\) upgrades an older one/,
    );
  });

  it('four processes creating a new database at once agree on one secret', async () => {
    const file = join(tmp, 'race', 'new.sqlite');
    const startAt = Date.now() + 1500;
    const outs = await Promise.all([0, 1, 2, 3].map(() => runWorker(file, startAt, [])));
    const secrets = new Set(outs.map((o) => o.secret));
    expect(secrets.size).toBe(1);
    const db = await open(file);
    expect((await db.uidSecret()).toString('hex')).toBe(outs[0]!.secret);
    await db.close();
  });

  it('four processes assigning concurrently get unique, gap-free, agreed indices', async () => {
    const file = join(tmp, 'concurrent.sqlite');
    await (await open(file)).close();
    const shared = Array.from({ length: 60 }, (_, i) => `study:S${String(i).padStart(2, '0')}`);
    const startAt = Date.now() + 1500;
    const outs = await Promise.all(
      [0, 1, 2, 3].map((w) => {
        const own = Array.from({ length: 25 }, (_, i) => `study-uid:W${w}-${i}`);
        const mine = shuffled([...shared, ...own], w + 1);
        const ops: Op[] = [];
        // Mix single-key transactions and batches, two research IDs.
        for (let i = 0; i < mine.length; i += 5) {
          const chunk = mine.slice(i, i + 5);
          ops.push(
            i % 10 === 0
              ? { kind: 'one', researchId: 'R1', keys: chunk }
              : { kind: 'many', researchId: 'R1', keys: chunk },
          );
          ops.push({ kind: 'one', researchId: 'R2', keys: chunk.slice(0, 2) });
        }
        return runWorker(file, startAt, ops);
      }),
    );

    // All processes agree on every key they both saw.
    const merged = new Map<string, number>();
    for (const o of outs) {
      for (const [k, n] of Object.entries(o.results) as [string, number][]) {
        if (merged.has(k)) expect(n, k).toBe(merged.get(k));
        merged.set(k, n);
      }
    }
    // Per research ID: one index per key, exactly 1..count (unique, no gaps).
    for (const rid of ['R1', 'R2']) {
      const ns = [...merged].filter(([k]) => k.startsWith(`${rid}|`)).map(([, n]) => n);
      expect(new Set(ns).size).toBe(ns.length);
      expect([...ns].sort((a, b) => a - b)).toEqual(Array.from({ length: ns.length }, (_, i) => i + 1));
    }
    expect([...merged.keys()].filter((k) => k.startsWith('R1|'))).toHaveLength(60 + 4 * 25);

    // And the database holds exactly what the processes were told.
    const rows = raw(
      file,
      (db) =>
        db.prepare('SELECT research_id, key, n FROM session_index').all() as {
          research_id: string;
          key: string;
          n: number;
        }[],
    );
    expect(rows).toHaveLength(merged.size);
    for (const r of rows) expect(merged.get(`${r.research_id}|${r.key}`)).toBe(r.n);
  });
});

describe('study owners (one study, one research patient)', () => {
  it('the first claim of a study owns it; later claims, in this process or a later one, are told the owner', async () => {
    const file = join(tmp, 'owners.sqlite');
    const a = await open(file);
    expect(
      await a.claimStudies([
        { studyUid: '2.25.1', researchId: 'R1' },
        { studyUid: '2.25.1', researchId: 'R2' }, // same study, same transaction: R1 was first
        { studyUid: '2.25.2', researchId: 'R2' },
      ]),
    ).toEqual(['R1', 'R1', 'R2']);
    expect(await a.claimStudies([])).toEqual([]);
    await expect(a.claimStudies([{ studyUid: '', researchId: 'R1' }])).rejects.toThrow(/empty study UID/);
    await a.close();
    const b = await open(file);
    expect(await b.claimStudies([{ studyUid: '2.25.1', researchId: 'R2' }])).toEqual(['R1']);
    expect(await b.claimStudies([{ studyUid: '2.25.3', researchId: 'R2' }])).toEqual(['R2']);
    await b.close();
  });

  it('four processes claiming the same studies at once agree on one owner each', async () => {
    const file = join(tmp, 'owners-concurrent.sqlite');
    await (await open(file)).close();
    const studies = Array.from({ length: 40 }, (_, i) => `2.25.${1000 + i}`);
    const startAt = Date.now() + 1500;
    const outs = await Promise.all(
      [0, 1, 2, 3].map((w) => {
        const mine = shuffled(studies, w + 7);
        const ops: Op[] = [];
        for (let i = 0; i < mine.length; i += 4)
          ops.push({ kind: 'claim', researchId: `R${w}`, keys: mine.slice(i, i + 4) });
        return runWorker(file, startAt, ops);
      }),
    );
    const owners = new Map<string, string>();
    for (const o of outs) {
      for (const [k, owner] of Object.entries(o.results)) {
        if (owners.has(k)) expect(owner, k).toBe(owners.get(k));
        owners.set(k, owner as string);
      }
    }
    expect(owners.size).toBe(studies.length);
    // Every study has the owner the database holds, and it is one of the claimers.
    const rows = raw(file, (db) => db.prepare('SELECT study_uid, research_id FROM study_owner').all()) as {
      study_uid: string;
      research_id: string;
    }[];
    expect(rows).toHaveLength(studies.length);
    for (const r of rows) expect(owners.get(`claim|${r.study_uid}`)).toBe(r.research_id);
    expect(new Set(rows.map((r) => r.research_id)).size).toBeGreaterThan(0);
  });
});

describe('state migrations', () => {
  /** A copy of a state file that main's code wrote before src/state owned every table. */
  function fixture(name: string): string {
    const file = join(tmp, `${name}-${Math.random().toString(36).slice(2)}.sqlite`);
    copyFileSync(join(root, 'test/fixtures', `state-main-${name}.sqlite`), file);
    return file;
  }

  it("a node's state written by the ensure*Schema code migrates with every row kept", async () => {
    const file = fixture('node');
    const before = raw(file, (db) => ({
      version: db.pragma('user_version', { simple: true }),
      secret: (db.prepare("SELECT value FROM meta WHERE key = 'uid_secret'").get() as { value: Buffer }).value,
      tables: Object.fromEntries(
        ['meta', 'session_index', 'session_alias', 'filed_instance', 'forward_queue'].map((t) => [
          t,
          db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all(),
        ]),
      ),
    }));
    expect(before.version).toBe(2);
    for (const [t, rows] of Object.entries(before.tables)) expect(rows.length, t).toBeGreaterThan(0);

    const store = await open(file);
    // Every row, as it was, through the store.
    expect((await store.uidSecret()).equals(before.secret)).toBe(true);
    expect(await store.knownSessionIndex('RS_01', 'folder:Doe/2023-03-01_CT')).toBe(1);
    expect(await store.knownSessionIndex('RS_01', 'folder:Doe/2023-04-01_MR')).toBe(2);
    expect(await store.knownSessionIndex('RS_01', 'acc:A998877')).toBe(3);
    expect(await store.knownSessionIndex('RS_01', 'acc:A111')).toBe(1); // linked key
    expect(await store.knownSessionIndex('RS_02', 'uid:1.2.826.0.1.3680043.8.498.1')).toBe(1);
    expect(await store.sessionIndex('RS_01', 'acc:NEW')).toBe(4);
    expect(await store.filedInstanceCount()).toBe(4);
    for (let i = 1; i <= 4; i++) {
      expect(await store.filedInstance(`2.25.${i}`)).toEqual({
        newSopUid: `2.25.${i}`,
        originalSopUid: `1.2.826.0.1.3680043.8.498.1.${i}`,
        originalStudyUid: null, // filed before v4 recorded it
        researchId: 'RS_01',
        sessionN: 1,
        outputPath: `RS_01/RS_01_1/CT_S1_abcdef12/2.25.${i}.dcm`,
        callingAet: 'PACS1',
        filedAt: 1700000000000 + i,
      });
    }
    const D = 'RESEARCH@127.0.0.1:104';
    const O = 'OTHER@pacs.example.org:11112';
    expect(await store.forwardCounts()).toEqual([
      { destination: O, pending: 0, inFlight: 1, delivered: 0, dead: 0, oldestPendingAt: 1700000003000 },
      { destination: D, pending: 2, inFlight: 0, delivered: 1, dead: 1, oldestPendingAt: 1700000000003 },
    ]);
    expect((await store.forwardItems(D)).map((i) => [i.state, i.attempts, i.lastError, i.lastStatus])).toEqual([
      ['delivered', 0, null, 0],
      ['dead', 1, 'peer does not accept SOP class CtImageStorage', 0x0122],
      ['pending', 1, 'no response: connection refused', null],
      ['pending', 0, null, null],
    ]);
    expect(await store.deadForwardReasons()).toEqual([
      { destination: D, reason: 'peer does not accept SOP class CtImageStorage', count: 1 },
    ]);
    // And the queue works on: the retry is due at its time, the interrupted item is recovered.
    expect(await store.nextForwardDueAt(D)).toBe(1700000000004);
    // The studies filed before v5 are listed from their filings (filed_study filled by the migration).
    expect((await store.recentStudies(5)).map((s) => [s.researchId, s.sessionN, s.lastFiledAt])).toEqual([
      ['RS_01', 1, 1700000000004],
    ]);
    expect(await store.recoverInFlightForwards(O)).toBe(1);
    expect((await store.claimDueForwards(O, 10, 1700000005000)).map((i) => i.filePath)).toEqual(['/data/output/x.dcm']);
    await store.close();

    // The raw rows too: none lost or changed by the migration.
    raw(file, (db) => {
      expect(db.pragma('user_version', { simple: true })).toBe(STATE_SCHEMA_VERSION);
      for (const t of ['meta', 'session_alias'] as const) {
        expect(db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all(), t).toEqual(before.tables[t]);
      }
      // v5 added the original study, v6 three columns of the status page: unknown for rows filed before.
      expect(db.prepare('SELECT * FROM filed_instance ORDER BY 1, 2').all()).toEqual(
        before.tables.filed_instance!.map((r) => ({
          ...(r as object),
          original_study_uid: null,
          study_date: null,
          modality: null,
          forward_file: null,
        })),
      );
      const indices = db.prepare('SELECT * FROM session_index ORDER BY 1, 2').all();
      expect(indices).toEqual(expect.arrayContaining(before.tables.session_index!));
    });
  });

  it('a batch-only state (no node tables yet) migrates and then files and queues', async () => {
    const file = fixture('batch');
    const tables = () =>
      raw(file, (db) =>
        (
          db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]
        ).map((r) => r.name),
      );
    expect(tables()).toEqual(['meta', 'session_alias', 'session_index']);
    const store = await open(file);
    expect(tables()).toEqual([
      'filed_instance',
      'filed_study',
      'forward_queue',
      'meta',
      'retrieve_job',
      'retrieve_row',
      'retrieve_row_study',
      'retrieve_study',
      'session_alias',
      'session_index',
      'study_owner',
    ]);
    expect(await store.knownSessionIndex('RS_03', 'folder:Roe/b')).toBe(2);
    await store.fileInstances(
      [
        {
          newSopUid: '2.25.7',
          originalSopUid: '1.2.7',
          researchId: 'RS_03',
          sessionN: 3,
          outputPath: 'a.dcm',
          callingAet: 'X',
          forwardFile: '/o/a.dcm',
        },
      ],
      ['R@h:1'],
    );
    expect(await store.forwardCounts()).toMatchObject([{ destination: 'R@h:1', pending: 1 }]);
    await store.close();
  });

  it('a new state gets every table at once, and opening it again changes nothing', async () => {
    const file = join(tmp, 'fresh.sqlite');
    await (await open(file)).close();
    const schema = () => raw(file, (db) => db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all());
    const first = schema();
    expect(first.map((r) => (r as { name: string }).name)).toEqual(
      expect.arrayContaining([
        'filed_instance',
        'forward_queue',
        'forward_queue_due',
        'meta',
        'session_alias',
        'session_index',
        'study_owner',
      ]),
    );
    await (await open(file)).close();
    expect(schema()).toEqual(first);
  });
});
