// The backup pages in real headless Chromium, against a real console on real SQLite, linked to a
// real BusServer answering from a real repository (tests/helpers/console-testbed.ts): live
// progress bars, the job page with its timeline and a log that tails live, browsing a snapshot
// whose names are hostile, downloading a file byte for byte, comparing two snapshots, restoring,
// statistics, what an auditor is (not) offered and what the API refuses them, tenants set up by an
// admin and what their operator then sees, and the daemon going away. Screenshots of every page
// at laptop and phone size go to tests/web/screenshots/.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_PROTOCOL_VERSION, type Job } from '../../shared/bus/messages.js';
import { wireJob } from '../helpers/bus.js';
import { projectRoot, tempDir } from '../helpers/cli.js';
import { HOSTILE_LOG_LINE, REPINNED_KEY, startConsoleTestbed, type ConsoleTestbed } from '../helpers/console-testbed.js';
import { MARKUP_NAME, NEWLINE_NAME, QUOTE_NAME } from '../helpers/snapshots.js';
import { ApiClient, TEST_PASSWORD, chromiumSkipReason, launchChromium } from '../helpers/web.js';
import { formatBytes } from '../../web/app/lib/format.js';

const skip = chromiumSkipReason();
const SCREENSHOTS = path.join(projectRoot, 'tests', 'web', 'screenshots');
const SIZES = { laptop: { width: 1366, height: 768 }, phone: { width: 390, height: 844 } } as const;
type Size = keyof typeof SIZES;

describe.skipIf(skip)('the backup pages in Chromium', () => {
  let bed: ConsoleTestbed;
  let browser: Browser;
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];
  const downloads = tempDir('pagesdl');

  beforeAll(async () => {
    bed = await startConsoleTestbed();
    browser = await launchChromium();
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await bed.web.addUser('pat', 'operator');
    await bed.web.addUser('audrey', 'auditor');
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await bed?.close();
    downloads.cleanup();
  });

  async function signedIn(username: string, size: Size = 'laptop'): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: SIZES[size], acceptDownloads: true });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(bed.web.url);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('current-user').waitFor({ state: 'attached' });
    return { context, page };
  }

  const shot = (page: Page, name: string, size: Size) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });

  function progress(job: Job, filesDone: number, bytes: number) {
    bed.bus.server.publish({
      v: BUS_PROTOCOL_VERSION, type: 'job-progress', at: new Date().toISOString(), jobId: job.id, filesTotal: '200', filesDone: String(filesDone),
      bytesScanned: String(bytes), bytesNew: String(bytes / 2), bytesOnWire: String(bytes / 4), errors: 0, bytesPerSecond: 3 * 1024 * 1024, etaSeconds: 42, currentPath: '/srv/www/<b>index</b>.html',
    });
  }

  it('moves a running job\'s progress bar live, then moves the job to the finished list when it is done', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.getByTestId('running-count').filter({ hasText: '0' }).waitFor();
      const job = bed.bus.board.add(wireJob(700, { clientName: 'web1', queuedAt: new Date().toISOString() }));
      bed.bus.board.transition(job.id, 'transferring', { startedAt: new Date().toISOString() });
      const bar = page.getByTestId('job-progress-700');
      await bar.waitFor();
      progress(job, 50, 100 * 1024 * 1024);
      await expect.poll(() => bar.getByTestId('files').textContent()).toBe('50 / 200 files');
      expect(await bar.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('25');
      await new Promise((r) => setTimeout(r, 300)); // the daemon coalesces progress to 4 a second
      progress(job, 150, 300 * 1024 * 1024);
      await expect.poll(() => bar.getByTestId('files').textContent()).toBe('150 / 200 files');
      expect(await bar.getByTestId('bytes').textContent()).toBe('300 MiB');
      expect(await bar.textContent()).toContain('/srv/www/<b>index</b>.html');
      expect(await bar.locator('b').count()).toBe(0);
      // Failures on top in the per-client results: db1's last backup failed.
      expect(await page.getByTestId('client-results').locator('tbody tr td:first-child').allTextContents()).toEqual(['db1', 'web1']);
      await shot(page, 'dashboard-live', 'laptop');
      bed.bus.board.transition(job.id, 'succeeded');
      // It leaves the running list for "Finished while you watched", with its end state.
      await page.getByTestId('running-jobs').getByTestId('job-progress-700').waitFor({ state: 'detached' });
      expect(await page.getByTestId('running-count').textContent()).toBe('0');
      await expect.poll(() => page.getByTestId('finished-job-700').getByTestId('job-state').textContent()).toBe('succeeded');
    } finally {
      await context.close();
    }
  });

  it('shows a job\'s timeline and its log as text, and tails new lines live', async () => {
    const { context, page } = await signedIn('audrey');
    try {
      await page.goto(`${bed.web.url}/#/jobs`);
      await page.getByTestId('job-table').getByRole('link', { name: `#${bed.loggedJobId}` }).click();
      const log = page.getByTestId('job-log');
      await expect.poll(() => log.textContent()).toContain(HOSTILE_LOG_LINE);
      expect(await log.locator('script').count()).toBe(0);
      expect(await page.getByTestId('job-timeline').locator('li .badge').allTextContents()).toEqual(['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded']);
      expect(await page.getByRole('button', { name: 'Cancel job' }).count()).toBe(0);
      bed.bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-log', at: new Date().toISOString(), jobId: bed.loggedJobId, level: 'INFO', line: 'a live line with <i>markup</i> & "quotes"' });
      await expect.poll(() => log.textContent()).toContain('a live line with <i>markup</i> & "quotes"');
      expect(await log.locator('i').count()).toBe(0);
      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: 'Download log' }).click();
      const file = path.join(downloads.dir, 'job.log');
      await (await download).saveAs(file);
      expect(fs.readFileSync(file, 'utf8').split('\n')[1]).toBe(HOSTILE_LOG_LINE);
      await shot(page, 'job', 'laptop');
    } finally {
      await context.close();
    }
  });

  it('filters the job history', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.goto(`${bed.web.url}/#/jobs`);
      await page.getByTestId('job-table').locator('tbody tr').nth(1).waitFor();
      await page.getByTestId('job-filters').getByLabel('State').selectOption('failed');
      await page.getByRole('button', { name: 'Filter' }).click();
      await expect.poll(() => page.getByTestId('job-table').locator('tbody tr').count()).toBe(1);
      expect(await page.getByTestId('job-table').locator('tbody tr').textContent()).toContain('cannot reach db1 (10.0.0.7:2222): connection refused.');
    } finally {
      await context.close();
    }
  });

  it('browses a snapshot with hostile names shown as text, and downloads a file byte for byte', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.goto(`${bed.web.url}/#/snapshots`);
      await page.getByTestId('snapshot-table').getByRole('link', { name: bed.fx.second.slice(0, 8) }).click();
      for (const part of bed.fx.data.split('/').filter(Boolean)) await page.getByTestId('directory').getByRole('link', { name: `${part}/`, exact: true }).click();
      const names = page.getByTestId('directory').locator('td.entry-name');
      await expect.poll(() => names.count()).toBe(6);
      const texts = (await names.allInnerTexts()).map((t) => t.trim());
      expect(texts).toContain(MARKUP_NAME);
      expect(texts).toContain(QUOTE_NAME);
      expect(texts).toContain(NEWLINE_NAME.replace('\n', '\u21b5'));
      expect(texts.some((t) => t.startsWith('bad-\uFFFD-name.bin') && t.endsWith('not UTF-8'))).toBe(true);
      expect(await page.getByTestId('directory').locator('img, script').count()).toBe(0);
      await shot(page, 'snapshot-browse', 'laptop');

      const download = page.waitForEvent('download');
      await page.getByTestId('directory').locator('tr', { hasText: 'big.bin' }).getByRole('link', { name: 'Download' }).click();
      const tarFile = path.join(downloads.dir, 'big.tar');
      await (await download).saveAs(tarFile);
      expect(execFileSync('tar', ['-xOf', tarFile, 'big.bin']).equals(bed.fx.big)).toBe(true);
      const audit = await bed.web.server.services.audit.list({ limit: 5 });
      expect(audit.find((e) => e.action === 'snapshot.download')).toMatchObject({ actor: 'pat', target: `web1 ${bed.fx.second.slice(0, 8)}`, detail: { path: `${bed.fx.data}/big.bin` } });
    } finally {
      await context.close();
    }
  });

  it('restores a selection onto another client, written to the audit trail', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.goto(`${bed.web.url}/#/snapshots/web1/${bed.fx.first.slice(0, 8)}?path=${encodeURIComponent(`${bed.fx.data}/etc`)}`);
      await page.getByTestId('directory').getByLabel('Select hosts').check();
      const form = page.getByTestId('restore-form');
      await form.getByLabel('Onto client').selectOption('db1');
      await form.getByLabel('Into directory').fill('/tmp/restored');
      await form.getByRole('button', { name: 'Restore' }).click();
      await expect.poll(() => form.getByRole('status').textContent()).toBe('Restore queued as job 9001.');
      expect(bed.restores).toEqual([{ snapshot: bed.fx.first, client: 'web1', path: `${bed.fx.data}/etc/hosts`, toClient: 'db1', target: '/tmp/restored', overwrite: false, requestedBy: 'pat' }]);
      const [entry] = await bed.web.server.services.audit.list({ limit: 1 });
      expect(entry).toMatchObject({ actor: 'pat', action: 'restore', target: 'db1', detail: { jobId: 9001, from: 'web1', path: `${bed.fx.data}/etc/hosts`, target: '/tmp/restored' } });
    } finally {
      await context.close();
    }
  });

  it('compares two snapshots', async () => {
    const { context, page } = await signedIn('audrey');
    try {
      await page.goto(`${bed.web.url}/#/snapshots`);
      await page.getByLabel(`Pick snapshot ${bed.fx.first.slice(0, 8)} to compare`).check();
      await page.getByLabel(`Pick snapshot ${bed.fx.second.slice(0, 8)} to compare`).check();
      await page.getByTestId('compare').click();
      const cell = (group: string) => page.getByTestId(`diff-${group}`).locator('td.entry-path');
      await expect.poll(() => cell('added').allTextContents()).toEqual([`${bed.fx.data}/etc/added.conf`]);
      expect(await cell('changed').allTextContents()).toEqual([`${bed.fx.data}/etc/hosts`]);
      expect(await cell('removed').allTextContents()).toEqual([`${bed.fx.data}/etc/nested/removed.conf`]);
      await shot(page, 'snapshot-compare', 'laptop');
    } finally {
      await context.close();
    }
  });

  it('offers an auditor no operator buttons, and the API refuses them anyway (socket events: api-access.test.ts)', async () => {
    const { context, page } = await signedIn('audrey');
    try {
      await page.goto(`${bed.web.url}/#/clients`);
      await page.getByRole('cell', { name: 'db1' }).waitFor();
      expect(await page.getByRole('button', { name: 'Run backup' }).count()).toBe(0);
      await page.goto(`${bed.web.url}/#/snapshots/web1/latest?path=%2F`);
      await page.getByTestId('directory').waitFor();
      expect(await page.getByTestId('restore-form').count()).toBe(0);
    } finally {
      await context.close();
    }
    const api = new ApiClient(bed.web.url);
    await api.login('audrey', TEST_PASSWORD);
    const restore = await api.request('POST', '/api/restores', { snapshot: 'latest', client: 'web1', path: '/', toClient: 'web1', target: '/tmp/x' });
    expect(restore).toMatchObject({ status: 403, body: { error: { code: 'Forbidden', message: 'your role (auditor) may not restore from a snapshot; that needs the admin or operator role. Ask an admin if you need it.' } } });
    expect((await api.request('POST', '/api/jobs', { client: 'web1' })).status).toBe(403);
    expect((await api.request('POST', `/api/jobs/${bed.loggedJobId}/cancel`)).status).toBe(403);
    expect(bed.restores.length).toBe(1);
  });

  it('edits, disables and re-pins a client, each audited, and says what is wrong with a bad schedule', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.goto(`${bed.web.url}/#/clients`);
      const row = page.getByTestId('client-db1');
      await row.getByRole('button', { name: 'Edit' }).click();
      const form = page.getByTestId('client-edit');
      await form.getByLabel(/^Schedule/).fill('every night');
      await form.getByRole('button', { name: 'Save' }).click();
      const notice = page.getByTestId('clients-notice');
      await expect.poll(() => notice.textContent()).toBe('"every night" is not a schedule: it has 2 field(s). Give a cron expression of 5 fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 every day) or 6 with seconds first, or --no-schedule to run the client only when asked.');
      expect(await notice.getAttribute('class')).toContain('alert-error');
      expect((await bed.web.server.services.clients.get('db1')).schedule).toBeNull();
      await form.getByLabel(/^Schedule/).fill('30 1 * * *');
      await form.getByLabel('Excludes').fill('/var/lib/postgresql/tmp\n/var/lib/postgresql/<cache>');
      await form.getByLabel('Retention').fill('{"keepDaily":7}');
      await form.getByRole('button', { name: 'Save' }).click();
      await expect.poll(() => notice.textContent()).toBe('db1 saved. Reloaded 2 clients');
      const saved = await bed.web.server.services.clients.get('db1');
      expect([saved.schedule, saved.excludes, saved.retention]).toEqual(['30 1 * * *', ['/var/lib/postgresql/tmp', '/var/lib/postgresql/<cache>'], { keepDaily: 7 }]);
      await row.getByRole('button', { name: 'Disable' }).click();
      await expect.poll(() => notice.textContent()).toBe('db1 is disabled.');
      expect((await bed.web.server.services.clients.get('db1')).enabled).toBe(false);
      await row.getByRole('button', { name: 'Re-pin key' }).click();
      await expect.poll(() => notice.textContent()).toBe(`db1's host key is pinned: ${REPINNED_KEY}.`);
      await expect.poll(() => row.locator('.fingerprint').textContent()).toBe(REPINNED_KEY);
      await shot(page, 'clients-edited', 'laptop');
      const actions = (await bed.web.server.services.audit.list({ limit: 3 })).map((e) => `${e.actor} ${e.action} ${e.target}`);
      expect(actions).toEqual(['pat client.pin-host-key db1', 'pat client.change db1', 'pat client.change db1']);
      await row.getByRole('button', { name: 'Enable' }).click();
      await expect.poll(() => notice.textContent()).toBe('db1 is enabled.');
    } finally {
      await context.close();
    }
    const auditor = new ApiClient(bed.web.url);
    await auditor.login('audrey', TEST_PASSWORD);
    expect((await auditor.request('PATCH', '/api/clients/db1', { enabled: false })).status).toBe(403);
    expect((await auditor.request('POST', '/api/clients/db1/host-key', {})).status).toBe(403);
  });

  it.each(Object.keys(SIZES) as Size[])('plots the statistics with uPlot, with the database\'s numbers in words and tables (%s)', async (size) => {
    const snapshots = await bed.web.db.prisma.snapshot.findMany({ where: { clientName: 'web1' }, orderBy: { time: 'asc' } });
    expect(snapshots.map((s) => s.id)).toEqual([bed.fx.first, bed.fx.second]);
    const [first, second] = snapshots.map((s) => ({ bytes: Number(s.bytes), bytesNew: Number(s.bytesNew), bytesStored: Number(s.bytesStored), durationMs: s.durationMs }));
    const stored = first!.bytesStored + second!.bytesStored;
    const { context, page } = await signedIn('audrey', size);
    try {
      await page.goto(`${bed.web.url}/#/statistics`);
      const repository = page.getByTestId('stats-repository');
      await repository.waitFor();
      await expect.poll(() => repository.locator('canvas').count()).toBe(4);
      expect(await repository.getByTestId('chart-stored').getByTestId('summary').textContent()).toBe(`total ${formatBytes(stored)}, latest ${formatBytes(stored)}, highest ${formatBytes(stored)}`);
      expect(await page.getByTestId('stats-client').locator('option').allTextContents()).toEqual(['Whole repository (per day)', 'web1 (per snapshot)']);

      await page.getByTestId('stats-client').selectOption('web1');
      const web1 = page.getByTestId('stats-web1');
      await web1.waitFor();
      await expect.poll(() => web1.locator('canvas').count()).toBe(4);
      expect(await web1.getByTestId('stats-span').textContent()).toMatch(/^2 snapshots, /);
      // Only the first snapshot has a job row: 120 000 bytes on the wire; the second has none.
      const wire = web1.getByTestId('chart-wire');
      expect(await wire.getByTestId('summary').textContent()).toBe('total 117 KiB, latest 117 KiB, highest 117 KiB (1 without data)');
      await wire.getByText('Numbers').click();
      expect(await wire.locator('tbody td').allTextContents()).toEqual(['117 KiB', '120,000 B', 'none', 'none']);
      const stores = web1.getByTestId('chart-stored');
      await stores.getByText('Numbers').click();
      expect(await stores.locator('tbody td').allTextContents()).toEqual([first!, second!].flatMap((s) => [formatBytes(s.bytesStored), `${s.bytesStored.toLocaleString('en-US')} B`]));
      const durations = web1.getByTestId('chart-duration');
      await durations.getByText('Numbers').click();
      expect(await durations.locator('tbody td:nth-child(3)').allTextContents()).toEqual([first!, second!].map((s) => `${s.durationMs.toLocaleString('en-US')} ms`));
      const fresh = first!.bytesNew + second!.bytesNew;
      const ratio = (first!.bytes + second!.bytes) / fresh;
      expect(await web1.getByTestId('chart-dedup').getByTestId('summary').textContent()).toBe(
        `overall ${ratio.toFixed(1)}× (${formatBytes(first!.bytes + second!.bytes)} backed up, ${formatBytes(fresh)} of it new)${second!.bytesNew === 0 ? '; 1 with nothing new, left out of the plot' : ''}`,
      );
      // The plot follows its container: as wide as the figure, on a laptop and on a phone.
      const [figureWidth, canvasWidth] = await wire.evaluate((f) => [f.getBoundingClientRect().width, f.querySelector('canvas')!.getBoundingClientRect().width]);
      expect(Math.abs(figureWidth! - canvasWidth!)).toBeLessThan(2);
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(SIZES[size].width);
      await page.waitForTimeout(200);
      await shot(page, 'statistics-web1', size);
      expect(cspViolations).toEqual([]);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  describe.each(Object.keys(SIZES) as Size[])('every backup page at %s size', (size) => {
    it('renders real data with no CSP violation or script error, saved as a screenshot', async () => {
      const { context, page } = await signedIn('pat', size);
      try {
        const pages: [string, string][] = [
          ['dashboard', 'client-results'], ['clients', ''], ['jobs', 'job-table'], [`jobs/${bed.loggedJobId}`, 'job-timeline'],
          ['snapshots', 'snapshot-table'], [`snapshots/web1/latest?path=${encodeURIComponent(bed.fx.data)}`, 'directory'], ['statistics', 'stats-repository'],
        ];
        for (const [p, testId] of pages) {
          await page.goto(`${bed.web.url}/#/${p}`);
          if (testId) await page.getByTestId(testId).waitFor();
          else await page.getByRole('cell', { name: 'web1' }).first().waitFor();
          await page.waitForTimeout(200);
          await shot(page, `backup-${p.split('?')[0]!.replace(/\//g, '-').replace(/-\d+$/, '-detail').replace(/web1-latest/, 'browse')}`, size);
        }
        expect(cspViolations).toEqual([]);
        expect(pageErrors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  });

  it('an admin sets a tenant up on the Tenants, Clients and Users pages; its operator then sees only its client', async () => {
    await bed.web.addUser('ada', 'admin');
    await bed.web.addUser('olga', 'operator');
    const admin = await signedIn('ada');
    try {
      const page = admin.page;
      await page.goto(`${bed.web.url}/#/tenants`);
      await page.getByTestId('add-tenant-toggle').click();
      await page.locator('#tenant-name').fill('acme');
      await page.locator('#tenant-quota').fill('2G');
      await page.locator('#tenant-emails').fill('ops@acme.example');
      await page.getByTestId('add-tenant-form').getByRole('button', { name: 'Add tenant' }).click();
      await expect.poll(() => page.getByTestId('tenants-notice').textContent()).toContain('Tenant acme was added.');
      const cells = (await page.getByTestId('tenant-acme').locator('td').allTextContents()).map((t) => t.trim());
      expect(cells.slice(0, 5)).toEqual(['acme', 'none', formatBytes(2 * 2 ** 30), 'keep all', 'ops@acme.example']);
      expect((await bed.web.server.services.tenants.get('acme')).quotaBytes).toBe(2 * 2 ** 30);
      await shot(page, 'tenants', 'laptop');

      await page.goto(`${bed.web.url}/#/clients`);
      const row = page.getByTestId('client-web1');
      await row.getByRole('button', { name: 'Edit' }).click();
      await page.getByTestId('client-tenant-select').selectOption('acme');
      await page.getByRole('button', { name: 'Save' }).click();
      await expect.poll(() => row.getByTestId('client-tenant').textContent()).toBe('tenant acme');
      expect((await bed.web.server.services.tenants.get('acme')).clients).toEqual(['web1']);

      await page.goto(`${bed.web.url}/#/users`);
      const olga = page.getByTestId('user-row').filter({ hasText: 'olga' });
      await olga.getByLabel('Tenant for olga', { exact: true }).selectOption('acme');
      await olga.getByRole('button', { name: 'Give role' }).click();
      await expect.poll(() => olga.getByTestId('user-tenants').locator('.grant').allTextContents()).toEqual(['Operator · default×', 'Operator · acme×']);
      await olga.getByRole('button', { name: "Take olga's role on default away" }).click();
      await expect.poll(() => olga.getByTestId('user-tenants').locator('.grant').allTextContents()).toEqual(['Operator · acme×']);
    } finally {
      await admin.context.close();
    }
    const audit = (await bed.web.server.services.audit.list({ limit: 10 })).map((e) => `${e.actor} ${e.action} ${e.target}`).reverse();
    expect(audit.slice(-4)).toEqual(['ada tenant.add acme', 'ada client.change web1', 'ada user.grant olga', 'ada user.revoke olga']);

    const { context, page } = await signedIn('olga');
    try {
      expect(await page.getByTestId('current-tenants').textContent()).toBe('Operator · acme');
      await page.goto(`${bed.web.url}/#/clients`);
      await page.getByTestId('client-web1').waitFor();
      expect(await page.getByTestId('client-table').locator('tbody tr').count()).toBe(1);
      expect((await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).map((t) => t.trim())).toEqual(['Dashboard', 'Clients', 'Jobs', 'Snapshots', 'Statistics']);
      await shot(page, 'tenant-operator-clients', 'laptop');
      expect(cspViolations).toEqual([]);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
      // The next case counts web1's jobs as an operator of the default tenant.
      await bed.web.server.services.tenants.moveClient('web1', 'default');
    }
  });

  it('says plainly when the daemon goes away', async () => {
    const { context, page } = await signedIn('pat');
    try {
      await page.getByTestId('running-count').waitFor();
      await bed.bus.stop();
      await page.getByTestId('daemon-not-connected').waitFor({ timeout: 15_000 });
      expect(await page.getByTestId('daemon-not-connected').textContent()).toContain('Daemon not connected');
      expect(bed.link.status()).toMatchObject({ connected: false, message: expect.stringContaining('the console is not connected to the Haul daemon (') });
      const api = new ApiClient(bed.web.url);
      await api.login('pat', TEST_PASSWORD);
      expect((await api.request('GET', '/api/snapshots/latest/ls?client=web1')).body).toMatchObject({ error: { code: 'DaemonNotConnected' } });
      // Listings come from the database and keep working.
      expect((await api.request<{ jobs: unknown[] }>('GET', '/api/jobs')).body.jobs.length).toBe(2);
      await shot(page, 'dashboard-daemon-down', 'laptop');
    } finally {
      await context.close();
    }
  });
});
