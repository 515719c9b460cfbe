// The Statistics page with two weeks of history, in real headless Chromium against a real
// console on real SQLite (tests/helpers/console-testbed.ts): uPlot draws a canvas per plot at
// laptop and phone size, the summaries and tables carry the database's exact numbers, and the
// CSP holds. The two fixture snapshots of web1 are joined by fourteen daily snapshots of app1,
// each with the backup job that made it, so the plots look like a real repository's.
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../../web/app/lib/format.js';
import { projectRoot } from '../helpers/cli.js';
import { startConsoleTestbed, type ConsoleTestbed } from '../helpers/console-testbed.js';
import { TEST_PASSWORD, chromiumSkipReason, launchChromium } from '../helpers/web.js';

const SCREENSHOTS = path.join(projectRoot, 'tests', 'web', 'screenshots');
const SIZES = { laptop: { width: 1366, height: 768 }, phone: { width: 390, height: 844 } } as const;
const MiB = 1024 * 1024;
const DAYS = 14;

/** app1's day i: grows a little every day, mostly deduplicated, a bigger change on day 7. */
function day(i: number) {
  const bytes = (800 + i * 12) * MiB;
  const bytesNew = (i === 0 ? 800 : i === 7 ? 96 : 6 + (i % 4) * 3) * MiB;
  return {
    id: `a${String(i).padStart(63, '0')}`, time: new Date(Date.UTC(2026, 10, 20 + i, 2, 0, 0)),
    bytes, bytesNew, bytesStored: Math.round(bytesNew * 0.62), bytesOnWire: Math.round(bytesNew * 0.55) + 64 * 1024, durationMs: 40_000 + (bytesNew / MiB) * 900,
  };
}

describe.skipIf(chromiumSkipReason())('the Statistics page with two weeks of history', () => {
  let bed: ConsoleTestbed;
  let browser: Browser;
  const days = Array.from({ length: DAYS }, (_, i) => day(i));

  beforeAll(async () => {
    bed = await startConsoleTestbed();
    browser = await launchChromium();
    const prisma = bed.web.db.prisma;
    // app1 is a client of the default tenant, where the auditor reads: a snapshot of no client belongs to no tenant, for admins only.
    const app1 = await bed.web.server.services.clients.add({ name: 'app1', host: 'app1', port: 22, user: 'backup', paths: ['/srv/app'], excludes: [], oneFileSystem: true, schedule: null, retention: null, enabled: true });
    for (const d of days) {
      await prisma.snapshot.create({ data: { id: d.id, clientId: app1.id, clientName: 'app1', hostname: 'app1', time: d.time, paths: '["/srv/app"]', files: 5000n, bytes: BigInt(d.bytes), bytesNew: BigInt(d.bytesNew), bytesStored: BigInt(d.bytesStored), durationMs: d.durationMs } });
      await prisma.job.create({
        data: {
          clientId: app1.id, clientName: 'app1', kind: 'backup', state: 'succeeded', trigger: 'schedule', queuedAt: d.time, startedAt: d.time, finishedAt: new Date(d.time.getTime() + d.durationMs),
          filesTotal: 5000n, filesDone: 5000n, bytesScanned: BigInt(d.bytes), bytesNew: BigInt(d.bytesNew), bytesOnWire: BigInt(d.bytesOnWire), bytesStored: BigInt(d.bytesStored), durationMs: d.durationMs, snapshotId: d.id,
        },
      });
    }
    await bed.web.addUser('audrey', 'auditor');
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await bed?.close();
  });

  it.each(Object.keys(SIZES) as (keyof typeof SIZES)[])('plots every day and every snapshot with its exact numbers (%s)', async (size) => {
    const context = await browser.newContext({ viewport: SIZES[size] });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    try {
      await page.goto(bed.web.url);
      await page.getByLabel('User name').fill('audrey');
      await page.getByLabel('Password').fill(TEST_PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('current-user').waitFor({ state: 'attached' });
      await page.goto(`${bed.web.url}/#/statistics`);

      const repository = page.getByTestId('stats-repository');
      await repository.waitFor();
      await expect.poll(() => repository.locator('canvas').count()).toBe(4);
      // Fourteen days of app1 and the day the fixture made web1's two snapshots.
      expect(await repository.getByTestId('stats-span').textContent()).toMatch(/^15 days, /);
      const all = await bed.web.db.prisma.snapshot.findMany();
      const stored = all.reduce((a, s) => a + Number(s.bytesStored), 0);
      const web1Day = all.filter((s) => s.clientName === 'web1').reduce((a, s) => a + Number(s.bytesStored), 0);
      expect(await repository.getByTestId('chart-stored').getByTestId('summary').textContent()).toBe(
        `total ${formatBytes(stored)}, latest ${formatBytes(web1Day)}, highest ${formatBytes(Math.max(web1Day, days[0]!.bytesStored))}`,
      );
      await shot();

      await page.getByTestId('stats-client').selectOption('app1');
      const app1 = page.getByTestId('stats-app1');
      await app1.waitFor();
      await expect.poll(() => app1.locator('canvas').count()).toBe(4);
      const wire = app1.getByTestId('chart-wire');
      expect(await wire.getByTestId('summary').textContent()).toBe(
        `total ${formatBytes(days.reduce((a, d) => a + d.bytesOnWire, 0))}, latest ${formatBytes(days.at(-1)!.bytesOnWire)}, highest ${formatBytes(days[0]!.bytesOnWire)}`,
      );
      await wire.getByText('Numbers').click();
      expect(await wire.locator('tbody td:nth-child(3)').allTextContents()).toEqual(days.map((d) => `${d.bytesOnWire.toLocaleString('en-US')} B`));
      const dedup = app1.getByTestId('chart-dedup');
      await dedup.getByText('Numbers').click();
      expect(await dedup.locator('tbody td:nth-child(3)').allTextContents()).toEqual(days.map((d) => (d.bytes / d.bytesNew).toFixed(3)));
      const total = days.reduce((a, d) => a + d.bytes, 0);
      const fresh = days.reduce((a, d) => a + d.bytesNew, 0);
      expect(await dedup.getByTestId('summary').textContent()).toBe(`overall ${(total / fresh).toFixed(1)}× (${formatBytes(total)} backed up, ${formatBytes(fresh)} of it new)`);
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(SIZES[size].width);
      await dedup.getByText('Numbers').click();
      await wire.getByText('Numbers').click();
      await shot('-app1');
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }

    async function shot(suffix = '') {
      await page.waitForTimeout(200);
      await page.screenshot({ path: path.join(SCREENSHOTS, `statistics-history${suffix}-${size}.png`), fullPage: true });
    }
  });
});
