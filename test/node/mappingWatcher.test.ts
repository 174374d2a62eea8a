// The node's hot reload of the mapping CSV: a refused edit keeps the previous mapping and logs
// each problem by line and words, never the value (it may be an identifier).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MappingWatcher } from '../../src/node/mappingWatcher.js';
import type { Logger } from '../../src/log.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-watcher-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function collectingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

const HEADER = 'MRN,Accession,New Patient ID,Surgery Date\n';

describe('MappingWatcher reload', () => {
  it('refuses a bad edit: previous mapping kept, each problem logged by line without its value', () => {
    const file = path.join(tmp, 'map.csv');
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\n`);
    const logger = collectingLogger();
    const watcher = new MappingWatcher(file, logger);
    expect(watcher.current.rows.map((r) => r.researchId)).toEqual(['RS_07']);

    const secrets = [
      'MRN31337',
      'ACC4242',
      '2024-02-30',
      'TRIAL2025_SITEA_0001',
      'TRIAL2025_SITEA_0002',
      '1.23457E+11',
    ];
    fs.writeFileSync(
      file,
      HEADER +
        'MRN31337,ACC4242,RS_08,2024-02-30\n' +
        'M2,A2,TRIAL2025_SITEA_0001,2024-01-01\n' +
        'M3,A3,TRIAL2025_SITEA_0002,2024-01-01\n' +
        'M4,1.23457E+11,RS_09,2024-01-01\n',
    );
    expect(watcher.reload()).toBe(false);
    expect(watcher.current.rows.map((r) => r.researchId)).toEqual(['RS_07']);
    const errors = logger.lines.filter((l) => l.startsWith('error:'));
    expect(errors).toEqual([
      'error: mapping CSV not reloaded: map.csv line 2: Surgery Date (value not shown) is not a valid YYYY-MM-DD date',
      expect.stringMatching(
        /^error: mapping CSV not reloaded: map\.csv line 4: New Patient ID \(value not shown\) and \(value not shown\) on line 3 would both give AccessionNumber \(value not shown\) \(session 1\).* first 11 characters/,
      ),
      'error: mapping CSV not reloaded: map.csv line 5: Accession (value not shown) is a number Excel rewrote in scientific notation, not the identifier: in Excel, format the column as Text, type or paste the identifiers again, and save again',
      `error: mapping CSV not reloaded, keeping the previous mapping: the values are not logged; dicom-deid check-csv ${file} shows them`,
    ]);
    for (const l of logger.lines) for (const s of secrets) expect(l).not.toContain(s);
  });

  it('takes a good edit, logging its warnings without values', () => {
    const file = path.join(tmp, 'map2.csv');
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\n`);
    const logger = collectingLogger();
    const watcher = new MappingWatcher(file, logger);
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\nMRN777,ACC2,RS_07,2024-03-01\n`);
    expect(watcher.reload()).toBe(true);
    expect(watcher.current.rows).toHaveLength(2);
    expect(logger.lines).toEqual([
      'warn: mapping CSV warning: map2.csv line 2: the rows of New Patient ID (value not shown) give different day offsets (line 2: 166 days, line 3: 106 days, from Surgery Date and Anchor_Date), so the time between studies matched by different rows is not kept; each study takes the offset of the row it matches, and the audit log says which row a study matched by MRN alone used',
      'info: mapping CSV reloaded: 2 rows',
    ]);
  });

  it('suggests check-csv with a path a shell takes as one word, and counts one row as "1 row"', () => {
    // Found by a fresh-user trial: the suggestion was unquoted, and the reload said "1 rows".
    const dir = path.join(tmp, "study data (Jo's)");
    fs.mkdirSync(dir);
    const file = path.join(dir, 'mapping.csv');
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\nMRN778,ACC2,RS_08,2024-01-01\n`);
    const logger = collectingLogger();
    const watcher = new MappingWatcher(file, logger);
    fs.writeFileSync(file, `${HEADER}MRN31337,ACC4242,RS_08,2024-02-30\n`);
    expect(watcher.reload()).toBe(false);
    expect(logger.lines.at(-1)).toBe(
      `error: mapping CSV not reloaded, keeping the previous mapping: the values are not logged; dicom-deid check-csv '${dir.replace("'", "'\\''")}/mapping.csv' shows them`,
    );
    // The suggestion, run by a shell, names the file.
    const echoed = spawnSync(
      '/bin/sh',
      [
        '-c',
        `printf %s ${logger.lines
          .at(-1)!
          .split('check-csv ')[1]!
          .replace(/ shows them$/, '')}`,
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(echoed.stdout).toBe(file);
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\n`);
    expect(watcher.reload()).toBe(true);
    expect(logger.lines.at(-1)).toBe('info: mapping CSV reloaded: 1 row');
  });

  it('a CSV that disappeared or became a folder: words, not codes; previous mapping kept', () => {
    const file = path.join(tmp, 'map3.csv');
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\n`);
    const logger = collectingLogger();
    const watcher = new MappingWatcher(file, logger);
    fs.rmSync(file);
    fs.mkdirSync(file);
    expect(watcher.reload()).toBe(false);
    expect(logger.lines).toEqual([
      `error: mapping CSV not reloaded, keeping the previous mapping: cannot read the mapping CSV ${file}: is a folder`,
    ]);
    expect(watcher.current.rows).toHaveLength(1);
  });

  it('reports its status: rows, reloads taken and refused, degraded while a refused edit is on disk, no value', () => {
    const file = path.join(tmp, 'map4.csv');
    fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\n`);
    const watcher = new MappingWatcher(file, collectingLogger());
    watcher.start();
    try {
      expect(watcher.status()).toMatchObject({
        name: 'mapping',
        state: 'running',
        counts: { rows: 1, reloads: 0, refusedReloads: 0 },
      });
      fs.writeFileSync(file, `${HEADER}MRN31337,ACC4242,RS_08,2024-02-30\n`);
      expect(watcher.reload()).toBe(false);
      const refused = watcher.status();
      expect(refused).toMatchObject({ state: 'degraded', counts: { rows: 1, reloads: 0, refusedReloads: 1 } });
      expect(refused.lastError?.message).toMatch(/^mapping CSV not reloaded: map4\.csv line 2: Surgery Date/);
      expect(refused.details?.lastRefusedAt).toEqual(expect.any(String));
      for (const secret of ['MRN31337', 'ACC4242', '2024-02-30']) expect(JSON.stringify(refused)).not.toContain(secret);
      fs.writeFileSync(file, `${HEADER}MRN777,ACC1,RS_07,2024-01-01\nMRN778,ACC2,RS_08,2024-01-01\n`);
      expect(watcher.reload()).toBe(true);
      expect(watcher.status()).toMatchObject({ state: 'running', counts: { rows: 2, reloads: 1, refusedReloads: 1 } });
    } finally {
      watcher.stop();
    }
    expect(watcher.status().state).toBe('stopped');
  });
});
