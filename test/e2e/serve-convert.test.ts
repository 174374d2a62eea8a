// End-to-end, issue 14: a study in every transfer syntax the issue names (pydicom's files: explicit
// and implicit VR LE, explicit BE, deflate, JPEG baseline, extended and lossless SV1, JPEG-LS,
// JPEG 2000 lossless and lossy, RLE), each pushed by storescu in its own syntax, through the node
// (`node dist/cli.js serve`) to three research PACS that accept only uncompressed data: storescp
// with its defaults, storescp accepting only implicit VR LE (+xi), and Orthanc accepting only
// explicit and implicit VR LE. Every instance arrives at each, de-identified, and its pixel
// samples equal an independent decode of the source (gdcmconv --raw, dcmdjpeg, pydicom), exactly
// for lossless sources. `batch --forward` converts the same way (it uses the same forwarder).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/core/dicom/transferSyntax.js';
import { readP10Header } from '../../src/dimse/part10.js';
import {
  compareConverted,
  freePort,
  ORTHANC_BIN,
  receivedBySopInstance,
  rmrf,
  startOrthanc,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
} from '../helpers/forward-helpers.js';
import {
  ensureBuilt,
  listFilesRecursive,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  writeMappingCsv,
  type NodeProc,
} from '../helpers/serve-helpers.js';

const UNCOMPRESSED_LE = new Set([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
const LOSSY = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.91']);
/** storescu's option that proposes each compressed syntax (and uncompressed ones after it). */
const STORESCU_PROPOSE: Record<string, string[]> = {
  [IMPLICIT_VR_LE]: ['-xi'],
  [EXPLICIT_VR_BE]: ['-xb'],
  '1.2.840.10008.1.2.1.99': ['-xd'],
  '1.2.840.10008.1.2.4.50': ['-xy'],
  '1.2.840.10008.1.2.4.51': ['-xx'],
  '1.2.840.10008.1.2.4.70': ['-xs'],
  '1.2.840.10008.1.2.4.80': ['-xt'],
  '1.2.840.10008.1.2.4.90': ['-xv'],
  '1.2.840.10008.1.2.4.91': ['-xw'],
  '1.2.840.10008.1.2.5': ['-xr'],
};
/** Identifying values make_node_samples.py puts in every sample (plus MRN and accession). */
const PHI = ['DOE^JANE', '19650704', 'Springfield General', 'MRN14', 'ACC14'];

let root = '';
let csv = '';
let study: string[] = [];
const ts = (file: string): string => readP10Header(file).transferSyntaxUid;

beforeAll(() => {
  ensureBuilt();
  root = tempDir('serve-convert');
  csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN14', accession: 'ACC14', researchId: 'RS_14' }]);
  study = makeSamples(join(root, 'in'), 'MRN14', 'ACC14', '1.2.826.0.1.3680043.8.498.1414', 'c', true);
  expect(new Set(study.map(ts)).size).toBe(11);
});
afterEach(async () => {
  await stopAllNodes();
  await stopAllPeers();
});
afterAll(() => rmrf(root));

/** Filed file (path) -> the source it came from, by the audit log's original SOP Instance UID. */
function sourcesOfFiled(node: NodeProc): Map<string, string> {
  const bySop = new Map(study.map((f) => [readP10Header(f).sopInstanceUid, f]));
  const out = new Map<string, string>();
  for (const name of readdirSync(node.paths.logDir).filter((n) => /^deid_log_.*\.csv$/.test(n))) {
    const rows = parse(readFileSync(join(node.paths.logDir, name), 'utf8').replace(/^\uFEFF/, ''), {
      columns: true,
    }) as Record<string, string>[];
    for (const row of rows) {
      const original = /\(([0-9.]+)\)$/.exec(row['source_path'] ?? '')?.[1];
      if (row['status'] === 'ok' && original && bySop.has(original)) {
        out.set(join(node.paths.output, row['output_path']!), bySop.get(original)!);
      }
    }
  }
  return out;
}

/** The PACS's copies have no identifier of the sample in their bytes (all uncompressed here). */
function expectNoIdentifiers(path: string): void {
  const raw = readFileSync(path).toString('latin1');
  for (const v of PHI) expect(raw.includes(v), `${v} in ${path}`).toBe(false);
}

/** Each received copy's pixel samples equal the source's decoded ones (exactly unless lossy). */
function expectPixelsOfSources(pairs: { source: string; received: string }[]): void {
  const results = compareConverted(
    pairs.map((p) => ({ source: p.source, converted: p.received })),
    true,
  );
  for (const [i, r] of results.entries()) {
    const what = `${pairs[i]!.source} -> ${pairs[i]!.received}`;
    expect(r.error, what).toBeUndefined();
    expect(r.dcmdump, what).toEqual([]);
    expect(r.reference, what).toBeTruthy();
    expect(r.pixels?.samples, what).toBeGreaterThan(0);
    expect(r.pixels?.max_diff, what).toBeLessThanOrEqual(LOSSY.has(ts(pairs[i]!.source)) ? 1 : 0);
  }
}

describe('serve --forward to research PACS that take only uncompressed data', () => {
  it.skipIf(!ORTHANC_BIN)(
    'every instance of every syntax arrives at storescp (defaults, +xi) and Orthanc, with the source pixels',
    async () => {
      const dir = join(root, 'serve');
      const plainDir = join(dir, 'plain');
      const implicitDir = join(dir, 'implicit');
      mkdirSync(plainDir, { recursive: true });
      mkdirSync(implicitDir, { recursive: true });
      const [p1, p2] = [await freePort(), await freePort()];
      await startStorescp(['-aet', 'RESEARCH'], p1, plainDir); // its defaults: uncompressed only
      await startStorescp(['+xi', '-aet', 'RESEARCH'], p2, implicitDir); // implicit VR LE only
      const orthanc = await startOrthanc(join(dir, 'orthanc'), 'ORTHANC', {
        AcceptedTransferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
      });
      const host = '127.0.0.1';
      const node = await startNode({
        dir,
        csv,
        forward: [
          { name: 'plain', aeTitle: 'RESEARCH', host, port: p1 },
          { name: 'implicit', aeTitle: 'RESEARCH', host, port: p2 },
          { name: 'orthanc', aeTitle: 'ORTHANC', host, port: orthanc.dicomPort },
        ],
      });
      for (const f of study) {
        // Proposed in its own syntax: storescu cannot decode every one of them.
        const r = storescu(node.port, [f], { args: STORESCU_PROPOSE[ts(f)] ?? [] });
        expect(r.status, `${f}: ${r.output}`).toBe(0);
      }
      const filedFiles = () => listFilesRecursive(node.paths.output).filter((f) => f.endsWith('.dcm'));
      await waitFor(() => filedFiles().length === study.length, 30_000, 'all filed');
      const queue = () => runCli(['queue', '--config', node.configPath]).stdout;
      await waitFor(
        () => (queue().match(/: 0 pending, 11 delivered, 0 dead/g) ?? []).length === 3,
        120_000,
        'all delivered to the three PACS',
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${queue()}\n${node.logs()}`);
      });

      // The node filed each instance in the syntax it was pushed in: the conversions were ours.
      const sourceOf = sourcesOfFiled(node);
      expect(sourceOf.size).toBe(study.length);
      for (const [filed, source] of sourceOf) expect(ts(filed), source).toBe(ts(source));

      const orthancIds = await orthanc.get<string[]>('/instances');
      expect(orthancIds).toHaveLength(study.length);
      const orthancBySop = new Map<string, string>();
      for (const id of orthancIds) {
        const path = join(dir, `orthanc-${id}.dcm`);
        writeFileSync(path, await orthanc.getBytes(`/instances/${id}/file`));
        orthancBySop.set(readP10Header(path).sopInstanceUid, path);
      }
      const plain = receivedBySopInstance(plainDir);
      const implicit = receivedBySopInstance(implicitDir);
      const pairs: { source: string; received: string }[] = [];
      for (const [filed, source] of sourceOf) {
        const sop = readP10Header(filed).sopInstanceUid;
        const stored = ts(source);
        const atPlain = plain.get(sop);
        const atImplicit = implicit.get(sop);
        expect(atPlain, source).toHaveLength(1);
        expect(atImplicit, source).toHaveLength(1);
        // storescp's defaults take explicit big endian too; everything else compressed is decoded.
        expect(atPlain![0]!.ts, source).toBe(
          UNCOMPRESSED_LE.has(stored) || stored === EXPLICIT_VR_BE ? stored : EXPLICIT_VR_LE,
        );
        expect(atImplicit![0]!.ts, source).toBe(IMPLICIT_VR_LE);
        const atOrthanc = orthancBySop.get(sop)!;
        expect(atOrthanc, source).toBeDefined();
        expect(ts(atOrthanc), source).toBe(UNCOMPRESSED_LE.has(stored) ? stored : EXPLICIT_VR_LE);
        for (const received of [atPlain![0]!.path, atImplicit![0]!.path, atOrthanc]) {
          expectNoIdentifiers(received);
          pairs.push({ source, received });
        }
      }
      expectPixelsOfSources(pairs);
      expect(await node.stop()).toBe(0);
      expect(node.logs()).not.toMatch(/warn|error/);
    },
  );
});

describe('batch --forward', () => {
  it('converts for a PACS that takes only implicit VR LE, as the node does', async () => {
    const dir = join(root, 'batch');
    const input = join(dir, 'input', 'Patient_1', '2024-01-01_MR');
    const pacsDir = join(dir, 'pacs');
    mkdirSync(input, { recursive: true });
    mkdirSync(pacsDir, { recursive: true });
    for (const f of study) writeFileSync(join(input, f.split('/').pop()!), readFileSync(f));
    const port = await freePort();
    await startStorescp(['+xi', '-aet', 'RESEARCH'], port, pacsDir);
    const r = runCli([
      'batch',
      '--input',
      join(dir, 'input'),
      '--output',
      join(dir, 'output'),
      '--csv',
      csv,
      '--db',
      join(dir, 'state.sqlite'),
      '--log-dir',
      join(dir, 'logs'),
      '--forward',
      `RESEARCH@127.0.0.1:${port}`,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      new RegExp(`forward RESEARCH@127\\.0\\.0\\.1:${port}: 11 delivered, 0 dead, 0 still queued`),
    );
    const got = receivedBySopInstance(pacsDir);
    expect(got.size).toBe(study.length);
    for (const [, copies] of got) expect(copies.map((c) => c.ts)).toEqual([IMPLICIT_VR_LE]);
  });
});
