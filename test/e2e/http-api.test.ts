// The node's HTTP side end to end: a real node (`node dist/cli.js serve`), pushed to by dcmtk's
// storescu, forwarding to a research PACS (storescp) that is down at first. /metrics and the API
// reflect what was sent; a quarantined instance is replayed through the API after the CSV is
// fixed and is filed; a dead forward item is retried through the API once the PACS is up and is
// delivered; C-ECHO through the API; access rules (token, Host, JSON); and no identifier of the
// inputs in any HTTP answer but the authenticated quarantine view, nor in the node's logs.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startStorescp, stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  CSV_HEADER,
  ensureBuilt,
  listFilesRecursive,
  makeSamples,
  startNode,
  stopAllNodes,
  storescu,
  type NodeProc,
} from '../helpers/serve-helpers.js';

const TOKEN = 'test-token-0123456789abcdef';
const STUDY_A = '1.2.826.0.1.3680043.8.498.4101';
const STUDY_B = '1.2.826.0.1.3680043.8.498.4102';
/** Every identifying value of the inputs (make_node_samples.py's, and the keys given here). */
const PHI = [
  'DOE^JANE',
  '19650704',
  'Springfield General',
  'MRN4101',
  'ACC4101',
  'MRN4102',
  'ACC4102',
  STUDY_A,
  STUDY_B,
];

const isUncompressed = (f: string) => /CT_small|MR_small_implicit|MR_small_bigendian/.test(f);

/** Every HTTP answer body of the test that must be free of identifiers. */
const answers: { what: string; body: string }[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the assertions read the JSON answers freely
type Json = any;

async function http(
  node: NodeProc,
  path: string,
  o: { method?: string; body?: unknown; token?: string; headers?: Record<string, string>; keep?: boolean } = {},
): Promise<{ status: number; text: string; json: () => Json }> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const r = await fetch(node.httpUrl + path, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await r.text();
  if (o.keep !== false) answers.push({ what: `${o.method ?? 'GET'} ${path}`, body: text });
  return { status: r.status, text, json: () => JSON.parse(text) };
}

/** The status of a GET sent with its own Host header (fetch may not set one: a forbidden header). */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** One sample of the metrics text: the value of `name{labels}` (labels as written), or undefined. */
function metric(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ')) return Number(line.slice(name.length + 1));
  }
  return undefined;
}

let root = '';
let csv = '';
let studyA: string[] = [];
let studyB: string[] = [];

beforeAll(() => {
  ensureBuilt();
  root = tempDir('http-api');
  csv = join(root, 'map.csv');
  writeFileSync(csv, [CSV_HEADER, 'MRN4101,ACC4101,RS_41,2024-03-01,2024-06-15,', ''].join('\n'));
  studyA = makeSamples(join(root, 'in'), 'MRN4101', 'ACC4101', STUDY_A, 'a').filter(isUncompressed);
  studyB = makeSamples(join(root, 'in'), 'MRN4102', 'ACC4102', STUDY_B, 'b').filter(isUncompressed);
});

afterAll(async () => {
  await stopAllNodes();
  await stopAllPeers();
  rmSync(root, { recursive: true, force: true }); // the node's spool reserve is large
});

describe('the HTTP side of a running node', () => {
  it('metrics and studies reflect a push; quarantine replay and dead-item retry work through the API', async () => {
    expect(studyA).toHaveLength(3);
    expect(studyB).toHaveLength(3);
    const pacsPort = await freePort(); // nobody listens there yet: the research PACS is down
    const pacsDir = join(root, 'pacs');
    mkdirSync(pacsDir);
    const node = await startNode({
      dir: join(root, 'node'),
      csv,
      forward: [{ name: 'RESEARCH', aeTitle: 'RESEARCH', host: '127.0.0.1', port: pacsPort }],
      // Items failing for ~1 s go dead, so the test has dead items to retry.
      config: { forwardGiveUpHours: 0.0003, httpToken: TOKEN },
    });
    expect(node.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await http(node, '/healthz')).status).toBe(200);
    expect((await http(node, '/readyz')).json()).toEqual({ ready: true, reasons: [] });

    // Study A is mapped (filed), study B is not (quarantined).
    expect(storescu(node.port, studyA, { callingAet: 'MODALITY' }).status).toBe(0);
    expect(storescu(node.port, studyB, { callingAet: 'MODALITY' }).status).toBe(0);
    await node.waitForLog(/RS_41_1: 3 instances filed/);
    await node.waitForLog(/3 instances quarantined \(no-mapping\) from MODALITY, see \/api\/quarantine/);

    const m = (await http(node, '/metrics')).text;
    expect(metric(m, 'dicom_deid_instances_received_total')).toBe(6);
    expect(metric(m, 'dicom_deid_instances_filed_total')).toBe(3);
    expect(metric(m, 'dicom_deid_instances_quarantined_total{reason="no-mapping"}')).toBe(3);
    expect(metric(m, 'dicom_deid_leak_guard_warnings_total')).toBe(0);
    expect(metric(m, 'dicom_deid_received_bytes_total')).toBeGreaterThan(10_000);
    expect(metric(m, 'dicom_deid_associations_total{result="accepted",reason=""}')).toBe(2);
    expect(metric(m, 'dicom_deid_ack_latency_seconds_count')).toBe(6);
    expect(metric(m, 'dicom_deid_processing_latency_seconds_count')).toBe(6);
    expect(metric(m, 'dicom_deid_quarantine_instances{reason="no-mapping"}')).toBe(3);
    expect(metric(m, 'dicom_deid_mapping_rows')).toBe(1);
    expect(metric(m, 'dicom_deid_disk_free_bytes{folder="output"}')).toBeGreaterThan(0);

    // The forward items go dead (the PACS is down for longer than the give-up time).
    await waitFor(
      async () => (await http(node, '/api/queue', { keep: false })).json().destinations[0].dead === 3,
      30_000,
      'dead items',
    );
    const m2 = (await http(node, '/metrics')).text;
    expect(metric(m2, 'dicom_deid_forward_dead_items{destination="RESEARCH"}')).toBe(3);
    expect(metric(m2, 'dicom_deid_destination_up{destination="RESEARCH"}')).toBe(0);

    const studies = (await http(node, '/api/studies')).json().studies;
    expect(studies).toEqual([
      {
        researchId: 'RS_41',
        accession: 'RS_41_1',
        studyDate: expect.stringMatching(/^\d{8}$/),
        modalities: ['CT', 'MR'],
        instances: 3,
        lastFiledAt: expect.any(String),
        forward: { RESEARCH: { dead: 3 } },
      },
    ]);

    // Status: identity, components, disks; the token never shows.
    const status = (await http(node, '/api/status')).json();
    expect(status).toMatchObject({ aeTitle: 'DEID', state: 'degraded', config: { accessToken: 'set' } });
    expect(Object.keys(status.components).sort()).toEqual([
      'forwarder',
      'mapping',
      'processing',
      'receiver',
      'retrieve',
      'spool',
    ]);
    expect(JSON.stringify(status)).not.toContain(TOKEN);

    // The quarantine: grouped, no identifiers; the identifying view needs the token.
    const q = (await http(node, '/api/quarantine')).json();
    expect(q.totals).toEqual({ 'no-mapping': 3 });
    expect(q.groups).toHaveLength(1);
    expect(q.groups[0]).toMatchObject({ reason: 'no-mapping', count: 3, replayable: true });
    expect(q.groups[0].identifiers).toBeUndefined();
    expect((await http(node, '/api/quarantine?identifiers=1')).status).toBe(401);
    expect((await http(node, '/api/quarantine?identifiers=1', { token: 'wrong-token-0123456789' })).status).toBe(401);
    const qi = await http(node, '/api/quarantine?identifiers=1', { token: TOKEN, keep: false });
    expect(qi.status).toBe(200);
    const ident = qi.json().groups[0].identifiers;
    expect(ident).toMatchObject({ patientId: 'MRN4102', accessionNumber: 'ACC4102' });
    expect(ident.csvRow).toBe('MRN4102,ACC4102,<New_Patient_ID>,<Surgery_Date YYYY-MM-DD>,,');

    // Access rules: changes must be JSON; a foreign Host is refused; deleting needs the token.
    const study = q.groups[0].study as string;
    expect((await fetch(`${node.httpUrl}/api/quarantine/replay`, { method: 'POST', body: 'study=x' })).status).toBe(
      415,
    );
    expect(await statusWithHost(`${node.httpUrl}/api/status`, 'evil.example:80')).toBe(421);
    expect(await statusWithHost(`${node.httpUrl}/api/status`, `localhost:${new URL(node.httpUrl).port}`)).toBe(200);
    expect((await http(node, '/api/quarantine/delete', { body: { study } })).status).toBe(401);
    expect((await http(node, '/api/quarantine/replay', { body: { item: '../../etc/passwd.dcm' } })).status).toBe(400);
    expect((await http(node, '/api/queue/drop', { body: { destination: 'RESEARCH' }, token: TOKEN })).status).toBe(409);

    // Replay before the CSV knows the patient: nothing filed, nothing lost.
    expect((await http(node, '/api/quarantine/replay', { body: { study } })).json()).toEqual({
      selected: 3,
      filed: 0,
      stillUnmatched: 3,
      skipped: 0,
    });
    // Fix the CSV, wait for the reload, replay the study through the API: filed.
    writeFileSync(
      csv,
      [
        CSV_HEADER,
        'MRN4101,ACC4101,RS_41,2024-03-01,2024-06-15,',
        'MRN4102,ACC4102,RS_42,2024-03-01,2024-06-15,',
        '',
      ].join('\n'),
    );
    await node.waitForLog(/mapping CSV reloaded: 2 rows/);
    expect((await http(node, '/api/quarantine/replay', { body: { study, reason: 'no-mapping' } })).json()).toEqual({
      selected: 3,
      filed: 3,
      stillUnmatched: 0,
      skipped: 0,
    });
    expect((await http(node, '/api/quarantine')).json().groups).toEqual([]);
    expect(listFilesRecursive(join(root, 'node', 'output', 'RS_42'))).toHaveLength(3);
    const ids = (await http(node, '/api/studies')).json().studies.map((s: { accession: string }) => s.accession);
    expect(ids).toEqual(['RS_42_1', 'RS_41_1']);

    // The PACS is down: C-ECHO through the API says so; it comes up; C-ECHO succeeds.
    const echoDown = (await http(node, '/api/destinations/RESEARCH/echo', { body: {} })).json();
    expect(echoDown.ok).toBe(false);
    expect(echoDown.error).toMatch(/refused|connect/i);
    expect((await http(node, '/api/destinations/NOPE/echo', { body: {} })).status).toBe(404);
    const pacs = await startStorescp(['-aet', 'RESEARCH'], pacsPort, pacsDir);
    expect((await http(node, '/api/destinations/RESEARCH/echo', { body: {} })).json()).toMatchObject({
      ok: true,
      status: 0,
    });

    // Retry the dead items through the API: all six (A's dead three, and B's replayed three,
    // which may have died too by now) are delivered.
    const retried = (await http(node, '/api/queue/retry', { body: { destination: 'RESEARCH' } })).json().retried;
    expect(retried).toBeGreaterThanOrEqual(3);
    await node.waitForLog(/queue retry by HTTP 127\.0\.0\.1: \d+ dead items? of RESEARCH (is|are) pending again/);
    await waitFor(
      async () => (await http(node, '/api/queue', { keep: false })).json().destinations[0].delivered === 6,
      30_000,
      'delivery',
    );
    await waitFor(() => readdirSync(pacsDir).length === 6, 10_000, 'files at the PACS');
    await node.waitForLog(/RS_41_1 delivered to RESEARCH \(3 instances\)/);
    const queue = (await http(node, '/api/queue')).json().destinations;
    expect(queue).toEqual([
      expect.objectContaining({
        destination: 'RESEARCH',
        configured: true,
        health: 'up',
        pending: 0,
        dead: 0,
        delivered: 6,
      }),
    ]);
    const studiesAfter = (await http(node, '/api/studies')).json().studies;
    expect(studiesAfter.map((s: { forward: unknown }) => s.forward)).toEqual([
      { RESEARCH: { delivered: 3 } },
      { RESEARCH: { delivered: 3 } },
    ]);
    const m3 = (await http(node, '/metrics')).text;
    expect(metric(m3, 'dicom_deid_forward_delivered_total{destination="RESEARCH"}')).toBe(6);
    expect(metric(m3, 'dicom_deid_destination_up{destination="RESEARCH"}')).toBe(1);
    await pacs.stop();

    // Deleting with the token: audited, gone. (Nothing is left to delete: a reason with no item.)
    expect(
      (await http(node, '/api/quarantine/delete', { body: { reason: 'no-mapping' }, token: TOKEN })).json(),
    ).toEqual({
      deleted: 0,
    });
    expect((await http(node, '/api/quarantine/delete', { body: {}, token: TOKEN })).status).toBe(400);

    // The page is served with its script and style.
    const page = await http(node, '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<script src="/app.js"');
    expect((await http(node, '/app.js')).text).toContain('/api/quarantine');

    expect(await node.stop()).toBe(0);

    // No identifier in any answer kept, nor in the node's console or log file.
    expect(answers.length).toBeGreaterThan(20);
    const logFile = readFileSync(join(root, 'node', 'logs', 'dicom-deid.log'), 'utf8');
    for (const v of PHI) {
      for (const a of answers) expect(a.body, `${a.what} holds ${v}`).not.toContain(v);
      expect(node.logs(), `console holds ${v}`).not.toContain(v);
      expect(logFile, `log file holds ${v}`).not.toContain(v);
    }
    // ...while the identifying view did hold them (the check above can fail).
    expect(qi.text).toContain('MRN4102');
    expect(node.logs()).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} info: stopped/);
    expect(node.logs()).not.toMatch(/\x1b\[/); // no colours when stderr is not a terminal
  }, 120_000);

  it('binding the HTTP side to a non-loopback address needs a token, and then every request does', async () => {
    const dir = join(root, 'open');
    const refused = await startNode({ dir, csv, config: { httpHost: '0.0.0.0' } }).catch((e: Error) => e);
    expect(refused).toBeInstanceOf(Error);
    expect(String(refused)).toMatch(/httpHost 0\.0\.0\.0 is not a loopback address: set an access token/);
    const node = await startNode({ dir, csv, config: { httpHost: '0.0.0.0', httpToken: TOKEN } });
    const url = node.httpUrl.replace('0.0.0.0', '127.0.0.1');
    // Plain HTTP off loopback: the token crosses the network readable, and the start log says so.
    expect(node.logs()).toMatch(/warn\S*: the HTTP side on 0\.0\.0\.0 is plain HTTP: .*set httpTls/);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/api/status`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${url}/`)).status).toBe(200); // the page holds no data; its script asks for the token
    expect(await node.stop()).toBe(0);
  }, 60_000);
});
