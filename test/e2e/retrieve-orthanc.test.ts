// `dicom-deid retrieve` against a real Orthanc as the hospital PACS, loaded with made-up studies.
// Orthanc knows the node as a DicomModalities entry; it answers C-MOVE before its sub-operations
// are done (SynchronousCMove: false) and caps C-FIND answers (LimitFindResults: 2), as slow or
// capped PACS do. Skipped only when the Orthanc binary is absent.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { StateStore } from '../../src/state/stateStore.js';
import {
  freePort,
  ORTHANC_BIN,
  rmrf,
  stopAllPeers,
  tempDir,
  track,
  waitFor,
  waitForPort,
  type OrthancPeer,
} from '../helpers/forward-helpers.js';
import { listFilesRecursive, startNode, stopAllNodes, storescu } from '../helpers/serve-helpers.js';
import {
  startOrthancHolding,
  makeCohort,
  readReport,
  reportPathOf,
  retrieveNode,
  runRetrieve,
  spawnRetrieve,
  type CohortStudy,
  type CsvRow,
} from '../helpers/retrieve-helpers.js';

const U = '1.2.826.0.1.3680043.9.7433.3';
const COHORT: CohortStudy[] = [
  // One patient, three studies: more than LimitFindResults answers to a query by MRN.
  {
    patientId: '00012345',
    patientName: 'ALPHA^ANN',
    accession: 'A110',
    studyUid: `${U}.11`,
    studyDate: '20230110',
    instances: 2,
  },
  {
    patientId: '00012345',
    patientName: 'ALPHA^ANN',
    accession: 'A111',
    studyUid: `${U}.12`,
    studyDate: '20230301',
    instances: 2,
  },
  {
    patientId: '00012345',
    patientName: 'ALPHA^ANN',
    accession: 'A112',
    studyUid: `${U}.13`,
    studyDate: '20230601',
    instances: 2,
  },
  // Found by accession alone.
  { patientId: 'P0002', patientName: 'BETA^BOB', accession: 'A200', studyUid: `${U}.2`, studyDate: '20230302' },
  // One accession, two patients.
  { patientId: 'P0003', patientName: 'GAMMA^GIL', accession: 'A300', studyUid: `${U}.31`, studyDate: '20230303' },
  { patientId: 'P0004', patientName: 'DELTA^DAN', accession: 'A300', studyUid: `${U}.32`, studyDate: '20230304' },
  // For the swapped-column rows.
  { patientId: 'P0005', accession: 'A500', studyUid: `${U}.5`, studyDate: '20230305', modality: 'MR' },
  { patientId: 'P0006', accession: 'A600', studyUid: `${U}.6`, studyDate: '20230306' },
  // The PACS's PatientID has leading zeros the CSV lost.
  { patientId: '0077', accession: 'A770', studyUid: `${U}.7`, studyDate: '20230307' },
  // Pushed to the node before the job.
  { patientId: 'P0008', accession: 'A800', studyUid: `${U}.8`, studyDate: '20230308', instances: 3 },
  // Large enough that Orthanc's asynchronous C-MOVE answers before its files have arrived.
  {
    patientId: 'P0009',
    accession: 'A900',
    studyUid: `${U}.9`,
    studyDate: '20230309',
    series: 2,
    instances: 12,
    rows: 512,
  },
];

const ROWS: CsvRow[] = [
  ['00012345', '', 'RES001', '2023-03-01'], // line 2: by MRN, three studies (answers capped)
  ['', 'A200', 'RES002', '2023-03-02'], // line 3: by accession
  ['', 'A300', 'RES003', '2023-03-03'], // line 4: ambiguous
  ['A500', 'P0005', 'RES005', '2023-03-05'], // line 5: swapped columns: Accession column as PatientID
  ['A600', '', 'RES006', '2023-03-06'], // line 6: the MRN column holds an accession
  ['NOSUCH1', '', 'RES007', '2023-03-07'], // line 7: no study
  ['77', 'A770', 'RES077', '2023-03-07'], // line 8: MRN lost its zeros: not taken
  ['P0008', '', 'RES008', '2023-03-08'], // line 9: filed by a push already
  ['P0009', 'A900', 'RES009', '2023-03-09'], // line 10: the asynchronous move
];

describe.skipIf(!ORTHANC_BIN)(`retrieve from Orthanc${ORTHANC_BIN ? '' : ' (skipped: Orthanc not installed)'}`, () => {
  let dir = '';
  let orthanc: OrthancPeer;
  let nodePort = 0;
  let files: Map<string, string[]>;
  const pacs = () => `ORTHANC@127.0.0.1:${orthanc.dicomPort}`;

  beforeAll(async () => {
    dir = tempDir('retrieve-orthanc');
    nodePort = await freePort();
    files = makeCohort(join(dir, 'cohort'), COHORT);
    orthanc = await startOrthancHolding(join(dir, 'orthanc'), nodePort, [...files.values()].flat(), {
      SynchronousCMove: false,
      LimitFindResults: 2,
    });
  });

  afterEach(async () => {
    await stopAllNodes();
  });

  afterAll(async () => {
    await stopAllPeers();
    if (dir) rmrf(dir);
  });

  async function withState<T>(db: string, fn: (s: StateStore) => Promise<T>): Promise<T> {
    const s = await openStateStore(db, { create: false });
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  }

  it('pulls the cohort by every CSV fallback; ambiguous, unknown and already filed studies are not moved', async () => {
    const node = retrieveNode(join(dir, 'all'), nodePort, ROWS);
    // Line 9's study reaches the node by a push first.
    const serve = await startNode({ dir: join(node.dir, 'serve'), csv: node.csv, port: nodePort, config: node.paths });
    expect(storescu(serve.port, files.get(`${U}.8`)!).status).toBe(0);
    await waitFor(() => listFilesRecursive(join(node.paths.output, 'RES008')).length === 3, 20_000, 'the push filed');
    // Not while that node runs: it owns the spool.
    const busy = runRetrieve(['--from', pacs(), '--config', node.configPath], node.dir);
    expect(busy.status).toBe(2);
    expect(busy.stderr).toMatch(
      new RegExp(`port ${nodePort} is already in use: is a node running \\(dicom-deid serve\\)\\? Stop it first`),
    );
    await serve.stop();
    const auditBefore = readdirSync(node.paths.logDir).filter((f) => f.startsWith('deid_log_'));

    const r = runRetrieve(['--from', pacs(), '--config', node.configPath, '--quiet-seconds', '3'], node.dir);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status, r.stdout + r.stderr).toBe(1); // some rows are not found or ambiguous
    const report = readReport(reportPathOf(r.stdout));
    const byLine = new Map(report.map((l) => [Number(l.line), l]));
    const row = (line: number) => byLine.get(line)!;

    expect([2, 3, 5, 6, 9, 10].map((l) => [l, row(l).status, row(l).matched_by])).toEqual([
      [2, 'found', 'mrn'],
      [3, 'found', 'accession'],
      [5, 'found', 'mrn-in-accession-column'],
      [6, 'found', 'accession-in-mrn-column'],
      [9, 'found', 'mrn'],
      [10, 'found', 'mrn'],
    ]);
    // Three studies although Orthanc answers two at most: the date range was split.
    expect(row(2)).toMatchObject({
      studies_found: '3',
      studies_moved: '3',
      instances_expected: '6',
      instances_filed: '6',
    });
    expect(row(2).message).toMatch(/capped its answers; asked again in \d+ date ranges/);
    expect(row(4)).toMatchObject({ status: 'ambiguous', studies_found: '0' });
    expect(row(4).message).toMatch(/2 different patients/);
    expect(row(7)).toMatchObject({ status: 'not_found', studies_found: '0' });
    expect(row(8)).toMatchObject({ status: 'not_found', studies_found: '0' });
    expect(row(8).message).toMatch(/another PatientID than the MRN.*leading zeros/);
    expect(row(9)).toMatchObject({ studies_found: '1', studies_moved: '0', studies_already_filed: '1' });
    // The asynchronous move: every instance filed, although Orthanc said Success early.
    expect(row(10)).toMatchObject({ studies_moved: '1', instances_expected: '24', instances_filed: '24' });
    const studies = readReport(reportPathOf(r.stdout).replace(/\.csv$/, '_studies.csv'));
    const late = /(\d+) of 24 instances were filed when the PACS gave its final answer/.exec(
      studies.find((st) => st.study_instance_uid === `${U}.9`)?.message ?? '',
    );
    expect(late, 'the final answer came before the study was filed').not.toBeNull();
    expect(Number(late![1])).toBeLessThan(24);

    // The output tree holds exactly the moved studies, under their research IDs.
    const out = listFilesRecursive(node.paths.output).map((f) => relative(node.paths.output, f));
    const perId = (id: string) => out.filter((f) => f.startsWith(`${id}/`)).length;
    expect([
      perId('RES001'),
      perId('RES002'),
      perId('RES005'),
      perId('RES006'),
      perId('RES008'),
      perId('RES009'),
    ]).toEqual([6, 1, 1, 1, 3, 24]);
    expect(perId('RES003') + perId('RES007') + perId('RES077')).toBe(0);
    expect(new Set(out.filter((f) => f.startsWith('RES001/')).map((f) => f.split('/')[1]))).toEqual(
      new Set(['RES001_1', 'RES001_2', 'RES001_3']),
    );
    // The pushed study was not moved again: no audit row of this run names its instances.
    const auditNew = readdirSync(node.paths.logDir).filter(
      (f) => f.startsWith('deid_log_') && !auditBefore.includes(f),
    );
    const newRows = auditNew.map((f) => readFileSync(join(node.paths.logDir, f), 'utf8')).join('');
    expect(newRows).toMatch(new RegExp(`${U.replace(/\./g, '\\.')}\\.9\\.`));
    expect(newRows).not.toMatch(new RegExp(`${U.replace(/\./g, '\\.')}\\.8\\.`));
    // The screen summary names no patient.
    expect(r.stdout).not.toMatch(/00012345|P000|A[1-9]00|ALPHA|BETA/);
    expect(r.stdout).toMatch(/CSV lines ambiguous \(not moved\): 4/);
    await withState(node.paths.db, async (s) => {
      const [job] = await s.retrieveJobs(1);
      expect(job!.state).toBe('done');
      const studies = await s.retrieveStudies(job!.id);
      expect(studies.filter((st) => st.status === 'complete').every((st) => st.attempts === 1)).toBe(true);
      expect(studies.find((st) => st.studyUid === `${U}.8`)).toMatchObject({ status: 'already_filed', attempts: 0 });
    });
  });

  it('takes only the studies inside the date window around Surgery_Date', async () => {
    const node = retrieveNode(join(dir, 'window'), nodePort, [['00012345', '', 'RES001', '2023-03-01']]);
    const r = runRetrieve(
      ['--from', pacs(), '--config', node.configPath, '--days-before', '30', '--days-after', '30'],
      node.dir,
    );
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const studies = readReport(reportPathOf(r.stdout).replace(/\.csv$/, '_studies.csv'));
    expect(studies.map((s) => [s.study_instance_uid, s.status])).toEqual([[`${U}.12`, 'complete']]);
    // The window went to the PACS as a StudyDate range (it answered one study).
    expect(readReport(reportPathOf(r.stdout))[0]).toMatchObject({ status: 'found', studies_found: '1' });
  });

  it('says what the PACS administrator must configure when Orthanc does not know our AE title', async () => {
    // Calling AE unknown to Orthanc: it answers C-ECHO, then aborts the association at C-FIND.
    const stranger = retrieveNode(join(dir, 'stranger'), nodePort, ROWS.slice(0, 1), { aeTitle: 'STRANGER' });
    const a = runRetrieve(['--from', pacs(), '--config', stranger.configPath, '--pacs-wait', '2'], stranger.dir);
    expect(a.status, a.stdout + a.stderr).toBe(1);
    expect(a.stdout).toMatch(
      /: failed \(the PACS ORTHANC@127\.0\.0\.1:\d+ answers C-ECHO but drops the association at our first query \(peer aborted the association .*\): it most likely does not let AE title STRANGER query it/,
    );
    expect(a.stdout).toMatch(new RegExp(`AE title STRANGER, host 127\\.0\\.0\\.1, port ${nodePort}`));
    expect(a.stdout).toMatch(/continue with: dicom-deid retrieve resume --job 1/);

    // Queries as DEID (known), moves to STRANGER (unknown): Orthanc answers 0xC000 and sends nothing.
    const dest = retrieveNode(join(dir, 'dest'), nodePort, ROWS.slice(0, 2), {
      aeTitle: 'STRANGER',
      callingAet: 'DEID',
    });
    const b = runRetrieve(['--from', pacs(), '--config', dest.configPath], dest.dir);
    expect(b.status, b.stdout + b.stderr).toBe(1);
    expect(b.stdout).toMatch(
      /cannot send to our move destination \(it answered failed 0xC000: unable to process and sent nothing\)/,
    );
    expect(b.stdout).toMatch(
      new RegExp(`C-MOVE destination with AE title STRANGER, host 127\\.0\\.0\\.1, port ${nodePort}`),
    );
    expect(listFilesRecursive(dest.paths.output)).toEqual([]);
    await withState(dest.paths.db, async (s) => {
      const [job] = await s.retrieveJobs(1);
      expect(job!.state).toBe('failed');
      const studies = await s.retrieveStudies(job!.id);
      // One test move (of the smallest study), nothing else; every study still to do.
      expect(studies.map((st) => st.status)).toEqual(['planned', 'planned', 'planned', 'planned']);
      expect(studies.reduce((n, st) => n + st.attempts, 0)).toBe(1);
      expect(studies.find((st) => st.attempts === 1)!.studyUid).toBe(`${U}.2`);
    });
  });

  it('Ctrl-C pauses the job; the same command continues it and never moves a filed study again', async () => {
    const node = retrieveNode(join(dir, 'ctrl-c'), nodePort, [
      ['00012345', '', 'RES001', '2023-03-01'],
      ['P0009', 'A900', 'RES009', '2023-03-09'],
    ]);
    const args = ['--from', pacs(), '--config', node.configPath];
    const first = spawnRetrieve(args, node.dir);
    // Interrupted once a study is complete and another is under way.
    await waitFor(
      async () => {
        try {
          return await withState(node.paths.db, async (s) => {
            const [job] = await s.retrieveJobs(1);
            const c = job ? await s.retrieveJobCounts(job.id) : undefined;
            return (c?.studies.complete ?? 0) >= 1 && (c?.studies.moving ?? 0) >= 1;
          });
        } catch {
          return false; // the state is not there yet
        }
      },
      60_000,
      'a study complete and one moving',
    );
    first.proc.kill('SIGINT');
    expect(await first.exited, first.output()).toBe(130);
    expect(first.output()).toMatch(/: paused \(interrupted \(SIGINT\)\)/);
    const done = await withState(node.paths.db, async (s) =>
      (await s.retrieveStudies(1, 'complete')).map((st) => st.studyUid),
    );
    expect(done.length).toBeGreaterThanOrEqual(1);

    const again = runRetrieve(args, node.dir);
    expect(again.status, again.stdout + again.stderr).toBe(0);
    expect(again.stderr).toMatch(/continuing retrieve job 1 \(same CSV, PACS and plan\)/);
    await withState(node.paths.db, async (s) => {
      expect((await s.retrieveJob(1))!.state).toBe('done');
      const studies = await s.retrieveStudies(1);
      expect(studies.map((st) => st.status)).toEqual(['complete', 'complete', 'complete', 'complete']);
      for (const st of studies.filter((x) => done.includes(x.studyUid))) expect(st.attempts, st.studyUid).toBe(1);
    });
    // Each instance of a study complete before the interrupt was filed once (one audit row each).
    const audit = readdirSync(node.paths.logDir)
      .filter((f) => f.startsWith('deid_log_'))
      .map((f) => readFileSync(join(node.paths.logDir, f), 'utf8'))
      .join('');
    for (const uid of done) {
      const n = files.get(uid)!.length;
      expect(audit.split(`(${uid}.`).length - 1, uid).toBe(n);
    }
    expect(listFilesRecursive(node.paths.output)).toHaveLength(30);
  });

  it('files retrieved studies byte for byte as a push of the same instances', async () => {
    const rows: CsvRow[] = [
      ['00012345', '', 'RES001', '2023-03-01'],
      ['P0009', 'A900', 'RES009', '2023-03-09'],
    ];
    const pulled = retrieveNode(join(dir, 'same-pull'), nodePort, rows);
    const pushed = retrieveNode(join(dir, 'same-push'), nodePort, rows);
    // One state with its UID secret, copied to both: what differs is only how the studies came.
    const seed = join(dir, 'seed.sqlite');
    const s = await openStateStore(seed, { create: true });
    await s.uidSecret();
    await s.close();
    for (const n of [pulled, pushed]) {
      mkdirSync(dirname(n.paths.db), { recursive: true });
      copyFileSync(seed, n.paths.db);
    }

    const r = runRetrieve(['--from', pacs(), '--config', pulled.configPath], pulled.dir);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // Push in the order the job moved them (session numbers follow arrival order).
    const order = await withState(pulled.paths.db, async (st) => {
      const [job] = await st.retrieveJobs(1);
      return (await st.retrieveStudies(job!.id)).sort((a, b) => a.startedAt! - b.startedAt!).map((x) => x.studyUid);
    });
    expect(order).toHaveLength(4);
    const serve = await startNode({ dir: join(pushed.dir, 'serve'), csv: pushed.csv, config: pushed.paths });
    let sent = 0;
    for (const uid of order) {
      expect(storescu(serve.port, files.get(uid)!).status).toBe(0);
      sent += files.get(uid)!.length;
      // Filed before the next study is sent, as the job's moves were.
      await waitFor(() => listFilesRecursive(pushed.paths.output).length === sent, 30_000, 'the push filed');
    }
    await serve.stop();
    const tree = (root: string) =>
      listFilesRecursive(root).map((f) => [relative(root, f), readFileSync(f).toString('base64')] as const);
    const a = tree(pulled.paths.output);
    expect(a).toHaveLength(30);
    expect(tree(pushed.paths.output)).toEqual(a);
  });

  it('the PACS going down mid-job pauses it; resume finishes it when the PACS is back', async () => {
    const pdir = join(dir, 'orthanc-down');
    const mine = [`${U}.11`, `${U}.12`, `${U}.13`, `${U}.9`];
    const second = await startOrthancHolding(
      pdir,
      nodePort,
      mine.flatMap((u) => files.get(u)!),
    );
    const node = retrieveNode(join(dir, 'down'), nodePort, [
      ['00012345', '', 'RES001', '2023-03-01'],
      ['P0009', 'A900', 'RES009', '2023-03-09'],
    ]);
    const from = `ORTHANC@127.0.0.1:${second.dicomPort}`;
    const job = spawnRetrieve(
      ['--from', from, '--config', node.configPath, '--pacs-wait', '3', '--quiet-seconds', '2'],
      node.dir,
    );
    await waitFor(
      async () => {
        try {
          return await withState(node.paths.db, async (s) => {
            const c = await s.retrieveJobCounts(1);
            return c.studies.complete >= 1 && c.studies.moving >= 1;
          });
        } catch {
          return false;
        }
      },
      60_000,
      'a study complete and one moving',
    );
    second.proc.kill('SIGKILL');
    expect(await job.exited, job.output()).toBe(1);
    expect(job.output()).toMatch(
      /: paused \(moving a study: cannot connect to the PACS ORTHANC@127\.0\.0\.1:\d+: .*connection refused.*resume the job when the PACS is back\)/,
    );
    const before = await withState(node.paths.db, async (s) => {
      expect((await s.retrieveJob(1))!.state).toBe('paused');
      return (await s.retrieveStudies(1, 'complete')).map((st) => st.studyUid);
    });
    expect(before.length).toBeGreaterThanOrEqual(1);
    expect(before.length).toBeLessThan(4);

    // The same Orthanc (same ports, same storage) comes back.
    const back = spawn(ORTHANC_BIN!, [join(pdir, 'orthanc.json')], { stdio: ['ignore', 'pipe', 'pipe'], cwd: pdir });
    await track(back, second.httpPort, pdir, 30_000);
    await waitForPort(second.dicomPort, 30_000);
    const r = runRetrieve(['resume', '--config', node.configPath], node.dir);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    await withState(node.paths.db, async (s) => {
      expect((await s.retrieveJob(1))!.state).toBe('done');
      const studies = await s.retrieveStudies(1);
      expect(studies.map((st) => st.status)).toEqual(['complete', 'complete', 'complete', 'complete']);
      for (const st of studies.filter((x) => before.includes(x.studyUid))) expect(st.attempts, st.studyUid).toBe(1);
    });
    expect(listFilesRecursive(node.paths.output)).toHaveLength(30);
  });
});
