// Logging in to a real console server over HTTP: the cookie's flags, wrong passwords, lockout,
// rate limits per address and per user name, TOTP, disabled accounts, logout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode } from '../../shared/totp.js';
import { ApiClient, TEST_PASSWORD, startTestConsole, type TestConsole } from '../helpers/web.js';

const WRONG = 'wrong user name or password. Check both and try again; after 5 failed attempts the account is locked for 15 minutes.';

describe('login', () => {
  let web: TestConsole;
  beforeAll(async () => {
    web = await startTestConsole();
  });
  afterAll(async () => web?.close());

  it('sets an HttpOnly, SameSite=Strict session cookie and hands the CSRF token to the page, not the cookie', async () => {
    await web.addUser('alice', 'admin');
    const client = new ApiClient(web.url);
    const res = await client.login('alice', TEST_PASSWORD);
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/^haul_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    expect(res.body).toEqual({
      user: { username: 'alice', role: 'admin', tenants: [], disabled: false, lockedUntil: null, totp: false, mustChangePassword: false, failedLogins: 0, createdAt: expect.any(String) },
      role: 'admin', via: 'session', csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    expect((await client.request('GET', '/api/me')).body).toMatchObject({ user: { username: 'alice' }, csrfToken: res.body['csrfToken'] });
  });

  it('answers a wrong password and an unknown name with the same message', async () => {
    const client = new ApiClient(web.url);
    for (const [name, password] of [['alice', 'not her password'], ['nobody', 'whatever it is']]) {
      const res = await client.login(name!, password!);
      expect([res.status, res.body]).toEqual([401, { error: { code: 'LoginFailed', message: WRONG } }]);
      expect(res.headers.get('set-cookie')).toBeNull();
    }
  });

  it('locks the account after 5 failures, even against the right password, and says until when', async () => {
    await web.addUser('bob', 'operator');
    const client = new ApiClient(web.url);
    for (let i = 0; i < 4; i++) expect((await client.login('bob', `guess number ${i}`)).body).toEqual({ error: { code: 'LoginFailed', message: WRONG } });
    const fifth = await client.login('bob', 'guess number 5');
    const until = (await web.server.services.users.get('bob')).lockedUntil!;
    const locked = { error: { code: 'AccountLocked', message: `too many failed logins: this account is locked until ${until.toISOString().slice(11, 16)} UTC. Wait until then, or ask an admin to reset your password.` } };
    expect([fifth.status, fifth.body]).toEqual([423, locked]);
    expect(until.getTime() - Date.now()).toBeGreaterThan(14 * 60_000);
    const right = await client.login('bob', TEST_PASSWORD);
    expect([right.status, right.body]).toEqual([423, locked]);
    const audit = (await web.server.services.audit.list({ limit: 3 })).map((e) => [e.action, e.target]);
    expect(audit).toEqual([['login.failed', null], ['user.locked', 'bob'], ['login.failed', null]]);
  });

  it('asks for a TOTP code once it is on, and refuses a wrong one', async () => {
    await web.addUser('carol', 'auditor');
    const client = new ApiClient(web.url);
    await client.login('carol', TEST_PASSWORD);
    const { secret } = (await client.request<{ secret: string; uri: string }>('GET', '/api/me/totp/new-secret')).body;
    const key = base32Decode(secret);
    const now = () => Date.now() / 1000;
    expect((await client.request('POST', '/api/me/totp', { secret, code: totpCode(key, now()) })).body).toMatchObject({ user: { totp: true } });
    await client.request('POST', '/api/logout', {});

    const again = new ApiClient(web.url);
    const asked = await again.login('carol', TEST_PASSWORD);
    expect([asked.status, asked.body]).toEqual([401, { error: { code: 'TotpRequired', message: 'enter the 6-digit code from your authenticator app.' } }]);
    const wrong = await again.login('carol', TEST_PASSWORD, '000000');
    expect([wrong.status, wrong.body]).toEqual([401, { error: { code: 'LoginFailed', message: 'wrong or already used code; enter the current 6-digit code from your authenticator app.' } }]);
    // The enabling code was used; the next time step gives a fresh one.
    const ok = await again.login('carol', TEST_PASSWORD, totpCode(key, now() + 30));
    expect(ok.status).toBe(200);
  });

  it('tells a disabled user so, once the password is right', async () => {
    await web.addUser('dave', 'operator');
    await web.server.services.users.setDisabled('dave', true);
    const res = await new ApiClient(web.url).login('dave', TEST_PASSWORD);
    expect([res.status, res.body]).toEqual([403, { error: { code: 'AccountDisabled', message: 'this account is disabled; ask an admin to enable it.' } }]);
  });

  it('ends the session at logout and clears the cookie', async () => {
    const client = new ApiClient(web.url);
    await client.login('alice', TEST_PASSWORD);
    const out = await client.request('POST', '/api/logout', {});
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toBe('haul_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
    const after = await client.request('GET', '/api/me');
    expect(after.status).toBe(401);
  });
});

describe('login rate limits', () => {
  it('stop an address after its failed attempts, whatever names it tries, with Retry-After', async () => {
    const web = await startTestConsole({ loginRateLimits: { perAddress: 3, perUsername: 100 } });
    try {
      await web.addUser('erin', 'admin');
      const client = new ApiClient(web.url);
      for (const name of ['x1', 'x2', 'x3']) expect((await client.login(name, 'some password')).status).toBe(401);
      const res = await client.login('erin', TEST_PASSWORD);
      expect([res.status, res.body]).toEqual([429, { error: { code: 'RateLimited', message: 'too many failed logins from your address; try again in 900 seconds.' } }]);
      expect(res.headers.get('retry-after')).toBe('900');
    } finally {
      await web.close();
    }
  });

  it('stop guessing one user name, existing or not, while other names still work', async () => {
    const web = await startTestConsole({ loginRateLimits: { perAddress: 100, perUsername: 2 } });
    try {
      await web.addUser('frank', 'admin');
      const client = new ApiClient(web.url);
      for (let i = 0; i < 2; i++) expect((await client.login('Ghost', 'some password')).status).toBe(401);
      const res = await client.login('ghost', 'some password');
      expect([res.status, res.body]).toEqual([429, { error: { code: 'RateLimited', message: 'too many failed logins for this user name; try again in 900 seconds.' } }]);
      expect((await client.login('frank', TEST_PASSWORD)).status).toBe(200);
    } finally {
      await web.close();
    }
  });
});
