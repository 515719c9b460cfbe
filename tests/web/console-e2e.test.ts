// The console end to end, every part real: a `haul daemon` process (SQLite, a local repository,
// its bus on ipc://), the console's web server connected to that bus the way `haul web` connects
// (BusDaemonLink), an sshd client user whose data holds a file with an odd name, and headless
// Chromium. An operator adds the client on the Clients page (the authorized_keys line the page
// shows is the one installed on the client), tests the connection and pins the host key, runs a
// backup and sees it end on the dashboard, reads the job's log, browses the snapshot, downloads a
// file and restores it onto the client, byte for byte. An auditor sees the same pages without the
// buttons, and the API refuses the same actions. Screenshots at laptop and phone size go to
// tests/web/screenshots/ (e2e-*.png, not committed).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import { defaultBusEndpoints } from '../../shared/bus/endpoints.js';
import { BusDaemonLink } from '../../web/server/bus-daemon-link.js';
import { createWebServer, type WebServer } from '../../web/server/web-server.js';
import { haulBin, projectRoot, testNode } from '../helpers/cli.js';
import { createDaemonTestbed, fullRun, transitionsOf, type DaemonTestbed } from '../helpers/daemon-testbed.js';
import { pseudoRandom } from '../helpers/fixtures.js';
import { sshdSkipReason } from '../helpers/sshd.js';
import { testPasswordHashCost } from '../helpers/store-databases.js';
import { ApiClient, TEST_PASSWORD, chromiumSkipReason, ensureWebBuilt, launchChromium } from '../helpers/web.js';

const USER = 'haul-t-e2e-a';
const CLIENT = 'web-e2e';
const MiB = 1024 * 1024;
/** Spaces, markup, quotes, non-ASCII, # and ?: a name that must stay text on every page and in every URL. */
const ODD = `odd <img src=x onerror=alert(1)> & 'quotes' "ü" #?.txt`;
const SIZES = { laptop: { width: 1366, height: 768 }, phone: { width: 390, height: 844 } } as const;
type Size = keyof typeof SIZES;
const SCREENSHOTS = path.join(projectRoot, 'tests', 'web', 'screenshots');
const skip = sshdSkipReason() ?? chromiumSkipReason();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip !== undefined)(`the console against a real daemon, sshd and Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let data: string;
  let files: Record<string, Buffer>;
  let daemon: ChildProcess;
  let daemonExited: Promise<number | null>;
  let daemonStderr = '';
  let database: Database;
  let link: BusDaemonLink;
  let web: WebServer;
  let url: string;
  let browser: Browser;
  /** Filled in by the operator's flow, read by the later tests. */
  let backupJobId = 0;
  let snapshotId = '';
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureWebBuilt();
    bed = await createDaemonTestbed('e2e', [USER]);
    // The testbed authorizes the daemon's key; here the operator installs it from the Clients page.
    bed.sshd.deauthorize(USER);
    files = {
      'notes.txt': Buffer.from('restore me byte for byte\n'),
      // Big enough that the backup takes a moment and reports progress on the way.
      'big.bin': pseudoRandom('e2e-big', 24 * MiB + 3),
      [ODD]: pseudoRandom('e2e-odd', 300_001),
    };
    data = bed.writeData(USER, 'data', files);
    daemon = spawn(testNode, [haulBin, 'daemon', '--http-port', 'off', '--log-file', process.env['E2E_DAEMON_LOG'] ?? path.join(bed.tmp, 'daemon.log'), '--time-zone', 'UTC', '--grace', '0'], { env: bed.env, stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr!.setEncoding('utf8').on('data', (d: string) => (daemonStderr += d));
    daemonExited = new Promise((resolve) => daemon.on('exit', (code) => resolve(code)));
    const endpoint = defaultBusEndpoints(bed.stateDir).commands;
    for (let i = 0; !fs.existsSync(endpoint.slice('ipc://'.length)); i++) {
      if (i > 600 || daemon.exitCode !== null) throw new Error(`the daemon did not start: ${daemonStderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // As `haul web` does: the daemon's database, and the bus link that keeps checking the daemon.
    database = await openDatabase({ stateDir: bed.stateDir, url: '' });
    link = new BusDaemonLink({ endpoint, database, checkEveryMs: 1000, timeoutMs: 20_000 });
    await link.start();
    web = createWebServer({ database, daemon: link, passwordHashCost: testPasswordHashCost, log: () => undefined });
    url = await web.listen('127.0.0.1', 0);
    await web.services.users.create({ username: 'olga', role: 'operator', password: TEST_PASSWORD });
    await web.services.users.create({ username: 'audrey', role: 'auditor', password: TEST_PASSWORD });
    browser = await launchChromium();
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await link?.close();
    await database?.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await daemonExited;
    }
    await bed?.close();
  }, 60_000);

  async function signedIn(username: string, size: Size = 'laptop'): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: SIZES[size], acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('current-user').waitFor({ state: 'attached' });
    return { context, page };
  }

  /** Opens a page from the menu, as a person does (the live socket stays open). */
  async function openFromMenu(page: Page, name: string): Promise<void> {
    const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
    // On a phone the menu is a drawer off the screen: open it and wait until it has slid in.
    const onScreen = async () => ((await link.boundingBox())?.x ?? -1) >= 0;
    if (!(await onScreen())) {
      await page.getByRole('button', { name: 'Open menu' }).click();
      await expect.poll(onScreen).toBe(true);
    }
    await link.click();
    await expect.poll(() => page.locator('h1').textContent()).toBe(name);
  }

  const shot = (page: Page, name: string, size: Size) => page.screenshot({ path: path.join(SCREENSHOTS, `e2e-${name}-${size}.png`), fullPage: true });

  it('an operator adds the client, installs the key line it shows, tests the connection and pins the host key', async () => {
    const { context, page } = await signedIn('olga');
    try {
      await openFromMenu(page, 'Clients');
      await page.getByTestId('add-client-toggle').click();
      // A bad address first: the daemon's own words, and nothing is added.
      await page.getByLabel('Name', { exact: true }).fill(CLIENT);
      await page.getByLabel('SSH address').fill('not an address');
      await page.getByLabel('Paths to back up (one a line)').fill(data);
      await page.getByTestId('add-client-form').getByRole('button', { name: 'Add client' }).click();
      await expect.poll(() => page.getByTestId('clients-notice').textContent()).toBe('"not an address" is not an address of the form user@host or user@host:port.');
      expect(await bed.db.prisma.client.count()).toBe(0);

      await page.getByLabel('SSH address').fill(`${USER}@${bed.sshd.host}:${bed.sshd.port}`);
      await page.getByTestId('add-client-form').getByRole('button', { name: 'Add client' }).click();
      const line = (await page.getByTestId('authorized-keys-line').textContent())!;
      const publicKey = fs.readFileSync(path.join(bed.stateDir, 'identity', 'id_ed25519.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
      expect(line).toMatch(new RegExp(`^restrict ${publicKey.replace(/[+/]/g, '\\$&')} \\S+$`));
      const row = await bed.db.prisma.client.findUniqueOrThrow({ where: { name: CLIENT } });
      expect({ user: row.sshUser, host: row.host, port: row.port, paths: JSON.parse(row.paths) as string[], hostKey: row.hostKey }).toEqual({ user: USER, host: bed.sshd.host, port: bed.sshd.port, paths: [data], hostKey: null });
      await page.getByRole('row', { name: new RegExp(CLIENT) }).getByText('not pinned').waitFor();
      await shot(page, 'clients-key-line', 'laptop');

      // Before the line is installed, the test says so, and nothing is pinned.
      await page.getByTestId('authorized-keys').getByRole('button', { name: 'Test connection and pin host key' }).click();
      await expect.poll(() => page.getByTestId('clients-notice').textContent(), { timeout: 60_000 }).toContain(`refused the daemon's SSH key for user ${USER}. On the client, paste the line`);
      expect((await bed.db.prisma.client.findUniqueOrThrow({ where: { name: CLIENT } })).hostKey).toBeNull();

      bed.sshd.authorize(USER, line);
      await page.getByTestId('authorized-keys').getByRole('button', { name: 'Test connection and pin host key' }).click();
      await expect.poll(() => page.getByTestId('clients-notice').textContent(), { timeout: 60_000 }).toBe(`Connected to ${CLIENT} and pinned its host key ${bed.sshd.hostKeyFingerprint}.`);
      await page.getByRole('row', { name: new RegExp(CLIENT) }).getByText(bed.sshd.hostKeyFingerprint).waitFor();
      expect((await bed.db.prisma.client.findUniqueOrThrow({ where: { name: CLIENT } })).hostKey).toBe(bed.sshd.hostKeyFingerprint);
      const audit = (await web.services.audit.list({ limit: 50 })).filter((e) => e.action.startsWith('client.')).map((e) => [e.action, e.actor, e.target]);
      expect(audit.reverse()).toEqual([['client.add', 'olga', CLIENT], ['client.pin-host-key', 'olga', CLIENT]]);
      await shot(page, 'clients-pinned', 'laptop');
    } finally {
      await context.close();
    }
  }, 180_000);

  it('runs a backup from the Clients page and watches its progress bar reach done on the dashboard; the job page shows its log', async () => {
    const { context, page } = await signedIn('olga');
    /** job-progress events the browser received over socket.io for this backup. */
    const progressFrames: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
      const text = payload.toString();
      if (text.includes('"job-progress"')) progressFrames.push(text);
    }));
    try {
      await page.reload();
      await page.getByTestId('current-user').waitFor({ state: 'attached' });
      await openFromMenu(page, 'Clients');
      await page.getByRole('row', { name: new RegExp(CLIENT) }).getByRole('button', { name: 'Run backup' }).click();
      const notice = (await page.getByTestId('clients-notice').textContent({ timeout: 30_000 }))!;
      const m = /^Backup of web-e2e queued as job (\d+)\.$/.exec(notice);
      expect(m, notice).not.toBeNull();
      backupJobId = Number(m![1]);

      await openFromMenu(page, 'Dashboard');
      const finished = page.getByTestId(`finished-job-${backupJobId}`);
      await finished.getByTestId('job-state').waitFor({ timeout: 120_000 });
      expect(await finished.getByTestId('job-state').textContent()).toBe('succeeded');
      expect(await finished.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');
      expect(await finished.getByTestId('files').textContent()).toBe('3 / 3 files');
      const mine = progressFrames.filter((f) => f.includes(`"jobId":${backupJobId}`));
      expect(mine.length, 'progress events that reached the browser').toBeGreaterThan(0);
      const job = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: backupJobId } });
      expect({ state: job.state, files: job.filesDone }).toEqual({ state: 'succeeded', files: 3n });
      // The console tells the daemon whom it acts for; the job records that with the bus connection.
      expect(job.requestedBy).toMatch(/^olga via bus ipc:[0-9a-f]+$/);
      expect(await transitionsOf(bed.db, backupJobId)).toEqual(fullRun);
      snapshotId = job.snapshotId!;
      // The last result per client follows: it was read while the job was still running.
      await expect.poll(() => page.getByTestId('client-results').getByRole('row', { name: new RegExp(CLIENT) }).getByRole('link').first().textContent(), { timeout: 30_000 }).toBe('succeeded');
      await shot(page, 'dashboard-done', 'laptop');

      await finished.getByRole('link', { name: `#${backupJobId}` }).click();
      await expect.poll(() => page.getByTestId('job-state').textContent()).toBe('succeeded');
      const log = page.getByTestId('job-log');
      await expect.poll(() => log.textContent(), { timeout: 30_000 }).toContain(`succeeded after`);
      const lines = (await log.textContent())!.trimEnd().split('\n');
      expect(lines[0]).toMatch(new RegExp(`^\\S+Z INFO  job ${backupJobId}: backup of client "${CLIENT}" \\(manual\\): paths ${data}$`));
      expect(lines.at(-1)).toMatch(new RegExp(`^\\S+Z INFO  job ${backupJobId} succeeded after \\d+\\.\\d s$`));
      // The page shows the log file as it is on disk, line for line.
      expect(lines).toEqual(fs.readFileSync(job.logPath!, 'utf8').trimEnd().split('\n'));
      await shot(page, 'job', 'laptop');
    } finally {
      await context.close();
    }
  }, 240_000);

  /** From the Snapshots page into the data folder of the backup, clicking as a person does. */
  async function browseToData(page: Page): Promise<void> {
    await openFromMenu(page, 'Snapshots');
    await page.getByRole('link', { name: snapshotId.slice(0, 8) }).click();
    for (const part of data.split('/').filter(Boolean)) await page.getByTestId('directory').getByRole('link', { name: `${part}/`, exact: true }).click();
    await page.getByTestId('directory').getByText(ODD, { exact: true }).waitFor();
  }

  it('browses the snapshot, downloads the oddly named file byte for byte, and restores it onto the client', async () => {
    expect(snapshotId, 'the backup test ran first').not.toBe('');
    const { context, page } = await signedIn('olga');
    try {
      await browseToData(page);
      const names = await page.getByTestId('directory').locator('tbody tr td.entry-name').allTextContents();
      expect(names.map((n) => n.trim())).toEqual(Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect(await page.locator('img').count()).toBe(0);
      await shot(page, 'snapshot', 'laptop');

      const row = page.getByTestId('directory').locator('tr', { hasText: ODD });
      const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('link', { name: 'Download' }).click()]);
      const tarFile = path.join(bed.tmp, 'download.tar');
      await download.saveAs(tarFile);
      const listed = spawnSync('tar', ['-tf', tarFile], { encoding: 'utf8' });
      expect(listed.stdout).toBe(`${ODD}\n`);
      const extracted = spawnSync('tar', ['-xOf', tarFile, ODD], { maxBuffer: 16 * MiB });
      expect(extracted.status).toBe(0);
      expect(sha256(extracted.stdout)).toBe(sha256(files[ODD]!));

      const target = path.join(bed.user(USER).home, 'e2e-restored');
      fs.rmSync(target, { recursive: true, force: true });
      await row.getByRole('checkbox').check();
      const form = page.getByTestId('restore-form');
      expect(await form.getByText('1 selected item(s)').count()).toBe(1);
      await form.getByLabel('Into directory').fill(target);
      await form.getByRole('button', { name: 'Restore' }).click();
      const notice = (await form.getByRole('status').textContent())!;
      const m = /^Restore queued as job (\d+)\.$/.exec(notice);
      expect(m, notice).not.toBeNull();
      const restoreId = Number(m![1]);
      const [done] = await bed.waitForJobs((all) => all.some((j) => j.id === restoreId && ['succeeded', 'failed', 'cancelled'].includes(j.state)), 120_000).then((all) => all.filter((j) => j.id === restoreId));
      expect({ kind: done!.kind, state: done!.state, message: done!.failureMessage, errors: done!.errors }).toEqual({ kind: 'restore', state: 'succeeded', message: null, errors: 0 });
      expect(done!.requestedBy).toMatch(/^olga via bus ipc:[0-9a-f]+$/);
      expect(fs.readdirSync(target)).toEqual([ODD]);
      expect(sha256(fs.readFileSync(path.join(target, ODD)))).toBe(sha256(files[ODD]!));
      await shot(page, 'snapshot-restored', 'laptop');
      const audit = (await web.services.audit.list({ limit: 50 })).map((e) => e.action);
      expect(audit).toEqual(expect.arrayContaining(['job.run', 'snapshot.download', 'restore']));
    } finally {
      await context.close();
    }
  }, 240_000);

  it('shows an auditor the same pages without the buttons, and the API refuses the same actions with 403', async () => {
    const { context, page } = await signedIn('audrey');
    try {
      await openFromMenu(page, 'Clients');
      await page.getByRole('row', { name: new RegExp(CLIENT) }).waitFor();
      expect(await page.getByTestId('add-client-toggle').count()).toBe(0);
      expect(await page.getByRole('button', { name: /Run backup|Test/ }).count()).toBe(0);
      await shot(page, 'clients-auditor', 'laptop');
      await browseToData(page);
      expect(await page.getByTestId('restore-form').count()).toBe(0);
      expect(await page.getByRole('checkbox').count()).toBe(0);
      await shot(page, 'snapshot-auditor', 'laptop');
      await openFromMenu(page, 'Jobs');
      await page.goto(`${url}/#/jobs/${backupJobId}`);
      await expect.poll(() => page.getByTestId('job-log').textContent()).toContain('succeeded after');
    } finally {
      await context.close();
    }

    const auditor = new ApiClient(url);
    expect((await auditor.login('audrey', TEST_PASSWORD)).status).toBe(200);
    const jobsBefore = await bed.db.prisma.job.count();
    const refusals = [
      ['POST', '/api/clients', { name: 'sneaky', address: `${USER}@127.0.0.1`, paths: ['/'] }, 'add a client'],
      ['POST', `/api/clients/${CLIENT}/host-key`, {}, 'test the connection to a client and pin its host key'],
      ['POST', '/api/jobs', { client: CLIENT }, 'run a backup job'],
      ['POST', `/api/jobs/${backupJobId}/cancel`, {}, 'cancel a job'],
      ['POST', '/api/restores', { snapshot: snapshotId, client: CLIENT, path: data, toClient: CLIENT, target: '/tmp' }, 'restore from a snapshot'],
    ] as const;
    for (const [method, route, body, summary] of refusals) {
      const res = await auditor.request(method, route, body);
      expect([route, res.status, res.body]).toEqual([route, 403, { error: { code: 'Forbidden', message: `your role (auditor) may not ${summary}; that needs the admin or operator role. Ask an admin if you need it.` } }]);
    }
    expect(await bed.db.prisma.job.count()).toBe(jobsBefore);
    expect(await bed.db.prisma.client.count()).toBe(1);
  }, 180_000);

  it.each(Object.keys(SIZES) as Size[])('renders every backup page at %s size with no CSP violation or script error, saved as screenshots', async (size) => {
    const { context, page } = await signedIn('olga', size);
    try {
      for (const [name, hash] of [['dashboard', 'dashboard'], ['clients', 'clients'], ['jobs', 'jobs'], ['job', `jobs/${backupJobId}`], ['snapshots', 'snapshots'], ['statistics', 'statistics']] as const) {
        await page.goto(`${url}/#/${hash}`);
        await expect.poll(() => page.title()).toMatch(/ · Haul$/);
        if (name === 'job') await expect.poll(() => page.getByTestId('job-log').textContent()).toContain('succeeded after');
        else if (name !== 'dashboard' && name !== 'statistics') await page.locator('td').filter({ hasText: CLIENT }).first().waitFor();
        await shot(page, name, size);
      }
      await browseToData(page);
      await shot(page, 'snapshot', size);
      expect(cspViolations).toEqual([]);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 180_000);
});
