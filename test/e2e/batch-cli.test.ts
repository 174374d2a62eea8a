// The researcher's day at the command line (the built CLI, dist/): --dry-run, the summary, the
// old script's form, mistyped and repeated options, unquoted paths, key material or raw scans
// inside --output, system errors in words, an empty input, help at 80 columns, a closed pipe.
// Each checks the exit status, the message and what was (not) written.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repo, 'dist', 'cli.js');
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
let tmp: string;

/** A fresh folder holding mapping.csv and Raw_Scans (2 patients x 2 visits x 2 files, see make_many.py). */
function workspace(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of ['mapping.csv', 'Raw_Scans'])
    fs.cpSync(path.join(tmp, 'template', f), path.join(dir, f), { recursive: true });
  return dir;
}

function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
}

/** Every path below `dir` with its size and mtime: to show that nothing was written. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = fs.statSync(path.join(dir, r));
      out.push(`${r} ${e.isDirectory() ? 'dir' : `${st.size} ${st.mtimeMs}`}`);
      if (e.isDirectory()) visit(r);
    }
  };
  visit('');
  return out.sort();
}

const BATCH = ['batch', '--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', 'Out'];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-batch-cli-'));
  // Two trees of the same patients; `other` has other studies (own UIDs).
  for (const name of ['template', 'other']) {
    execFileSync(python, [path.join(repo, 'test', 'fixtures', 'make_many.py'), path.join(tmp, name), '2', '2', '2']);
  }
  if (!fs.existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'pipe' });
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('batch --dry-run', () => {
  it('prints the plan, exits as the run would, and writes nothing, not even the state', () => {
    const dir = workspace('dry');
    const before = snapshot(dir);
    const r = run([...BATCH, '--dry-run'], dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1); // Unknown_Pat has no row
    expect(r.stdout).toBe(
      [
        'Dry run: nothing is written, not even the state. This plan shows source paths: it is for the',
        'researcher who holds the key, never to be shared.',
        `Input: ${dir}/Raw_Scans (15 files)`,
        `Session numbers: no state yet at ${dir}/dicom-deid-state.sqlite: every session would be new`,
        '',
        'RES91: 3 sessions, 5 files to de-identify',
        '  Patient_1/Visit_1 -> RES91_1 (new): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (left out)',
        '  Patient_1/Visit_2 -> RES91_2 (new): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (left out)',
        '  Patient_1 (outside session folders) -> RES91_3 (new): 1 file: 1 to de-identify (matched by mrn)',
        '',
        'RES92: 3 sessions, 5 files to de-identify',
        '  Patient_2/Visit_1 -> RES92_1 (new): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (left out)',
        '  Patient_2/Visit_2 -> RES92_2 (new): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (left out)',
        '  Patient_2 (outside session folders) -> RES92_3 (new): 1 file: 1 to de-identify (matched by mrn)',
        '',
        'Without a research patient (nothing de-identified):',
        '  Unknown_Pat/Visit_1: 1 file: 1 without a mapping row',
        '',
        'Left out, and why:',
        '  Patient_1/Visit_1/notes_1.txt: not DICOM: left out',
        '  Patient_1/Visit_2/notes_2.txt: not DICOM: left out',
        '  Patient_2/Visit_1/notes_1.txt: not DICOM: left out',
        '  Patient_2/Visit_2/notes_2.txt: not DICOM: left out',
        '  Unknown_Pat/Visit_1/IM1.dcm: no row matches PatientID or AccessionNumber',
        '',
        'A run would de-identify 10 of 15 files; 1 without a mapping row, 0 unreadable, 4 not DICOM (0 copied, 4 left out).',
        'The leak guard reads each file as it is written: a run may hold some of these (exit 1).',
        '',
      ].join('\n'),
    );
    expect(snapshot(dir)).toEqual(before);
  });

  it('with a state: numbers it holds are "known", a new folder gets the number the run then gives; the state is untouched', () => {
    const dir = workspace('dry-known');
    expect(run([...BATCH, '--quiet'], dir).status).toBe(1);
    // A session folder added later (its name sorts first), another study: the next free number, not 1.
    fs.cpSync(
      path.join(tmp, 'other', 'Raw_Scans', 'Patient_1', 'Visit_1'),
      path.join(dir, 'Raw_Scans', 'Patient_1', 'Visit_0'),
      {
        recursive: true,
      },
    );
    const before = snapshot(dir);
    const state = fs.readFileSync(path.join(dir, 'dicom-deid-state.sqlite'));
    const r = run([...BATCH, '--dry-run', '--copy-other-files'], dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(
      `Session numbers: "known" ones are in the state ${dir}/dicom-deid-state.sqlite; "new" ones would be assigned`,
    );
    expect(lines).toContain('RES91: 4 sessions, 7 files to de-identify');
    expect(lines).toContain(
      '  Patient_1/Visit_1 -> RES91_1 (known): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (copied)',
    );
    expect(lines).toContain(
      '  Patient_1/Visit_0 -> RES91_4 (new): 3 files: 2 to de-identify (matched by mrn), 1 not DICOM (copied)',
    );
    expect(snapshot(dir)).toEqual(before); // no -wal or -shm file left beside the state either
    expect(fs.readFileSync(path.join(dir, 'dicom-deid-state.sqlite')).equals(state)).toBe(true);
    // The run gives what the plan said.
    const real = run([...BATCH, '--copy-other-files'], dir);
    expect(real.stdout).toMatch(
      /RES91: 4 sessions: RES91_1 \(2 files\), RES91_2 \(2 files\), RES91_3 \(1 file\), RES91_4 \(2 files\)/,
    );
    expect(fs.existsSync(path.join(dir, 'Out', 'RES91', 'RES91_4', 'notes_1.txt'))).toBe(true);
  });

  it('refuses what a run refuses (exit 2), and its output survives a closed pipe', () => {
    const dir = workspace('dry-refused');
    const r = run(['batch', '--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', '.', '--dry-run'], dir);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const piped = spawnSync(
      'bash',
      ['-c', `"${process.execPath}" "${cli}" ${BATCH.join(' ')} --dry-run | head -n 1; exit "\${PIPESTATUS[0]}"`],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    expect(piped.stdout).toBe(
      'Dry run: nothing is written, not even the state. This plan shows source paths: it is for the\n',
    );
    expect(piped.stderr).toBe('');
    expect(piped.status).toBe(1);
  });
});

describe('a batch run', () => {
  it('summary: counted words, the state database to keep and back up; audit rows in walk order', () => {
    const dir = workspace('summary');
    const r = run([...BATCH, '--workers', '2'], dir);
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('  RES91: 3 sessions: RES91_1 (2 files), RES91_2 (2 files), RES91_3 (1 file)');
    expect(lines).toContain(
      `State database (keep it, and back it up with the mapping CSV): ${dir}/dicom-deid-state.sqlite`,
    );
    const logDir = path.join(dir, 'dicom-deid-logs');
    const log = fs.readdirSync(logDir).find((f) => f.startsWith('deid_log_'))!;
    const rows = parse(fs.readFileSync(path.join(logDir, log), 'utf8'), { columns: true, bom: true }) as Record<
      string,
      string
    >[];
    expect(rows.map((x) => x.source_path)).toEqual([
      'Patient_1/Visit_1/IM0001.dcm',
      'Patient_1/Visit_1/IM0002.dcm',
      'Patient_1/Visit_1/notes_1.txt',
      'Patient_1/Visit_2/IM0001.dcm',
      'Patient_1/Visit_2/IM0002.dcm',
      'Patient_1/Visit_2/notes_2.txt',
      'Patient_1/loose.dcm',
      'Patient_2/Visit_1/IM0001.dcm',
      'Patient_2/Visit_1/IM0002.dcm',
      'Patient_2/Visit_1/notes_1.txt',
      'Patient_2/Visit_2/IM0001.dcm',
      'Patient_2/Visit_2/IM0002.dcm',
      'Patient_2/Visit_2/notes_2.txt',
      'Patient_2/loose.dcm',
      'Unknown_Pat/Visit_1/IM1.dcm',
    ]);
    // The run completed: no resume journal is left.
    expect(fs.readdirSync(logDir).filter((f) => f.startsWith('batch_resume_'))).toEqual([]);
  });

  it("the old script's form (no command name) runs batch, and says so", () => {
    const dir = workspace('old-form');
    const r = run(['--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', 'Out', '--quiet'], dir);
    expect(r.stderr).toBe('dicom-deid: note: no command given: running "dicom-deid batch" (the old script\'s form)\n');
    expect(r.status).toBe(1);
    expect(fs.existsSync(path.join(dir, 'Out', 'RES91', 'RES91_1', 'IM0001.dcm'))).toBe(true);
  });

  it('an empty input folder is refused (exit 2); a tree with no DICOM file is not a success (exit 1)', () => {
    const dir = workspace('empty');
    fs.mkdirSync(path.join(dir, 'Empty'));
    let r = run(['batch', '--csv', 'mapping.csv', '--input', 'Empty', '--output', 'Out'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('dicom-deid: --input Empty holds no files: nothing to de-identify\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['Empty', 'Raw_Scans', 'mapping.csv']);
    fs.mkdirSync(path.join(dir, 'Texts', 'P1', 'S1'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Texts', 'P1', 'S1', 'a.txt'), 'text\n');
    r = run(['batch', '--csv', 'mapping.csv', '--input', 'Texts', '--output', 'Out'], dir);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('No DICOM file was found in the input: nothing was de-identified.\n');
  });
});

describe('usage errors: exit 2, a plain message, nothing written', () => {
  let usageCase = 0;
  it.each([
    [['--inptu', 'Raw_Scans', '--output', 'Out'], ['unknown option --inptu: did you mean --input?']],
    [['--input', 'Raw_Scans', '--outptu', 'Out'], ['unknown option --outptu: did you mean --output?']],
    [
      ['--input', 'My', 'Scans', '--output', 'Out'],
      ['"Scans" is not an option: quote paths that contain spaces, e.g. --input "My Scans"'],
    ],
    [
      ['--input', 'Raw_Scans', '--output', 'Out', '--db', 'a.sqlite', '--db', 'b.sqlite'],
      ['--db is given twice ("a.sqlite", "b.sqlite"): give it once'],
    ],
    [
      ['--input', 'Raw_Scans', '--output', 'Out', '--log-dir', 'a', '--log-dir', 'b'],
      ['--log-dir is given twice ("a", "b"): give it once'],
    ],
    [
      ['--input', 'Raw_Scans', '--output', 'O1', '--output', 'O2'],
      ['--output is given twice ("O1", "O2"): give it once'],
    ],
  ])('batch --csv mapping.csv %j', (args, expected) => {
    const dir = workspace(`usage-${++usageCase}`);
    fs.mkdirSync(path.join(dir, 'My Scans'));
    const before = snapshot(dir);
    const r = run(['batch', '--csv', 'mapping.csv', ...args], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(expected.map((l) => `dicom-deid: ${l}\n`).join(''));
    expect(r.stdout).toBe('');
    expect(snapshot(dir)).toEqual(before);
  });

  it('check-csv with an unquoted path that has a space', () => {
    const dir = workspace('usage-check');
    const r = run(['check-csv', 'My', 'mapping.csv'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'dicom-deid: "mapping.csv" is not an option: quote paths that contain spaces, e.g. "My mapping.csv"\n',
    );
  });

  it('--output holding the raw scans, or the key material, is refused with the flag to use instead', () => {
    const dir = workspace('placement');
    const share = path.join(dir, 'Share');
    fs.mkdirSync(share);
    fs.copyFileSync(path.join(dir, 'mapping.csv'), path.join(share, 'm.csv'));
    const before = snapshot(dir);
    const cases: [string[], string[]][] = [
      [
        ['--csv', 'mapping.csv', '--input', 'Raw_Scans', '--output', '.'],
        [
          '--output . holds --input Raw_Scans: the research folders would be written beside the raw scans, and ' +
            'sharing the output would share them; give --output a folder of its own, e.g. --output Anonymized_Data',
        ],
      ],
      [
        ['--csv', 'Share/m.csv', '--input', 'Raw_Scans', '--output', 'Share'],
        [
          'the mapping CSV Share/m.csv is inside --output Share, the folder to be shared: it holds MRNs and accessions; ' +
            'give --output a folder of its own, e.g. --output Share/Anonymized_Data, or move the CSV out of it',
        ],
      ],
      [
        [
          '--csv',
          'mapping.csv',
          '--input',
          'Raw_Scans',
          '--output',
          'Out',
          '--db',
          'Out/s.sqlite',
          '--log-dir',
          'Out/logs',
        ],
        [
          `the state database ${dir}/Out/s.sqlite would be inside --output Out, the folder to be shared: it holds the UID ` +
            `secret and identifiers; pass --db with a file outside it, e.g. --db ${dir}/dicom-deid-state.sqlite`,
          `the audit log folder ${dir}/Out/logs would be inside --output Out, the folder to be shared: the audit log maps ` +
            `source paths to research IDs; pass --log-dir with a folder outside it, e.g. --log-dir ${dir}/dicom-deid-logs`,
        ],
      ],
    ];
    for (const [args, expected] of cases) {
      const r = run(['batch', ...args], dir);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({
        args,
        status: 2,
        stderr: expected.map((l) => `dicom-deid: ${l}\n`).join(''),
      });
      // The same with --dry-run.
      expect(run(['batch', ...args, '--dry-run'], dir).status).toBe(2);
    }
    expect(snapshot(dir)).toEqual(before);
  });

  it('a --db or --log-dir where a folder is a file says so in words (no ENOTDIR, no EEXIST)', () => {
    const dir = workspace('paths');
    fs.writeFileSync(path.join(dir, 'afile'), '');
    let r = run([...BATCH, '--db', 'afile/state.sqlite'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `dicom-deid: the state database ${dir}/afile/state.sqlite cannot be made: ${dir}/afile is not a folder (see --db)\n`,
    );
    r = run([...BATCH, '--log-dir', 'afile/logs'], dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `dicom-deid: the audit log folder ${dir}/afile/logs cannot be made: ${dir}/afile is not a folder (see --log-dir)\n`,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['Raw_Scans', 'afile', 'mapping.csv']);
  });
});

describe('help and output', () => {
  it('batch --help has a description and wraps at words in 80 columns', () => {
    const r = run(['batch', '--help'], tmp);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('De-identify a folder tree of raw scans');
    for (const line of r.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    // Words yargs' ES module build cut in two at 80 columns.
    for (const word of [
      'Surgery_Date,',
      'dir>/dicom-deid-state.sqlite]',
      'elsewhere)',
      'AET@host:port',
      'Anonymized_Data',
    ]) {
      expect(r.stdout).toContain(word);
    }
    const top = run(['--help'], tmp);
    expect(top.stdout).toContain('(patient/session/...)');
    expect(top.stdout).toContain('de-identify, file, forward');
  });

  it('check-csv | head: a closed stdout ends the output quietly', () => {
    const rows = ['MRN,Accession,New_Patient_ID,Surgery_Date'];
    for (let i = 0; i < 20000; i++) rows.push(`M${i},A${i},R${String(i).padStart(6, '0')},2023-01-02`);
    fs.writeFileSync(path.join(tmp, 'big.csv'), rows.join('\n') + '\n');
    const r = spawnSync(
      'bash',
      ['-c', `"${process.execPath}" "${cli}" check-csv big.csv | head -n 1; exit "\${PIPESTATUS[0]}"`],
      { cwd: tmp, encoding: 'utf8' },
    );
    expect(r.stdout).toBe('big.csv: valid: 20000 rows, 20000 research IDs (UTF-8, comma-separated)\n');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
