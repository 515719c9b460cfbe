// Tenants in the database, on a real SQLite file and a real PostgreSQL server: the store's rules
// and messages, member users and their grants, a version-3 database migrated to version 4 with
// its users and clients still working, and its recipients getting a client's alerts over real SMTP.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiTokenStore } from '../../../daemon/database/api-tokens.js';
import { ClientStore } from '../../../daemon/database/client-store.js';
import { databaseLocation } from '../../../daemon/database/database-url.js';
import { libsqlMigrationDriver, loadMigrations, migrate, pgMigrationDriver } from '../../../daemon/database/migrate.js';
import { openDatabase, type Database } from '../../../daemon/database/open-database.js';
import { TenantStore, tenantOfClient } from '../../../daemon/database/tenants.js';
import { UserStore } from '../../../daemon/database/users.js';
import { Notifier, parseNotificationConfig } from '../../../daemon/notifications/notifier.js';
import { DaemonAlerts } from '../../../daemon/service/daemon-alerts.js';
import { databasesUnderTest } from '../../helpers/databases.js';
import { parseMail, startSmtp } from '../../helpers/smtp.js';
import { testPasswordHashCost } from '../../helpers/store-databases.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-tenants-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const databases = databasesUnderTest();
const settings = { port: 22, user: 'backup', paths: ['/srv'], excludes: [], oneFileSystem: true, schedule: null, retention: null, enabled: true };

async function refusal(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (err) {
    return [(err as { code: string }).code, (err as Error).message];
  }
  throw new Error('expected a refusal');
}

/** Applies only the first `upTo` migrations, as an older Haul did. */
async function migrateTo(url: string, upTo: number): Promise<void> {
  const location = databaseLocation(tmp, url);
  const migrations = loadMigrations(location.provider).filter((m) => m.version <= upTo);
  if (location.provider === 'sqlite') {
    const { createClient } = await import('@libsql/client');
    const client = createClient({ url: location.url });
    try {
      await migrate(libsqlMigrationDriver(client), migrations, location.display);
    } finally {
      client.close();
    }
    return;
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: location.url });
  await client.connect();
  try {
    await migrate(pgMigrationDriver(client), migrations, location.display);
  } finally {
    await client.end();
  }
}

describe.each(databases)('tenants on $name', (database) => {
  async function fresh(): Promise<Database> {
    return openDatabase({ stateDir: tmp, url: await database.freshUrl() });
  }

  it.skipIf(database.skip)('keeps tenants, refuses bad names and removing one that has clients', async () => {
    const db = await fresh();
    try {
      const tenants = new TenantStore(db.prisma);
      expect((await tenants.list()).map((t) => t.name)).toEqual(['default']);
      await tenants.add('acme', { quotaBytes: 5 * 2 ** 30, retention: { keepDaily: 7 }, notifyEmails: ['ops@acme.example', 'ops@acme.example'] });
      expect(await refusal(tenants.add('acme'))).toEqual(['TenantExists', 'a tenant named acme exists already; choose another name, or change it with `haul tenant edit acme`.']);
      expect(await refusal(tenants.add('Big Corp'))).toEqual(['InvalidArgument', `"Big Corp" is not a valid tenant name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.`]);
      expect(await refusal(tenants.edit('acme', { notifyEmails: ['ops@acme.example, cto@acme.example'] }))).toEqual(['InvalidArgument', '"ops@acme.example, cto@acme.example" is not an e-mail address; give one address per recipient, such as ops@example.com.']);
      expect(await refusal(tenants.edit('nope', { quotaBytes: null }))).toEqual(['TenantNotFound', 'there is no tenant named "nope"; `haul tenant list` shows the tenants.']);
      const clients = new ClientStore(db.prisma);
      await clients.add({ ...settings, name: 'web1', host: 'web1' }, { tenant: 'acme' });
      await clients.add({ ...settings, name: 'web2', host: 'web2' });
      expect(await refusal(clients.add({ ...settings, name: 'web3', host: 'web3' }, { tenant: 'nope' }))).toEqual(['TenantNotFound', 'there is no tenant named "nope"; `haul tenant list` shows the tenants.']);
      expect(await tenants.moveClient('web2', 'acme')).toMatchObject({ from: 'default', to: { name: 'acme', clients: ['web1', 'web2'] } });
      expect(await tenants.get('acme')).toMatchObject({ quotaBytes: 5 * 2 ** 30, retention: { keepDaily: 7 }, notifyEmails: ['ops@acme.example'], clients: ['web1', 'web2'] });
      expect(await refusal(tenants.remove('acme'))).toEqual(['TenantInUse', 'tenant acme still has 2 clients (web1, web2); move them to another tenant first (`haul client move NAME --tenant OTHER`) or remove them. Nothing was changed.']);
      expect(await refusal(tenants.remove('default'))).toEqual(['TenantInUse', 'the tenant default cannot be removed: new clients and users without a tenant go there.']);
      await tenants.moveClient('web1', 'default');
      await tenants.moveClient('web2', 'default');
      await tenants.remove('acme');
      expect((await tenants.list()).map((t) => [t.name, t.clients])).toEqual([['default', ['web1', 'web2']]]);
    } finally {
      await db.close();
    }
  });

  it.skipIf(database.skip)('gives members roles per tenant; admins have none and tokens never exceed the user', async () => {
    const db = await fresh();
    try {
      const users = new UserStore(db, { hashCost: testPasswordHashCost });
      const tenants = new TenantStore(db.prisma);
      await tenants.add('acme');
      const { user: olga } = await users.create({ username: 'olga', role: 'operator', password: 'a long enough password' });
      expect(olga.grants).toEqual([{ tenantId: 1, tenant: 'default', role: 'operator' }]);
      const { user: ada } = await users.create({ username: 'ada', role: 'auditor', password: 'a long enough password', tenant: 'acme' });
      expect([ada.role, ada.grants.map((g) => `${g.role} ${g.tenant}`)]).toEqual(['auditor', ['auditor acme']]);
      await tenants.grant('ada', 'default', 'operator');
      const both = await users.get('ada');
      expect([both.role, both.grants.map((g) => `${g.role} ${g.tenant}`)]).toEqual(['operator', ['operator default', 'auditor acme']]);
      expect(await refusal(tenants.grant('ada', 'acme', 'admin'))).toEqual(['InvalidArgument', '"admin" is not a tenant role; use operator or auditor (admins are global: `haul user set-role NAME admin`).']);
      const tokens = new ApiTokenStore(db);
      const auditorToken = await tokens.create(both, 'reader', 'auditor');
      expect(await tokens.authenticate(auditorToken.token)).toMatchObject({ role: 'auditor', user: { username: 'ada' } });
      expect(await tenants.revoke('ada', 'acme')).toBe('auditor');
      // Its user no longer holds the auditor role anywhere: the token stops working.
      expect(await tokens.authenticate(auditorToken.token)).toBeUndefined();
      expect(await refusal(tokens.create(await users.get('ada'), 'x', 'auditor'))).toEqual(['Forbidden', 'as operator you cannot create a token with role auditor: a token never has rights its user lacks. Create it with role operator.']);
      expect(await refusal(tenants.revoke('ada', 'acme'))).toEqual(['InvalidArgument', 'ada has no role on tenant acme; `haul user list` shows each user\'s tenants. Nothing was changed.']);
      await users.create({ username: 'root', role: 'admin', password: 'a long enough password' });
      expect(await refusal(tenants.grant('root', 'acme', 'operator'))).toEqual(['InvalidArgument', 'root is an admin and sees every tenant already; make it a member first (`haul user set-role root operator`) to limit it to some tenants.']);
      expect((await users.setRole('olga', 'admin')).grants).toEqual([]);
      expect((await users.setRole('olga', 'auditor')).grants).toEqual([{ tenantId: 1, tenant: 'default', role: 'auditor' }]);
    } finally {
      await db.close();
    }
  });

  it.skipIf(database.skip)('migrates a version-3 database: clients join the default tenant, operators and auditors keep their roles there', async () => {
    const url = await database.freshUrl();
    await migrateTo(url, 3);
    // Rows as version 3 wrote them, through the SQL of that schema.
    const raw = async (sql: string) => {
      const location = databaseLocation(tmp, url);
      if (location.provider === 'sqlite') {
        const { createClient } = await import('@libsql/client');
        const c = createClient({ url: location.url });
        await c.executeMultiple(sql);
        c.close();
      } else {
        const { default: pg } = await import('pg');
        const c = new pg.Client({ connectionString: location.url });
        await c.connect();
        await c.query(sql);
        await c.end();
      }
    };
    const hash = await import('argon2').then((a) => a.default.hash('a long enough password', { type: a.default.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 }));
    await raw(`
      INSERT INTO "Client" ("name", "host", "sshUser", "updatedAt") VALUES ('web1', 'web1.example', 'backup', CURRENT_TIMESTAMP);
      INSERT INTO "User" ("username", "passwordHash", "role", "updatedAt") VALUES ('root', '${hash}', 'admin', CURRENT_TIMESTAMP), ('olga', '${hash}', 'operator', CURRENT_TIMESTAMP), ('ada', '${hash}', 'auditor', CURRENT_TIMESTAMP);
      INSERT INTO "AuditEntry" ("actor", "action", "detail", "prevHash", "hash") VALUES ('root', 'user.add', '{}', '${'0'.repeat(64)}', '${'1'.repeat(64)}');
    `);
    const db = await openDatabase({ stateDir: tmp, url });
    try {
      const users = new UserStore(db);
      expect((await users.list()).map((u) => [u.username, u.role, u.grants.map((g) => `${g.role} ${g.tenant}`)])).toEqual([
        ['ada', 'auditor', ['auditor default']],
        ['olga', 'operator', ['operator default']],
        ['root', 'admin', []],
      ]);
      expect((await users.login('olga', 'a long enough password')).ok).toBe(true);
      const web1 = await new ClientStore(db.prisma).get('web1');
      expect((await tenantOfClient(db.prisma, web1.id))?.name).toBe('default');
      expect((await db.prisma.auditEntry.findFirstOrThrow()).tenantId).toBeNull();
    } finally {
      await db.close();
    }
  });

  it.skipIf(database.skip)("mails a client's alert to its tenant's recipients too, in a message of their own", async () => {
    const db = await fresh();
    const smtp = await startSmtp();
    try {
      await new TenantStore(db.prisma).add('acme', { notifyEmails: ['ops@acme.example'] });
      const clients = new ClientStore(db.prisma);
      await clients.add({ ...settings, name: 'web1', host: 'web1' }, { tenant: 'acme' });
      await clients.add({ ...settings, name: 'web2', host: 'web2' });
      await db.prisma.client.updateMany({ data: { overdueHours: 1, createdAt: new Date(Date.now() - 3 * 3_600_000) } });
      const notifier = new Notifier(parseNotificationConfig({ email: { host: '127.0.0.1', port: smtp.port, from: 'haul@backup.example', to: ['admin@backup.example'] } }, 'test'));
      const alerts = new DaemonAlerts({ notifier, prisma: db.prisma, log: pino({ level: 'silent' }), maxAttempts: 4, overdueCheckIntervalMs: 3_600_000, digestSchedule: '0 7 * * *', timeZone: 'UTC' });
      expect(await alerts.checkOverdue()).toEqual(['web1', 'web2']);
      await alerts.stop();
      const mail = await smtp.waitFor(3);
      expect(mail.map((m) => [m.to, parseMail(m.raw).subject]).sort()).toEqual([
        [['admin@backup.example'], '[Haul] web1 has no successful backup for over 1 hours'],
        [['admin@backup.example'], '[Haul] web2 has no successful backup for over 1 hours'],
        [['ops@acme.example'], '[Haul] web1 has no successful backup for over 1 hours'],
      ].sort());
    } finally {
      await smtp.close();
      await db.close();
    }
  });
});
