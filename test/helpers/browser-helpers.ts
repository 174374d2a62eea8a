// Helpers for tests that drive the node's status page in a real browser: Debian's chromium,
// headless, through playwright-core (no browser download; the tests skip when it is missing).

import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's chromium (apt-get install chromium). */
export const CHROMIUM = '/usr/bin/chromium';

/** Without the background-networking flags, chromium's own connections are refused by this machine's network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Starts headless chromium with a fresh profile in `profileDir` (its --user-data-dir); the
 * viewport in CSS pixels when given. Close the returned context when done. Rejects (playwright's
 * error) when chromium cannot start.
 */
export function launchChromium(
  profileDir: string,
  o: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    ...(o.viewport ? { viewport: o.viewport } : {}),
  });
}
