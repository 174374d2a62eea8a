import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import Database from 'better-sqlite3';
import { STATE_SCHEMA_VERSION, StateDb } from '../src/state/stateDb.js';

const root = resolve(import.meta.dirname, '..');
let tmp: string;
let compiledModule: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'statedb-test-'));
  // Child processes can't load TypeScript: transpile the real stateDb.ts (it has no local imports)
  // into node_modules/.cache so that `better-sqlite3` resolves from the project.
  const cacheDir = join(root, 'node_modules', '.cache', 'dicom-deid-test', String(process.pid));
  mkdirSync(cacheDir, { recursive: true });
  const src = readFileSync(join(root, 'src/state/stateDb.ts'), 'utf8');
  const out = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  compiledModule = join(cacheDir, 'stateDb.mjs');
  writeFileSync(compiledModule, out.outputText);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  rmSync(join(compiledModule, '..'), { recursive: true, force: true });
});

interface Op {
  kind: 'one' | 'many';
  researchId: string;
  keys: string[];
}

function runWorker(
  dbFile: string,
  startAt: number,
  ops: Op[],
): Promise<{ secret: string; results: Record<string, number> }> {
  return new Promise((resolvePromise, reject) => {
    const arg = JSON.stringify({ modulePath: pathToFileURL(compiledModule).href, dbFile, startAt, ops });
    const child = spawn(process.execPath, [join(root, 'test/fixtures/stateDbWorker.mjs'), arg], {
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

describe('StateDb', () => {
  it('creates parent dirs, WAL, schema version, a private file', () => {
    const file = join(tmp, 'a', 'b', 'state.sqlite');
    const db = StateDb.open(file);
    expect(db.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.db.pragma('user_version', { simple: true })).toBe(STATE_SCHEMA_VERSION);
    expect(db.db.pragma('busy_timeout', { simple: true })).toBe(10000);
    expect(db.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    db.close();
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o077).toBe(0);
  });

  it('keeps the UID secret across reopen', () => {
    const file = join(tmp, 'secret.sqlite');
    const a = StateDb.open(file);
    const s1 = a.uidSecret();
    expect(s1).toHaveLength(32);
    expect(a.uidSecret().equals(s1)).toBe(true);
    a.close();
    const b = StateDb.open(file);
    expect(b.uidSecret().equals(s1)).toBe(true);
    b.close();
    const c = StateDb.open(join(tmp, 'other-secret.sqlite'));
    expect(c.uidSecret().equals(s1)).toBe(false);
    c.close();
  });

  it('assigns indices per research ID, reuses known keys, and persists them across reopen', () => {
    const file = join(tmp, 'idx.sqlite');
    const a = StateDb.open(file);
    expect(a.sessionIndex('R1', 'study:A1')).toBe(1);
    expect(a.sessionIndex('R1', 'study:A2')).toBe(2);
    expect(a.sessionIndex('R2', 'study:A3')).toBe(1);
    expect(a.sessionIndex('R1', 'study:A1')).toBe(1);
    a.close();
    const b = StateDb.open(file);
    expect(b.sessionIndex('R1', 'study:A2')).toBe(2);
    expect(b.sessionIndex('R1', 'study:A9')).toBe(3);
    b.close();
  });

  it('batch mode numbers new keys in the order given, keeps known ones, ignores duplicates', () => {
    const db = StateDb.open(join(tmp, 'batch.sqlite'));
    expect(db.sessionIndex('P', 'folder:p/b')).toBe(1);
    const m = db.sessionIndices('P', ['folder:p/a', 'folder:p/b', 'folder:p/c', 'folder:p/a']);
    expect([...m]).toEqual([
      ['folder:p/a', 2],
      ['folder:p/b', 1],
      ['folder:p/c', 3],
    ]);
    expect(db.sessionIndices('P', []).size).toBe(0);
    db.close();
  });

  it('a new key that names the same session as a numbered one takes its number (sameAs)', () => {
    const db = StateDb.open(join(tmp, 'same-as.sqlite'));
    expect(db.sessionIndex('R1', 'study:X')).toBe(1); // the node numbered study X
    const folders = ['folder:p/a', 'folder:p/b', 'folder:p/c'];
    // p/b holds X; p/c holds a study nobody numbered: it is new like p/a.
    const sameAs = new Map([
      ['folder:p/b', 'study:X'],
      ['folder:p/c', 'study:Y'],
    ]);
    expect([...db.sessionIndices('R1', folders, sameAs)]).toEqual([
      ['folder:p/a', 2],
      ['folder:p/b', 1],
      ['folder:p/c', 3],
    ]);
    expect(db.knownSessionIndex('R1', 'folder:p/b')).toBe(1);
    expect(db.knownSessionIndex('R1', 'study:Y')).toBeUndefined(); // not linked by this call
    // Stable afterwards, with or without the hint; the next new key continues after 3.
    expect([...db.sessionIndices('R1', folders)]).toEqual([...db.sessionIndices('R1', folders, sameAs)]);
    expect(db.sessionIndex('R1', 'study:Z')).toBe(4);
    db.close();
  });

  it('a failed transaction assigns nothing (no gaps)', () => {
    const db = StateDb.open(join(tmp, 'rollback.sqlite'));
    db.sessionIndex('R', 'k1');
    expect(() => db.sessionIndices('', ['x'])).toThrow();
    // Make the second insert of a batch fail: the whole batch must roll back.
    db.db.exec(`CREATE TEMP TRIGGER boom BEFORE INSERT ON session_index WHEN NEW.key = 'bad'
                BEGIN SELECT RAISE(ABORT, 'boom'); END`);
    expect(() => db.sessionIndices('R', ['k2', 'bad'])).toThrow(/boom/);
    expect(db.sessionIndex('R', 'k3')).toBe(2); // k2 was rolled back with 'bad'
    db.close();
  });

  it('refuses a database from a newer schema version', () => {
    const file = join(tmp, 'future.sqlite');
    StateDb.open(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${STATE_SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => StateDb.open(file)).toThrow(/schema version/);
  });

  it('four processes creating a new database at once agree on one secret', async () => {
    const file = join(tmp, 'race', 'new.sqlite');
    const startAt = Date.now() + 1500;
    const outs = await Promise.all([0, 1, 2, 3].map(() => runWorker(file, startAt, [])));
    const secrets = new Set(outs.map((o) => o.secret));
    expect(secrets.size).toBe(1);
    const db = StateDb.open(file);
    expect(db.uidSecret().toString('hex')).toBe(outs[0]!.secret);
    db.close();
  });

  it('four processes assigning concurrently get unique, gap-free, agreed indices', async () => {
    const file = join(tmp, 'concurrent.sqlite');
    StateDb.open(file).close();
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
      for (const [k, n] of Object.entries(o.results)) {
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
    const db = StateDb.open(file);
    const rows = db.db.prepare('SELECT research_id, key, n FROM session_index').all() as {
      research_id: string;
      key: string;
      n: number;
    }[];
    expect(rows).toHaveLength(merged.size);
    for (const r of rows) expect(merged.get(`${r.research_id}|${r.key}`)).toBe(r.n);
    db.close();
  });
});
