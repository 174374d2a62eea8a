// The leak guard in the node: storescu pushes instances whose output the broken (or kept-on-
// purpose) profile would leak; each is quarantined with reason leak-guard, its audit row names
// the attribute and the kind, the application log never the value, and DeidNode.status() counts
// it (processing: quarantined by reason `leak-guard`). Warn-only attributes are filed with a
// warning; a replay leaves a held instance in quarantine with reason leak-guard.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeNamedTree } from '../helpers/batch-helpers.js';
import { tempDir } from '../helpers/forward-helpers.js';
import {
  collectingLogger,
  inProcessNodeConfig,
  listFilesRecursive,
  loadDeidNode,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  storescuAsync,
} from '../helpers/serve-helpers.js';
import { execFileSync } from 'node:child_process';

/** The sample patient's values (make_leak_guard_samples.py): never in a log line or a status. */
const VALUES = ['Quill', 'QUILL', 'Ada', 'QX-ALT-5521', '01.03.2023', '20230301', 'Varga', 'Lind', 'Northwind', '山田'];
let samples: string;
let files: string[];
const file = (name: string) => files.find((f) => basename(f) === `${name}.dcm`)!;

/** storescu to a node in this process (asynchronously: its event loop must keep running). */
function auditRows(logDir: string): Record<string, string>[] {
  return readdirSync(logDir)
    .filter((f) => f.startsWith('deid_log_'))
    .flatMap(
      (f) => parse(readFileSync(join(logDir, f), 'utf8'), { columns: true, bom: true }) as Record<string, string>[],
    );
}

function quarantined(dir: string): { file: string; reason: string; message: string }[] {
  return listFilesRecursive(dir)
    .filter((f) => f.endsWith('.dcm'))
    .map((f) => {
      const sidecar = JSON.parse(readFileSync(`${f}.json`, 'utf8')) as { reason: string; message: string };
      return { file: f, reason: sidecar.reason, message: sidecar.message };
    });
}

beforeAll(() => {
  samples = tempDir('leak-guard-node-samples-');
  execFileSync('/usr/bin/python3', [join(__dirname, '..', 'fixtures', 'make_leak_guard_samples.py'), samples]);
  files = listFilesRecursive(join(samples, 'tree')).filter((f) => f.endsWith('.dcm'));
  expect(files).toHaveLength(9);
});

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const n of running.splice(0)) await n.stop();
  await stopAllNodes();
});

describe('node: the leak guard', () => {
  it('quarantines (reason leak-guard) each instance the broken profile would leak, names the attribute, counts it', async () => {
    const DeidNode = await loadDeidNode();
    const dir = tempDir('leak-guard-node-');
    const config = inProcessNodeConfig(dir, join(samples, 'mapping.csv'));
    const logger = collectingLogger();
    const node = new DeidNode(config, logger);
    running.push(node);
    // A rule table that wrongly keeps Other Patient IDs (read when the node starts).
    process.env.DICOM_DEID_TEST_KEEP_ATTRIBUTES = 'OtherPatientIDs';
    let port: number;
    try {
      ({ port } = await node.start());
    } finally {
      delete process.env.DICOM_DEID_TEST_KEEP_ATTRIBUTES;
    }
    expect(logger.lines.join('\n')).toContain('DICOM_DEID_TEST_KEEP_ATTRIBUTES is set');
    expect(await storescuAsync(port, files)).toBe(0);
    await node.whenIdle();

    const expected: Record<string, string> = {
      other_ids: 'other-patient-id in (0010,1000) OtherPatientIDs',
      unlisted_lo: 'patient-name in (0018,99A1)',
      nested_lo: 'patient-name in (0008,1140)[0]/(0018,99A1)',
      series_surname: 'patient-name in (0008,103E) SeriesDescription',
      date_text: 'date in (0008,103E) SeriesDescription',
      japanese: 'patient-name in (0008,1090) ManufacturerModelName',
    };
    const q = quarantined(config.quarantine);
    expect(q.map((x) => x.reason)).toEqual(Array(6).fill('leak-guard'));
    expect(q.map((x) => x.message).sort()).toEqual(Object.values(expected).sort());
    // Filed: the three the guard found nothing in.
    expect(listFilesRecursive(config.output).filter((f) => f.endsWith('.dcm'))).toHaveLength(3);

    const rows = auditRows(config.logDir);
    expect(rows).toHaveLength(9);
    const held = rows.filter((r) => r.status === 'leak-guard');
    expect(held.map((r) => r.message!.replace(/ -> .*$/, '')).sort()).toEqual(
      Object.values(expected)
        .map((m) => `quarantined (leak-guard): ${m}`)
        .sort(),
    );
    expect(rows.filter((r) => r.status === 'ok')).toHaveLength(3);

    const status = node.status().components.processing!;
    expect(status.counts).toMatchObject({ filed: 3, quarantined: 6, leakGuardWarned: 0, failed: 0 });
    expect(status.details?.quarantinedByReason).toEqual({ 'leak-guard': 6 });
    // The application log says where and what kind, never the value.
    const log = logger.lines.join('\n');
    expect(log).toContain('instance quarantined (leak-guard: patient-name in (0008,103E) SeriesDescription)');
    for (const v of VALUES) {
      expect(log, v).not.toContain(v);
      expect(JSON.stringify(node.status()), v).not.toContain(v);
      for (const r of held) expect(r.message, v).not.toContain(v);
    }
  });

  it('files warn-only attributes with a warning; replay leaves a held instance in quarantine (the CLI node)', async () => {
    const dir = tempDir('leak-guard-serve-');
    const node = await startNode({
      dir,
      csv: join(samples, 'mapping.csv'),
      args: ['--leak-guard-warn-only', 'SeriesDescription'],
    });
    const sent = ['series_surname', 'date_text', 'unlisted_lo', 'clean'].map(file);
    expect(storescu(node.port, sent).status).toBe(0);
    await node.waitForLog(/instance quarantined \(leak-guard: patient-name in \(0018,99A1\)\)/);
    const filed = () => listFilesRecursive(node.paths.output).filter((f) => f.endsWith('.dcm')).length;
    for (let i = 0; i < 200 && filed() < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(filed()).toBe(3);
    expect(await node.stop()).toBe(0);

    const rows = auditRows(node.paths.logDir);
    const warned = rows.filter((r) => r.status === 'ok' && r.message!.startsWith('leak guard warning'));
    expect(warned.map((r) => r.message).sort()).toEqual([
      'leak guard warning: date in (0008,103E) SeriesDescription',
      'leak guard warning: patient-name in (0008,103E) SeriesDescription',
    ]);
    expect(quarantined(node.paths.quarantine).map((x) => [x.reason, x.message])).toEqual([
      ['leak-guard', 'patient-name in (0018,99A1)'],
    ]);
    const appLog = readFileSync(join(node.paths.logDir, 'dicom-deid.log'), 'utf8') + node.logs();
    expect(appLog).toContain('leak-guard');
    for (const v of VALUES) expect(appLog, v).not.toContain(v);

    // A replay files nothing the guard holds: the instance stays, still reason leak-guard.
    const replay = runCli(['quarantine', 'replay', '--config', node.configPath], dir);
    expect(replay.stdout).toContain('0 instances filed, 1 still held');
    expect(replay.status).toBe(1);
    const after = quarantined(node.paths.quarantine);
    expect(after.map((x) => [x.reason, x.message])).toEqual([['leak-guard', 'patient-name in (0018,99A1)']]);
    expect(existsSync(after[0]!.file)).toBe(true);
  });

  it('quarantines an instance naming another patient of the mapping CSV (found by a new-user trial: it was forwarded)', async () => {
    const dir = tempDir('leak-guard-others-');
    const root = join(dir, 'in');
    const doe = { patientId: 'MRN1001', accession: 'ACC1001', patientName: 'DOE^JOHN', charset: 'ISO_IR 100' };
    writeNamedTree(dir, {
      root,
      files: [
        { rel: 'a.dcm', ...doe, seriesDescription: 'compare MRN 7654321' },
        { rel: 'b.dcm', ...doe, seriesDescription: 'knee left' },
      ],
    });
    const csv = join(dir, 'map.csv');
    writeFileSync(
      csv,
      'MRN,Accession,New_Patient_ID,Surgery_Date\nMRN1001,ACC1001,RES001,2023-01-10\n7654321,ACC2002,RES002,2023-01-10\n',
    );
    const node = await startNode({ dir: join(dir, 'node'), csv });
    expect(storescu(node.port, [join(root, 'a.dcm'), join(root, 'b.dcm')]).status).toBe(0);
    await node.waitForLog(
      /instance quarantined \(leak-guard: mrn of another patient in \(0008,103E\) SeriesDescription\)/,
    );
    const filed = () => listFilesRecursive(node.paths.output).filter((f) => f.endsWith('.dcm')).length;
    for (let i = 0; i < 200 && filed() < 1; i++) await new Promise((r) => setTimeout(r, 50));
    expect(filed()).toBe(1);
    expect(await node.stop()).toBe(0);
    expect(quarantined(node.paths.quarantine).map((x) => [x.reason, x.message])).toEqual([
      ['leak-guard', 'mrn of another patient in (0008,103E) SeriesDescription'],
    ]);
    expect(readFileSync(join(node.paths.logDir, 'dicom-deid.log'), 'utf8') + node.logs()).not.toContain('7654321');
  });

  it('refuses a warn-only entry that is no attribute, naming it', () => {
    const dir = tempDir('leak-guard-config-');
    const r = runCli(
      ['serve', '--csv', join(samples, 'mapping.csv'), '--leak-guard-warn-only', 'SeriesDescriptoin'],
      dir,
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('leakGuardWarnOnly: not an attribute: "SeriesDescriptoin"');
  });
});
