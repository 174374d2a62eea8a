// `batch --forward`: a batch run pushes what it wrote to the research PACS (storescp), and what
// cannot be delivered stays queued in the state for later.
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  dataSetBytes,
  freePort,
  receivedBySopInstance,
  startStorescp,
  stopAllPeers,
  tempDir,
} from '../helpers/forward-helpers.js';
import { listFilesRecursive, makeSamples, runCli, writeMappingCsv } from '../helpers/serve-helpers.js';

afterEach(async () => {
  await stopAllPeers();
});

function makeTree(dir: string): string {
  const input = join(dir, 'Raw_Scans');
  const session = join(input, 'patient_a', 'session_1');
  mkdirSync(session, { recursive: true });
  for (const f of makeSamples(join(dir, 'gen'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.31', 'b').slice(0, 3)) {
    renameSync(f, join(session, f.split('/').pop()!));
  }
  return input;
}

describe('batch --forward', () => {
  it('sends every de-identified file to the research PACS, byte for byte', async () => {
    const dir = tempDir('batch-fwd-');
    const input = makeTree(dir);
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const port = await freePort();
    const recv = join(dir, 'pacs');
    mkdirSync(recv);
    await startStorescp(['+B', '+xa', '-aet', 'RESEARCH'], port, recv);
    const out = join(dir, 'out');
    const r = runCli([
      'batch',
      '--csv',
      csv,
      '--input',
      input,
      '--output',
      out,
      '--quiet',
      '--forward',
      `RESEARCH@127.0.0.1:${port}`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`forward RESEARCH@127.0.0.1:${port}: 3 delivered, 0 dead, 0 still queued`);
    const written = listFilesRecursive(out).filter((f) => f.endsWith('.dcm'));
    expect(written).toHaveLength(3);
    const received = receivedBySopInstance(recv);
    expect(received.size).toBe(3);
    const byBytes = new Set(written.map((f) => dataSetBytes(f).toString('base64')));
    for (const [, copies] of received) {
      expect(copies).toHaveLength(1);
      expect(byBytes.has(dataSetBytes(copies[0]!.path).toString('base64'))).toBe(true);
    }
  });

  it('leaves undeliverable files queued and says so (exit 1)', async () => {
    const dir = tempDir('batch-fwd-down-');
    const input = makeTree(dir);
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const port = await freePort(); // nothing listens there
    const r = runCli([
      'batch',
      '--csv',
      csv,
      '--input',
      input,
      '--output',
      join(dir, 'out'),
      '--quiet',
      '--forward',
      `RESEARCH@127.0.0.1:${port}`,
      '--forward-wait',
      '2',
    ]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`forward RESEARCH@127.0.0.1:${port}: 0 delivered, 0 dead, 3 still queued`);
    const q = runCli(['queue', '--db', join(dir, 'dicom-deid-state.sqlite')]);
    expect(q.stdout).toContain(`RESEARCH@127.0.0.1:${port}: 3 pending, 0 delivered, 0 dead`);
  });

  it('refuses a malformed destination before touching anything', () => {
    const dir = tempDir('batch-fwd-bad-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const r = runCli(['batch', '--csv', csv, '--input', dir, '--output', join(dir, 'out'), '--forward', 'nonsense']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/nonsense/);
  });
});
