// `dicom-deid retrieve` with a node running (`dicom-deid serve`): the command hands the job to the
// node through its HTTP API and follows it, the studies arrive at and are filed by the running
// node; `retrieve status`, `resume` and `cancel` go through the node; Ctrl-C stops following,
// not the job. Orthanc is the hospital PACS, loaded with made-up studies. Skipped only when the
// Orthanc binary is absent.
import { request } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  ORTHANC_BIN,
  rmrf,
  stopAllPeers,
  tempDir,
  waitFor,
  type OrthancPeer,
} from '../helpers/forward-helpers.js';
import { CHROMIUM, launchChromium } from '../helpers/browser-helpers.js';
import { listFilesRecursive, startNode, stopAllNodes, type NodeProc } from '../helpers/serve-helpers.js';
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
  type RetrieveNode,
} from '../helpers/retrieve-helpers.js';

const U = '1.2.826.0.1.3680043.9.7433.5';
const COHORT: CohortStudy[] = [
  { patientId: 'H0001', patientName: 'HOTEL^HAL', accession: 'H100', studyUid: `${U}.1`, studyDate: '20230401' },
  {
    patientId: 'H0002',
    patientName: 'INDIA^IDA',
    accession: 'H200',
    studyUid: `${U}.2`,
    studyDate: '20230402',
    instances: 3,
  },
];
const ROWS: CsvRow[] = [
  ['H0001', '', 'RES101', '2023-04-01'], // line 2: by MRN
  ['', 'H200', 'RES102', '2023-04-02'], // line 3: by accession
];
const IDENTIFIERS = /H0001|H0002|H100|H200|HOTEL|INDIA/;

/** A daily window that is closed now: it opens in two hours (local time, as the node reads it). */
function closedWindow(): string {
  const at = (h: number): string => {
    const d = new Date(Date.now() + h * 3600_000);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  };
  return `${at(2)}-${at(3)}`;
}

/** A daily window that is open now (an hour either side). */
function openWindow(): string {
  const at = (h: number): string => {
    const d = new Date(Date.now() + h * 3600_000);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  };
  return `${at(-1)}-${at(1)}`;
}

/** A raw HTTP request (fetch cannot set Host). */
function rawRequest(
  url: string,
  o: { method: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + o.path, { method: o.method, headers: o.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe.skipIf(!ORTHANC_BIN)(
  `retrieve handed to a running node${ORTHANC_BIN ? '' : ' (skipped: Orthanc not installed)'}`,
  () => {
    let dir = '';
    let orthanc: OrthancPeer;
    let nodePort = 0;
    const pacs = () => `ORTHANC@127.0.0.1:${orthanc.dicomPort}`;

    beforeAll(async () => {
      dir = tempDir('retrieve-node-http');
      nodePort = await freePort();
      const files = makeCohort(join(dir, 'cohort'), COHORT);
      orthanc = await startOrthancHolding(join(dir, 'orthanc'), nodePort, [...files.values()].flat());
    });

    afterEach(async () => {
      await stopAllNodes();
    });

    afterAll(async () => {
      await stopAllPeers();
      if (dir) rmrf(dir);
    });

    /**
     * A running node on `nodePort` and the config `retrieve` is given: the same AE title, port,
     * CSV and state, and the node's HTTP port (`config` overrides).
     */
    async function servingNode(
      name: string,
      config: Record<string, unknown> = {},
    ): Promise<{ node: RetrieveNode; serve: NodeProc }> {
      const node = retrieveNode(join(dir, name), nodePort, ROWS);
      const serve = await startNode({
        dir: join(node.dir, 'serve'),
        csv: node.csv,
        port: nodePort,
        config: node.paths,
      });
      expect(serve.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const httpPort = Number(new URL(serve.httpUrl).port);
      return { node: retrieveNode(node.dir, nodePort, ROWS, { httpPort, ...config }), serve };
    }

    it('hands the job to the running node, which files the studies; status goes through the node', async () => {
      const { node, serve } = await servingNode('handoff');
      const r = runRetrieve(['--from', pacs(), '--config', node.configPath, '--quiet-seconds', '2'], node.dir);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(/retrieve job 1 runs on the node at http:\/\/127\.0\.0\.1:\d+/);
      expect(r.stdout).toMatch(/retrieve job 1 from ORTHANC@127\.0\.0\.1:\d+ to DEID: done/);
      expect(r.stdout).toMatch(/studies: 2 \(2 moved/);
      // The running node ran it (its log), and filed the studies in its output tree.
      // (runRetrieve blocks this process: the node's log lines are read after it returns.)
      await serve.waitForLog(/retrieve job 1: started by HTTP 127\.0\.0\.1/, 5000);
      await serve.waitForLog(/retrieve job 1: done/, 5000);
      const out = listFilesRecursive(node.paths.output).map((f) => relative(node.paths.output, f));
      expect(out.filter((f) => f.startsWith('RES101/RES101_1/')).length).toBe(1);
      expect(out.filter((f) => f.startsWith('RES102/RES102_1/')).length).toBe(3);
      // The report (written by the node beside its audit log) names the rows; the screen does not.
      const report = readReport(reportPathOf(r.stdout));
      expect(report.map((l) => [l.line, l.status, l.instances_filed])).toEqual([
        ['2', 'found', '1'],
        ['3', 'found', '3'],
      ]);
      expect(reportPathOf(r.stdout).startsWith(node.paths.logDir)).toBe(true);
      expect(r.stdout + r.stderr).not.toMatch(IDENTIFIERS);

      const s = runRetrieve(['status', '--config', node.configPath], node.dir);
      expect(s.status, s.stderr).toBe(0);
      expect(s.stdout).toMatch(/retrieve job 1 from ORTHANC@127\.0\.0\.1:\d+ to DEID: done/);
      expect(s.stdout).toContain(`report: ${reportPathOf(r.stdout)}`);
      expect(s.stdout).not.toMatch(IDENTIFIERS);

      // The same command again: the job is done, a new one finds every study filed already.
      const again = runRetrieve(['--from', pacs(), '--config', node.configPath, '--quiet-seconds', '2'], node.dir);
      expect(again.status, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toMatch(/retrieve job 2 .*: done/);
      expect(again.stdout).toMatch(/studies: 2 \(0 moved, 2 already filed/);

      // The answers of the API hold no identifier either.
      const jobs = await (await fetch(`${serve.httpUrl}/api/retrieve/jobs`)).text();
      expect(jobs).toMatch(/"state":"done"/);
      expect(jobs).not.toMatch(IDENTIFIERS);
    });

    it('Ctrl-C stops following, not the job; the status page shows it; cancel goes through the node', async () => {
      const { node, serve } = await servingNode('cancel');
      const window = closedWindow();
      const run = spawnRetrieve(['--from', pacs(), '--config', node.configPath, '--window', window], node.dir);
      // The rows are queried, then the job waits for its window to open.
      await waitFor(
        async () => {
          const r = await fetch(`${serve.httpUrl}/api/retrieve/jobs/1`);
          if (!r.ok) return false;
          const j = (await r.json()) as { progress?: { phase: string } };
          return j.progress?.phase === 'waiting-window';
        },
        30_000,
        'the job waits for its window on the node',
      );
      expect(run.output()).toMatch(/retrieve job 1 runs on the node at /);
      run.proc.kill('SIGINT');
      expect(await run.exited).toBe(130);
      expect(run.output()).toMatch(/stopped following retrieve job 1: it keeps running on the node at http:/);
      expect(run.output()).toContain(`cancel it: dicom-deid retrieve cancel --job 1 --config ${node.configPath}`);

      // Still running on the node.
      const s = runRetrieve(['status', '--job', '1', '--config', node.configPath], node.dir);
      expect(s.status, s.stderr).toBe(0);
      expect(s.stdout).toMatch(/retrieve job 1 .*: running/);
      expect(s.stdout).toMatch(/now: waiting-window, rows queried 2\/2, studies 0\/2, waiting for the time window/);
      expect(s.stdout).toMatch(/run by node:\S+ \(the node at http:/);

      // The status page shows the job's progress (rendered in chromium when it is installed).
      const status = (await (await fetch(`${serve.httpUrl}/api/status`)).json()) as {
        components: { retrieve?: { counts: Record<string, number>; details?: { jobs?: { jobId: number }[] } } };
      };
      expect(status.components.retrieve?.counts.jobsRunning).toBe(1);
      expect(status.components.retrieve?.details?.jobs?.[0]?.jobId).toBe(1);
      if (existsSync(CHROMIUM)) {
        const browser = await launchChromium(join(node.dir, 'chromium-profile'));
        try {
          const page = await browser.newPage();
          await page.goto(serve.httpUrl + '/');
          await page.locator('#retrieve-line', { hasText: 'retrieve job 1: waiting-window' }).waitFor();
          expect(await page.locator('#retrieve-line').innerText()).toMatch(/studies 0\/2.*waiting for the time window/);
        } finally {
          await browser.close();
        }
      }

      const c = runRetrieve(['cancel', '--config', node.configPath], node.dir);
      expect(c.status, c.stderr).toBe(0);
      expect(c.stdout).toBe('retrieve job 1 is cancelled\n');
      await serve.waitForLog(/retrieve job 1: cancel asked by HTTP 127\.0\.0\.1/, 5000);
      const after = runRetrieve(['status', '--config', node.configPath], node.dir);
      expect(after.stdout).toMatch(/retrieve job 1 .*: cancelled/);
      // Nothing was moved.
      expect(listFilesRecursive(node.paths.output)).toEqual([]);
      expect(serve.proc.exitCode).toBeNull();
    });

    it('a node stopping pauses its job; resume goes through the restarted node with a new window', async () => {
      const { node, serve } = await servingNode('resume');
      const run = spawnRetrieve(['--from', pacs(), '--config', node.configPath, '--window', closedWindow()], node.dir);
      await waitFor(() => /waiting for the time window/.test(serve.logs()), 30_000, 'the job waits for its window');
      // The node stops: it pauses the job, and the follower says how to continue.
      expect(await serve.stop()).toBe(0);
      expect(await run.exited).toBe(1);
      expect(run.output()).toMatch(
        /lost the node while following retrieve job 1: .*dicom-deid retrieve resume --job 1/,
      );
      expect(serve.logs()).toMatch(/retrieve job 1: paused: the node stopped/);

      const again = await startNode({
        dir: join(node.dir, 'serve'),
        csv: node.csv,
        port: nodePort,
        config: { ...node.paths, httpPort: Number(new URL(serve.httpUrl).port) },
      });
      const r = runRetrieve(
        ['resume', '--config', node.configPath, '--window', openWindow(), '--quiet-seconds', '2'],
        node.dir,
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(/retrieve job 1 runs on the node at http:/);
      expect(r.stdout).toMatch(/retrieve job 1 .*: done/);
      await again.waitForLog(/retrieve job 1: resumed by HTTP 127\.0\.0\.1/, 5000);
      const out = listFilesRecursive(node.paths.output).map((f) => relative(node.paths.output, f));
      expect(
        out.filter((f) => f.startsWith('RES101/')).length + out.filter((f) => f.startsWith('RES102/')).length,
      ).toBe(4);
    });

    it('refuses a non-JSON or foreign-Host request; without a reachable HTTP side, names the setting', async () => {
      const { node, serve } = await servingNode('refusals');
      const body = JSON.stringify({ from: pacs(), csv: node.csv });
      const form = await rawRequest(serve.httpUrl, {
        method: 'POST',
        path: '/api/retrieve/jobs',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `from=${encodeURIComponent(pacs())}`,
      });
      expect(form.status).toBe(415);
      const foreign = await rawRequest(serve.httpUrl, {
        method: 'POST',
        path: '/api/retrieve/jobs',
        headers: { 'content-type': 'application/json', host: 'attacker.example:80' },
        body,
      });
      expect(foreign.status).toBe(421);
      const foreignRead = await rawRequest(serve.httpUrl, {
        method: 'GET',
        path: '/api/retrieve/jobs',
        headers: { host: 'attacker.example' },
      });
      expect(foreignRead.status).toBe(421);
      const cancelForeign = await rawRequest(serve.httpUrl, {
        method: 'POST',
        path: '/api/retrieve/jobs/1/cancel',
        headers: { 'content-type': 'application/json', host: 'attacker.example' },
        body: '{}',
      });
      expect(cancelForeign.status).toBe(421);
      // Bad input: a clear one-line answer.
      const post = (b: unknown) =>
        fetch(`${serve.httpUrl}/api/retrieve/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(b),
        });
      const noFrom = await post({ csv: node.csv });
      expect(noFrom.status).toBe(400);
      const badWindow = await post({ from: pacs(), window: '25:00-26:00' });
      expect(badWindow.status).toBe(400);
      const missingCsv = await post({ from: pacs(), csv: join(node.dir, 'nosuch.csv') });
      expect(missingCsv.status).toBe(400);
      expect(((await missingCsv.json()) as { error: string }).error).toMatch(
        /cannot read the mapping CSV .*nosuch\.csv/,
      );
      const unknown = await fetch(`${serve.httpUrl}/api/retrieve/jobs/99`);
      expect(unknown.status).toBe(404);
      // A CSV that does not validate: the answer names the file, not its values.
      const badCsv = join(node.dir, 'bad.csv');
      writeFileSync(badCsv, readFileSync(node.csv, 'utf8') + 'H0001,,,not-a-date,,\n');
      const invalid = await post({ from: pacs(), csv: badCsv });
      expect(invalid.status).toBe(400);
      const invalidText = await invalid.text();
      expect(invalidText).toMatch(/does not validate: see dicom-deid check-csv/);
      expect(invalidText).not.toMatch(IDENTIFIERS);
      // None of these started a job.
      expect(await (await fetch(`${serve.httpUrl}/api/retrieve/jobs`)).json()).toEqual({ jobs: [] });

      // The node's HTTP side off in retrieve's config: today's refusal, naming the setting.
      const off = retrieveNode(node.dir, nodePort, ROWS, { httpEnabled: false });
      const r1 = runRetrieve(['--from', pacs(), '--config', off.configPath], node.dir);
      expect(r1.status).toBe(2);
      expect(r1.stderr).toMatch(
        new RegExp(
          `port ${nodePort} is already in use: is a node running \\(dicom-deid serve\\)\\? Stop it first, or turn its HTTP side on \\(httpEnabled\\)`,
        ),
      );
      // Reachable nowhere: the refusal names httpHost and httpPort.
      const wrong = retrieveNode(node.dir, nodePort, ROWS, { httpPort: await freePort() });
      const r2 = runRetrieve(['--from', pacs(), '--config', wrong.configPath], node.dir);
      expect(r2.status).toBe(2);
      expect(r2.stderr).toMatch(
        /Stop it first, or let the job be handed to it: cannot reach the node's HTTP side at http:\/\/127\.0\.0\.1:\d+ \(connection refused\) \(httpHost, httpPort/,
      );
      expect(listFilesRecursive(node.paths.output)).toEqual([]);

      // A node on every interface needs the token for every request: retrieve sends the config's.
      await serve.stop();
      const token = 'rhttp-test-token-0123456789';
      const open = await startNode({
        dir: join(node.dir, 'serve'),
        csv: node.csv,
        port: nodePort,
        config: { ...node.paths, httpHost: '0.0.0.0', httpToken: token },
      });
      const httpPort = Number(/:(\d+)$/.exec(open.httpUrl)![1]);
      const noToken = retrieveNode(node.dir, nodePort, ROWS, {
        httpHost: '0.0.0.0',
        httpPort,
        httpToken: 'not-the-token-0123456789',
      });
      const r3 = runRetrieve(['cancel', '--config', noToken.configPath], node.dir);
      // Not through the node: the state is asked directly.
      expect(r3.stderr).toMatch(/no retrieve job to cancel in /);
      const r4 = runRetrieve(['--from', pacs(), '--config', noToken.configPath], node.dir);
      expect(r4.status).toBe(2);
      expect(r4.stderr).toMatch(
        /says: send the access token: Authorization: Bearer <token> \(httpHost, httpPort; the access token from httpToken or httpTokenFile\)/,
      );
      const withToken = retrieveNode(node.dir, nodePort, ROWS, { httpHost: '0.0.0.0', httpPort, httpToken: token });
      const r5 = runRetrieve(['cancel', '--config', withToken.configPath], node.dir);
      expect(r5.status).toBe(2);
      expect(r5.stderr).toMatch(/no retrieve job to cancel on the node at http:\/\/127\.0\.0\.1:\d+/);
    });
  },
);
