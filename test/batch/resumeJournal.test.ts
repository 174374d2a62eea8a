// The batch resume journal (src/batch/resumeJournal.ts): what a rerun of the same command takes
// as done, and what it does not continue (another CSV, other options; a torn last line).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResumeJournal, type JournalKey } from '../../src/batch/resumeJournal.js';

let tmp: string;
const key: JournalKey = {
  input: '/in',
  output: '/out',
  db: '/s.sqlite',
  csvSha256: 'ab'.repeat(32),
  copyOtherFiles: false,
};

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-journal-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('resume journal', () => {
  it('keeps the outcomes of an interrupted run for the same command, across runs, until one completes', () => {
    const logDir = path.join(tmp, 'a');
    const j = ResumeJournal.for(logDir, key);
    expect(j.read()).toBeNull();
    j.start(path.join(logDir, 'deid_log_1.csv'), false);
    j.record('P/S/a.dcm', { status: 'ok', researchId: 'R1', outRel: 'R1/R1_1/a.dcm', sessionN: 1 });
    j.record('P/S/b.txt', { status: 'not-dicom' });
    j.close(false); // interrupted
    expect((fs.statSync(j.file).mode & 0o777).toString(8)).toBe('600');
    // A crash in the middle of a line: that line is not taken.
    fs.appendFileSync(j.file, '{"rel":"P/S/c.dcm","o":{"sta');

    const again = ResumeJournal.for(logDir, key);
    expect(again.file).toBe(j.file);
    const earlier = again.read();
    expect(earlier).toEqual({
      stale: false,
      auditLogs: ['deid_log_1.csv'],
      outcomes: new Map([
        ['P/S/a.dcm', { status: 'ok', researchId: 'R1', outRel: 'R1/R1_1/a.dcm', sessionN: 1 }],
        ['P/S/b.txt', { status: 'not-dicom' }],
      ]),
    });
    again.start(path.join(logDir, 'deid_log_2.csv'), true);
    again.record('P/S/d.dcm', { status: 'no-mapping', message: 'no row' });
    again.close(false);
    const third = ResumeJournal.for(logDir, key).read();
    expect(third && !third.stale && third.auditLogs).toEqual(['deid_log_1.csv', 'deid_log_2.csv']);
    expect(third && !third.stale && [...third.outcomes.keys()]).toEqual(['P/S/a.dcm', 'P/S/b.txt', 'P/S/d.dcm']);
    // A run that completes removes it.
    const last = ResumeJournal.for(logDir, key);
    last.start(path.join(logDir, 'deid_log_3.csv'), true);
    last.close(true);
    expect(fs.existsSync(j.file)).toBe(false);
  });

  it.each([
    ['another mapping CSV', { csvSha256: 'cd'.repeat(32) }],
    ['another state', { db: '/other.sqlite' }],
    ['--copy-other-files', { copyOtherFiles: true }],
  ])('is not continued with %s', (_what, change) => {
    const logDir = path.join(tmp, `b-${Object.keys(change)[0]}`);
    const j = ResumeJournal.for(logDir, key);
    j.start(path.join(logDir, 'deid_log_1.csv'), false);
    j.record('P/S/a.dcm', { status: 'ok' });
    j.close(false);
    const other = ResumeJournal.for(logDir, { ...key, ...change });
    expect(other.file).toBe(j.file); // same input and output: the same journal
    expect(other.read()).toEqual({ stale: true });
    // A different output is another run altogether.
    expect(ResumeJournal.for(logDir, { ...key, output: '/elsewhere' }).read()).toBeNull();
  });
});
