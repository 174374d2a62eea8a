// The process logger (src/log.ts) as the node uses it: console lines as JSON objects when asked
// (ISO timestamps), readable lines with the date otherwise and no colours off a terminal; the
// log file rotates by size, keeping a bounded number of files. Run in a child process (stderr
// is not a TTY there, as under systemd).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/forward-helpers.js';
import { REPO, ensureBuilt } from '../helpers/serve-helpers.js';

function runLogger(options: Record<string, unknown>, lines: number): string {
  ensureBuilt();
  const script = `
    import { createLogger, closeLogger } from ${JSON.stringify(join(REPO, 'dist', 'log.js'))};
    const logger = createLogger(${JSON.stringify(options)});
    for (let i = 0; i < ${lines}; i++) {
      logger.info('line ' + i + ' ' + 'x'.repeat(80), { n: i });
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
    }
    await closeLogger(logger);
    await new Promise((r) => setTimeout(r, 500)); // old files are deleted just after a rotation
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr;
}

describe('the process logger', () => {
  it('writes JSON lines with ISO timestamps on the console when asked', () => {
    const out = runLogger({ consoleFormat: 'json' }, 3).trim().split('\n');
    expect(out).toHaveLength(3);
    for (const [i, line] of out.entries()) {
      const o = JSON.parse(line) as { level: string; message: string; timestamp: string; n: number };
      expect(o).toMatchObject({ level: 'info', n: i });
      expect(o.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  it('writes readable lines with the date and no colours when stderr is not a terminal', () => {
    const out = runLogger({}, 1).trim();
    expect(out).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} info: line 0 x+ n=0$/);
    expect(out).not.toContain('\u001b[');
  });

  it('writes control characters of a message or value (a file name) escaped on readable lines', () => {
    ensureBuilt();
    const script = `
      import { createLogger, closeLogger } from ${JSON.stringify(join(REPO, 'dist', 'log.js'))};
      const logger = createLogger({});
      logger.warn('cannot read \\x1b[31mred.txt', { file: '\\x1b[2Jx\\x85', folder: 'Doe\\nJohn' });
      await closeLogger(logger);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ warn: cannot read \\x1b\[31mred\.txt file=\\x1b\[2Jx\\x85 folder="Doe\\nJohn"\n$/);
    expect(r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  });

  it('rotates the log file by size and keeps at most maxFiles files', () => {
    const dir = tempDir('log-rotate');
    runLogger({ logDir: dir, console: false, maxFileBytes: 4000, maxFiles: 3 }, 300);
    const files = readdirSync(dir).filter((n) => !n.startsWith('.'));
    const rotated = files.filter((n) => /^dicom-deid-\d{4}-\d{2}-\d{2}\.log(\.\d+)?$/.test(n));
    expect(rotated.length).toBeGreaterThanOrEqual(2);
    expect(rotated.length).toBeLessThanOrEqual(3);
    expect(files.sort()).toEqual(['dicom-deid.log', ...rotated].sort());
    // The newest lines are there, through the link to the current file.
    expect(readFileSync(join(dir, 'dicom-deid.log'), 'utf8')).toContain('"n":299');
  });
});
