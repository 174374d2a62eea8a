// `dicom-deid quarantine replay` run while the node runs: the status page's counts (filed,
// quarantined: /api/status `totals`, which the page shows) are true of it, though another process
// did the filing (they used to count only the node's own processing); and the replay files the
// studies in the order they arrived, so their session numbers are those arrival gives, as the
// node numbers sessions on arrival (it used to go by the quarantine's hashed folder names).
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  CSV_HEADER,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';

let root = '';

beforeAll(() => {
  root = tempDir('q-replay-node');
});

afterEach(async () => {
  await stopAllNodes();
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

interface Totals {
  filed: number;
  quarantined: number;
}

async function totals(httpUrl: string): Promise<Totals> {
  const s = (await (await fetch(`${httpUrl}/api/status`)).json()) as { totals?: Totals };
  if (!s.totals) throw new Error('/api/status has no totals');
  return s.totals;
}

/** The quarantine's folder name of a study (src/node/quarantine.ts: a hash of its UID). */
const folderOf = (studyUid: string) => createHash('sha256').update(studyUid).digest('hex').slice(0, 16);

describe('quarantine replay by the command while the node runs', () => {
  it('the page totals count it, and the studies get their session numbers in order of arrival', async () => {
    const csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN7500', accession: 'ACC7500', researchId: 'RS_75' }]);
    const node = await startNode({ dir: join(root, 'node'), csv });
    expect(node.httpUrl).not.toBe('');

    // Three studies of a patient the CSV does not have yet, sent in the reverse order of their
    // quarantine folders' names (so a replay in folder order would number them backwards).
    const uids = ['1', '2', '3'].map((k) => `1.2.826.0.1.3680043.8.498.7501${k}`);
    const arrival = [...uids].sort((a, b) => (folderOf(a) < folderOf(b) ? 1 : -1));
    expect(arrival.map(folderOf)).toEqual(arrival.map(folderOf).sort().reverse());
    for (const [i, uid] of arrival.entries()) {
      const files = makeSamples(join(root, `in${i}`), 'MRN7501', `ACC750${i + 1}`, uid, `q${i}`).filter((f) =>
        /CT_small/.test(f),
      );
      expect(files).toHaveLength(1);
      expect(storescu(node.port, files).status).toBe(0);
      await new Promise((r) => setTimeout(r, 20)); // distinct arrival times
    }
    await waitFor(async () => (await totals(node.httpUrl)).quarantined === 3, 20_000, 'three quarantined');
    expect(await totals(node.httpUrl)).toEqual({ filed: 0, quarantined: 3 });

    // The CSV gets the patient; the command replays the quarantine in its own process.
    writeFileSync(
      csv,
      [CSV_HEADER, 'MRN7500,ACC7500,RS_75,2024-03-01,2024-06-15,', 'MRN7501,,RS_76,2024-03-01,2024-06-15,', ''].join(
        '\n',
      ),
    );
    const replay = runCli(['quarantine', 'replay', '--config', node.configPath]);
    expect(replay.stdout + replay.stderr).toContain('replay: 3 instances filed, 0 still held');
    expect(replay.status).toBe(0);

    // The page's totals: three filed since the node started, none held (the cache lasts 2 s).
    await waitFor(async () => (await totals(node.httpUrl)).quarantined === 0, 10_000, 'quarantine emptied');
    expect(await totals(node.httpUrl)).toEqual({ filed: 3, quarantined: 0 });

    // Session numbers in order of arrival: the first study sent is RS_76_1.
    const db = new Database(node.paths.db, { readonly: true });
    try {
      const rows = db
        .prepare('SELECT original_study_uid AS uid, session_n AS n FROM filed_instance WHERE research_id = ?')
        .all('RS_76') as { uid: string; n: number }[];
      const sessionOf = new Map(rows.map((r) => [r.uid, r.n]));
      expect(arrival.map((uid) => sessionOf.get(uid))).toEqual([1, 2, 3]);
    } finally {
      db.close();
    }

    // A study the node files itself afterwards counts too.
    const more = makeSamples(
      join(root, 'in-more'),
      'MRN7500',
      'ACC7500',
      '1.2.826.0.1.3680043.8.498.75004',
      'm',
    ).filter((f) => /CT_small|MR_small_implicit/.test(f));
    expect(storescu(node.port, more).status).toBe(0);
    await waitFor(async () => (await totals(node.httpUrl)).filed === 5, 20_000, 'five filed');
    expect(await node.stop()).toBe(0);
  }, 120_000);
});
