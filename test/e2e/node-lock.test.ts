// One node per spool and per state: a second `serve` on a spool or state a running node holds is
// refused (exit 2, naming the holder's PID) before it reads, recovers or prepares anything, so
// the running node loses nothing; kill -9 of the holder releases the lock for the next start; a
// start that fails (lock held, DICOM or HTTP port in use) writes no audit file, prepares no spool
// reserve and does not say "stopped". A batch run on the state a node holds works (SQLite serialises the shared tables).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/forward-helpers.js';
import {
  ensureBuilt,
  listFilesRecursive,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';

let root = '';
let csv = '';
let samples: string[] = [];
const auditFiles = (logDir: string) =>
  existsSync(logDir) ? readdirSync(logDir).filter((n) => n.startsWith('deid_log_')) : [];

beforeAll(() => {
  ensureBuilt();
  root = tempDir('lock');
  csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN5101', accession: 'ACC5101', researchId: 'RS_51' }]);
  samples = makeSamples(join(root, 'in'), 'MRN5101', 'ACC5101', '1.2.826.0.1.3680043.8.498.5101', 'l').filter((f) =>
    /CT_small|MR_small_implicit|MR_small_bigendian/.test(f),
  );
});

afterEach(async () => {
  await stopAllNodes();
});

afterAll(async () => {
  await stopAllNodes();
  rmSync(root, { recursive: true, force: true }); // the node's spool reserve is large
});

/** Occupies a free port on 127.0.0.1; returns it and a close function. */
async function occupyPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('one node per spool and per state', () => {
  it('a second serve on the same spool or state is refused; the first loses nothing; kill -9 frees the lock', async () => {
    expect(samples).toHaveLength(3);
    const dir = join(root, 'a');
    const a = await startNode({ dir, csv });
    expect(storescu(a.port, samples).status).toBe(0);
    await a.waitForLog(/RS_51_1: 3 instances filed/);
    const audits = auditFiles(a.paths.logDir);
    expect(audits).toHaveLength(1);

    // The same config: refused at once, naming the running node's PID.
    const second = runCli(['serve', '--config', a.configPath]);
    expect(second.status).toBe(2);
    expect(second.stderr.trim().split('\n')).toEqual([
      `dicom-deid: the spool ${a.paths.spool} is in use by process ${a.proc.pid}: another dicom-deid node runs on it (one node per spool; stop it first, or give this one its own spool)`,
    ]);
    expect(second.stderr).not.toMatch(/stopped/);
    // Its own spool but the same state: refused by the state's lock.
    const otherSpool = join(root, 'other-spool');
    const third = runCli(['serve', '--config', a.configPath, '--spool', otherSpool]);
    expect(third.status).toBe(2);
    expect(third.stderr).toContain(`the state ${a.paths.db} is in use by process ${a.proc.pid}`);
    expect(auditFiles(a.paths.logDir)).toEqual(audits); // no audit file from the refused starts
    // Nothing prepared in the spool it locked before it found the state taken (only its lock file).
    expect(readdirSync(otherSpool).filter((n) => n !== '.lock')).toEqual([]);

    // The running node is unharmed: it files everything sent after the refused starts.
    const more = join(root, 'more');
    const resent = makeSamples(more, 'MRN5101', 'ACC5102', '1.2.826.0.1.3680043.8.498.5102', 'm').filter((f) =>
      /CT_small|MR_small_implicit|MR_small_bigendian/.test(f),
    );
    expect(storescu(a.port, resent).status).toBe(0);
    await a.waitForLog(/RS_51_2: 3 instances filed/);
    expect(a.logs()).not.toMatch(/gone from the spool journal/);

    // A batch run on the state the node holds works (shared tables; the next session number).
    const input = join(root, 'batch-in', 'Patient', 'S1');
    mkdirSync(input, { recursive: true });
    const batchStudy = makeSamples(join(root, 'b'), 'MRN5101', 'ACC5199', '1.2.826.0.1.3680043.8.498.5199', 'k');
    for (const f of batchStudy.slice(0, 2)) copyFileSync(f, join(input, basename(f)));
    const batch = runCli([
      'batch',
      '--csv',
      csv,
      '--input',
      join(root, 'batch-in'),
      '--output',
      join(root, 'batch-out'),
      '--db',
      a.paths.db,
      '--log-dir',
      join(root, 'batch-logs'),
      '--quiet',
    ]);
    expect(batch.status, batch.stderr).toBe(0);
    expect(readdirSync(join(root, 'batch-out', 'RS_51'))).toEqual(['RS_51_3']);

    // kill -9: the kernel drops the lock; the next node starts on the same spool and state.
    await a.kill9();
    const b = await startNode({ dir, csv });
    expect(b.logs()).not.toMatch(/in use by/);
    expect(storescu(b.port, samples).status).toBe(0);
    await b.waitForLog(/RS_51_1: 3 instances filed/);
    expect(await b.stop()).toBe(0);
    expect(listFilesRecursive(join(dir, 'output', 'RS_51'))).toHaveLength(6);
  }, 120_000);

  it('a start that fails on a port in use writes no audit file and does not say "stopped"', async () => {
    const busy = await occupyPort();
    try {
      const dir = join(root, 'busy-dicom');
      const err = await startNode({ dir, csv, port: busy.port }).catch((e: Error) => e);
      expect(String(err)).toContain(
        `dicom-deid: the DICOM port ${busy.port} is already in use (port, --port): another program listens on it; stop it or choose another port`,
      );
      expect(String(err)).not.toMatch(/\bstopped\b/);
      expect(auditFiles(join(dir, 'logs'))).toEqual([]);
      // Every port is bound before the slow parts: no spool reserve was prepared (nor recovered).
      expect(String(err)).not.toMatch(/spool reserve/);
      expect(readdirSync(join(dir, 'spool')).filter((n) => n !== '.lock')).toEqual([]);
      // Nor a state, nor a marked output (found by a new-user trial: a start that failed on its
      // port had made both, so a corrected --db would then have found the output "another's").
      expect(existsSync(join(dir, 'state', 'state.sqlite'))).toBe(false);
      expect(existsSync(join(dir, 'output'))).toBe(false);

      const dir2 = join(root, 'busy-http');
      const err2 = await startNode({ dir: dir2, csv, config: { httpPort: busy.port } }).catch((e: Error) => e);
      expect(String(err2)).toContain(
        `cannot serve HTTP on 127.0.0.1:${busy.port} (httpHost, httpPort): the port is already in use`,
      );
      expect(String(err2)).not.toMatch(/\bstopped\b/);
      expect(auditFiles(join(dir2, 'logs'))).toEqual([]);
      // It failed before the slow parts: no spool reserve was prepared.
      expect(readdirSync(join(dir2, 'spool')).filter((n) => n !== '.lock')).toEqual([]);

      // Both taken: one start says both (it named only the HTTP port; the DICOM one came next time).
      const busy2 = await occupyPort();
      try {
        const dir3 = join(root, 'busy-both');
        const err3 = await startNode({ dir: dir3, csv, port: busy2.port, config: { httpPort: busy.port } }).catch(
          (e: Error) => e,
        );
        expect(String(err3)).toContain(
          `dicom-deid: cannot serve HTTP on 127.0.0.1:${busy.port} (httpHost, httpPort): the port is already in use\n` +
            `dicom-deid: the DICOM port ${busy2.port} is already in use too (port, --port)`,
        );
      } finally {
        await busy2.close();
      }
    } finally {
      await busy.close();
    }
  }, 60_000);
});
