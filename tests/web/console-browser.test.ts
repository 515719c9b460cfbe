// The console in real headless Chromium against a real server on real SQLite: logging in and
// out, the messages a person sees, lockout, TOTP (login, required setup with QR code and recovery
// codes), first login with a one-time password, what an
// auditor is offered, names with markup shown as text, the audit trail's verify button finding a
// changed row, no CSP violation anywhere, and screenshots of every page at laptop and phone size
// (tests/web/screenshots/, not committed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode } from '../../shared/totp.js';
import { projectRoot } from '../helpers/cli.js';
import { TEST_PASSWORD, chromiumSkipReason, launchChromium, startTestConsole, type TestConsole } from '../helpers/web.js';

const skip = chromiumSkipReason();
const SCREENSHOTS = path.join(projectRoot, 'tests', 'web', 'screenshots');
const SIZES = { laptop: { width: 1366, height: 850 }, phone: { width: 390, height: 844 } } as const;
const SCRIPT_NAME = `<script>alert("x")</script>'"`;

describe.skipIf(skip)('the console in Chromium', () => {
  let web: TestConsole;
  let browser: Browser;
  /** Console messages that report a Content-Security-Policy violation, from every page. */
  const cspViolations: string[] = [];
  const dialogs: string[] = [];

  beforeAll(async () => {
    web = await startTestConsole();
    browser = await launchChromium();
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await web.addUser('ada', 'admin');
    await web.addUser('otto', 'operator');
    await web.addUser('aud', 'auditor');
    await web.addUser(SCRIPT_NAME, 'auditor');
  });
  afterAll(async () => {
    await browser?.close();
    await web?.close();
  });

  async function open(size: keyof typeof SIZES = 'laptop'): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: SIZES[size] });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(web.url);
    return { context, page };
  }

  async function login(page: Page, username: string, password = TEST_PASSWORD): Promise<void> {
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  async function signedIn(username: string, size: keyof typeof SIZES = 'laptop') {
    const opened = await open(size);
    await login(opened.page, username);
    await opened.page.getByTestId('current-user').waitFor();
    return opened;
  }

  const shot = (page: Page, name: string, size: keyof typeof SIZES) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });

  it('logs in, shows the dashboard with the daemon not connected, and logs out', async () => {
    const { context, page } = await open();
    try {
      await login(page, 'otto');
      await expect.poll(() => page.locator('h1').textContent()).toBe('Dashboard');
      expect(await page.getByTestId('daemon-not-connected').textContent()).toContain('Daemon not connected');
      expect(await page.getByTestId('current-user').textContent()).toContain('otto');
      await page.getByTestId('logout').click();
      await page.getByTestId('login-form').waitFor();
      expect((await page.request.get(`${web.url}/api/me`)).status()).toBe(401);
    } finally {
      await context.close();
    }
  });

  it('says a wrong password is wrong, in words a person can act on', async () => {
    const { context, page } = await open();
    try {
      await login(page, 'otto', 'not the password');
      expect(await page.getByTestId('login-error').textContent()).toBe(' Wrong user name or password. Check both and try again; after 5 failed attempts the account is locked for 15 minutes.');
      expect(await page.getByLabel('Password').inputValue()).toBe('not the password');
    } finally {
      await context.close();
    }
  });

  it('locks the account after 5 failures and says until when', async () => {
    await web.addUser('lockme', 'operator');
    const { context, page } = await open();
    try {
      for (let i = 1; i <= 5; i++) {
        await login(page, 'lockme', `wrong guess ${i}`);
        await expect.poll(async () => web.server.services.users.get('lockme').then((u) => u.failedLogins + (u.lockedUntil ? 10 : 0))).toBe(i === 5 ? 10 : i);
      }
      const until = (await web.server.services.users.get('lockme')).lockedUntil!;
      await expect.poll(() => page.getByTestId('login-error').textContent()).toBe(` Too many failed logins: this account is locked until ${until.toISOString().slice(11, 16)} UTC. Wait until then, or ask an admin to reset your password.`);
    } finally {
      await context.close();
    }
  });

  it('asks for the TOTP code after the password, and signs in with it', async () => {
    const { user } = await web.server.services.users.create({ username: 'tess', role: 'operator', password: TEST_PASSWORD });
    const { secret } = await web.server.services.users.startTotpEnrolment(user.id);
    const key = base32Decode(secret);
    await web.server.services.users.confirmTotpEnrolment(user.id, totpCode(key, Date.now() / 1000));
    const { context, page } = await open();
    try {
      await login(page, 'tess');
      await page.getByLabel('Authentication code').waitFor();
      expect(await page.getByRole('status').textContent()).toBe('Your password is right. Enter the 6-digit code from your authenticator app.');
      await shot(page, 'login-totp', 'laptop');
      await page.getByLabel('Authentication code').fill(totpCode(key, Date.now() / 1000 + 30));
      await page.getByRole('button', { name: 'Verify and sign in' }).click();
      await page.getByTestId('current-user').waitFor();
      expect(await page.locator('h1').textContent()).toBe('Dashboard');
    } finally {
      await context.close();
    }
  });

  it('sends a user whose role requires a second factor to set it up (QR code, recovery codes shown once), then signs in with a recovery code', async () => {
    await web.addUser('vera', 'operator');
    await web.server.services.users.setSecondFactorRoles(['operator']);
    let recovery: string | undefined;
    const first = await open();
    try {
      await login(first.page, 'vera');
      await expect.poll(() => first.page.locator('h1').textContent()).toBe('Set up two-factor sign-in');
      await first.page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
      const qr = first.page.getByTestId('totp-qr');
      await qr.waitFor();
      // The QR code is an image Chromium could decode, not markup inserted into the page.
      await expect.poll(() => qr.evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).complete && (img as unknown as { naturalWidth: number }).naturalWidth > 0)).toBe(true);
      expect(await first.page.locator('svg[viewBox] path[stroke="#000000"]').count()).toBe(0);
      const secret = (await first.page.getByTestId('totp-secret').textContent())!.replace(/\s/g, '');
      await shot(first.page, 'totp-setup', 'laptop');
      await first.page.getByLabel('Code from the app').fill(totpCode(base32Decode(secret), Date.now() / 1000));
      await first.page.getByRole('button', { name: 'Turn on' }).click();
      const codes = first.page.getByTestId('recovery-codes').locator('li');
      await expect.poll(() => codes.count()).toBe(10);
      recovery = (await codes.first().textContent())!.trim();
      expect(recovery).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
      await shot(first.page, 'totp-recovery-codes', 'laptop');
      await first.page.getByRole('button', { name: 'I have saved them' }).click();
      await first.page.getByTestId('current-user').waitFor();
      expect(await first.page.locator('h1').textContent()).toBe('Dashboard');
    } finally {
      await first.context.close();
      await web.server.services.users.setSecondFactorRoles([]);
    }
    expect(await web.server.services.users.get('vera')).toMatchObject({ totp: true });
    const again = await open('phone');
    try {
      await login(again.page, 'vera');
      await again.page.getByLabel('Authentication code').waitFor();
      expect(await again.page.getByText('Lost your phone? Type one of your recovery codes (xxxxx-xxxxx) instead.').count()).toBe(1);
      await shot(again.page, 'login-totp', 'phone');
      await again.page.getByLabel('Authentication code').fill('wrong-codes');
      await again.page.getByRole('button', { name: 'Verify and sign in' }).click();
      await expect.poll(() => again.page.getByTestId('login-error').textContent()).toBe(' Wrong or already used code; enter the current 6-digit code from your authenticator app, or one of your unused recovery codes.');
      const user = await web.server.services.users.get('vera');
      await again.page.getByLabel('Authentication code').fill(recovery!);
      await again.page.getByRole('button', { name: 'Verify and sign in' }).click();
      await again.page.getByTestId('current-user').waitFor();
      expect(await again.page.getByTestId('recovery-notice').textContent()).toContain('You signed in with a recovery code; 9 left.');
      expect(await web.server.services.users.unusedRecoveryCodes(user.id)).toBe(9);
    } finally {
      await again.context.close();
    }
  });

  it('walks a new user from a one-time password to their own', async () => {
    const { context, page } = await signedIn('ada');
    let oneTime: string;
    try {
      await page.goto(`${web.url}/#/users`);
      await page.getByTestId('add-user-toggle').click();
      await page.getByLabel('User name').fill('newop');
      await page.getByLabel('Role', { exact: true }).selectOption('operator');
      await page.getByTestId('add-user-form').getByRole('button', { name: 'Add user' }).click();
      oneTime = (await page.getByTestId('one-time-password').locator('.secret-box').textContent())!;
      expect(oneTime).toMatch(/^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
      await shot(page, 'users-added', 'laptop');
    } finally {
      await context.close();
    }
    const fresh = await open();
    try {
      await login(fresh.page, 'newop', oneTime);
      await fresh.page.getByRole('heading', { name: 'Choose your password' }).waitFor();
      await shot(fresh.page, 'set-password', 'laptop');
      await fresh.page.getByLabel('One-time password').fill(oneTime);
      await fresh.page.getByLabel('New password', { exact: true }).fill('newop chose this one');
      await fresh.page.getByLabel('New password again').fill('newop chose this one');
      await fresh.page.getByRole('button', { name: 'Set password and continue' }).click();
      await fresh.page.getByTestId('current-user').waitFor();
      expect((await web.server.services.users.get('newop')).mustChangePassword).toBe(false);
    } finally {
      await fresh.context.close();
    }
  });

  it('offers an auditor no user management, and the server refuses it anyway', async () => {
    const { context, page } = await signedIn('aud');
    try {
      const nav = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
      expect(nav.map((t) => t.trim())).toEqual(['Dashboard', 'Clients', 'Jobs', 'Snapshots', 'Statistics', 'Audit trail']);
      await page.goto(`${web.url}/#/users`);
      await page.getByRole('heading', { name: 'Not available to your role' }).waitFor();
      const status = await page.evaluate(async () => {
        const me = (await (await fetch('/api/me')).json()) as { csrfToken: string };
        const res = await fetch('/api/users', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken }, body: JSON.stringify({ username: 'sneaky', role: 'admin' }) });
        return [res.status, ((await res.json()) as { error: { message: string } }).error.message];
      });
      expect(status).toEqual([403, 'your role (auditor) may not add a user; that needs the admin role. Ask an admin if you need it.']);
    } finally {
      await context.close();
    }
    const operator = await signedIn('otto');
    try {
      const nav = await operator.page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
      expect(nav.map((t) => t.trim())).toEqual(['Dashboard', 'Clients', 'Jobs', 'Snapshots', 'Statistics']);
    } finally {
      await operator.context.close();
    }
  });

  it('shows a user name with markup as text, in the user list and the audit trail', async () => {
    const marked = await signedIn(SCRIPT_NAME);
    await marked.context.close();
    const { context, page } = await signedIn('ada');
    try {
      await page.goto(`${web.url}/#/users`);
      // The list arrives after the page: read it once it is there (read at once, it was empty once in CI).
      await expect.poll(async () => (await page.getByTestId('user-name').allTextContents()).map((n) => n.trim())).toContain(SCRIPT_NAME);
      await page.goto(`${web.url}/#/audit`);
      await page.getByTestId('audit-table').getByText(SCRIPT_NAME).first().waitFor();
      expect(await page.locator('script').count()).toBe(1);
      expect(dialogs).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('verifies the audit trail, and names the entry that was changed in the database', async () => {
    const { context, page } = await signedIn('ada');
    try {
      await page.goto(`${web.url}/#/audit`);
      await page.getByTestId('verify-audit').click();
      await expect.poll(() => page.getByTestId('audit-verdict').textContent()).toMatch(/^ The chain is intact: \d+ entries\. Newest hash [0-9a-f]{64}$/);
      const victim = (await web.server.services.audit.list({ limit: 1000 })).find((e) => e.action === 'login' && e.actor === 'otto')!;
      await web.db.prisma.$executeRawUnsafe(`UPDATE "AuditEntry" SET "actor" = 'somebody-else' WHERE "id" = ${victim.id}`);
      await page.getByTestId('verify-audit').click();
      await expect.poll(() => page.getByTestId('audit-verdict').textContent()).toBe(
        ` The chain is broken. Audit entry #${victim.id} (${victim.at.toISOString()} somebody-else login) does not match its hash: it was changed after it was written. Restore the database from a backup to see the original entries, and find out who could write to it.`);
      await shot(page, 'audit-broken', 'laptop');
      await web.db.prisma.$executeRawUnsafe(`UPDATE "AuditEntry" SET "actor" = 'otto' WHERE "id" = ${victim.id}`);
    } finally {
      await context.close();
    }
  });

  describe.each(Object.keys(SIZES) as (keyof typeof SIZES)[])('every page at %s size', (size) => {
    it('renders, with no CSP violation, and is saved as a screenshot', async () => {
      const { context, page } = await open(size);
      try {
        await page.getByTestId('login-form').waitFor();
        await shot(page, 'login', size);
        await login(page, 'ada');
        await page.getByTestId('current-user').waitFor({ state: 'attached' });
        for (const p of ['dashboard', 'clients', 'jobs', 'snapshots', 'statistics', 'users', 'audit', 'account']) {
          await page.goto(`${web.url}/#/${p}`);
          await expect.poll(() => page.title()).toMatch(/ · Haul$/);
          if (p === 'users') await page.getByTestId('user-row').first().waitFor();
          if (p === 'audit') await page.getByTestId('audit-table').locator('tbody tr').first().waitFor();
          if (['clients', 'jobs', 'snapshots', 'statistics'].includes(p)) await page.getByTestId('daemon-not-connected').waitFor();
          await shot(page, p, size);
        }
        if (size === 'phone') {
          await page.getByRole('button', { name: 'Open menu' }).click();
          await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).waitFor();
          // The drawer slides in; wait until it has arrived.
          await expect.poll(() => page.locator('aside.sidebar').evaluate((el) => (el as unknown as { ownerDocument: { defaultView: { getComputedStyle(e: unknown): { transform: string } } } }).ownerDocument.defaultView.getComputedStyle(el).transform)).toBe('none');
          await page.screenshot({ path: path.join(SCREENSHOTS, `menu-${size}.png`) });
        }
        expect(cspViolations).toEqual([]);
      } finally {
        await context.close();
      }
    });
  });
});
