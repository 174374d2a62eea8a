// The retrieve job records of the state (src/state/retrieveRecords.ts, sqliteRetrieve.ts): jobs
// and who runs them, rows and the studies they took, counts, and what two processes see.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { RetrieveJobSpec, RetrieveRowSpec } from '../../src/state/retrieveRecords.js';

const tmp = mkdtempSync(join(tmpdir(), 'retrieve-state-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SPEC: RetrieveJobSpec = {
  pacs: 'PACS@10.0.0.1:104',
  moveDestination: 'DEID',
  csvPath: '/data/mapping.csv',
  csvSha256: 'ab'.repeat(32),
  planKey: '{"daysBefore":null}',
  params: '{"concurrency":1}',
};
const ROWS: RetrieveRowSpec[] = [
  { line: 2, researchId: 'R1', mrn: 'M1', accession: null, surgeryDate: '2023-03-01' },
  { line: 3, researchId: 'R1', mrn: 'M1', accession: 'A2', surgeryDate: '2023-04-01' },
  { line: 4, researchId: 'R2', mrn: null, accession: 'A3', surgeryDate: '2023-05-01' },
];

describe('retrieve jobs in the state', () => {
  it('a job keeps its rows, the studies they took (once each), and counts', async () => {
    const s = await openStateStore(join(tmp, 'a.sqlite'), { create: true });
    const job = await s.createRetrieveJob(SPEC, ROWS, 1000);
    expect(job).toMatchObject({
      ...SPEC,
      id: 1,
      state: 'pending',
      runner: null,
      cancelRequested: false,
      createdAt: 1000,
    });
    expect((await s.retrieveRows(job.id)).map((r) => [r.line, r.status, r.studyUids])).toEqual([
      [2, 'pending', []],
      [3, 'pending', []],
      [4, 'pending', []],
    ]);
    const st = (uid: string, expected: number | null) => ({
      studyUid: uid,
      studyDate: '20230301',
      modalities: 'CT',
      expected,
    });
    await s.recordRetrieveRow(job.id, 2, {
      status: 'found',
      matchedBy: 'mrn',
      studies: [st('1.1', 3), st('1.2', null)],
    });
    // Line 3 takes one of line 2's studies and one of its own: the shared one is planned once.
    await s.recordRetrieveRow(job.id, 3, { status: 'found', matchedBy: 'mrn', studies: [st('1.2', 5), st('1.3', 2)] });
    await s.recordRetrieveRow(job.id, 4, {
      status: 'ambiguous',
      matchedBy: 'accession',
      message: 'two patients',
      studies: [],
    });
    await expect(s.recordRetrieveRow(job.id, 9, { status: 'found', studies: [] })).rejects.toThrow(
      /no row for CSV line 9/,
    );
    const rows = await s.retrieveRows(job.id);
    expect(rows.map((r) => [r.line, r.status, r.matchedBy, r.studyUids, r.message])).toEqual([
      [2, 'found', 'mrn', ['1.1', '1.2'], null],
      [3, 'found', 'mrn', ['1.2', '1.3'], null],
      [4, 'ambiguous', 'accession', [], 'two patients'],
    ]);
    const studies = await s.retrieveStudies(job.id);
    expect(studies.map((x) => [x.studyUid, x.line, x.expected, x.status])).toEqual([
      ['1.1', 2, 3, 'planned'],
      ['1.2', 2, null, 'planned'], // as the first row saw it
      ['1.3', 3, 2, 'planned'],
    ]);
    await s.updateRetrieveStudy(job.id, '1.1', {
      status: 'complete',
      filed: 3,
      attempts: 1,
      lastStatus: 0,
      finishedAt: 5,
    });
    await s.updateRetrieveStudy(job.id, '1.3', { status: 'incomplete', filed: 1, message: '1 of 2' });
    expect(await s.retrieveStudies(job.id, 'complete')).toMatchObject([
      { studyUid: '1.1', filed: 3, attempts: 1, lastStatus: 0, finishedAt: 5, message: null },
    ]);
    expect(await s.retrieveJobCounts(job.id)).toEqual({
      rows: { pending: 0, found: 2, not_found: 0, ambiguous: 1, query_incomplete: 0, query_failed: 0 },
      studies: { planned: 1, moving: 0, complete: 1, incomplete: 1, failed: 0, already_filed: 0 },
      expectedInstances: 5,
      filedInstances: 4,
    });
    await s.close();
  });

  it('one runner at a time; a silent runner is replaced; cancel stops a job for good', async () => {
    const file = join(tmp, 'b.sqlite');
    const a = await openStateStore(file, { create: true });
    const b = await openStateStore(file, { create: false }); // another process's connection
    const job = await a.createRetrieveJob(SPEC, ROWS.slice(0, 1), 0);
    await a.recordRetrieveRow(job.id, 2, {
      status: 'found',
      studies: [{ studyUid: '1.1', studyDate: '', modalities: '', expected: null }],
    });
    expect(await a.claimRetrieveJob(job.id, 'one', { now: 1000 })).toMatchObject({ state: 'running', runner: 'one' });
    await a.updateRetrieveStudy(job.id, '1.1', { status: 'moving', attempts: 1 });
    // Alive: nobody else takes it.
    expect(await b.claimRetrieveJob(job.id, 'two', { now: 20_000, staleMs: 30_000 })).toBeUndefined();
    expect(await a.heartbeatRetrieveJob(job.id, 'one', 25_000)).toEqual({ owned: true, cancelRequested: false });
    // Silent past staleMs (a crash): taken over, with new params; its moving study is planned again.
    const taken = await b.claimRetrieveJob(job.id, 'two', {
      now: 60_000,
      staleMs: 30_000,
      params: '{"concurrency":2}',
    });
    expect(taken).toMatchObject({ runner: 'two', params: '{"concurrency":2}', heartbeatAt: 60_000 });
    expect(await b.retrieveStudies(job.id)).toMatchObject([{ status: 'planned', attempts: 1 }]);
    expect(await a.heartbeatRetrieveJob(job.id, 'one', 61_000)).toEqual({ owned: false, cancelRequested: false });
    // The old runner's release changes nothing.
    await a.releaseRetrieveJob(job.id, 'one', { state: 'done' }, 62_000);
    expect((await a.retrieveJob(job.id))!.state).toBe('running');
    // A cancel while it runs: flagged, the runner learns it, then releases it cancelled.
    expect(await a.cancelRetrieveJob(job.id, { now: 63_000 })).toMatchObject({
      state: 'running',
      cancelRequested: true,
    });
    expect(await b.heartbeatRetrieveJob(job.id, 'two', 64_000)).toEqual({ owned: true, cancelRequested: true });
    await b.releaseRetrieveJob(
      job.id,
      'two',
      { state: 'cancelled', message: 'cancelled', reportPath: '/r.csv' },
      65_000,
    );
    expect(await a.retrieveJob(job.id)).toMatchObject({ state: 'cancelled', runner: null, reportPath: '/r.csv' });
    expect(await a.claimRetrieveJob(job.id, 'three', { now: 70_000 })).toBeUndefined();
    expect(await a.unfinishedRetrieveJob(SPEC)).toBeUndefined();

    // Paused jobs are found again by the same CSV, PACS and plan, and resumed.
    const other = await a.createRetrieveJob(SPEC, ROWS, 80_000);
    expect((await a.unfinishedRetrieveJob(SPEC))?.id).toBe(other.id);
    expect(await a.unfinishedRetrieveJob({ ...SPEC, planKey: 'other' })).toBeUndefined();
    await a.claimRetrieveJob(other.id, 'one', { now: 81_000 });
    await a.releaseRetrieveJob(other.id, 'one', { state: 'paused', message: 'interrupted' }, 82_000);
    expect(await b.retrieveJob(other.id)).toMatchObject({ state: 'paused', message: 'interrupted', runner: null });
    expect((await b.claimRetrieveJob(other.id, 'two', { now: 83_000 }))?.state).toBe('running');
    // A job nobody runs any more (its runner silent) is cancelled at once.
    expect(await a.cancelRetrieveJob(other.id, { now: 200_000, staleMs: 30_000 })).toMatchObject({
      state: 'cancelled',
      runner: null,
    });
    expect((await a.retrieveJobs()).map((j) => [j.id, j.state])).toEqual([
      [other.id, 'cancelled'],
      [job.id, 'cancelled'],
    ]);
    expect(await a.cancelRetrieveJob(999)).toBeUndefined();
    await a.close();
    await b.close();
  });
});
