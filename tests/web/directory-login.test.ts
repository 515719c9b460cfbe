// Directory logins against a real OpenLDAP server (tests/helpers/slapd.ts) through a real console
// over HTTP: the service account's search, the user's bind, groups mapped to roles, a disabled
// entry, failures counted toward the rate limit and the lockout, StartTLS and LDAPS with the
// test CA, and a directory that cannot be reached while local accounts keep signing in. The
// console's log is read back to prove no password or bind secret ever reaches it.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDirectoryConfig } from '../../web/server/directory/directory-config.js';
import { BASE_DN, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, slapdSkipReason, startSlapd, type TestSlapd } from '../helpers/slapd.js';
import { freePort } from '../helpers/sshd.js';
import { ApiClient, TEST_PASSWORD, startTestConsole, type TestConsole } from '../helpers/web.js';

const skip = slapdSkipReason();
const passwordOf = (uid: string) => PEOPLE.find((p) => p.uid === uid)!.password;
const WRONG = 'wrong user name or password. Check both and try again; after 5 failed attempts the account is locked for 15 minutes.';
const UNAVAILABLE = "the directory that checks this account's password cannot be reached right now; try again in a few minutes. Local accounts can still sign in; an admin finds the cause in the console's log.";

function config(url: string, caFile: string | undefined, extra: Record<string, unknown> = {}) {
  return parseDirectoryConfig({
    url,
    bindDn: SERVICE_DN,
    bindPassword: SERVICE_PASSWORD,
    searchBase: `ou=people,${BASE_DN}`,
    disabledFilter: '(employeeType=disabled)',
    groupSearchBase: `ou=groups,${BASE_DN}`,
    groups: [
      { group: 'haul-admins', admin: true },
      { group: `cn=haul-operators,ou=groups,${BASE_DN}`, role: 'operator' },
      { group: 'acme-auditors', role: 'auditor', tenant: 'acme' },
    ],
    timeoutSeconds: 5,
    ...(caFile ? { tlsCaFile: caFile } : {}),
    ...extra,
  }, 'the test config');
}

async function consoleFor(directory: ReturnType<typeof config>): Promise<{ web: TestConsole; logLines: string[] }> {
  const logLines: string[] = [];
  // One address sends every test's failures: only the per-name limit is under test here.
  const web = await startTestConsole({ directory, log: (m) => logLines.push(m), loginRateLimits: { perAddress: 1000 } });
  return { web, logLines };
}

/** Everything a secret could leak into: the console's log and the audit trail. */
async function leakable(web: TestConsole, logLines: string[]): Promise<string> {
  const audit = await web.server.services.audit.list({ limit: 1000 });
  return JSON.stringify({ logLines, audit });
}

describe.skipIf(skip !== undefined)(`directory logins against a real slapd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let slapd: TestSlapd;
  let web: TestConsole;
  let logLines: string[];

  beforeAll(async () => {
    slapd = await startSlapd();
    ({ web, logLines } = await consoleFor(config(slapd.url, slapd.caFile, { startTls: true })));
    // Two tenants: the all-tenants operator group reaches both, acme-auditors only acme.
    await web.server.services.tenants.add('acme');
    await web.server.services.tenants.add('globex');
  }, 60_000);
  afterAll(async () => {
    await web?.close();
    await slapd?.stop();
  });

  it('signs a directory user in over StartTLS, creates the account on first login with the role its groups give', async () => {
    expect(await web.server.services.users.find('alice')).toBeUndefined();
    const client = new ApiClient(web.url);
    const res = await client.login('alice', passwordOf('alice'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ user: { username: 'alice', role: 'admin', source: 'directory', totp: false }, role: 'admin' });
    expect(await web.server.services.users.get('alice')).toMatchObject({ source: 'directory', role: 'admin', failedLogins: 0 });
    // The session works like a local one: an admin-only route answers.
    expect((await client.request('GET', '/api/users')).status).toBe(200);
    const [entry] = await web.server.services.audit.list({ limit: 1 });
    expect(entry).toMatchObject({ actor: 'alice', action: 'login', detail: expect.objectContaining({ source: 'directory', secondFactor: 'none' }) });
  });

  it('maps groups to roles: an all-tenants operator group wins over a tenant auditor group; a tenant-only auditor is an auditor', async () => {
    const bob = await new ApiClient(web.url).login('bob', passwordOf('bob'));
    expect([bob.status, bob.body['role']]).toEqual([200, 'operator']);
    const erin = await new ApiClient(web.url).login('erin', passwordOf('erin'));
    expect([erin.status, erin.body['role']]).toEqual([200, 'auditor']);
    expect((await web.server.services.users.list()).filter((u) => u.source === 'directory').map((u) => [u.username, u.role])).toEqual([['alice', 'admin'], ['bob', 'operator'], ['erin', 'auditor']]);
    // The rights land in the tenant grants: bob operates every tenant, erin audits acme alone.
    const grants = async (name: string) => (await web.server.services.users.get(name)).grants.map((g) => `${g.role} of ${g.tenant}`);
    expect(await grants('bob')).toEqual(['operator of default', 'operator of acme', 'operator of globex']);
    expect(await grants('erin')).toEqual(['auditor of acme']);
  });

  it('refuses a user whose groups map to no role, with a message that says so, and creates no account', async () => {
    const res = await new ApiClient(web.url).login('dave', passwordOf('dave'));
    expect([res.status, res.body]).toEqual([403, { error: { code: 'DirectoryNoRole', message: 'your directory password is right, but none of your directory groups gives you a role in Haul; ask an admin to add you to one of the groups the console maps to a role.' } }]);
    expect(await web.server.services.users.find('dave')).toBeUndefined();
    expect(logLines.at(-1)).toBe('directory login of "dave" refused: none of its groups (unrelated) is in the console\'s group mapping.');
  });

  it('answers a wrong password and a name the directory does not know with the same message as a local login', async () => {
    for (const [name, password] of [['bob', 'not bobs password'], ['nobody-here', 'some password 1']]) {
      const res = await new ApiClient(web.url).login(name!, password!);
      expect([res.status, res.body]).toEqual([401, { error: { code: 'LoginFailed', message: WRONG } }]);
    }
    expect((await web.server.services.users.get('bob')).failedLogins).toBe(1);
    expect(await web.server.services.users.find('nobody-here')).toBeUndefined();
  });

  it('tells a user disabled in the directory so only when the password is right', async () => {
    const right = await new ApiClient(web.url).login('carol', passwordOf('carol'));
    expect([right.status, right.body]).toEqual([403, { error: { code: 'AccountDisabled', message: 'this account is disabled; ask an admin to enable it.' } }]);
    const wrong = await new ApiClient(web.url).login('carol', 'a wrong password');
    expect([wrong.status, wrong.body]).toEqual([401, { error: { code: 'LoginFailed', message: WRONG } }]);
    expect(await web.server.services.users.find('carol')).toBeUndefined();
  });

  it('honours a local "disabled" on a directory account', async () => {
    await web.server.services.users.setDisabled('erin', true);
    const res = await new ApiClient(web.url).login('erin', passwordOf('erin'));
    expect([res.status, res.body['error']]).toEqual([403, { code: 'AccountDisabled', message: 'this account is disabled; ask an admin to enable it.' }]);
    await web.server.services.users.setDisabled('erin', false);
  });

  it('locks a directory account after 5 wrong passwords, and then refuses even the right one', async () => {
    await new ApiClient(web.url).login('erin', passwordOf('erin'));
    for (let i = 1; i <= 4; i++) expect((await new ApiClient(web.url).login('erin', `guess ${i} for erin`)).body).toEqual({ error: { code: 'LoginFailed', message: WRONG } });
    const fifth = await new ApiClient(web.url).login('erin', 'guess 5 for erin');
    const until = (await web.server.services.users.get('erin')).lockedUntil!;
    expect(fifth.status).toBe(423);
    const right = await new ApiClient(web.url).login('erin', passwordOf('erin'));
    expect([right.status, right.body]).toEqual([423, { error: { code: 'AccountLocked', message: `too many failed logins: this account is locked until ${until.toISOString().slice(11, 16)} UTC. Wait until then, or ask an admin to reset your password.` } }]);
  });

  it('counts failed directory logins toward the per-name rate limit', async () => {
    // 'zoe' is in neither the directory nor the database: only the rate limiter can count her.
    for (let i = 0; i < 10; i++) expect((await new ApiClient(web.url).login('zoe', `guess ${i} for zoe`)).status).toBe(401);
    const limited = await new ApiClient(web.url).login('zoe', 'one more guess');
    expect(limited.status).toBe(429);
    expect((limited.body['error'] as { code: string }).code).toBe('RateLimited');
  });

  it('reads the groups from the memberOf attribute instead of searching them, when told to', async () => {
    const viaMemberOf = await consoleFor(config(slapd.ldapsUrl, slapd.caFile, { groupSearchBase: undefined, memberOfAttribute: 'memberOf' }));
    await viaMemberOf.web.server.services.tenants.add('acme');
    try {
      for (const [uid, role] of [['alice', 'admin'], ['bob', 'operator'], ['erin', 'auditor']] as const) {
        const res = await new ApiClient(viaMemberOf.web.url).login(uid, passwordOf(uid));
        expect([uid, res.status, res.body['role']]).toEqual([uid, 200, role]);
      }
      expect((await new ApiClient(viaMemberOf.web.url).login('dave', passwordOf('dave'))).status).toBe(403);
    } finally {
      await viaMemberOf.web.close();
    }
  });

  it('signs in over LDAPS with the test CA, and refuses to trust the server without it', async () => {
    const good = await consoleFor(config(slapd.ldapsUrl, slapd.caFile));
    const untrusted = await consoleFor(config(slapd.ldapsUrl, undefined));
    try {
      const ok = await new ApiClient(good.web.url).login('bob', passwordOf('bob'));
      expect([ok.status, ok.body['role']]).toEqual([200, 'operator']);
      const refused = await new ApiClient(untrusted.web.url).login('bob', passwordOf('bob'));
      expect([refused.status, refused.body]).toEqual([503, { error: { code: 'DirectoryUnavailable', message: UNAVAILABLE } }]);
      expect(untrusted.logLines).toHaveLength(1);
      expect(untrusted.logLines[0]).toMatch(new RegExp(`^directory login of "bob" failed: ${slapd.ldapsUrl}: .*(certificate|self.signed)`, 'i'));
    } finally {
      await good.web.close();
      await untrusted.web.close();
    }
  });

  it('refuses to send the bind secret in the clear: without StartTLS this directory answers nothing', async () => {
    const plain = await consoleFor(config(slapd.url, undefined));
    try {
      const res = await new ApiClient(plain.web.url).login('bob', passwordOf('bob'));
      expect([res.status, res.body]).toEqual([503, { error: { code: 'DirectoryUnavailable', message: UNAVAILABLE } }]);
      expect(plain.logLines).toEqual([`directory login of "bob" failed: ${slapd.url}: the directory requires TLS (confidentiality required): use an ldaps:// URL or "startTls": true`]);
    } finally {
      await plain.web.close();
    }
  });

  it('keeps local accounts working while the directory is down, and logs why for the admins without a password or the bind secret', async () => {
    const closedPort = await freePort();
    const down = await consoleFor(config(`ldap://127.0.0.1:${closedPort}`, undefined));
    try {
      await down.web.addUser('root', 'admin');
      const local = await new ApiClient(down.web.url).login('root', TEST_PASSWORD);
      expect([local.status, local.body['role']]).toEqual([200, 'admin']);
      const res = await new ApiClient(down.web.url).login('alice', passwordOf('alice'));
      expect([res.status, res.body]).toEqual([503, { error: { code: 'DirectoryUnavailable', message: UNAVAILABLE } }]);
      expect(down.logLines).toEqual([`directory login of "alice" failed: ldap://127.0.0.1:${closedPort}: connection refused (is the directory server running, and is the URL right?)`]);
      const seen = await leakable(down.web, down.logLines);
      expect(seen).not.toContain(passwordOf('alice'));
      expect(seen).not.toContain(SERVICE_PASSWORD);
    } finally {
      await down.web.close();
    }
  });

  it('names a refused service account in the log, never its password or the user\'s', async () => {
    const secretFile = `${slapd.dir}/bind-password`;
    fs.writeFileSync(secretFile, 'not-the-service-secret-Z9\n', { mode: 0o600 });
    const wrongBind = await consoleFor(config(slapd.ldapsUrl, slapd.caFile, { bindPassword: undefined, bindPasswordFile: secretFile }));
    try {
      const res = await new ApiClient(wrongBind.web.url).login('bob', passwordOf('bob'));
      expect(res.status).toBe(503);
      expect(wrongBind.logLines).toEqual([`directory login of "bob" failed: ${slapd.ldapsUrl} refused the service account's bind (${SERVICE_DN}): check "bindDn" and the bind password in the directory config.`]);
      const seen = await leakable(wrongBind.web, wrongBind.logLines);
      for (const secret of ['not-the-service-secret-Z9', passwordOf('bob'), SERVICE_PASSWORD]) expect(seen).not.toContain(secret);
    } finally {
      await wrongBind.web.close();
    }
    // Nor did the main console's log, after every case above, ever hold a password.
    const seen = await leakable(web, logLines);
    for (const secret of [SERVICE_PASSWORD, ...PEOPLE.map((p) => p.password)]) expect(seen).not.toContain(secret);
  });

  it('a filter character in the user name cannot widen the search', async () => {
    const res = await new ApiClient(web.url).login('*', passwordOf('alice'));
    expect([res.status, res.body]).toEqual([401, { error: { code: 'LoginFailed', message: WRONG } }]);
    const star = await new ApiClient(web.url).login('al*', passwordOf('alice'));
    expect(star.status).toBe(401);
  });
});
