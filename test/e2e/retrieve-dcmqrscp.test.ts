// `dicom-deid retrieve` against dcmtk's dcmqrscp as the hospital PACS (indexed with dcmqridx,
// fork mode). dcmqrscp gives no instance counts and no ModalitiesInStudy: the job counts instances
// at image level and reads modalities from the series. It refuses an unknown move destination
// with 0xA801. Also: dry run, status, cancel.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/state/openStateStore.js';
import { freePort, rmrf, stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import { listFilesRecursive } from '../helpers/serve-helpers.js';
import {
  makeCohort,
  readReport,
  reportPathOf,
  retrieveNode,
  runRetrieve,
  spawnRetrieve,
  startDcmqrscp,
  type CohortStudy,
  type CsvRow,
} from '../helpers/retrieve-helpers.js';

const U = '1.2.826.0.1.3680043.9.7433.4';
const COHORT: CohortStudy[] = [
  { patientId: 'P0101', accession: 'B110', studyUid: `${U}.11`, studyDate: '20230110', modality: 'CT', instances: 3 },
  {
    patientId: 'P0101',
    accession: 'B111',
    studyUid: `${U}.12`,
    studyDate: '20230301',
    modality: 'MR',
    series: 2,
    instances: 2,
    ts: 'implicit',
  },
  { patientId: 'P0102', accession: 'B200', studyUid: `${U}.2`, studyDate: '20230302', instances: 2 },
];

const ROWS: CsvRow[] = [
  ['P0101', '', 'RES101', '2023-03-01'],
  ['', 'B200', 'RES102', '2023-03-02'],
  ['NOSUCH', '', 'RES103', '2023-03-03'],
];

describe('retrieve from dcmqrscp', () => {
  let dir = '';
  let nodePort = 0;
  let qrPort = 0;
  const pacs = () => `QRSCP@127.0.0.1:${qrPort}`;

  beforeAll(async () => {
    dir = tempDir('retrieve-qr');
    nodePort = await freePort();
    qrPort = await freePort();
    const files = makeCohort(join(dir, 'cohort'), COHORT);
    await startDcmqrscp(join(dir, 'qr'), [...files.values()].flat(), {
      port: qrPort,
      hosts: [{ aeTitle: 'DEID', port: nodePort }],
    });
  });

  afterAll(async () => {
    await stopAllPeers();
    if (dir) rmrf(dir);
  });

  it('a dry run queries and plans, moves nothing; the real run counts instances at image level', async () => {
    const node = retrieveNode(join(dir, 'plan'), nodePort, ROWS);
    const dry = runRetrieve(['--from', pacs(), '--config', node.configPath, '--dry-run'], node.dir);
    expect(dry.status, dry.stdout + dry.stderr).toBe(1); // line 4 is not found
    expect(dry.stdout).toMatch(/: done \(dry run: 2 of 3 rows found, 3 studies planned, nothing moved\)/);
    expect(listFilesRecursive(node.paths.output)).toEqual([]);
    const plan = readReport(reportPathOf(dry.stdout).replace(/\.csv$/, '_studies.csv'));
    expect(plan.map((s) => [s.study_instance_uid, s.status, s.instances_expected])).toEqual([
      [`${U}.11`, 'planned', ''],
      [`${U}.12`, 'planned', ''],
      [`${U}.2`, 'planned', ''],
    ]);

    const r = runRetrieve(['--from', pacs(), '--config', node.configPath, '--quiet-seconds', '3'], node.dir);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const rows = readReport(reportPathOf(r.stdout));
    expect(
      rows.map((l) => [l.line, l.status, l.matched_by, l.studies_moved, l.instances_expected, l.instances_filed]),
    ).toEqual([
      ['2', 'found', 'mrn', '2', '7', '7'],
      ['3', 'found', 'accession', '1', '2', '2'],
      ['4', 'not_found', '', '0', '0', '0'],
    ]);
    expect(listFilesRecursive(node.paths.output)).toHaveLength(9);
    // dcmqrscp answers study by study, each move Success with its counts.
    const studies = readReport(reportPathOf(r.stdout).replace(/\.csv$/, '_studies.csv'));
    expect(studies.map((s) => [s.status, s.moves, s.last_status])).toEqual([
      ['complete', '1', '0x0000'],
      ['complete', '1', '0x0000'],
      ['complete', '1', '0x0000'],
    ]);
  });

  it('takes only the wanted modalities, read from the series when the PACS gives none per study', async () => {
    const node = retrieveNode(join(dir, 'mr'), nodePort, ROWS.slice(0, 1));
    const r = runRetrieve(['--from', pacs(), '--config', node.configPath, '--modalities', 'mr'], node.dir);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const row = readReport(reportPathOf(r.stdout))[0]!;
    expect(row).toMatchObject({ status: 'found', studies_found: '1', instances_expected: '4', instances_filed: '4' });
    expect(row.message).toMatch(/1 without the wanted modalities \(by their series\)/);
    const out = listFilesRecursive(node.paths.output);
    expect(out).toHaveLength(4);
    expect(out.every((f) => /\/RES101\/RES101_1\/MR_S[12]_/.test(f))).toBe(true);
  });

  it('an unknown move destination (0xA801) stops the job with what to configure; cancel ends it', async () => {
    const node = retrieveNode(join(dir, 'a801'), nodePort, ROWS.slice(1, 2), { aeTitle: 'NOBODY', callingAet: 'DEID' });
    const r = runRetrieve(['--from', pacs(), '--config', node.configPath], node.dir);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(
      /: failed \(the PACS QRSCP@127\.0\.0\.1:\d+ does not know our move destination \(it answered refused 0xA801: move destination unknown and sent nothing\): its administrator must enter us as a C-MOVE destination with AE title NOBODY, host 127\.0\.0\.1, port \d+/,
    );
    expect(listFilesRecursive(node.paths.output)).toEqual([]);

    const st = runRetrieve(['status', '--config', node.configPath], node.dir);
    expect(st.status).toBe(0);
    expect(st.stdout).toMatch(/retrieve job 1 from QRSCP@127\.0\.0\.1:\d+ to NOBODY: failed/);
    expect(st.stdout).toMatch(/studies: 1 \(0 moved, 0 already filed, 0 incomplete, 0 failed, 1 to do\)/);
    expect(st.stdout).not.toMatch(/B200|P0102/);

    const c = runRetrieve(['cancel', '--config', node.configPath], node.dir);
    expect(c.stdout).toBe('retrieve job 1 is cancelled\n');
    const again = runRetrieve(['resume', '--config', node.configPath, '--job', '1'], node.dir);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/retrieve job 1 is cancelled: there is nothing to resume/);
    const s = await openStateStore(node.paths.db, { create: false });
    expect((await s.retrieveJob(1))!.state).toBe('cancelled');
    await s.close();
  });

  it('moves only inside the time window: it waits, Ctrl-C pauses, resume in an open window finishes', async () => {
    const hm = (offsetMin: number) => {
      const d = new Date(Date.now() + offsetMin * 60_000);
      return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    };
    const node = retrieveNode(join(dir, 'window'), nodePort, ROWS.slice(0, 2));
    const closed = `${hm(120)}-${hm(180)}`;
    const first = spawnRetrieve(['--from', pacs(), '--config', node.configPath, '--window', closed], node.dir);
    const log = join(node.paths.logDir, 'dicom-deid.log');
    await waitFor(
      () => existsSync(log) && readFileSync(log, 'utf8').includes(`waiting for the time window ${closed}`),
      30_000,
      'the job waiting for its window',
    );
    first.proc.kill('SIGINT');
    expect(await first.exited, first.output()).toBe(130);
    expect(listFilesRecursive(node.paths.output)).toEqual([]);
    const s = await openStateStore(node.paths.db, { create: false });
    try {
      expect((await s.retrieveJob(1))!.state).toBe('paused');
      // Queried (queries are not held back by the window), nothing moved.
      expect(await s.retrieveJobCounts(1)).toMatchObject({ rows: { found: 2 }, studies: { planned: 3 } });
      expect((await s.retrieveStudies(1)).every((st) => st.attempts === 0)).toBe(true);
    } finally {
      await s.close();
    }
    const r = runRetrieve(
      ['resume', '--config', node.configPath, '--window', `${hm(-60)}-${hm(60)}`, '--concurrency', '2'],
      node.dir,
    );
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/studies: 3 \(3 moved, 0 already filed, 0 incomplete, 0 failed, 0 to do\)/);
    expect(listFilesRecursive(node.paths.output)).toHaveLength(9);
  });
});
