// The node on instances it must not file silently (issue 10): a C-STORE whose command names
// another SOP Instance UID than its data set (quarantine `uid-mismatch`), an instance of a study
// that already belongs to another research patient (`study-patient-conflict`), Burned In
// Annotation YES (`burned-in`, or filed with allowBurnedIn) and images that commonly carry
// burned-in text (filed, listed for review in the audit log and the node's status). A real node
// in this process (from dist/), pushed to by storescu and by our own SCU. Names are made up.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDestination } from '../../src/forward/destination.js';
import { sendFiles } from '../../src/forward/storeScu.js';
import { listQuarantine } from '../../src/node/quarantine.js';
import { stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  collectingLogger,
  inProcessNodeConfig,
  loadDeidNode,
  runCli,
  storescuAsync,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';
import { el, part10, UIDS, ui, us } from '../helpers/dicomBytes.js';

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const n of running.splice(0)) await n.stop();
  await stopAllPeers();
});

let sop = 0;
/** A Part 10 instance with made-up identifiers; `metaSop` puts another SOP Instance UID in the file meta. */
function instance(
  dir: string,
  o: {
    name: string;
    mrn: string;
    accession: string;
    study: string;
    modality?: string;
    sopClass?: string;
    burnedIn?: string;
    metaSop?: string;
    /** As a careless writer sends it: elements out of order, a kept value of odd length. */
    damaged?: boolean;
  },
): string {
  const sopUid = `1.2.826.0.1.3680043.9.9999.2.${++sop}`;
  const sopClass = o.sopClass ?? UIDS.mrStorage;
  const pad = (s: string) => (s.length % 2 ? s + ' ' : s);
  const elements = [
    el(0x00080016, 'UI', ui(sopClass)),
    el(0x00080018, 'UI', ui(sopUid)),
    el(0x00080020, 'DA', '20240301'),
    el(0x00080050, 'SH', pad(o.accession)),
    el(0x00080060, 'CS', pad(o.modality ?? 'MR')),
    el(0x00100010, 'PN', pad(o.name)),
    el(0x00100020, 'LO', pad(o.mrn)),
    el(0x0020000d, 'UI', ui(o.study)),
    el(0x0020000e, 'UI', ui(`${o.study}.1`)),
    el(0x00280010, 'US', us(2)),
    el(0x00280011, 'US', us(2)),
    el(0x00280100, 'US', us(8)),
    ...(o.burnedIn ? [el(0x00280301, 'CS', pad(o.burnedIn))] : []),
    ...(o.damaged ? [el(0x0008103e, 'LO', 'KNEE LEFT')] : []), // SeriesDescription: 9 bytes
    el(0x7fe00010, 'OB', Buffer.from([1, 2, 3, 4])),
  ].sort((a, b) => a.readUInt16LE(0) - b.readUInt16LE(0) || a.readUInt16LE(2) - b.readUInt16LE(2));
  if (o.damaged) elements.reverse(); // Pixel Data first, SOP Class UID last
  const ds = Buffer.concat(elements);
  const file = join(dir, `i${sop}.dcm`);
  writeFileSync(file, part10(ds, { sopClass, sopInstance: o.metaSop ?? sopUid, ts: UIDS.explicitLE }));
  return file;
}

function audit(logDir: string): Record<string, string>[] {
  const f = readdirSync(logDir).find((n) => n.startsWith('deid_log_'))!;
  return parse(readFileSync(join(logDir, f), 'utf8'), { columns: true, bom: true }) as Record<string, string>[];
}

async function startNode(dir: string, extra: Record<string, unknown> = {}) {
  const DeidNode = await loadDeidNode();
  const csv = writeMappingCsv(join(dir, 'map.csv'), [
    { mrn: 'MRN9009', accession: 'ACC4242', researchId: 'RES_A' },
    { mrn: 'MRN9010', accession: '', researchId: 'RES_C' },
    { mrn: 'MRN7000', accession: '', researchId: 'RES_B' },
  ]);
  const config = inProcessNodeConfig(dir, csv, extra);
  const logger = collectingLogger();
  const node = new DeidNode(config, logger);
  running.push(node);
  const { port } = await node.start();
  return { node, port, logger, logDir: config.logDir, quarantine: config.quarantine, output: config.output };
}

describe('the node holds what it must not file silently', () => {
  it('a C-STORE whose command and data set name different SOP Instance UIDs is quarantined (uid-mismatch), both UIDs in the audit log', async () => {
    const dir = tempDir('node-input-uid-');
    const { node, port, logger, logDir, quarantine } = await startNode(dir);
    const claimed = '1.2.826.0.1.3680043.9.9999.77';
    const file = instance(dir, {
      name: 'Phi^Alpha',
      mrn: 'MRN9009',
      accession: 'ACC4242',
      study: '1.2.826.0.1.3680043.9.9999.1',
      metaSop: claimed,
    });
    const inDataSet = `1.2.826.0.1.3680043.9.9999.2.${sop}`;
    // Our SCU sends the file meta's Media Storage SOP Instance UID as the Affected SOP Instance UID.
    const report = await sendFiles([file], parseDestination(`DEID@127.0.0.1:${port}`), { callingAet: 'MODALITY' });
    expect(report.outcomes[0]!.outcome.kind).toBe('delivered'); // accepted: nothing accepted is lost
    await node.whenIdle();
    const q = await listQuarantine(quarantine);
    expect(q.map((x) => x.sidecar.reason)).toEqual(['uid-mismatch']);
    const row = audit(logDir).find((r) => r.message!.includes('uid-mismatch'))!;
    expect(row.message).toContain(`Affected SOP Instance UID is ${claimed}`);
    expect(row.message).toContain(`SOP Instance UID ${inDataSet}`);
    expect(row.output_path).toBe('');
    // The application log names the reason, never a UID.
    // Quarantine lines are grouped per sender and reason, written once the group is quiet (2 s).
    await waitFor(
      () => logger.lines.some((l) => l.includes('instance quarantined (uid-mismatch)')),
      10_000,
      'the line',
    );
    expect(logger.lines.join('\n')).not.toContain(claimed);
    expect(node.status().components.processing?.details).toMatchObject({ quarantinedByReason: { 'uid-mismatch': 1 } });
  });

  it('an instance out of tag order with an odd-length value is repaired and filed, the repairs in the audit log', async () => {
    const dir = tempDir('node-input-repair-');
    const { node, port, logDir, quarantine, output } = await startNode(dir);
    const file = instance(dir, {
      name: 'Phi^Delta',
      mrn: 'MRN9009',
      accession: 'ACC4242',
      study: '1.2.826.0.1.3680043.9.9999.5',
      damaged: true,
    });
    // Our SCU sends the data set's bytes as they are (storescu would re-encode them in order).
    const report = await sendFiles([file], parseDestination(`DEID@127.0.0.1:${port}`), { callingAet: 'MODALITY' });
    expect(report.outcomes[0]!.outcome.kind).toBe('delivered');
    await node.whenIdle();
    expect(await listQuarantine(quarantine)).toEqual([]);
    const row = audit(logDir)[0]!;
    expect(row.status).toBe('ok');
    expect(row.message).toContain('repaired: elements put into ascending tag order (PS3.5 7.1)');
    expect(row.message).toContain('repaired: odd-length value(s) padded to even length (PS3.5 7.1.1): (0008,103E)');
    // The filed instance is well formed: dcmdump reads it without a warning, in order, padded.
    const filed = join(output, row.output_path!);
    const dump = spawnSync('dcmdump', ['+P', '0008,103e', filed], { encoding: 'utf8' });
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stderr).toBe('');
    expect(dump.stdout).toMatch(/\(0008,103e\) LO \[KNEE LEFT\]\s+#\s+10,/); // 9 bytes padded to 10
    const all = spawnSync('dcmdump', ['-q', filed], { encoding: 'utf8' });
    expect(all.status).toBe(0);
    expect(all.stderr).toBe('');
  });

  it('one study, one research patient: C (another research ID) is quarantined as study-patient-conflict; A and B are filed', async () => {
    const dir = tempDir('node-input-study-');
    const { node, port, logger, logDir, quarantine } = await startNode(dir);
    const study = '1.2.826.0.1.3680043.9.9999.5';
    const a = instance(dir, { name: 'Phi^Alpha', mrn: 'MRN9009', accession: 'ACC4242', study });
    const b = instance(dir, { name: 'Phi^Alpha', mrn: 'VNA-77231', accession: 'ACC4242', study });
    const c = instance(dir, { name: 'Phi^Alpha', mrn: 'MRN9010', accession: 'ACC5353', study });
    expect(await storescuAsync(port, [a, b])).toBe(0);
    await node.whenIdle();
    expect(await storescuAsync(port, [c])).toBe(0);
    await node.whenIdle();
    const rows = audit(logDir);
    expect(rows.filter((r) => r.status === 'ok').map((r) => r.research_id)).toEqual(['RES_A', 'RES_A']);
    const conflict = rows.find((r) => r.status === 'conflict')!;
    expect(conflict.message).toContain('quarantined (study-patient-conflict)');
    expect(conflict.message).toContain('its study belongs to research patient RES_A, but this instance matched RES_C');
    expect((await listQuarantine(quarantine)).map((x) => x.sidecar.reason)).toEqual(['study-patient-conflict']);
    expect(readdirSync(join(dir, 'output')).sort()).toEqual(['.dicom-deid-project', 'RES_A']);
    // Quarantine lines are grouped per sender and reason, written once the group is quiet (2 s).
    await waitFor(
      () => logger.lines.some((l) => l.includes('instance quarantined (study-patient-conflict)')),
      10_000,
      'the line',
    );
    // The conflict's research IDs go to the audit log, never the application log; the only line
    // naming a research ID is the filed study's own (issue 12: "RES_A_1: 2 instances filed").
    const naming = logger.lines.filter((l) => /RES_A|RES_C/.test(l));
    expect(naming).toEqual([expect.stringMatching(/^info: RES_A_1: 2 instances filed\b/)]);
    expect(node.status().components.processing?.details).toMatchObject({
      quarantinedByReason: { 'study-patient-conflict': 1 },
    });
  });

  it('batch and node share study owners: a study batch mode gave RES_A is not filed under RES_C by the node', async () => {
    const dir = tempDir('node-input-shared-');
    const study = '1.2.826.0.1.3680043.9.9999.6';
    const raw = join(dir, 'Raw', 'Phi_Alpha', 's1');
    mkdirSync(raw, { recursive: true });
    instance(raw, { name: 'Phi^Alpha', mrn: 'MRN9009', accession: 'ACC4242', study });
    const csv = writeMappingCsv(join(dir, 'map.csv'), [
      { mrn: 'MRN9009', accession: 'ACC4242', researchId: 'RES_A' },
      { mrn: 'MRN9010', accession: '', researchId: 'RES_C' },
    ]);
    const db = join(dir, 'state', 'state.sqlite');
    const batch = runCli([
      'batch',
      '--csv',
      csv,
      '--input',
      join(dir, 'Raw'),
      '--output',
      join(dir, 'batch-out'),
      '--db',
      db,
      '--quiet',
    ]);
    expect(batch.status, batch.stderr).toBe(0);
    const { node, port, quarantine } = await startNode(dir, { db });
    expect(
      await storescuAsync(port, [instance(dir, { name: 'Phi^Alpha', mrn: 'MRN9010', accession: 'ACC5353', study })]),
    ).toBe(0);
    await node.whenIdle();
    expect((await listQuarantine(quarantine)).map((x) => x.sidecar.reason)).toEqual(['study-patient-conflict']);
  });

  it('burned-in: YES is quarantined, an ultrasound without NO is filed and listed for review, NO is filed quietly', async () => {
    const dir = tempDir('node-input-burned-');
    const { node, port, logDir, quarantine } = await startNode(dir);
    const us1 = {
      name: 'Beta^Rho',
      mrn: 'MRN7000',
      accession: '',
      study: '1.2.826.0.1.3680043.9.9999.8',
      modality: 'US',
      sopClass: UIDS.usStorage,
    };
    const files = [
      instance(dir, { ...us1, burnedIn: 'YES' }),
      instance(dir, us1),
      instance(dir, { ...us1, burnedIn: 'NO' }),
    ];
    expect(await storescuAsync(port, files)).toBe(0);
    await node.whenIdle();
    expect((await listQuarantine(quarantine)).map((x) => x.sidecar.reason)).toEqual(['burned-in']);
    const rows = audit(logDir);
    expect(rows.find((r) => r.status === 'held')!.message).toContain(
      'quarantined (burned-in): Burned In Annotation (0028,0301) is YES',
    );
    const ok = rows.filter((r) => r.status === 'ok');
    expect(ok).toHaveLength(2);
    expect(ok.filter((r) => r.message!.includes('review: ultrasound without Burned In Annotation'))).toHaveLength(1);
    const processing = node.status().components.processing!;
    expect(processing.counts).toMatchObject({ filed: 2, quarantined: 1, reviewListed: 1 });
    expect(processing.details).toMatchObject({
      quarantinedByReason: { 'burned-in': 1 },
      reviewByImageKind: { ultrasound: 1 },
    });
    expect(JSON.stringify(node.status())).not.toMatch(/MRN7000|Rho|RES_B/);
  });

  it('allowBurnedIn: true files the YES instance too, listed for review', async () => {
    const dir = tempDir('node-input-allow-');
    const { node, port, logDir, quarantine } = await startNode(dir, { allowBurnedIn: true });
    const file = instance(dir, {
      name: 'Beta^Rho',
      mrn: 'MRN7000',
      accession: '',
      study: '1.2.826.0.1.3680043.9.9999.9',
      modality: 'US',
      sopClass: UIDS.usStorage,
      burnedIn: 'YES',
    });
    expect(await storescuAsync(port, [file])).toBe(0);
    await node.whenIdle();
    expect(await listQuarantine(quarantine)).toEqual([]);
    expect(audit(logDir)[0]!.message).toContain('review: Burned In Annotation (0028,0301) is YES (allowBurnedIn)');
    expect(node.status().components.processing!.counts.reviewListed).toBe(1);
  });
});
