// The status page in a real browser: Debian's chromium, headless, driven by playwright-core. A
// real node is pushed a mapped study (filed), an unmapped one (quarantined), and forwards to a
// research PACS that is down (its items go dead). The page shows the study appear, the
// quarantined group and the dead items; after the CSV is fixed, clicking Replay files the
// quarantined study; after the PACS comes up, clicking "Retry dead" delivers. A screenshot with
// a study, a quarantined item and dead items is written (docs/status-page.png when
// DICOM_DEID_SCREENSHOT=docs, else a temporary folder). Skipped with the reason when chromium is
// missing.
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium } from '../helpers/browser-helpers.js';
import { freePort, startStorescp, stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  CSV_HEADER,
  REPO,
  ensureBuilt,
  makeSamples,
  startNode,
  stopAllNodes,
  storescu,
} from '../helpers/serve-helpers.js';

const STUDY_A = '1.2.826.0.1.3680043.8.498.7101';
const STUDY_B = '1.2.826.0.1.3680043.8.498.7102';
const PHI = [
  'DOE^JANE',
  '19650704',
  'Springfield General',
  'MRN7101',
  'ACC7101',
  'MRN7102',
  'ACC7102',
  STUDY_A,
  STUDY_B,
];

let root = '';
let browser: BrowserContext | undefined;

beforeAll(() => {
  ensureBuilt();
  root = tempDir('page');
});

afterAll(async () => {
  await browser?.close();
  await stopAllNodes();
  await stopAllPeers();
  rmSync(root, { recursive: true, force: true }); // the node's spool reserve is large
});

describe('the status page in headless chromium', () => {
  it('shows a pushed study, replays a quarantined one and retries dead items by clicking', async (ctx) => {
    if (!existsSync(CHROMIUM)) ctx.skip(`${CHROMIUM} is missing (apt-get install chromium)`);
    const uncompressed = (f: string) => /CT_small|MR_small_implicit|MR_small_bigendian/.test(f);
    const studyA = makeSamples(join(root, 'in'), 'MRN7101', 'ACC7101', STUDY_A, 'a').filter(uncompressed);
    const studyB = makeSamples(join(root, 'in'), 'MRN7102', 'ACC7102', STUDY_B, 'b').filter(uncompressed);
    const csv = join(root, 'map.csv');
    writeFileSync(csv, [CSV_HEADER, 'MRN7101,ACC7101,RS_71,2024-03-01,2024-06-15,', ''].join('\n'));
    const pacsPort = await freePort();
    const pacsDir = join(root, 'pacs');
    mkdirSync(pacsDir);
    const node = await startNode({
      dir: join(root, 'node'),
      csv,
      forward: [{ name: 'RESEARCH', aeTitle: 'RESEARCH', host: '127.0.0.1', port: pacsPort }],
      config: { forwardGiveUpHours: 0.0003 },
    });

    // A fresh profile (--user-data-dir) for each run.
    browser = await launchChromium(join(root, 'profile'), { viewport: { width: 1400, height: 1100 } });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(node.httpUrl + '/');
    await page
      .locator('#state')
      .filter({ hasText: /running|degraded/ })
      .waitFor();
    await page.locator('#studies tbody', { hasText: 'no study filed yet' }).waitFor();

    // Pushed: the study appears by itself (the page refreshes every 5 s).
    expect(storescu(node.port, studyA).status).toBe(0);
    expect(storescu(node.port, studyB).status).toBe(0);
    await page.locator('#studies tbody tr', { hasText: 'RS_71_1' }).waitFor({ timeout: 20_000 });
    const quarantineRow = page.locator('#quarantine tbody tr', { hasText: 'no-mapping' });
    await quarantineRow.waitFor({ timeout: 20_000 });
    expect(await quarantineRow.innerText()).toMatch(/no-mapping\s+3\s/);
    await page.locator('#t-quarantined', { hasText: /^3 held now$/ }).waitFor({ timeout: 20_000 });
    // The dead items show with their reason and a retry button.
    const destRow = page.locator('#destinations tbody tr', { hasText: 'RESEARCH' });
    await destRow.locator('button.retry').waitFor({ timeout: 30_000 });
    expect(await destRow.innerText()).toContain('gave up after');

    // The screenshot: a study, a quarantined item, dead items.
    const shotDir = process.env.DICOM_DEID_SCREENSHOT === 'docs' ? join(REPO, 'docs') : root;
    const shot = join(shotDir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
    // No identifier on the page outside the (hidden) identifying view.
    const text = await page.locator('body').innerText();
    for (const v of PHI) expect(text, `the page shows ${v}`).not.toContain(v);
    expect(text).toContain('RS_71');

    // Fix the CSV; click Replay: the quarantined study is filed and listed.
    writeFileSync(
      csv,
      [
        CSV_HEADER,
        'MRN7101,ACC7101,RS_71,2024-03-01,2024-06-15,',
        'MRN7102,ACC7102,RS_72,2024-03-01,2024-06-15,',
        '',
      ].join('\n'),
    );
    await node.waitForLog(/mapping CSV reloaded: 2 rows/);
    await quarantineRow.locator('button.replay').click();
    await page.locator('#quarantine-result', { hasText: 'replay: 3 of 3 filed' }).waitFor({ timeout: 20_000 });
    await page.locator('#quarantine tbody', { hasText: 'quarantine is empty' }).waitFor({ timeout: 20_000 });
    await page.locator('#studies tbody tr', { hasText: 'RS_72_1' }).waitFor({ timeout: 20_000 });
    // The totals count the replay: 3 filed on arrival + 3 by the replay; none held any more.
    await page.locator('#t-quarantined', { hasText: /^0 held now$/ }).waitFor({ timeout: 20_000 });
    await page.locator('#t-filed', { hasText: /^6\b/ }).waitFor({ timeout: 20_000 });

    // The PACS comes up; click "Retry dead": delivered, and the page says so.
    await startStorescp(['-aet', 'RESEARCH'], pacsPort, pacsDir);
    await page.locator('#destinations tbody tr', { hasText: 'RESEARCH' }).locator('button.retry').click();
    await page
      .locator('#echo-result', { hasText: /dead item\(s\) of RESEARCH are pending again/ })
      .waitFor({ timeout: 20_000 });
    await waitFor(() => readdirSync(pacsDir).length >= 3, 30_000, 'files at the PACS');
    await page
      .locator('#destinations tbody tr', { hasText: 'RESEARCH' })
      .locator('td:nth-child(3)', { hasText: 'up' })
      .waitFor({ timeout: 30_000 });
    await page
      .locator('#studies tbody tr', { hasText: 'RS_71_1' })
      .filter({ hasText: 'delivered' })
      .waitFor({ timeout: 30_000 });
    expect(pageErrors).toEqual([]);
    await page.close();
    expect(await node.stop()).toBe(0);
  }, 150_000);
});
