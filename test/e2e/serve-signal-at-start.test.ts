// Ctrl-C while the node is still starting (writing a new spool's reserve): the built CLI stops as
// soon as it is up, cleanly (exit 0, "stopped"), instead of losing the signal and running on
// (found by a new-user trial).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../helpers/forward-helpers.js';
import { ensureBuilt, REPO, writeMappingCsv } from '../helpers/serve-helpers.js';

describe('serve and a signal during its start', () => {
  it('a SIGINT while the spool reserve is written stops the node once it is up (exit 0)', async () => {
    ensureBuilt();
    const dir = tempDir('serve-signal-start');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN7101', accession: 'ACC7101', researchId: 'RS_71' }]);
    const log = join(dir, 'logs', 'dicom-deid.log');
    const args = [join(REPO, 'dist', 'cli.js'), 'serve', '--csv', csv, '--host', '127.0.0.1', '--port', '0'];
    args.push('--http-port', '0', '--output', join(dir, 'out'), '--db', join(dir, 'state', 'state.sqlite'));
    args.push('--spool', join(dir, 'spool'), '--quarantine', join(dir, 'q'), '--log-dir', join(dir, 'logs'));
    args.push('--spool-reserve-mb', '512');
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const logText = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    await waitFor(() => logText().includes('preparing the spool reserve'), 30_000, 'the reserve being written');
    expect(logText()).not.toContain('spool reserve prepared'); // still starting
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    const text = logText();
    expect(text).toContain('SIGINT: stopping');
    expect(text).toMatch(/"message":"stopped"/);
  }, 90_000);
});
