// `haul user`, `haul audit verify` and `haul web` as a user runs them: the compiled CLI in a child
// process, over a real SQLite database in a temporary state directory.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../../daemon/cli/database.js';
import { openDatabase, type Database } from '../../../daemon/database/open-database.js';
import { UserStore } from '../../../daemon/database/users.js';
import { haul, haulBin, haulEnv, tempDir, testNode } from '../../helpers/cli.js';

const OTP = /^[a-hj-km-np-z2-9]{5}(-[a-hj-km-np-z2-9]{5}){3}$/;
const { dir, cleanup } = tempDir('cli-user');
const env = haulEnv(path.join(dir, 'no-repository'), { HAUL_HOME: dir });
const run = (...args: string[]) => haul(args, env, { timeoutMs: 60_000 });

/** The database the CLI writes, opened only between commands (SQLite, one writer at a time). */
async function withDb<T>(work: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ stateDir: dir });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

afterAll(cleanup);

describe('haul user', () => {
  it('adds the first admin with a one-time password, and lists users', async () => {
    const added = await run('user', 'add', 'alice', '--role', 'admin');
    expect(added.status).toBe(0);
    const lines = added.stdout.split('\n');
    expect(lines.slice(0, 3)).toEqual(['added admin alice', '', 'One-time password for alice (shown only now; it must be changed at the first login):']);
    expect(lines[4]!.trim()).toMatch(OTP);
    const otp = lines[4]!.trim();
    expect(await withDb((db) => new UserStore(db).login('alice', otp))).toMatchObject({ ok: true, user: { role: 'admin', mustChangePassword: true } });

    fs.writeFileSync(path.join(dir, 'pw'), 'bob has a long password\n');
    const bob = await run('user', 'add', '<b>ob', '--role', 'operator', '--user-password-file', path.join(dir, 'pw'), '--json');
    expect(bob.status).toBe(0);
    expect(JSON.parse(bob.stdout)).toEqual({ user: { username: '<b>ob', role: 'operator', tenants: [{ tenant: 'default', role: 'operator' }], source: 'local', disabled: false, lockedUntil: null, totp: false, mustChangePassword: false, createdAt: expect.any(String) } });
    expect(await withDb((db) => new UserStore(db).login('<b>ob', 'bob has a long password'))).toMatchObject({ ok: true });

    await withDb((db) => new UserStore(db).saveDirectoryUser('dirk', { admin: false, grants: [{ tenant: 'default', role: 'auditor' }] }));
    const list = await run('user', 'list');
    expect(list.stdout).toBe(
      `${'<b>ob'.padEnd(20)} ${'operator of default'.padEnd(30)}       active\n` +
      `${'alice'.padEnd(20)} ${'admin'.padEnd(30)}       active (one-time password)\n` +
      `${'dirk'.padEnd(20)} ${'auditor of default'.padEnd(30)}       active (directory)\n`);
    await withDb((db) => new UserStore(db).remove('dirk'));
  });

  it('refuses what it cannot do, saying what to do instead', async () => {
    const cases: [string[], number, string][] = [
      [['user', 'add', 'carol', '--role', 'root'], 2, '"root" is not a role; use one of admin, operator, auditor.'],
      [['user', 'add', 'alice', '--role', 'auditor'], 1, 'a user named "alice" already exists; choose another name, or change that user\'s password instead.'],
      [['user', 'remove', 'alice'], 1, 'cannot remove "alice": it is the only enabled admin, and without one nobody can manage users. Add another admin first (`haul user add NAME --role admin`).'],
      [['user', 'passwd', 'nobody'], 1, 'there is no user named "nobody"; `haul user list` shows the users.'],
      [['--password-file', path.join(dir, 'pw'), 'user', 'add', 'carol', '--role', 'auditor'], 2, '--password-file names the repository passphrase, which `haul user` does not use. Give the console password with --user-password-file FILE.'],
    ];
    for (const [args, status, message] of cases) {
      const r = await run(...args);
      expect([r.status, r.stderr], args.join(' ')).toEqual([status, `haul: error: ${message}\n`]);
    }
    expect((await run('user', 'list', '--json')).stdout).not.toContain('carol');
  });

  it('resets a password: a new one-time password that opens a locked account', async () => {
    await withDb(async (db) => {
      const users = new UserStore(db);
      for (let i = 0; i < 5; i++) await users.login('<b>ob', 'wrong password!!');
      expect((await users.get('<b>ob')).lockedUntil).not.toBeNull();
    });
    const r = await run('user', 'passwd', '<b>ob');
    expect(r.status).toBe(0);
    const [first, , intro, , line] = r.stdout.split('\n');
    expect([first, intro]).toEqual(['reset the password of <b>ob; 0 session(s) ended', 'One-time password for <b>ob (shown only now; it must be changed at the first login):']);
    expect(await withDb((db) => new UserStore(db).login('<b>ob', line!.trim()))).toMatchObject({ ok: true, user: { mustChangePassword: true } });
  });

  it('removes a user', async () => {
    const r = await run('user', 'remove', '<b>ob');
    expect([r.status, r.stdout]).toEqual([0, 'removed user <b>ob\n']);
    expect(JSON.parse((await run('user', 'list', '--json')).stdout).map((u: { username: string }) => u.username)).toEqual(['alice']);
  });
});

describe('haul audit verify', () => {
  it('finds the trail intact, then names the entry changed in the database (exit 3)', async () => {
    const ok = await run('audit', 'verify');
    expect(ok.status).toBe(0);
    const head = /newest hash ([0-9a-f]{64})/.exec(ok.stdout)![1]!;
    expect(ok.stdout).toBe(`the audit trail is intact: 4 entries; newest hash ${head}\n(keep that hash somewhere else; \`haul audit verify --anchor HASH\` later proves the trail still contains it)\n`);
    expect((await run('audit', 'verify', '--anchor', head)).status).toBe(0);

    const entries = await withDb((db) => db.prisma.auditEntry.findMany({ orderBy: { id: 'asc' } }));
    expect(entries.map((e) => [e.actor, e.action, e.target])).toEqual([
      [cliActor(), 'user.add', 'alice'], [cliActor(), 'user.add', '<b>ob'], [cliActor(), 'user.password-reset', '<b>ob'], [cliActor(), 'user.remove', '<b>ob'],
    ]);
    const second = entries[1]!;
    await withDb((db) => db.prisma.$executeRawUnsafe(`UPDATE "AuditEntry" SET "target" = 'mallory' WHERE "id" = ${second.id}`));
    const broken = await run('audit', 'verify');
    expect([broken.status, broken.stderr]).toEqual([3, `haul: error: audit entry #${second.id} (${second.at.toISOString()} ${second.actor} user.add) does not match its hash: it was changed after it was written. Restore the database from a backup to see the original entries, and find out who could write to it.\n`]);
  });

  it('detects a rewritten chain with an anchor recorded earlier', async () => {
    await withDb((db) => db.prisma.$executeRawUnsafe(`DELETE FROM "AuditEntry"`));
    await run('user', 'add', 'dave', '--role', 'auditor');
    const unknown = 'ab'.repeat(32);
    const r = await run('audit', 'verify', '--anchor', unknown);
    expect([r.status, r.stderr]).toEqual([3, `haul: error: no audit entry has the hash ${unknown}, which you recorded earlier: the chain is intact in itself but was rewritten or cut short since then. Restore the database from a backup to see the original entries, and find out who could write to it.\n`]);
    const bad = await run('audit', 'verify', '--anchor', 'xyz');
    expect([bad.status, bad.stderr]).toEqual([2, 'haul: error: "xyz" is not a hash: give the 64 hex digits an earlier `haul audit verify` printed.\n']);
  });
});

describe('haul web', () => {
  let port: number;
  beforeAll(async () => {
    port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
  });

  it('serves the console until it is stopped, and refuses a busy port or a bad address', async () => {
    const child = spawn(testNode, [haulBin, 'web', '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await expect.poll(() => stdout, { timeout: 30_000 }).toContain('Haul console on');
      expect(stdout).toBe(`Haul console on http://127.0.0.1:${port} (database ${path.join(dir, 'haul.db')})\n`);
      const status = await (await fetch(`http://127.0.0.1:${port}/api/status`, { headers: { authorization: 'Bearer nope' } })).json();
      expect(status).toEqual({ error: { code: 'Unauthenticated', message: 'the API token is unknown or revoked, or its user is disabled or no longer has its role; create a new token on the Account page.' } });
      const busy = await run('web', '--listen', `127.0.0.1:${port}`);
      expect([busy.status, busy.stderr]).toEqual([1, `haul: error: cannot listen on 127.0.0.1:${port}: the port is in use (is another console running?); choose another with --listen.\n`]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout.endsWith('Haul console stopped\n')).toBe(true);
    const bad = await run('web', '--listen', '8080');
    expect([bad.status, bad.stderr]).toEqual([2, 'haul: error: --listen "8080" is not HOST:PORT; for example 127.0.0.1:8080, or [::1]:8080.\n']);
    const both = await run('web', '--fleet', '--bus', 'ipc:///tmp/x.sock', '--listen', `127.0.0.1:${port}`);
    expect([both.status, both.stderr]).toEqual([2, 'haul: error: --fleet follows the daemons recorded in the database and --bus names one daemon; give one of them.\n']);
  });

  it('creates the console key in the state directory, mode 600', () => {
    const key = path.join(dir, 'console.key');
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    expect(Buffer.from(fs.readFileSync(key, 'utf8').trim(), 'base64')).toHaveLength(32);
  });

  it('checks the directory config before it starts, and says which directory it uses', async () => {
    const config = path.join(dir, 'directory.json');
    fs.writeFileSync(config, JSON.stringify({ url: 'ldap://ldap.example.org', startTls: true, bindDn: 'cn=haul', bindPassword: 'x', searchBase: 'dc=example', groupSearchBase: 'dc=example', groups: [{ group: 'admins', role: 'admin' }] }));
    const bad = await run('web', '--listen', `127.0.0.1:${port}`, '--directory', config);
    expect([bad.status, bad.stdout, bad.stderr]).toEqual([2, '', `haul: error: the directory config ${config} is not valid (groups.0.role: Invalid option: expected one of "operator"|"auditor"); see docs/operations.md (Directory login) for its fields.\n`]);
    fs.writeFileSync(config, JSON.stringify({ url: 'ldap://ldap.example.org', startTls: true, bindDn: 'cn=haul', bindPassword: 'x', searchBase: 'dc=example', groupSearchBase: 'dc=example', groups: [{ group: 'admins', admin: true }] }));
    const keyBefore = fs.readFileSync(path.join(dir, 'console.key'), 'utf8');
    const child = spawn(testNode, [haulBin, 'web', '--listen', `127.0.0.1:${port}`], { env: { ...env, HAUL_DIRECTORY_FILE: config }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await expect.poll(() => stdout, { timeout: 30_000 }).toContain('local accounts sign in as before\n');
      expect(stdout.split('\n')[1]).toBe('Directory accounts sign in through ldap://ldap.example.org; local accounts sign in as before');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    // A second start keeps the key: the TOTP secrets sealed under it stay readable.
    expect(fs.readFileSync(path.join(dir, 'console.key'), 'utf8')).toBe(keyBefore);
  });
});
