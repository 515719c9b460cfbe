// Users, sessions and API tokens on a real SQLite file and a real PostgreSQL database: argon2id
// hashes, lockout, TOTP with sealed secrets and recovery codes, the last-admin rule, session expiry and idle timeout, hashed secrets,
// token scoping and revocation. A settable clock stands in for waiting.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTokenStore } from '../../../daemon/database/api-tokens.js';
import type { Database } from '../../../daemon/database/open-database.js';
import { SecretBox } from '../../../daemon/database/secret-box.js';
import { SessionStore, sessionId } from '../../../daemon/database/sessions.js';
import { UserStore } from '../../../daemon/database/users.js';
import { base32Decode, generateTotpSecret, totpCode } from '../../../shared/totp.js';
import { failure } from '../../helpers/errors.js';
import { testDatabases, testPasswordHashCost } from '../../helpers/store-databases.js';

const backends = testDatabases();

describe.each(backends)('console accounts on $name', (backend) => {
  let db: Database;
  let now = new Date('2026-05-01T10:00:00.000Z');
  const clock = () => now;
  let users: UserStore;
  let sessions: SessionStore;
  let tokens: ApiTokenStore;
  const secrets = SecretBox.random();

  beforeAll(async () => {
    if (backend.skip) return;
    db = await backend.open();
    users = new UserStore(db, { now: clock, hashCost: testPasswordHashCost, secrets });
    sessions = new SessionStore(db, { now: clock });
    tokens = new ApiTokenStore(db, { now: clock });
  });
  afterAll(async () => db?.close());

  const advance = (ms: number) => {
    now = new Date(now.getTime() + ms);
  };

  describe.skipIf(backend.skip)('users', () => {
    it('stores an argon2id hash (64 MiB, 2 passes) and hands out a one-time password that must be changed', async () => {
      const productionCost = new UserStore(db, { now: clock });
      const { user, password, generated } = await productionCost.create({ username: 'alice', role: 'admin' });
      expect(generated).toBe(true);
      expect(password).toMatch(/^[a-hj-km-np-z2-9]{5}(-[a-hj-km-np-z2-9]{5}){3}$/);
      expect(user).toMatchObject({ username: 'alice', role: 'admin', mustChangePassword: true, disabled: false, totp: false, lockedUntil: null });
      const row = await db.prisma.user.findUniqueOrThrow({ where: { username: 'alice' } });
      expect(row.passwordHash).toMatch(/^\$argon2id\$v=19\$m=65536,p=1,t=2\$/);
      expect(row.passwordHash).not.toContain(password);
      expect(await users.login('alice', password)).toMatchObject({ ok: true, user: { username: 'alice' } });

      const changed = await users.changePassword(user.id, password, 'a much longer passphrase');
      expect(changed.mustChangePassword).toBe(false);
      expect(await users.login('alice', password)).toMatchObject({ ok: false, reason: 'wrong-password' });
      expect(await users.login('alice', 'a much longer passphrase')).toMatchObject({ ok: true });
      expect((await failure(users.changePassword(user.id, 'not the password', 'another long passphrase'))).message).toBe('the current password is wrong; nothing was changed.');
    });

    it('refuses bad names, short passwords and duplicates with a message that says what to do', async () => {
      expect((await failure(users.create({ username: 'x:y', role: 'admin' }))).message).toBe('"x:y" is not a usable user name: use 1 to 64 characters without control characters, colons or spaces at either end.');
      expect((await failure(users.create({ username: 'bob', role: 'root' }))).message).toBe('"root" is not a role; use one of admin, operator, auditor.');
      expect((await failure(users.create({ username: 'bob', role: 'operator', password: 'short' }))).message).toBe('the password has 5 characters; use at least 12 (a few unrelated words are easy to type and hard to guess).');
      await users.create({ username: 'bob', role: 'operator', password: 'correct horse battery' });
      const dup = await failure(users.create({ username: 'bob', role: 'auditor' }));
      expect([dup.code, dup.message]).toEqual(['UserExists', 'a user named "bob" already exists; choose another name, or change that user\'s password instead.']);
      // Markup in a name is data: stored as given, escaped wherever it is shown.
      const odd = await users.create({ username: '<script>alert(1)</script>', role: 'auditor' });
      expect(odd.user.username).toBe('<script>alert(1)</script>');
    });

    it('answers an unknown name exactly like a wrong password', async () => {
      expect(await users.login('nobody', 'whatever it is')).toEqual({ ok: false, reason: 'wrong-password' });
    });

    it('locks an account for 15 minutes after 5 failed logins, then counts from zero again', async () => {
      await users.create({ username: 'carol', role: 'operator', password: 'carol password 1' });
      for (let i = 1; i <= 4; i++) {
        const r = await users.login('carol', `wrong guess ${i}`);
        expect(r).toMatchObject({ ok: false, reason: 'wrong-password' });
        expect('lockedNow' in r).toBe(false);
      }
      expect((await users.get('carol')).failedLogins).toBe(4);
      const fifth = await users.login('carol', 'wrong guess 5');
      expect(fifth).toMatchObject({ ok: false, reason: 'wrong-password', lockedNow: new Date(now.getTime() + 15 * 60_000) });
      // Locked: even the right password is refused, and not checked.
      expect(await users.login('carol', 'carol password 1')).toMatchObject({ ok: false, reason: 'locked', lockedUntil: new Date(now.getTime() + 15 * 60_000) });
      advance(15 * 60_000 - 1);
      expect(await users.login('carol', 'carol password 1')).toMatchObject({ ok: false, reason: 'locked' });
      advance(1);
      expect(await users.login('carol', 'carol password 1')).toMatchObject({ ok: true, user: { failedLogins: 0, lockedUntil: null } });
    });

    it('a password reset opens a locked account and ends nothing else', async () => {
      await users.create({ username: 'dave', role: 'operator', password: 'dave password 1' });
      for (let i = 0; i < 5; i++) await users.login('dave', 'wrong password!');
      expect((await users.get('dave')).lockedUntil).not.toBeNull();
      const reset = await users.resetPassword('dave');
      expect(reset.user).toMatchObject({ lockedUntil: null, failedLogins: 0, mustChangePassword: true });
      expect(await users.login('dave', reset.password)).toMatchObject({ ok: true });
    });

    it('says "disabled" only to someone who knows the password', async () => {
      await users.create({ username: 'erin', role: 'auditor', password: 'erin password 1' });
      await users.setDisabled('erin', true);
      expect(await users.login('erin', 'erin password 1')).toMatchObject({ ok: false, reason: 'disabled' });
      expect(await users.login('erin', 'wrong password!')).toMatchObject({ ok: false, reason: 'wrong-password' });
    });

    it('asks for a TOTP code once one is set up, refuses a wrong or reused code and counts it as a failure', async () => {
      const { user } = await users.create({ username: 'frank', role: 'operator', password: 'frank password 1' });
      const { secret } = await users.startTotpEnrolment(user.id);
      const key = base32Decode(secret);
      const seconds = () => now.getTime() / 1000;
      expect((await failure(users.confirmTotpEnrolment(user.id, '000000'))).message).toBe('that code does not match the secret; check the clock of the device with the authenticator app and enter the current code.');
      const enrolled = await users.confirmTotpEnrolment(user.id, totpCode(key, seconds()));
      expect(enrolled.user).toMatchObject({ totp: true });
      expect(enrolled.recoveryCodes).toHaveLength(10);
      // The database holds the secret sealed, never as the base32 text.
      const row = await db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
      expect(row.totpSecret).toMatch(/^v1:/);
      expect(row.totpSecret).not.toContain(secret);
      expect(row.totpPendingSecret).toBeNull();
      advance(30_000);
      expect(await users.login('frank', 'frank password 1')).toMatchObject({ ok: false, reason: 'totp-required' });
      expect(await users.login('frank', 'frank password 1', '123456')).toMatchObject({ ok: false, reason: 'totp-wrong' });
      expect((await users.get('frank')).failedLogins).toBe(1);
      const code = totpCode(key, seconds());
      expect(await users.login('frank', 'frank password 1', code)).toMatchObject({ ok: true, secondFactor: 'totp' });
      expect(await users.login('frank', 'frank password 1', code)).toMatchObject({ ok: false, reason: 'totp-wrong' });
      // The used step is in the database: another console process refuses the code too.
      const other = new UserStore(db, { now: clock, hashCost: testPasswordHashCost, secrets });
      expect(await other.login('frank', 'frank password 1', code)).toMatchObject({ ok: false, reason: 'totp-wrong' });
      advance(30_000);
      expect(await users.login('frank', 'frank password 1', totpCode(key, seconds()))).toMatchObject({ ok: true });
      await users.disableTotp('frank');
      expect(await users.login('frank', 'frank password 1')).toMatchObject({ ok: true });
      expect(await db.prisma.recoveryCode.count({ where: { userId: user.id } })).toBe(0);
    });

    it('takes each recovery code once instead of a TOTP code, and stores only their argon2id hashes', async () => {
      const { user } = await users.create({ username: 'gwen', role: 'auditor', password: 'gwen password 1' });
      const { secret } = await users.startTotpEnrolment(user.id);
      const { recoveryCodes } = await users.confirmTotpEnrolment(user.id, totpCode(base32Decode(secret), now.getTime() / 1000));
      expect(new Set(recoveryCodes).size).toBe(10);
      for (const c of recoveryCodes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
      const stored = await db.prisma.recoveryCode.findMany({ where: { userId: user.id } });
      expect(stored.map((r) => r.codeHash.startsWith('$argon2id$'))).toEqual(Array(10).fill(true));
      expect(await users.login('gwen', 'gwen password 1', recoveryCodes[3]!.toUpperCase())).toMatchObject({ ok: true, secondFactor: 'recovery-code' });
      expect(await users.unusedRecoveryCodes(user.id)).toBe(9);
      expect(await users.login('gwen', 'gwen password 1', recoveryCodes[3]!)).toMatchObject({ ok: false, reason: 'totp-wrong' });
      expect(await users.login('gwen', 'gwen password 1', 'aaaaa-bbbbb')).toMatchObject({ ok: false, reason: 'totp-wrong' });
      expect((await users.get('gwen')).failedLogins).toBe(2);
    });

    it('seals a TOTP secret written before version 5 at its next login', async () => {
      const { user } = await users.create({ username: 'heidi', role: 'auditor', password: 'heidi password 1' });
      const secret = generateTotpSecret();
      await db.prisma.user.update({ where: { id: user.id }, data: { totpSecret: secret } });
      advance(60_000);
      expect(await users.login('heidi', 'heidi password 1', totpCode(base32Decode(secret), now.getTime() / 1000))).toMatchObject({ ok: true });
      const row = await db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
      expect(row.totpSecret).toMatch(/^v1:/);
      expect(secrets.open(row.totpSecret!)).toBe(secret);
    });

    it('never removes, disables or demotes the last enabled admin', async () => {
      // alice is the only admin so far.
      const expected = (what: string) => `cannot ${what} "alice": it is the only enabled admin, and without one nobody can manage users. Add another admin first (\`haul user add NAME --role admin\`).`;
      expect((await failure(users.remove('alice'))).message).toBe(expected('remove'));
      expect((await failure(users.setDisabled('alice', true))).message).toBe(expected('disable'));
      const demote = await failure(users.setRole('alice', 'auditor'));
      expect([demote.code, demote.message]).toEqual(['LastAdmin', expected('make auditor')]);
      await users.create({ username: 'grace', role: 'admin', password: 'grace password 1' });
      await users.setRole('alice', 'operator');
      await users.setRole('alice', 'admin');
      await users.remove('grace');
      expect((await users.list()).filter((u) => u.role === 'admin').map((u) => u.username)).toEqual(['alice']);
      expect((await failure(users.remove('grace'))).message).toBe('there is no user named "grace"; `haul user list` shows the users.');
    });
    it('keeps directory accounts without a local password, counts only local admins as the last admin, and leaves their roles to the directory', async () => {
      const asAdmin = { admin: true, grants: [] };
      const dir = (await users.saveDirectoryUser('dora', asAdmin))!;
      expect(dir).toMatchObject({ username: 'dora', source: 'directory', role: 'admin', grants: [] });
      expect(await users.login('dora', '!directory')).toMatchObject({ ok: false, reason: 'directory-account' });
      // Groups map to roles per tenant: '*' is every tenant, an unknown tenant gives nothing.
      expect(await users.saveDirectoryUser('dora', { admin: false, grants: [{ tenant: '*', role: 'auditor' }, { tenant: 'no-such-tenant', role: 'operator' }] }))
        .toMatchObject({ id: dir.id, role: 'auditor', grants: [{ tenant: 'default', role: 'auditor' }] });
      expect(await users.saveDirectoryUser('dora', { admin: false, grants: [{ tenant: 'no-such-tenant', role: 'operator' }] })).toBeUndefined();
      expect(await users.saveDirectoryUser('dora', { admin: false, grants: [{ tenant: '*', role: 'auditor' }, { tenant: 'default', role: 'operator' }] }))
        .toMatchObject({ role: 'operator', grants: [{ tenant: 'default', role: 'operator' }] });
      expect((await failure(users.setRole('dora', 'operator'))).code).toBe('DirectoryAccount');
      expect((await failure(users.resetPassword('dora'))).message).toBe('"dora" signs in through the directory; its password is changed there, not in Haul.');
      expect((await failure(users.startTotpEnrolment(dir.id))).code).toBe('DirectoryAccount');
      expect((await failure(users.saveDirectoryUser('alice', asAdmin))).message).toBe('"alice" is a local account; local accounts take precedence over the directory.');
      expect((await users.get('alice')).source).toBe('local');
      // A directory admin does not make the last local admin removable: it could not log in while the directory is down.
      await users.saveDirectoryUser('dora', asAdmin);
      expect((await failure(users.setDisabled('alice', true))).code).toBe('LastAdmin');
      await users.remove('dora');
    });
  });

  describe.skipIf(backend.skip)('sessions', () => {
    it('stores only the SHA-256 of the cookie secret, and a CSRF token per session', async () => {
      const { user } = await users.create({ username: 'sam', role: 'operator', password: 'sam password 12' });
      const a = await sessions.create(user.id);
      const b = await sessions.create(user.id);
      expect(a.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(a.csrfToken).not.toBe(b.csrfToken);
      const rows = await db.prisma.session.findMany({ where: { userId: user.id } });
      expect(rows.map((r) => r.id).sort()).toEqual([sessionId(a.secret), sessionId(b.secret)].sort());
      expect(sessionId(a.secret)).toBe(createHash('sha256').update(a.secret).digest('hex'));
      expect(JSON.stringify(rows)).not.toContain(a.secret);
      expect(await sessions.authenticate(a.secret)).toMatchObject({ user: { username: 'sam' }, csrfToken: a.csrfToken, expiresAt: a.expiresAt });
      expect(await sessions.authenticate(a.secret.slice(0, -1) + (a.secret.endsWith('A') ? 'B' : 'A'))).toBeUndefined();
      expect(await sessions.authenticate('not a secret')).toBeUndefined();
      await sessions.revoke(a.secret);
      expect(await sessions.authenticate(a.secret)).toBeUndefined();
      expect(await sessions.authenticate(b.secret)).toBeDefined();
    });

    it('ends a session after 30 idle minutes, and keeps an active one for at most 12 hours', async () => {
      const { user } = await users.create({ username: 'tina', role: 'auditor', password: 'tina password 1' });
      const idle = await sessions.create(user.id);
      const busy = await sessions.create(user.id);
      advance(29 * 60_000);
      expect(await sessions.authenticate(busy.secret)).toBeDefined();
      advance(60_000);
      expect(await sessions.authenticate(idle.secret)).toBeUndefined();
      expect(await db.prisma.session.count({ where: { id: sessionId(idle.secret) } })).toBe(0);
      // Busy: seen every 20 minutes, until the absolute lifetime ends it.
      for (let t = 30 * 60_000; t < 12 * 3600_000 - 20 * 60_000; t += 20 * 60_000) {
        advance(20 * 60_000);
        expect(await sessions.authenticate(busy.secret)).toBeDefined();
      }
      advance(20 * 60_000);
      expect(await sessions.authenticate(busy.secret)).toBeUndefined();
    });

    it('writes lastSeenAt at most once a minute', async () => {
      const { user } = await users.create({ username: 'uma', role: 'auditor', password: 'uma password 12' });
      const s = await sessions.create(user.id);
      const created = now;
      advance(59_000);
      expect((await sessions.authenticate(s.secret))!.lastSeenAt).toEqual(created);
      advance(1_000);
      expect((await sessions.authenticate(s.secret))!.lastSeenAt).toEqual(now);
      expect((await db.prisma.session.findUniqueOrThrow({ where: { id: sessionId(s.secret) } })).lastSeenAt).toEqual(now);
    });

    it('ends the sessions of a disabled user, and all sessions but one on request', async () => {
      const { user } = await users.create({ username: 'vic', role: 'operator', password: 'vic password 12' });
      const [a, b, c] = [await sessions.create(user.id), await sessions.create(user.id), await sessions.create(user.id)];
      expect(await sessions.revokeAllOf(user.id, a.secret)).toBe(2);
      expect([await sessions.authenticate(a.secret), await sessions.authenticate(b.secret), await sessions.authenticate(c.secret)].map(Boolean)).toEqual([true, false, false]);
      await users.setDisabled('vic', true);
      expect(await sessions.authenticate(a.secret)).toBeUndefined();
    });
  });

  describe.skipIf(backend.skip)('API tokens', () => {
    it('stores a hash, acts with its own role, and stops at revocation', async () => {
      const admin = await users.get('alice');
      const { token, view } = await tokens.create(admin, 'nightly report', 'auditor');
      expect(token).toMatch(/^haul_[A-Za-z0-9_-]{43}$/);
      expect(view).toMatchObject({ name: 'nightly report', role: 'auditor', username: 'alice', revokedAt: null, lastUsedAt: null });
      const row = await db.prisma.apiToken.findUniqueOrThrow({ where: { id: view.id } });
      expect(row.tokenHash).toBe(createHash('sha256').update(token).digest('hex'));
      expect(await tokens.authenticate(token)).toMatchObject({ role: 'auditor', user: { username: 'alice' }, tokenName: 'nightly report' });
      expect((await db.prisma.apiToken.findUniqueOrThrow({ where: { id: view.id } })).lastUsedAt).toEqual(now);
      expect(await tokens.authenticate(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBeUndefined();
      expect((await tokens.revoke(view.id, { userId: admin.id, anyUser: false })).revokedAt).toEqual(now);
      expect(await tokens.authenticate(token)).toBeUndefined();
    });

    it('never gives a token rights its user lacks, also after the user is demoted', async () => {
      const { user: op } = await users.create({ username: 'olga', role: 'operator', password: 'olga password 1' });
      const refused = await failure(tokens.create(op, 'peek', 'auditor'));
      expect([refused.code, refused.message]).toEqual(['Forbidden', 'as operator you cannot create a token with role auditor: a token never has rights its user lacks. Create it with role operator.']);
      const { user: boss } = await users.create({ username: 'hank', role: 'admin', password: 'hank password 1' });
      const { token } = await tokens.create(boss, 'deploy', 'admin');
      expect((await tokens.authenticate(token))!.role).toBe('admin');
      await users.setRole('hank', 'operator');
      expect(await tokens.authenticate(token)).toBeUndefined();
      await users.setRole('hank', 'admin');
      expect((await tokens.authenticate(token))!.role).toBe('admin');
      await users.setDisabled('hank', true);
      expect(await tokens.authenticate(token)).toBeUndefined();
    });

    it('lets a user revoke only their own tokens; an admin any', async () => {
      const olga = await users.get('olga');
      const alice = await users.get('alice');
      const { view } = await tokens.create(olga, 'cron', 'operator');
      const refused = await failure(tokens.revoke(view.id, { userId: alice.id, anyUser: false }));
      expect([refused.code, refused.message]).toEqual(['TokenNotFound', `there is no API token ${view.id} of yours; the token list shows their numbers.`]);
      expect((await tokens.revoke(view.id, { userId: alice.id, anyUser: true })).revokedAt).not.toBeNull();
      expect((await tokens.list(olga.id)).map((t) => [t.name, t.revokedAt !== null])).toEqual([['cron', true]]);
    });
  });
});
