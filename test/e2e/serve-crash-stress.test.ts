// kill -9 at random moments under 4 concurrent storescu pushes, over reused journal segments and
// the file spool: every acknowledged instance is filed exactly once (scripts/stress-node-crash.sh,
// a short run with a fixed seed for its random choices; the timing still varies run to run).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ensureBuilt, REPO } from '../helpers/serve-helpers.js';

it('files every acknowledged instance exactly once across random kill -9 crashes', () => {
  ensureBuilt();
  const r = spawnSync('bash', [join(REPO, 'scripts', 'stress-node-crash.sh'), '3', '100'], {
    cwd: REPO,
    env: { ...process.env, SEED: '42' },
    encoding: 'utf8',
    timeout: 150_000,
  });
  const out = `${r.stdout}${r.stderr}`;
  expect(r.status, out).toBe(0);
  expect(out).toMatch(/missing \(acknowledged, not filed\): 0 /);
  expect(out).toMatch(/duplicates: 0 /);
  expect(out).toMatch(/^PASS$/m);
}, 180_000);
