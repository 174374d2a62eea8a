// The DICOM node end to end, as a real process: dcmtk's storescu/echoscu push to it, and we read
// back the anonymized tree, the quarantine, the state and the logs.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpoolJournal } from '../../src/node/spool/spoolJournal.js';
import type { JournalRef } from '../../src/node/spool/spoolRef.js';
import { ORTHANC_BIN, startOrthanc, stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  CSV_HEADER,
  listFilesRecursive,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';

afterEach(async () => {
  await stopAllNodes();
});

/** storescu option that proposes a file's own transfer syntax (so storescu never transcodes). */
const PROPOSE: Record<string, string[]> = {
  '1.2.840.10008.1.2': ['-xi'],
  '1.2.840.10008.1.2.1': ['-xe'],
  '1.2.840.10008.1.2.2': ['-xb'],
  '1.2.840.10008.1.2.1.99': ['-xd'],
  '1.2.840.10008.1.2.4.91': ['-xw'],
  '1.2.840.10008.1.2.4.90': ['-xv'],
  '1.2.840.10008.1.2.5': ['-xr'],
  '1.2.840.10008.1.2.4.51': ['-xx'],
  '1.2.840.10008.1.2.4.80': ['-xt'],
};

function dumpJson(file: string): { ds: Record<string, unknown>; ts: string } {
  const r = spawnSync('/usr/bin/python3', [join(__dirname, '..', 'fixtures', 'dump_json.py'), file], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`dump_json ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function dicomFiles(dir: string): string[] {
  return listFilesRecursive(dir).filter((f) => f.endsWith('.dcm'));
}

function storescuAsync(port: number, files: string[], args: string[] = []): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn('storescu', ['-aet', 'MODALITY', '-aec', 'DEID', ...args, '127.0.0.1', String(port), ...files], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: 'ignore',
    });
    p.on('exit', (code) => resolve(code));
  });
}

const IDENTIFIERS = ['DOE', 'JANE', '19650704', 'Springfield', 'MRN777', 'ACC1'];

/** Unretired records in a running node's journal (read from a copy: recovery writes). */
async function journalRecordsWhileRunning(spool: string): Promise<number> {
  const copy = tempDir('journal-copy-');
  cpSync(spool, copy, { recursive: true });
  try {
    return await journalRecords(copy);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/** Acknowledged, unfiled instances in a stopped node's spool journal. */
async function journalRecords(spool: string): Promise<number> {
  return (await journalRefs(spool)).length;
}

/** Their references (spoolRef.ts). */
async function journalRefs(spool: string): Promise<JournalRef[]> {
  const journal = new SpoolJournal(spool, { reserveBytes: 1024 ** 3 });
  try {
    return (await journal.recover()).records;
  } finally {
    await journal.close();
  }
}

describe('dicom-deid serve', () => {
  it('files every transfer syntax as sent, de-identified, pixel data untouched, and logs no identifier', async () => {
    const dir = tempDir('serve-ts-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: 'ACC1', researchId: 'RS_07' }]);
    const samples = makeSamples(join(dir, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.77');
    const node = await startNode({ dir, csv });
    const echo = spawnSync('echoscu', ['-aec', 'DEID', '127.0.0.1', String(node.port)], {
      env: { ...process.env, TCP_NODELAY: '1' },
    });
    expect(echo.status).toBe(0);

    const inputs = samples.map((f) => ({ f, ...dumpJson(f) }));
    for (const { f, ts } of inputs) {
      const r = storescu(node.port, [f], { args: PROPOSE[ts] ?? [] });
      expect(r.status, `${f}: ${r.output}`).toBe(0);
    }
    await waitFor(() => dicomFiles(node.paths.output).length === samples.length, 20_000, 'all instances filed');
    const outputs = dicomFiles(node.paths.output);
    for (const o of outputs) expect(o).toMatch(/\/RS_07\/RS_07_1\/[A-Z]+_S\d+_[0-9a-f]{8}\/2\.25\.\d+\.dcm$/);
    const byPixels = new Map(inputs.map((i) => [String(i.ds['7FE00010']), i]));
    for (const o of outputs) {
      const out = dumpJson(o);
      const input = byPixels.get(String(out.ds['7FE00010']));
      expect(input, `pixel data of ${o} matches an input`).toBeDefined();
      expect(out.ts).toBe(input!.ts); // no transcoding anywhere
      expect(out.ds['00100020']).toBe('RS_07');
      expect(out.ds['00080050']).toBe('RS_07_1');
      const text = JSON.stringify(out);
      for (const id of IDENTIFIERS) expect(text, id).not.toContain(id);
      const d = spawnSync('dcmdump', ['-q', o], { encoding: 'utf8' });
      expect(d.status).toBe(0);
    }
    expect(await node.stop()).toBe(0);
    const appLog = node.logs() + readFileSync(join(node.paths.logDir, 'dicom-deid.log'), 'utf8');
    expect(appLog).toMatch(/association accepted/);
    for (const id of IDENTIFIERS) expect(appLog, id).not.toContain(id);
    // The audit CSV (key material, in the log dir) is where identifiers live.
    const audit = readdirSync(node.paths.logDir).find((f) => f.startsWith('deid_log_'))!;
    expect(readFileSync(join(node.paths.logDir, audit), 'utf8')).toMatch(/,ok,mrn,RS_07,RS_07_1,106,/);
  });

  it('numbers studies per patient across concurrent associations and restarts', async () => {
    const dir = tempDir('serve-counter-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const studies = ['ACCA', 'ACCB', 'ACCC', 'ACCD'].map((acc, i) => ({
      acc,
      files: makeSamples(join(dir, `in${i}`), 'MRN777', acc, `1.2.826.0.1.3680043.8.498.9${i}`, `p${i}`).slice(0, 2),
    }));
    let node = await startNode({ dir, csv });
    const codes = await Promise.all(studies.slice(0, 3).map((s) => storescuAsync(node.port, s.files)));
    expect(codes).toEqual([0, 0, 0]);
    await waitFor(() => dicomFiles(node.paths.output).length === 6, 20_000, 'three studies filed');
    const sessions = readdirSync(join(node.paths.output, 'RS_07')).sort();
    expect(sessions).toEqual(['RS_07_1', 'RS_07_2', 'RS_07_3']);
    for (const s of sessions) expect(dicomFiles(join(node.paths.output, 'RS_07', s))).toHaveLength(2);
    // Which study got which number is decided by arrival; it must never change afterwards.
    const numberOf = new Map<string, string>();
    for (const s of sessions) {
      const f = dicomFiles(join(node.paths.output, 'RS_07', s))[0]!;
      numberOf.set(s, String(dumpJson(f).ds['0020000D']));
    }
    expect(await node.stop()).toBe(0);

    node = await startNode({ dir, csv });
    // A study seen before keeps its number; a new one gets the next.
    expect(storescu(node.port, studies[1]!.files).status).toBe(0);
    expect(storescu(node.port, studies[3]!.files).status).toBe(0);
    await waitFor(() => readdirSync(join(node.paths.output, 'RS_07')).length === 4, 20_000, 'fourth session');
    await waitFor(() => dicomFiles(node.paths.output).length === 8, 20_000, 'eight files (re-send overwrote)');
    expect(dicomFiles(join(node.paths.output, 'RS_07', 'RS_07_4'))).toHaveLength(2);
    const fourth = dumpJson(dicomFiles(join(node.paths.output, 'RS_07', 'RS_07_4'))[0]!).ds;
    expect(fourth['00080050']).toBe('RS_07_4');
    expect([...numberOf.values()]).not.toContain(fourth['0020000D']);
  });

  it('quarantines unmatched instances, reloads the CSV, keeps the old mapping on a bad edit, replays', async () => {
    const dir = tempDir('serve-quarantine-');
    const csvPath = join(dir, 'map.csv');
    writeMappingCsv(csvPath, [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const strangers = makeSamples(join(dir, 'in'), 'MRN999', 'ACC9', '1.2.826.0.1.3680043.8.498.99', 'q').slice(0, 3);
    const node = await startNode({ dir, csv: csvPath });
    expect(storescu(node.port, strangers).status).toBe(0); // accepted: Success even without a row
    await waitFor(() => dicomFiles(node.paths.quarantine).length === 3, 20_000, 'quarantined');
    expect(dicomFiles(node.paths.output)).toHaveLength(0);
    const list = runCli(['quarantine', 'list', '--config', node.configPath]);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/3 instances in 1 study in /);
    expect(list.stdout).toContain('MRN999'); // the researcher's view shows the keys tried

    // A bad edit: previous mapping kept, one clear error.
    writeFileSync(csvPath, `${CSV_HEADER}\nMRN777,,RS_07,2024-02-30,2024-06-15,\n`);
    await node.waitForLog(/mapping CSV not reloaded.*line 2/, 10_000);
    // The fix: the node reloads without a restart.
    writeMappingCsv(csvPath, [
      { mrn: 'MRN777', accession: '', researchId: 'RS_07' },
      { mrn: 'MRN999', accession: '', researchId: 'RS_09' },
    ]);
    await node.waitForLog(/mapping CSV reloaded: 2 rows/, 10_000);
    const replay = runCli(['quarantine', 'replay', '--config', node.configPath]);
    expect(replay.stderr).toBe('');
    expect(replay.stdout).toMatch(/3 instances filed, 0 still/);
    expect(replay.status).toBe(0);
    expect(dicomFiles(node.paths.quarantine)).toHaveLength(0);
    expect(dicomFiles(join(node.paths.output, 'RS_09', 'RS_09_1'))).toHaveLength(3);
    expect(node.logs()).not.toContain('MRN999');
  });

  it('applies the AE title policy', async () => {
    const dir = tempDir('serve-aet-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const files = makeSamples(join(dir, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.5', 'a').slice(0, 1);
    const node = await startNode({ dir, csv, config: { allowedAets: ['MODALITY'] } });
    const wrongCalled = storescu(node.port, files, { calledAet: 'NOTUS' });
    expect(wrongCalled.status).not.toBe(0);
    expect(wrongCalled.output).toMatch(/Called AE Title Not Recognized/i);
    const wrongCalling = storescu(node.port, files, { callingAet: 'INTRUDER' });
    expect(wrongCalling.status).not.toBe(0);
    expect(wrongCalling.output).toMatch(/Calling AE Title Not Recognized/i);
    expect(storescu(node.port, files).status).toBe(0);
    await waitFor(() => dicomFiles(node.paths.output).length === 1, 20_000, 'allowed peer filed');
  });

  it('after kill -9 right after the last acknowledged store, files everything exactly once on restart', async () => {
    const dir = tempDir('serve-crash-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const sets = [0, 1, 2].map((i) =>
      makeSamples(join(dir, `in${i}`), 'MRN777', `ACC${i}`, `1.2.826.0.1.3680043.8.498.6${i}`, `k${i}`).filter(
        (f) => !/JPEG|RLE|dfl|jpeg/.test(f),
      ),
    );
    const all = sets.flat();
    let node = await startNode({ dir, csv });
    const r = storescu(node.port, all, { args: ['-xe'] });
    expect(r.status, r.output).toBe(0); // every instance acknowledged
    await node.kill9();
    const spooled =
      readdirSync(node.paths.spool).filter((f) => f.endsWith('.dcm')).length + (await journalRecords(node.paths.spool));
    expect(await journalRecords(node.paths.spool)).toBeGreaterThan(0); // the default spool is the journal
    const filedBefore = dicomFiles(node.paths.output).length;
    expect(spooled + filedBefore).toBeGreaterThanOrEqual(all.length); // nothing acknowledged is lost
    node = await startNode({ dir, csv });
    await waitFor(() => dicomFiles(node.paths.output).length === all.length, 20_000, 'all filed after restart');
    // Drained: nothing but the journal, the receiver's incoming/ folder, holding only unused
    // (empty) files, and the running node's lock (.lock); no journal record left to process.
    const incoming = join(node.paths.spool, 'incoming');
    await waitFor(
      () =>
        readdirSync(node.paths.spool).sort().join() === '.lock,incoming,journal' &&
        readdirSync(incoming).every((f) => statSync(join(incoming, f)).size === 0),
      10_000,
      'spool drained',
    );
    expect(await node.stop()).toBe(0);
    expect(await journalRecords(node.paths.spool)).toBe(0);
    const uids = dicomFiles(node.paths.output).map((f) => f.split('/').pop());
    expect(new Set(uids).size).toBe(all.length);
  });

  it('reuses journal segments without ever filing an instance of an earlier burst again, also after kill -9', async () => {
    const dir = tempDir('serve-reuse-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const uncompressed = (f: string) => !/JPEG|RLE|dfl|jpeg/.test(f);
    const first = makeSamples(join(dir, 'a'), 'MRN777', 'ACCA', '1.2.826.0.1.3680043.8.498.71', 'a').filter(
      uncompressed,
    );
    // A shorter second burst: records of the first lie beyond the second's in the reused segment.
    const second = makeSamples(join(dir, 'b'), 'MRN777', 'ACCB', '1.2.826.0.1.3680043.8.498.72', 'b')
      .filter(uncompressed)
      .slice(0, 2);
    const auditRows = () =>
      readdirSync(node.paths.logDir)
        .filter((f) => f.startsWith('deid_log_'))
        .flatMap((f) => readFileSync(join(node.paths.logDir, f), 'utf8').trim().split('\n').slice(1));
    let node = await startNode({ dir, csv });
    expect(storescu(node.port, first, { args: ['-xe'] }).status).toBe(0);
    await waitFor(() => auditRows().length === first.length, 20_000, 'first burst filed');
    const segments = () => readdirSync(join(node.paths.spool, 'journal')).sort();
    const segmentsAfterFirst = segments();
    expect(segmentsAfterFirst.length).toBeGreaterThan(0);
    // Its records retired and its segment readied again, the second burst goes over the first.
    for (let t = Date.now(); (await journalRecordsWhileRunning(node.paths.spool)) > 0;) {
      if (Date.now() - t > 10_000) throw new Error('timed out waiting for the first burst to be retired');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(storescu(node.port, second, { args: ['-xe'] }).status).toBe(0);
    await node.kill9();
    expect(segments()).toEqual(segmentsAfterFirst); // no new segment: the old one was reused
    node = await startNode({ dir, csv });
    await waitFor(() => dicomFiles(node.paths.output).length === first.length + second.length, 20_000, 'all filed');
    expect(await node.stop()).toBe(0);
    // Each instance of the first burst was filed once, before the crash, and never again.
    const rows = auditRows();
    expect(rows.filter((r) => r.includes('RS_07/RS_07_1/')).length).toBe(first.length);
    expect(rows.filter((r) => r.includes('RS_07/RS_07_2/')).length).toBeGreaterThanOrEqual(second.length);
    expect(new Set(dicomFiles(node.paths.output).map((f) => f.split('/').pop())).size).toBe(
      first.length + second.length,
    );
  });

  it('quarantines, as it is, an acknowledged instance the disk damaged in the spool, and files the others', async () => {
    // The node is killed right after the last acknowledgement, before the burst is filed (receive
    // first holds it ~100 ms): its records are in the journal. On a loaded machine the kill may
    // come later than that; then the attempt starts over in a new folder.
    let dir = '';
    let csv = '';
    let files: string[] = [];
    let node: Awaited<ReturnType<typeof startNode>> | undefined;
    let refs: JournalRef[] = [];
    for (let attempt = 0; attempt < 3 && refs.length < 2; attempt++) {
      dir = tempDir('serve-damaged-');
      csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
      files = makeSamples(join(dir, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.83', 'd').filter(
        (f) => !/JPEG|RLE|dfl|jpeg/.test(f),
      );
      node = await startNode({ dir, csv });
      expect(storescu(node.port, files, { args: ['-xe'] }).status).toBe(0);
      await node.kill9();
      refs = await journalRefs(node.paths.spool);
    }
    expect(refs.length, 'acknowledged records left in the journal').toBeGreaterThanOrEqual(2);
    // A byte of the first record's data set changes on disk (its checksum no longer matches).
    const ref = refs[0]!;
    const fd = openSync(ref.segment, 'r+');
    writeSync(fd, Buffer.from([0xa5]), 0, 1, ref.offset + ref.length - 10);
    closeSync(fd);
    node = await startNode({ dir, csv });
    await waitFor(
      () => listFilesRecursive(node.paths.quarantine).some((f) => f.endsWith('.dcm')),
      20_000,
      'damaged one quarantined',
    );
    await waitFor(
      () => dicomFiles(node.paths.output).length >= refs.length - 1 + (files.length - refs.length),
      20_000,
      'the others filed',
    );
    expect(await node.stop()).toBe(0);
    expect(dicomFiles(node.paths.output)).toHaveLength(files.length - 1);
    const quarantined = listFilesRecursive(node.paths.quarantine);
    const dcm = quarantined.filter((f) => f.endsWith('.dcm'));
    expect(dcm).toHaveLength(1);
    expect(JSON.parse(readFileSync(`${dcm[0]}.json`, 'utf8'))).toMatchObject({
      reason: 'unreadable',
      message: expect.stringMatching(/checksum/),
    });
    expect(readFileSync(dcm[0]!).length).toBe(ref.length); // the bytes as they were, damage and all
    expect(node.logs()).toMatch(/checksum.*moved to quarantine/);
    expect(await journalRecords(node.paths.spool)).toBe(0);
  });

  it('survives garbage on the port and an abrupt disconnect, then still answers', async () => {
    const dir = tempDir('serve-garbage-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const node = await startNode({ dir, csv });
    for (const payload of [
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.alloc(70_000, 0xff),
      Buffer.from([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    ]) {
      await new Promise<void>((resolve) => {
        const s = net.connect(node.port, '127.0.0.1', () => {
          s.write(payload);
          setTimeout(() => s.destroy(), 200);
        });
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
    }
    const echo = spawnSync('echoscu', ['-aec', 'DEID', '127.0.0.1', String(node.port)], {
      env: { ...process.env, TCP_NODELAY: '1' },
    });
    expect(echo.status).toBe(0);
    expect(existsSync(node.paths.output)).toBe(true);
    expect(await node.stop()).toBe(0);
  });
});

describe.skipIf(!ORTHANC_BIN)(
  `a real PACS as the sender${ORTHANC_BIN ? '' : ' (skipped: Orthanc not installed)'}`,
  () => {
    afterEach(async () => {
      await stopAllPeers();
    });

    it('files a study that Orthanc pushes to the node, as Orthanc stored it, de-identified', async () => {
      const dir = tempDir('serve-from-orthanc-');
      const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: 'ACC1', researchId: 'RS_07' }]);
      const samples = makeSamples(join(dir, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.81');
      const node = await startNode({ dir, csv, config: { allowedAets: ['HOSPITALPACS'] } });
      // The hospital PACS, with the node configured as a send destination (AE title, host, port).
      const pacs = await startOrthanc(join(dir, 'pacs'), 'HOSPITALPACS', {
        DicomModalities: { deid: ['DEID', '127.0.0.1', node.port] },
      });
      const ids: string[] = [];
      for (const f of samples) {
        const r = await fetch(`${pacs.base}/instances`, { method: 'POST', body: readFileSync(f) });
        expect(r.status, f).toBe(200);
        ids.push(((await r.json()) as { ID: string }).ID);
      }
      const sent = await fetch(`${pacs.base}/modalities/deid/store`, {
        method: 'POST',
        body: JSON.stringify({ Resources: ids, Synchronous: true }),
      });
      expect(sent.status, await sent.clone().text()).toBe(200);
      await waitFor(() => dicomFiles(node.paths.output).length === samples.length, 20_000, 'the study filed');
      const inputs = samples.map((f) => dumpJson(f));
      const byPixels = new Map(inputs.map((i) => [String(i.ds['7FE00010']), i]));
      for (const o of dicomFiles(node.paths.output)) {
        expect(o).toMatch(/\/RS_07\/RS_07_1\//);
        const out = dumpJson(o);
        const input = byPixels.get(String(out.ds['7FE00010']));
        expect(input, `pixel data of ${o} matches a sample`).toBeDefined();
        expect(out.ts).toBe(input!.ts); // sent as stored, filed as sent
        expect(out.ds['00100020']).toBe('RS_07');
        const text = JSON.stringify(out);
        for (const id of IDENTIFIERS) expect(text, id).not.toContain(id);
      }
      expect(await node.stop()).toBe(0);
      expect(node.logs()).toMatch(/association accepted.*callingAet=HOSPITALPACS/);
    });
  },
);
