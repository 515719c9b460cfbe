// The TOTP second factor through a real console over HTTP: setting it up (QR code, secret,
// confirmation, recovery codes shown once), logging in with a code, wrong and replayed codes,
// recovery codes spent once, an admin's reset (audited), and a second factor an admin requires
// for a role. Codes come from the RFC 6238 algorithm over the secret the console hands out.
import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode } from '../../shared/totp.js';
import { ApiClient, TEST_PASSWORD, startTestConsole, type TestConsole } from '../helpers/web.js';

const now = () => Date.now() / 1000;
const WRONG_CODE = { error: { code: 'LoginFailed', message: 'wrong or already used code; enter the current 6-digit code from your authenticator app, or one of your unused recovery codes.' } };

interface Enrolled {
  key: Buffer;
  recoveryCodes: string[];
}

/** Sets up TOTP for a logged-in client the way the Account page does. */
async function enrol(client: ApiClient): Promise<Enrolled> {
  const setup = await client.request<{ secret: string; uri: string; qrSvg: string }>('POST', '/api/me/totp/setup', {});
  expect(setup.status).toBe(200);
  const key = base32Decode(setup.body.secret);
  const done = await client.request<{ user: { totp: boolean }; recoveryCodes: string[] }>('POST', '/api/me/totp', { code: totpCode(key, now()) });
  expect([done.status, done.body.user.totp]).toEqual([200, true]);
  return { key, recoveryCodes: done.body.recoveryCodes };
}

describe('the TOTP second factor', () => {
  let web: TestConsole;
  let admin: ApiClient;
  beforeAll(async () => {
    web = await startTestConsole();
    await web.addUser('root', 'admin');
    admin = new ApiClient(web.url);
    await admin.login('root', TEST_PASSWORD);
  });
  afterAll(async () => web?.close());

  it('hands out a secret with its otpauth URI and a QR code, turns on only with a matching code, and shows 10 recovery codes once', async () => {
    await web.addUser('olga', 'operator');
    const client = new ApiClient(web.url);
    await client.login('olga', TEST_PASSWORD);
    const setup = await client.request<{ secret: string; uri: string; qrSvg: string }>('POST', '/api/me/totp/setup', {});
    expect(setup.body.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(setup.body.uri).toBe(`otpauth://totp/Haul:olga?issuer=Haul&secret=${setup.body.secret}&algorithm=SHA1&digits=6&period=30`);
    expect(setup.body.qrSvg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*viewBox="0 0 \d+ \d+"/);
    // Until confirmed, nothing changed: the login asks for no code.
    expect((await web.server.services.users.get('olga')).totp).toBe(false);
    const wrong = await client.request('POST', '/api/me/totp', { code: '000000' });
    expect([wrong.status, wrong.body]).toEqual([401, { error: { code: 'LoginFailed', message: 'that code does not match the secret; check the clock of the device with the authenticator app and enter the current code.' } }]);
    const key = base32Decode(setup.body.secret);
    const done = await client.request<{ recoveryCodes: string[] }>('POST', '/api/me/totp', { code: totpCode(key, now()) });
    expect(done.status).toBe(200);
    expect(done.body.recoveryCodes).toHaveLength(10);
    // Shown once: neither the API nor the database gives them back.
    const stored = JSON.stringify(await web.db.prisma.recoveryCode.findMany());
    for (const code of done.body.recoveryCodes) expect(stored).not.toContain(code);
    expect(JSON.stringify((await client.request('GET', '/api/me')).body)).not.toContain(done.body.recoveryCodes[0]);
    const trail = (await web.server.services.audit.list({ limit: 2 })).map((e) => [e.action, e.target, e.detail['recoveryCodes'] ?? null]);
    expect(trail).toEqual([['user.totp-enabled', 'olga', 10], ['user.totp-setup-started', 'olga', null]]);
  });

  it('asks for the code after the password, refuses a wrong, a replayed and an earlier code, and counts them toward the lockout', async () => {
    await web.addUser('paul', 'operator');
    const first = new ApiClient(web.url);
    await first.login('paul', TEST_PASSWORD);
    const { key } = await enrol(first);
    const client = new ApiClient(web.url);
    const asked = await client.login('paul', TEST_PASSWORD);
    expect([asked.status, asked.body]).toEqual([401, { error: { code: 'TotpRequired', message: 'enter the 6-digit code from your authenticator app.' } }]);
    expect((await client.login('paul', TEST_PASSWORD, '123456')).body).toEqual(WRONG_CODE);
    const next = totpCode(key, now() + 30);
    const ok = await client.login('paul', TEST_PASSWORD, next);
    expect(ok.status).toBe(200);
    expect(ok.body['recoveryCodesLeft']).toBeUndefined();
    // The same code again, and the code of the step before it (the one that set it up), are spent.
    expect((await new ApiClient(web.url).login('paul', TEST_PASSWORD, next)).body).toEqual(WRONG_CODE);
    expect((await new ApiClient(web.url).login('paul', TEST_PASSWORD, totpCode(key, now()))).body).toEqual(WRONG_CODE);
    // The successful login cleared the count of the first wrong code; the two refusals after it count.
    expect((await web.server.services.users.get('paul')).failedLogins).toBe(2);
    const [entry] = await web.server.services.audit.list({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'paul', action: 'login.failed', detail: expect.objectContaining({ reason: 'totp-wrong' }) });
  });

  it('takes a recovery code instead of the TOTP code, once, and says how many are left', async () => {
    await web.addUser('quinn', 'auditor');
    const first = new ApiClient(web.url);
    await first.login('quinn', TEST_PASSWORD);
    const { recoveryCodes } = await enrol(first);
    const ok = await new ApiClient(web.url).login('quinn', TEST_PASSWORD, ` ${recoveryCodes[0]!.toUpperCase()} `);
    expect([ok.status, ok.body['recoveryCodesLeft']]).toEqual([200, 9]);
    const [entry] = await web.server.services.audit.list({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'quinn', action: 'login', detail: expect.objectContaining({ secondFactor: 'recovery-code', recoveryCodesLeft: 9 }) });
    expect((await new ApiClient(web.url).login('quinn', TEST_PASSWORD, recoveryCodes[0])).body).toEqual(WRONG_CODE);
    expect((await new ApiClient(web.url).login('quinn', TEST_PASSWORD, recoveryCodes[1])).body['recoveryCodesLeft']).toBe(8);
  });

  it('lets an admin reset a lost second factor: recorded in the audit trail, recovery codes gone, the next login asks for no code', async () => {
    await web.addUser('rita', 'operator');
    const first = new ApiClient(web.url);
    await first.login('rita', TEST_PASSWORD);
    const { recoveryCodes } = await enrol(first);
    const reset = await admin.request('PATCH', '/api/users/rita', { resetTotp: true });
    expect([reset.status, reset.body['user']]).toEqual([200, expect.objectContaining({ username: 'rita', totp: false })]);
    const [entry] = await web.server.services.audit.list({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'root', action: 'user.change', target: 'rita', detail: expect.objectContaining({ totp: false, recoveryCodesRevoked: true }) });
    const user = await web.server.services.users.get('rita');
    expect(await web.db.prisma.recoveryCode.count({ where: { userId: user.id } })).toBe(0);
    expect((await new ApiClient(web.url).login('rita', TEST_PASSWORD)).status).toBe(200);
    // An old recovery code means nothing now (and there is no code to give).
    expect((await new ApiClient(web.url).login('rita', TEST_PASSWORD, recoveryCodes[0])).status).toBe(200);
    // Only admins may reset another user's second factor.
    const other = new ApiClient(web.url);
    await other.login('rita', TEST_PASSWORD);
    expect((await other.request('PATCH', '/api/users/root', { resetTotp: true })).status).toBe(403);
  });

  it('sends a user whose role requires a second factor to set one up before anything else', async () => {
    await web.addUser('sven', 'operator');
    await web.addUser('tara', 'auditor');
    const set = await admin.request('PATCH', '/api/settings/second-factor', { roles: ['operator'] });
    expect([set.status, set.body]).toEqual([200, { roles: ['operator'] }]);
    expect((await admin.request('GET', '/api/settings/second-factor')).body).toEqual({ roles: ['operator'] });
    const [entry] = await web.server.services.audit.list({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'root', action: 'settings.second-factor', detail: expect.objectContaining({ roles: ['operator'] }) });

    const sven = new ApiClient(web.url);
    const login = await sven.login('sven', TEST_PASSWORD);
    expect([login.status, login.body['mustEnrolSecondFactor']]).toEqual([200, true]);
    expect((await sven.request('GET', '/api/me')).body['mustEnrolSecondFactor']).toBe(true);
    const refused = await sven.request('GET', '/api/clients');
    expect([refused.status, refused.body]).toEqual([403, { error: { code: 'SecondFactorRequired', message: 'your role (operator) must sign in with a second factor: set up two-factor sign-in on the Account page (POST /api/me/totp/setup); until then nothing else is allowed.' } }]);
    expect((await sven.request('GET', '/api/tokens')).status).toBe(403);
    // The live channel is closed too.
    const socket = connectSocket(web.url, { transports: ['websocket'], reconnection: false, auth: { csrfToken: sven.csrfToken }, extraHeaders: { cookie: sven.cookie! } });
    await expect(new Promise((_, reject) => socket.once('connect_error', reject))).rejects.toThrow('set up two-factor sign-in first (Account page).');
    socket.disconnect();
    await enrol(sven);
    expect((await sven.request('GET', '/api/me')).body['mustEnrolSecondFactor']).toBe(false);
    expect((await sven.request('GET', '/api/tokens')).status).toBe(200);

    // Another role is not affected.
    const tara = new ApiClient(web.url);
    expect((await tara.login('tara', TEST_PASSWORD)).body['mustEnrolSecondFactor']).toBe(false);
    expect((await tara.request('GET', '/api/tokens')).status).toBe(200);
    await admin.request('PATCH', '/api/settings/second-factor', { roles: [] });
  });

  it('counts wrong codes toward the per-name rate limit', async () => {
    const limited = await startTestConsole({ loginRateLimits: { perUsername: 3 } });
    try {
      await limited.addUser('uma', 'operator');
      const first = new ApiClient(limited.url);
      await first.login('uma', TEST_PASSWORD);
      await enrol(first);
      for (const code of ['111111', '222222', '333333']) expect((await new ApiClient(limited.url).login('uma', TEST_PASSWORD, code)).body).toEqual(WRONG_CODE);
      const res = await new ApiClient(limited.url).login('uma', TEST_PASSWORD, '444444');
      expect([res.status, (res.body['error'] as { code: string }).code]).toEqual([429, 'RateLimited']);
    } finally {
      await limited.close();
    }
  });
});
