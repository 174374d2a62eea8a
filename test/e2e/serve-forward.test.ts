// End-to-end: modality (dcmtk storescu) -> the DICOM node as a real process
// (`node dist/cli.js serve --forward ...`) -> research PACS (dcmtk storescp, or Orthanc).
// Proves that what the node files is what the research PACS receives, de-identified and byte for
// byte, through PACS outages, permanent refusals (dead letters, `queue`, `queue retry`) and node
// restarts (SIGTERM and SIGKILL).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readP10Header } from '../../src/dimse/part10.js';
import {
  dataSetBytes,
  freePort,
  ORTHANC_BIN,
  receivedBySopInstance,
  rmrf,
  startOrthanc,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
  writeFileIn,
} from '../helpers/forward-helpers.js';
import {
  ensureBuilt,
  listFilesRecursive,
  makeSamples,
  queueCounts,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  waitQueue,
  writeMappingCsv,
  type NodeProc,
} from '../helpers/serve-helpers.js';

const DEFLATE = '1.2.840.10008.1.2.1.99';
/** Identifying values make_node_samples.py puts in every sample (plus MRN and accession). */
const PHI = ['DOE^JANE', '19650704', 'Springfield General'];

let root = '';
let csv = '';
/** Study A (MRN777/ACC1 -> RS_07) and study B (MRN888/ACC2 -> RS_08), 8 transfer syntaxes each. */
let studyA: string[] = [];
let studyB: string[] = [];

const isUncompressed = (f: string) => /CT_small|MR_small_implicit|MR_small_bigendian/.test(f);

beforeAll(() => {
  ensureBuilt();
  root = tempDir('serve');
  csv = writeMappingCsv(join(root, 'map.csv'), [
    { mrn: 'MRN777', accession: 'ACC1', researchId: 'RS_07' },
    { mrn: 'MRN888', accession: 'ACC2', researchId: 'RS_08' },
  ]);
  studyA = makeSamples(join(root, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.777', 'a');
  studyB = makeSamples(join(root, 'in'), 'MRN888', 'ACC2', '1.2.826.0.1.3680043.8.498.888', 'b');
});

afterEach(async () => {
  await stopAllNodes();
  await stopAllPeers();
});

afterAll(() => {
  if (root) rmrf(root);
});

/** A fresh folder for one test's node and PACS. */
function testDir(name: string): string {
  return mkdtempSync(join(root, `${name}-`));
}

/**
 * Sends the uncompressed files of a study in one association (must succeed) and, when
 * `compressedToo`, each compressed file in its own association (the node's SCP may not accept
 * every compressed transfer syntax that storescu proposes; those are simply not part of the test).
 * Returns how many instances the node acknowledged.
 */
function push(node: NodeProc, files: string[], compressedToo = false): number {
  const plain = files.filter(isUncompressed);
  const r = storescu(node.port, plain);
  expect(r.status, r.output).toBe(0);
  let n = plain.length;
  if (compressedToo) {
    for (const f of files.filter((x) => !isUncompressed(x))) if (storescu(node.port, [f]).status === 0) n++;
  }
  return n;
}

/** The node's filed instances (Part 10 files under its output tree). */
function filed(node: NodeProc): string[] {
  return listFilesRecursive(node.paths.output).filter((f) => f.endsWith('.dcm'));
}

function dump(path: string): string {
  return execFileSync('dcmdump', ['+L', '-q', path], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** Checks a received file is de-identified: research ID in, none of the sample's identifiers. */
function expectDeidentified(path: string, researchId: string, mrn: string, accession: string): void {
  const text = dump(path);
  expect(text, path).toMatch(new RegExp(`\\(0010,0020\\) LO \\[${researchId}\\]`));
  for (const v of [...PHI, mrn, accession]) expect(text.includes(v), `${v} in ${path}`).toBe(false);
  if (readP10Header(path).transferSyntaxUid !== DEFLATE) {
    const raw = readFileSync(path).toString('latin1');
    for (const v of [...PHI, mrn, accession]) expect(raw.includes(v), `${v} in the bytes of ${path}`).toBe(false);
  }
}

/** Every filed instance arrived exactly once, in its stored transfer syntax, data set bytes identical. */
function expectReceivedAsFiled(filedFiles: string[], scpDir: string): void {
  const got = receivedBySopInstance(scpDir);
  expect(got.size).toBe(filedFiles.length);
  for (const f of filedFiles) {
    const h = readP10Header(f);
    const rec = got.get(h.sopInstanceUid);
    expect(rec, f).toHaveLength(1);
    expect(rec![0]!.ts, f).toBe(h.transferSyntaxUid);
    expect(dataSetBytes(rec![0]!.path).equals(dataSetBytes(f)), `data set bytes of ${f}`).toBe(true);
  }
}

const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, 'g')) ?? []).length;

describe('serve --forward to storescp', () => {
  it('(a) everything the node files arrives at the research PACS, de-identified, byte-identical', async () => {
    const dir = testDir('a');
    const scpDir = join(dir, 'pacs');
    const p2 = await freePort();
    mkdir(scpDir);
    await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], p2, scpDir);
    const node = await startNode({ dir, csv, forward: [`RESEARCH@127.0.0.1:${p2}`] });

    const t0 = Date.now();
    const acked = push(node, studyA, true);
    expect(acked).toBeGreaterThanOrEqual(3);
    await waitFor(() => filed(node).length === acked, 20_000, 'all acknowledged instances filed');
    await waitQueue(node, (c) => c.delivered === acked, 20_000, 'all delivered');
    const elapsed = Date.now() - t0;

    const files = filed(node);
    expectReceivedAsFiled(files, scpDir);
    for (const p of readdirSync(scpDir)) expectDeidentified(join(scpDir, p), 'RS_07', 'MRN777', 'ACC1');

    const q = runCli(['queue', '--config', node.configPath]);
    expect(q.status, q.stderr).toBe(0);
    expect(q.stdout).toMatch(new RegExp(`RESEARCH@127\\.0\\.0\\.1:${p2}: 0 pending, ${acked} delivered, 0 dead`));
    expect(await node.stop()).toBe(0);
    // The console stays clean: nothing on stdout (dcmjs-dimse's logger is silenced), no warnings.
    expect(node.stdout()).toBe('');
    expect(node.logs()).not.toMatch(/warn|error/);
    expect(elapsed).toBeLessThan(20_000);
  });

  it('(b) research PACS down while a study arrives: delivered once it is back, exactly once; down/back logged once each', async () => {
    const dir = testDir('b');
    const scpDir = join(dir, 'pacs');
    mkdir(scpDir);
    const p2 = await freePort();
    const scpArgs = ['+B', '+xa', '+uf', '-aet', 'RESEARCH']; // +uf: a duplicate would be a second file
    let pacs = await startStorescp(scpArgs, p2, scpDir);
    const node = await startNode({ dir, csv, forward: [`RESEARCH@127.0.0.1:${p2}`] });

    push(node, studyA);
    await waitQueue(node, (c) => c.delivered === 3, 20_000, 'study A delivered');

    await pacs.stop();
    push(node, studyB); // the node still accepts and files while the PACS is down
    await node.waitForLog(/forward destination RESEARCH@127\.0\.0\.1:\d+ is down/, 20_000);
    await waitFor(() => filed(node).length === 6, 20_000, 'study B filed');
    expect((await queueCounts(node.paths.db)).delivered).toBe(3);

    pacs = await startStorescp(scpArgs, p2, scpDir);
    await waitQueue(node, (c) => c.delivered === 6, 30_000, 'study B delivered after the PACS came back');
    await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up here
    expect(readdirSync(scpDir)).toHaveLength(6);
    expectReceivedAsFiled(filed(node), scpDir);
    for (const p of readdirSync(scpDir)) {
      const isB = dump(join(scpDir, p)).includes('[RS_08]');
      expectDeidentified(join(scpDir, p), isB ? 'RS_08' : 'RS_07', isB ? 'MRN888' : 'MRN777', isB ? 'ACC2' : 'ACC1');
    }

    expect(await node.stop()).toBe(0);
    const log = node.logs();
    expect(count(log, /is down:/)).toBe(1);
    expect(count(log, /is back after/)).toBe(1);
    expect(log).not.toMatch(/is dead/);
    expect(node.stdout()).toBe('');
  });

  it('(c) a PACS refusing a SOP class: dead with its reason in `queue`; `queue retry` sends them again', async () => {
    const dir = testDir('c');
    const scpDir = join(dir, 'pacs');
    mkdir(scpDir);
    const p2 = await freePort();
    const cfg = writeFileIn(
      dir,
      'ctonly.cfg',
      [
        '[[TransferSyntaxes]]',
        '[Uncompressed]',
        'TransferSyntax1 = LocalEndianExplicit',
        'TransferSyntax2 = OppositeEndianExplicit',
        'TransferSyntax3 = LittleEndianImplicit',
        '[[PresentationContexts]]',
        '[CTOnly]',
        'PresentationContext1 = VerificationSOPClass\\Uncompressed',
        'PresentationContext2 = CTImageStorage\\Uncompressed',
        '[[Profiles]]',
        '[CTOnly]',
        'PresentationContexts = CTOnly',
        '',
      ].join('\n'),
    );
    let pacs = await startStorescp(['+B', '-xf', cfg, 'CTOnly', '-aet', 'RESEARCH'], p2, scpDir);
    const node = await startNode({ dir, csv, forward: [`RESEARCH@127.0.0.1:${p2}`] });

    push(node, studyA); // CT (explicit LE), MR (implicit LE), MR (explicit BE)
    await waitQueue(node, (c) => c.delivered === 1 && c.dead === 2, 20_000, 'CT delivered, both MR dead');

    const dest = `RESEARCH@127\\.0\\.0\\.1:${p2}`;
    const q1 = runCli(['queue', '--config', node.configPath]);
    expect(q1.status, q1.stderr).toBe(0);
    expect(q1.stdout).toMatch(new RegExp(`${dest}: 0 pending, 1 delivered, 2 dead`));
    expect(q1.stdout).toMatch(
      new RegExp(
        `dead at ${dest}: 2 x peer does not accept SOP class MrImageStorage \\(1\\.2\\.840\\.10008\\.5\\.1\\.4\\.1\\.1\\.4\\)`,
      ),
    );
    // The node logged the refusal once (later items with the same reason are summed into one line
    // at the end of a 60 s window or at stop), without identifiers; the destination is not "down".
    expect(count(node.logs(), /(is|are) dead[^\n]*: peer does not accept SOP class MrImageStorage/)).toBe(1);
    expect(node.logs()).not.toMatch(/is down|MRN777|ACC1|DOE/);

    // The PACS is reconfigured to accept MR; `queue retry` (another process) revives the items and
    // the running node sends them on its own (idle re-check), without any new instance arriving.
    await pacs.stop();
    pacs = await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], p2, scpDir);
    const r = runCli(['queue', 'retry', '--config', node.configPath]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^2 dead items are pending again/);
    await waitQueue(node, (c) => c.delivered === 3 && c.dead === 0, 20_000, 'retried items delivered');
    const q2 = runCli(['queue', '--config', node.configPath]);
    expect(q2.stdout).toMatch(new RegExp(`${dest}: 0 pending, 3 delivered, 0 dead\\n$`));
    expectReceivedAsFiled(filed(node), scpDir);
    expect(await node.stop()).toBe(0);
  });

  it('(d) a node restart resumes the queue: SIGTERM while the PACS is down, SIGKILL mid-association', async () => {
    const dir = testDir('d');
    const scpDir = join(dir, 'pacs');
    mkdir(scpDir);
    const p2 = await freePort();
    const forward = [`RESEARCH@127.0.0.1:${p2}`];

    // 1. PACS down: the study is filed and queued; SIGTERM stops the node cleanly and promptly.
    const node1 = await startNode({ dir, csv, forward });
    push(node1, studyA);
    await node1.waitForLog(/is down:/, 20_000);
    await waitFor(() => filed(node1).length === 3, 20_000, 'study A filed');
    const t0 = Date.now();
    expect(await node1.stop()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(node1.logs()).toMatch(/stopped/);
    expect(await queueCounts(node1.paths.db)).toMatchObject({ pending: 3, delivered: 0, dead: 0, inFlight: 0 });

    // 2. PACS up, node started again on the same state: the queue drains without any new input.
    await startStorescp(['+B', '+xa', '+uf', '-aet', 'RESEARCH'], p2, scpDir);
    const node2 = await startNode({ dir, csv, forward, port: node1.port });
    await waitQueue(node2, (c) => c.delivered === 3, 20_000, 'delivered after restart');
    expect(node2.logs()).not.toMatch(/is down|is dead/);
    await stopAllPeers();

    // 3. A PACS that accepts TCP but never answers: the association hangs with items in flight;
    //    the node is killed (-9); the restarted node sends them to a working PACS.
    const silent = net.createServer((s) => s.on('error', () => undefined));
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(p2, '127.0.0.1', () => r()));
    try {
      push(node2, studyB);
      await waitFor(() => filed(node2).length === 6, 20_000, 'study B filed');
      await waitQueue(node2, (c) => c.inFlight > 0, 20_000, 'an association in flight');
      await node2.kill9();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
    const before = await queueCounts(node2.paths.db);
    expect(before.delivered).toBe(3);
    expect(before.inFlight).toBeGreaterThan(0);

    await startStorescp(['+B', '+xa', '+uf', '-aet', 'RESEARCH'], p2, scpDir);
    const node3 = await startNode({ dir, csv, forward, port: node1.port });
    await waitQueue(node3, (c) => c.delivered === 6, 20_000, 'delivered after the crash');
    expect(node3.logs()).toMatch(
      new RegExp(`forward RESEARCH@127\\.0\\.0\\.1:${p2}: ${before.inFlight} interrupted item\\(s\\)`),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(readdirSync(scpDir)).toHaveLength(6); // +uf: nothing twice
    expectReceivedAsFiled(filed(node3), scpDir);
    expect(await node3.stop()).toBe(0);
  });
});

describe.skipIf(!ORTHANC_BIN)(
  `serve --forward to Orthanc${ORTHANC_BIN ? '' : ' (skipped: Orthanc not installed)'}`,
  () => {
    it('(e) Orthanc as the research PACS: the study arrives de-identified, data sets as filed', async () => {
      const dir = testDir('e');
      const orthanc = await startOrthanc(join(dir, 'orthanc'), 'ORTHANC');
      const node = await startNode({ dir, csv, forward: [`ORTHANC@127.0.0.1:${orthanc.dicomPort}`] });
      const acked = push(node, studyA, true);
      await waitFor(() => filed(node).length === acked, 20_000, 'filed');
      await waitQueue(node, (c) => c.delivered === acked, 30_000, 'delivered to Orthanc');

      const ids = await orthanc.get<string[]>('/instances');
      expect(ids).toHaveLength(acked);
      const patients = await orthanc.get<string[]>('/patients');
      expect(patients).toHaveLength(1);
      const patient = await orthanc.get<{ MainDicomTags: Record<string, string> }>(`/patients/${patients[0]}`);
      expect(patient.MainDicomTags['PatientID']).toBe('RS_07');
      expect(patient.MainDicomTags['PatientName']).not.toMatch(/DOE/);
      expect(patient.MainDicomTags['PatientBirthDate'] ?? '').not.toBe('19650704');

      const bySop = new Map<string, string>();
      for (const id of ids) {
        const tags = await orthanc.get<Record<string, string>>(`/instances/${id}/simplified-tags`);
        expect(tags['PatientID']).toBe('RS_07');
        expect(tags['AccessionNumber'] ?? '').not.toBe('ACC1');
        bySop.set(tags['SOPInstanceUID']!, id);
      }
      for (const f of filed(node)) {
        const h = readP10Header(f);
        const id = bySop.get(h.sopInstanceUid);
        expect(id, f).toBeDefined();
        const p = join(dir, `orthanc-${id}.dcm`);
        writeFileSync(p, await orthanc.getBytes(`/instances/${id}/file`));
        expect(readP10Header(p).transferSyntaxUid, f).toBe(h.transferSyntaxUid);
        expectDeidentified(p, 'RS_07', 'MRN777', 'ACC1');
        if (isUncompressed(f) && h.transferSyntaxUid !== '1.2.840.10008.1.2.2') {
          expect(dataSetBytes(p).equals(dataSetBytes(f)), `data set bytes of ${f}`).toBe(true);
        }
      }
      expect(await node.stop()).toBe(0);
      expect(node.logs()).not.toMatch(/warn|error/);
    });
  },
);

describe.skipIf(!ORTHANC_BIN)(
  `serve --forward: our calling AE title${ORTHANC_BIN ? '' : ' (skipped: Orthanc not installed)'}`,
  () => {
    it("(f) is the node's AE title by default, or the destination's own; Orthanc aborts a stranger's stores", async () => {
      const dir = testDir('f');
      // This Orthanc stores only from the AE titles it knows (as a research PACS would).
      const orthanc = await startOrthanc(join(dir, 'orthanc'), 'ORTHANC', {
        DicomAlwaysAllowStore: false,
        DicomModalities: { node: ['DEID_NODE', '127.0.0.1', 4242], trial: ['DEID_TRIAL', '127.0.0.1', 4243] },
      });
      const address = { aeTitle: 'ORTHANC', host: '127.0.0.1', port: orthanc.dicomPort };
      const node = await startNode({
        dir,
        csv,
        aeTitle: 'DEID_NODE', // no callingAet: the node calls as DEID_NODE (it used to call as DEID)
        forward: [
          `ORTHANC@127.0.0.1:${orthanc.dicomPort}`,
          { name: 'trial', ...address, callingAeTitle: 'DEID_TRIAL' },
          { name: 'stranger', ...address, callingAeTitle: 'STRANGER' },
        ],
      });
      const plain = studyA.filter(isUncompressed);
      const r = storescu(node.port, plain, { calledAet: 'DEID_NODE' });
      expect(r.status, r.output).toBe(0);
      expect(plain).toHaveLength(3);
      // Each destination has its own queue items (keyed by name): delivered twice. Orthanc accepts
      // the stranger's association (it allows anyone to echo) and aborts at its C-STORE: to us a
      // transient failure, so those items wait, and the destination is down.
      await waitQueue(node, (c) => c.delivered === 6, 30_000, 'delivered twice');
      await node.waitForLog(
        /forward destination stranger \(ORTHANC@127\.0\.0\.1:\d+\) is down: peer aborted the association/,
      );
      // The log names the likely cause: Orthanc's "source 0, reason 0" says nothing by itself.
      expect(node.logs()).toMatch(
        /peer aborted the association \(source 0, reason 0: service user\) .*it aborted before answering anything, the usual sign that it does not know our calling AE title "STRANGER"/,
      );
      expect(await orthanc.get<string[]>('/instances')).toHaveLength(3);
      const q = runCli(['queue', '--config', node.configPath]);
      expect(q.status, q.stderr).toBe(0);
      expect(q.stdout).toContain(`ORTHANC@127.0.0.1:${orthanc.dicomPort}: 0 pending, 3 delivered, 0 dead`);
      expect(q.stdout).toContain('trial: 0 pending, 3 delivered, 0 dead');
      expect(q.stdout).toMatch(/^stranger: 3 pending, 0 delivered, 0 dead/m);
      expect(await node.stop()).toBe(0);
    });
  },
);

function mkdir(p: string): void {
  mkdirSync(p, { recursive: true });
}
