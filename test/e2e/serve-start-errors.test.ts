// `serve` that cannot start for a reason the admin can fix (the built CLI, dist/): a folder the
// node's user may not write, a port below 1024 without the capability, a token file that is not
// there. Each is one line naming the setting and its flag and the cause in words, exit 2 (the
// systemd unit does not restart on 2). Found by a fresh-user trial: raw "EACCES: permission
// denied, mkdir ..." lines that guessed between a port and a folder.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/forward-helpers.js';
import { CLI, ensureBuilt } from '../helpers/serve-helpers.js';

let root = '';
const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/** Runs `serve` with writable defaults in `root`, `over` replacing some flags; `as` runs it as another user. */
function serve(over: Record<string, string>, as: string[] = []) {
  const flags: Record<string, string> = {
    csv: join(root, 'mapping.csv'),
    host: '127.0.0.1',
    port: '0',
    'http-port': '0',
    db: join(root, 'open', 'state', 'state.sqlite'),
    'log-dir': join(root, 'open', 'logs'),
    quarantine: join(root, 'open', 'quarantine'),
    spool: join(root, 'open', 'spool'),
    output: join(root, 'open', 'out'),
    ...over,
  };
  const args = [CLI, 'serve', ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
  const [cmd, ...rest] = [...as, process.execPath, ...args];
  const r = spawnSync(cmd!, rest, { encoding: 'utf8', env: { ...process.env, DEBUG: '' }, timeout: 30_000 });
  return { status: r.status, stderr: r.stderr ?? '' };
}

beforeAll(() => {
  ensureBuilt();
  root = tempDir('serve-start');
  chmodSync(root, 0o755);
  writeFileSync(join(root, 'mapping.csv'), 'MRN,Accession,New_Patient_ID,Surgery_Date\nM1,A1,RES001,2023-02-01\n');
  chmodSync(join(root, 'mapping.csv'), 0o644);
  mkdirSync(join(root, 'open'), { mode: 0o777 });
  chmodSync(join(root, 'open'), 0o777); // the umask took the group and others' write
  mkdirSync(join(root, 'locked'), { mode: 0o755 }); // root's: nobody may write in it
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('serve: start errors the admin can fix', () => {
  it('a folder the user may not write, a port below 1024: one line naming the setting, exit 2', (ctx) => {
    const setpriv = spawnSync('setpriv', ['--version']);
    if (process.getuid?.() !== 0 || setpriv.status !== 0) ctx.skip('needs root and setpriv to run as another user');
    const locked = join(root, 'locked');
    const cases: [Record<string, string>, string][] = [
      [
        { output: join(locked, 'out') },
        `cannot create the folder ${join(locked, 'out')} (output, --output): permission denied`,
      ],
      [
        { spool: join(locked, 'spool') },
        `cannot create the folder ${join(locked, 'spool')} (spool, --spool): permission denied`,
      ],
      [
        { quarantine: join(locked, 'q') },
        `cannot create the folder ${join(locked, 'q')} (quarantine, --quarantine): permission denied`,
      ],
      [
        { 'log-dir': join(locked, 'logs') },
        `cannot create the folder ${join(locked, 'logs')} (logDir, --log-dir): permission denied`,
      ],
      [{ db: join(locked, 'state.sqlite') }, `cannot write in the folder ${locked} (db, --db): permission denied`],
      [{ spool: locked }, `cannot write in the folder ${locked} (spool, --spool): permission denied`],
      [{ 'log-dir': locked }, `cannot write in the folder ${locked} (logDir, --log-dir): permission denied`],
      [
        { port: '104' },
        'not allowed to listen on port 104 (port, --port): ports below 1024 need root or CAP_NET_BIND_SERVICE',
      ],
    ];
    for (const [over, line] of cases) {
      const r = serve(over, AS_NOBODY);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toBe(`dicom-deid: ${line}\n`);
    }
    // Nothing was made where it may not be.
    expect(existsSync(join(locked, 'out'))).toBe(false);
  });

  it('an address this machine does not have: one line in words, exit 1 (systemd tries again: it may come up after boot)', () => {
    for (const [host, why] of [
      ['192.0.2.1', 'the address is not available on this machine'], // TEST-NET-1 (RFC 5737): nobody's
      // .invalid never resolves (RFC 2606); a machine without a reachable DNS server says "now".
      ['no-such-host.invalid', '(host name not found|host name could not be looked up now \\(DNS\\))'],
    ]) {
      const r = serve({ host: host!, 'open-access': 'allow' });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^dicom-deid: cannot listen on ${host!.replace(/\./g, '\\.')} \\(host, --host\\): ${why}\n$`),
      );
    }
  });

  it('a token file that is not there: one line in words, exit 2', () => {
    const r = serve({ 'http-token-file': '/nonexistent-dicom-deid/token' });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe('dicom-deid: cannot read httpTokenFile /nonexistent-dicom-deid/token: not found\n');
  });
});
