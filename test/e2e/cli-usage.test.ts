// The CLI's help, usage errors and mapping CSV errors (built CLI, dist/).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repo, 'dist', 'cli.js');
let tmp: string;

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
}

beforeAll(() => {
  if (!fs.existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'pipe' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-cli-'));
  fs.mkdirSync(path.join(tmp, 'in', 'P1', 'S1'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'in', 'P1', 'S1', 'a.dcm'), Buffer.alloc(200));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('dicom-deid CLI', () => {
  it('--help lists the commands', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/dicom-deid batch/);
  });

  it('batch --help documents every option', () => {
    const r = run(['batch', '--help']);
    expect(r.status).toBe(0);
    for (const o of [
      '--csv',
      '--input',
      '--output',
      '--db',
      '--log-dir',
      '--copy-other-files',
      '--workers',
      '--quiet',
    ]) {
      expect(r.stdout).toContain(o);
    }
  });

  it.each([
    [[] as string[], /Missing command/],
    [['nope'], /Unknown argument: nope/],
    [['batch', '--csv', 'x.csv'], /Missing required arguments: input, output/],
    [['batch', '--csv', 'x.csv', '--input', '.', '--output', 'o', '--workers', '0'], /--workers/],
  ])('usage error %j: one line, exit 2', (args, re) => {
    const r = run(args);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(re);
  });

  it('a bad mapping CSV: exit 2, one line naming the row and value, nothing written', () => {
    const csv = path.join(tmp, 'mapping.csv');
    fs.writeFileSync(csv, 'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R001,2023-01-02\nM2,A2,R002,2023-02-31\n');
    const out = path.join(tmp, 'out');
    const r = run(['batch', '--csv', csv, '--input', path.join(tmp, 'in'), '--output', out]);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/mapping\.csv line 3: .*2023-02-31/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'dicom-deid-logs'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'dicom-deid-state.sqlite'))).toBe(false);
  });

  it('a missing input folder or CSV: exit 2, one line', () => {
    const csv = path.join(tmp, 'ok.csv');
    fs.writeFileSync(csv, 'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R001,2023-01-02\n');
    let r = run(['batch', '--csv', csv, '--input', path.join(tmp, 'missing'), '--output', path.join(tmp, 'o2')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^dicom-deid: input folder not found/);
    r = run([
      'batch',
      '--csv',
      path.join(tmp, 'none.csv'),
      '--input',
      path.join(tmp, 'in'),
      '--output',
      path.join(tmp, 'o2'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('serve: a bad CSV, a missing CSV or a bad config is one line and exit 2, before listening', () => {
    const bad = path.join(tmp, 'bad-serve.csv');
    fs.writeFileSync(bad, 'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,R001,2023-02-30\n');
    const common = [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--db',
      path.join(tmp, 'sv', 'state.sqlite'),
      '--log-dir',
      path.join(tmp, 'sv', 'logs'),
      '--quarantine',
      path.join(tmp, 'sv', 'q'),
      '--output',
      path.join(tmp, 'sv', 'out'),
    ];
    let r = run(['serve', '--csv', bad, ...common]);
    expect(r.status).toBe(2);
    // The node's stderr goes to journals and log collectors: the CSV's values are not shown.
    expect(r.stderr.trim().split('\n')).toEqual([
      'dicom-deid: bad-serve.csv line 2: Surgery_Date (value not shown) is not a valid YYYY-MM-DD date',
      `dicom-deid: the values are not shown; dicom-deid check-csv ${bad} shows them`,
    ]);
    // Found by a new-user trial: an MRN mapped to two research IDs was printed at start-up.
    const twice = path.join(tmp, 'twice-serve.csv');
    fs.writeFileSync(
      twice,
      'MRN,Accession,New_Patient_ID,Surgery_Date\n0099887766,A1,RES1,2023-02-01\n0099887766,A2,RES2,2023-03-01\n',
    );
    r = run(['serve', '--csv', twice, ...common]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/twice-serve\.csv line 3: MRN/);
    expect(r.stderr).not.toContain('0099887766');
    // Two research IDs whose AccessionNumbers would be the same once cut to 16 characters.
    const collide = path.join(tmp, 'collide-serve.csv');
    fs.writeFileSync(
      collide,
      'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,TRIALX_SITEA_0001,2023-02-01\nM2,A2,TRIALX_SITEA_0002,2023-03-01\n',
    );
    r = run(['serve', '--csv', collide, ...common]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      'dicom-deid: collide-serve.csv line 3: New_Patient_ID (value not shown) and (value not shown) on line 2 would ' +
        'both give AccessionNumber (value not shown) (session 1), so a research PACS would merge the two ' +
        "patients' studies: an AccessionNumber holds 16 characters and longer research IDs are cut, so research IDs " +
        'must differ within their first 11 characters (IDs of at most 11 characters always work)',
      `dicom-deid: the values are not shown; dicom-deid check-csv ${collide} shows them`,
    ]);
    const cfgMissing = run(['serve', '--config', path.join(tmp, 'nope.json'), ...common]);
    expect(cfgMissing.status).toBe(2);
    expect(cfgMissing.stderr).toMatch(/config file .*nope\.json: not found$/m);
    r = run(['serve', '--csv', path.join(tmp, 'none.csv'), ...common]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot read the mapping CSV .*none\.csv: not found$/m);
    const cfg = path.join(tmp, 'cfg.json');
    fs.writeFileSync(cfg, JSON.stringify({ aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG' }));
    r = run(['serve', '--config', cfg, ...common]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      'dicom-deid: aeTitle "THIS_AE_TITLE_IS_TOO_LONG" is not a valid AE title (1-16 printable ASCII characters, no backslash)',
    ]);
    // A letter beyond ASCII, a DEL, only spaces: a peer would read other bytes, or nothing (PS3.5 6.2).
    // The DEL is shown escaped (no control character reaches the terminal).
    for (const [aet, shown] of [
      ['DÉID', 'DÉID'],
      ['DEID\x7f', 'DEID\\x7f'],
    ]) {
      r = run(['serve', '--aet', aet!, ...common]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([
        `dicom-deid: aeTitle "${shown}" is not a valid AE title (1-16 printable ASCII characters, no backslash)`,
      ]);
    }
    r = run(['serve', '--aet', '   ', ...common]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(['dicom-deid: command line: "aeTitle" must be a non-empty string']);
    // Found by a fresh-user trial: these were a RangeError from the listener, exit 1, and systemd
    // (RestartPreventExitStatus=2) restarted the node forever.
    for (const [flag, value, line] of [
      ['--max-associations', '0', 'maxAssociations (--max-associations) is 0: it must be a whole number, 1 or more'],
      [
        '--max-associations',
        '3.5',
        'maxAssociations (--max-associations) is 3.5: it must be a whole number, 1 or more',
      ],
      [
        '--max-pdu-length',
        '10',
        'maxPduLength (--max-pdu-length) is 10: it must be a whole number from 4096 to 4294967295 (bytes)',
      ],
    ]) {
      r = run(['serve', '--csv', bad, flag!, value!, ...common]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([`dicom-deid: ${line}`]);
    }
  });

  it.each(['queue', 'queue retry', 'quarantine list', 'quarantine replay'])(
    '%s with no node state: exit 2, one line saying where it looked and what to pass, nothing created',
    (command) => {
      const args = command.split(' ');
      const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-nostate-'));
      try {
        // The default config: its relative paths (data/state/...) resolve in the empty folder.
        let r = spawnSync(process.execPath, [cli, ...args], {
          cwd: empty,
          encoding: 'utf8',
          env: { ...process.env, DEBUG: '' },
        });
        expect(r.status, r.stderr).toBe(2);
        expect(r.stderr.trim().split('\n')).toEqual([
          `dicom-deid: no node state at ${path.join(fs.realpathSync(empty), 'data', 'state', 'dicom-deid.sqlite')} ` +
            "(from the default config): pass --config with the node's config file, or --db with its state database",
        ]);
        expect(fs.readdirSync(empty)).toEqual([]);
        // A --db naming a state that does not exist: the same, naming it.
        const db = path.join(empty, 'elsewhere', 'state.sqlite');
        r = spawnSync(process.execPath, [cli, ...args, '--db', db], { cwd: empty, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(2);
        expect(r.stderr).toContain(`no node state at ${db} (from --db)`);
        expect(fs.readdirSync(empty)).toEqual([]);
      } finally {
        fs.rmSync(empty, { recursive: true, force: true });
      }
    },
  );
});
