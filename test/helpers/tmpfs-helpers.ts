// tmpfs mounts for tests of a full or read-only disk. Mounting needs root: a test skips with the
// reason tmpfsUnavailable() gives when it cannot mount.
//
//   beforeAll(() => (cannotMount = tmpfsUnavailable(join(root, 'probe'))));
//   it('...', (ctx) => { if (cannotMount) ctx.skip(cannotMount); mountTmpfs(dir, 'size=1m,ro'); ... });
//   afterAll(() => unmountAllTmpfs());

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const mounts: string[] = [];

/**
 * Mounts a tmpfs with mount(8) `options` (e.g. 'size=24m', 'size=1m,ro') on `dir`, created first.
 * Throws execFileSync's error (its `stderr` holds mount's message) when it cannot.
 */
export function mountTmpfs(dir: string, options: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  mounts.push(dir);
}

/** Why a tmpfs cannot be mounted here ('' when it can), found by mounting a 1 MiB one on `probeDir`. */
export function tmpfsUnavailable(probeDir: string): string {
  try {
    mountTmpfs(probeDir, 'size=1m');
    return '';
  } catch (e) {
    return `mounting a tmpfs is not permitted here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}); run as root`;
  }
}

/** Unmounts (lazily, umount -l) every tmpfs mountTmpfs mounted, the latest first. */
export function unmountAllTmpfs(): void {
  for (const m of mounts.splice(0).reverse()) spawnSync('umount', ['-l', m]);
}
