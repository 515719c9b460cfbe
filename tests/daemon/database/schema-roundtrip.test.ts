// The SQL in prisma/migrations/<provider>/ and prisma/schema.prisma must describe the same
// database: every model is written with every field set and read back, on a fresh SQLite file
// and a fresh database of a real PostgreSQL server.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createClient } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseLocation } from '../../../daemon/database/database-url.js';
import { migrateDatabase, openDatabase, type Database } from '../../../daemon/database/open-database.js';
import { loadMigrations } from '../../../daemon/database/migrate.js';
import { haul, haulEnv } from '../../helpers/cli.js';
import { postgresSkipReason, startPostgres, type TestPostgres } from '../../helpers/postgres.js';

const pgSkip = postgresSkipReason();
let postgres: TestPostgres | undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-db-'));

beforeAll(async () => {
  if (!pgSkip) postgres = await startPostgres();
}, 60_000);
afterAll(() => {
  postgres?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const at = (s: string) => new Date(s);

async function roundTripEveryModel(db: Database): Promise<void> {
  const p = db.prisma;
  // Tenants (0004_tenants): the default tenant exists from the start; every client belongs to one.
  expect(await p.tenant.findMany({ select: { id: true, name: true, quotaBytes: true, retention: true, notifyEmails: true } })).toEqual([{ id: 1, name: 'default', quotaBytes: null, retention: null, notifyEmails: '[]' }]);
  const tenant = await p.tenant.create({ data: { name: 'acme', quotaBytes: 2n ** 53n + 5n, retention: '{"keepDaily":3}', notifyEmails: '["ops@acme.example"]', createdAt: at('2026-01-01T00:00:00Z') } });
  expect(tenant.id).toBe(2);
  expect(await p.tenant.findUniqueOrThrow({ where: { name: 'acme' } })).toEqual(tenant);
  const client = await p.client.create({
    data: {
      name: 'web1', host: 'web1.example.org', port: 2222, sshUser: 'backup', hostKey: 'SHA256:abc',
      paths: '["/srv/www","/etc"]', excludes: '["*.tmp"]', oneFileSystem: false, schedule: '0 3 * * *',
      retention: '{"keepDaily":7}', enabled: false, createdAt: at('2026-01-02T03:04:05.678Z'),
      quotaBytes: 2n ** 53n + 1n, overdueHours: 36, storedBytes: 2n ** 53n + 3n, storedBytesAt: at('2026-01-03T00:00:00Z'),
    },
  });
  expect(await p.client.findUniqueOrThrow({ where: { name: 'web1' } })).toEqual({
    id: client.id, name: 'web1', host: 'web1.example.org', port: 2222, sshUser: 'backup', hostKey: 'SHA256:abc',
    paths: '["/srv/www","/etc"]', excludes: '["*.tmp"]', oneFileSystem: false, schedule: '0 3 * * *',
    retention: '{"keepDaily":7}', enabled: false, createdAt: at('2026-01-02T03:04:05.678Z'), updatedAt: client.updatedAt,
    quotaBytes: 2n ** 53n + 1n, overdueHours: 36, storedBytes: 2n ** 53n + 3n, storedBytesAt: at('2026-01-03T00:00:00Z'), tenantId: 1,
  });
  await p.client.update({ where: { id: client.id }, data: { tenantId: tenant.id } });
  expect((await p.client.findUniqueOrThrow({ where: { id: client.id }, include: { tenant: true } })).tenant.name).toBe('acme');
  // A client cannot point at a tenant that does not exist, and a tenant with clients cannot go.
  await expect(p.client.update({ where: { id: client.id }, data: { tenantId: 99 } })).rejects.toThrow();
  await expect(p.tenant.delete({ where: { id: tenant.id } })).rejects.toThrow();
  const big = 2n ** 53n + 7n; // beyond a double's exact range
  const job = await p.job.create({
    data: {
      clientId: client.id, clientName: 'web1', kind: 'backup', state: 'failed', trigger: 'retry', attempt: 2, retryOfId: 41,
      requestedBy: 'alice', queuedAt: at('2026-03-01T00:00:00.001Z'), startedAt: at('2026-03-01T00:00:01Z'),
      finishedAt: at('2026-03-01T00:10:00Z'), failureCause: 'unreachable', failureMessage: 'no route',
      filesTotal: big, filesDone: 5n, bytesScanned: big * 3n, bytesNew: 1n, bytesOnWire: 2n, errors: 3, bytesStored: big * 2n, durationMs: 599_000,
      snapshotId: 'ab'.repeat(32), logPath: '/var/lib/haul/logs/job-1.log', logSha256: 'cd'.repeat(32), daemonId: 'd1',
      transitions: { create: [{ state: 'queued', at: at('2026-03-01T00:00:00.001Z') }, { state: 'failed', detail: 'no route' }] },
    },
  });
  const readJob = await p.job.findUniqueOrThrow({ where: { id: job.id }, include: { transitions: { orderBy: { id: 'asc' } } } });
  expect(readJob).toMatchObject({ filesTotal: big, bytesScanned: big * 3n, retryOfId: 41, startedAt: at('2026-03-01T00:00:01Z'), failureCause: 'unreachable', bytesStored: big * 2n, durationMs: 599_000 });
  expect(readJob.transitions.map((t) => [t.state, t.detail])).toEqual([['queued', null], ['failed', 'no route']]);

  const snap = await p.snapshot.create({
    data: {
      id: 'ef'.repeat(32), clientId: client.id, clientName: 'web1', hostname: 'web1.example.org', time: at('2026-03-01T00:10:00Z'),
      paths: '["/srv/www"]', tags: '["nightly"]', files: 60000n, dirs: 300n, bytes: big, bytesNew: 10n, bytesStored: 9n, errors: 1, durationMs: 1234,
    },
  });
  expect(await p.snapshot.findUniqueOrThrow({ where: { id: snap.id } })).toEqual(snap);

  const user = await p.user.create({
    data: {
      username: 'alice', passwordHash: '$argon2id$v=19$m=65536,t=3,p=1$x$y', role: 'operator', totpSecret: 'JBSWY3DPEHPK3PXP',
      source: 'directory', totpPendingSecret: 'v1:abc', totpLastStep: 58_000_000,
      failedLogins: 2, lockedUntil: at('2026-03-02T00:00:00Z'), disabled: true, mustChangePassword: true,
      sessions: { create: { id: 'h'.repeat(64), csrfToken: 'c'.repeat(43), expiresAt: at('2026-03-03T00:00:00Z') } },
      apiTokens: { create: { name: 'ci', tokenHash: 't'.repeat(64), role: 'auditor', lastUsedAt: at('2026-03-01T12:00:00Z'), revokedAt: null } },
      recoveryCodes: { create: [{ codeHash: '$argon2id$v=19$m=1$r$1' }, { codeHash: '$argon2id$v=19$m=1$r$2', usedAt: at('2026-03-01T13:00:00Z') }] },
    },
    include: { sessions: true, apiTokens: true, recoveryCodes: true },
  });
  expect(await p.user.findUniqueOrThrow({ where: { username: 'alice' }, include: { sessions: true, apiTokens: true, recoveryCodes: true } })).toEqual(user);
  const grant = await p.tenantGrant.create({ data: { userId: user.id, tenantId: tenant.id, role: 'auditor' } });
  expect(await p.tenantGrant.findUniqueOrThrow({ where: { userId_tenantId: { userId: user.id, tenantId: tenant.id } } })).toEqual(grant);
  await expect(p.tenantGrant.create({ data: { userId: user.id, tenantId: tenant.id, role: 'operator' } })).rejects.toMatchObject({ code: 'P2002' });

  const audit = await p.auditEntry.create({ data: { actor: 'alice', action: 'client.add', target: 'web1', detail: '{"a":1}', prevHash: '0'.repeat(64), hash: '1'.repeat(64), tenantId: tenant.id } });
  expect(await p.auditEntry.findUniqueOrThrow({ where: { id: audit.id } })).toEqual(audit);
  await expect(p.auditEntry.create({ data: { actor: 'x', action: 'y', prevHash: '1'.repeat(64), hash: '1'.repeat(64) } })).rejects.toThrow(/Unique constraint/);

  const setting = await p.setting.create({ data: { key: 'timezone', value: '"Europe/Berlin"' } });
  expect(await p.setting.findUniqueOrThrow({ where: { key: 'timezone' } })).toEqual(setting);

  // Several daemons (0003_fleet): a daemon's lease row, a fired slot, a claimed job.
  const fleetDaemon = { id: 'daemon-a', hostname: 'backup1.example.org', pid: 4242, startedAt: at('2026-03-01T00:00:00Z'), heartbeatAt: at('2026-03-01T00:00:10.5Z'), leaseExpiresAt: at('2026-03-01T00:01:10.5Z'), busEndpoint: 'tcp://backup1.example.org:7450' };
  await p.fleetDaemon.create({ data: fleetDaemon });
  expect(await p.fleetDaemon.findUniqueOrThrow({ where: { id: 'daemon-a' } })).toEqual(fleetDaemon);
  const slot = await p.scheduleSlot.create({ data: { clientId: client.id, slot: at('2026-03-02T03:00:00Z'), daemonId: 'daemon-a', createdAt: at('2026-03-02T03:00:00.012Z') } });
  expect(await p.scheduleSlot.findUniqueOrThrow({ where: { clientId_slot: { clientId: client.id, slot: at('2026-03-02T03:00:00Z') } } })).toEqual(slot);
  await expect(p.scheduleSlot.create({ data: { clientId: client.id, slot: at('2026-03-02T03:00:00Z'), daemonId: 'daemon-b' } })).rejects.toMatchObject({ code: 'P2002' });
  // 0006_fleet_console: a maintenance slot fires once per kind.
  const checkSlot = await p.maintenanceSlot.create({ data: { kind: 'check', slot: at('2026-03-02T04:00:00Z'), daemonId: 'daemon-a', createdAt: at('2026-03-02T04:00:00.003Z') } });
  expect(await p.maintenanceSlot.findUniqueOrThrow({ where: { kind_slot: { kind: 'check', slot: at('2026-03-02T04:00:00Z') } } })).toEqual(checkSlot);
  await expect(p.maintenanceSlot.create({ data: { kind: 'check', slot: at('2026-03-02T04:00:00Z'), daemonId: 'daemon-b' } })).rejects.toMatchObject({ code: 'P2002' });
  await p.maintenanceSlot.create({ data: { kind: 'prune', slot: at('2026-03-02T04:00:00Z'), daemonId: 'daemon-b' } });
  const claimed = await p.job.create({ data: { clientId: client.id, clientName: 'web1', kind: 'backup', state: 'transferring', trigger: 'schedule', daemonId: 'daemon-a', claimedAt: at('2026-03-02T03:00:01Z') } });
  expect((await p.job.findUniqueOrThrow({ where: { id: claimed.id } })).claimedAt).toEqual(at('2026-03-02T03:00:01Z'));
  // 0007_job_not_before: a retry's backoff travels with the job.
  await p.job.update({ where: { id: claimed.id }, data: { notBefore: at('2026-03-02T03:05:00.250Z') } });
  expect((await p.job.findUniqueOrThrow({ where: { id: claimed.id } })).notBefore).toEqual(at('2026-03-02T03:05:00.250Z'));
  // The partial unique index: a second claimed, unfinished job of the client is refused...
  await expect(p.job.create({ data: { clientId: client.id, clientName: 'web1', kind: 'backup', state: 'queued', trigger: 'manual', claimedAt: new Date() } })).rejects.toThrow();
  // ...an unclaimed one is not, and neither is a claimed one once the first has ended.
  const waiting = await p.job.create({ data: { clientId: client.id, clientName: 'web1', kind: 'backup', state: 'queued', trigger: 'manual' } });
  await p.job.update({ where: { id: claimed.id }, data: { state: 'succeeded' } });
  await p.job.update({ where: { id: waiting.id }, data: { claimedAt: new Date() } });
  await p.job.deleteMany({ where: { id: { in: [claimed.id, waiting.id] } } });

  // Relations behave as the schema says: removing a client keeps its history readable.
  await p.client.delete({ where: { id: client.id } });
  expect(await p.scheduleSlot.count()).toBe(0);
  expect(await p.job.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ clientId: null, clientName: 'web1' });
  expect(await p.snapshot.findUniqueOrThrow({ where: { id: snap.id } })).toMatchObject({ clientId: null });
  await p.job.delete({ where: { id: job.id } });
  expect(await p.jobTransition.count()).toBe(0);
  await p.user.delete({ where: { id: user.id } });
  expect([await p.session.count(), await p.apiToken.count(), await p.tenantGrant.count(), await p.recoveryCode.count()]).toEqual([0, 0, 0, 0]);
  await p.tenant.delete({ where: { id: tenant.id } });
}

describe('the schema on SQLite', () => {
  it('migrates a fresh file and round-trips every model', async () => {
    const db = await openDatabase({ stateDir: path.join(tmp, 'sqlite-a') });
    try {
      expect(fs.existsSync(path.join(tmp, 'sqlite-a', 'haul.db'))).toBe(true);
      await roundTripEveryModel(db);
    } finally {
      await db.close();
    }
  });

  it('migrating again applies nothing', async () => {
    const location = databaseLocation(path.join(tmp, 'sqlite-b'));
    expect((await migrateDatabase(location)).applied.map((m) => m.version)).toEqual(loadMigrations('sqlite').map((m) => m.version));
    expect((await migrateDatabase(location)).applied).toEqual([]);
  });

  it('refuses a database a newer Haul has migrated, and one whose applied SQL was changed', async () => {
    const location = databaseLocation(path.join(tmp, 'sqlite-c'));
    await migrateDatabase(location);
    const raw = createClient({ url: location.url });
    try {
      await raw.execute(`INSERT INTO "_haul_migrations" VALUES (99, 'from_the_future', 'x', '2030-01-01')`);
      await expect(migrateDatabase(location)).rejects.toThrow(`the database ${location.display} is at version 99, newer than this Haul knows (${loadMigrations('sqlite').length}): a newer Haul has used it. Upgrade Haul; do not downgrade a database.`);
      await raw.execute(`DELETE FROM "_haul_migrations" WHERE "version" = 99`);
      await raw.execute(`UPDATE "_haul_migrations" SET "checksum" = 'edited' WHERE "version" = 1`);
      await expect(migrateDatabase(location)).rejects.toThrow(`migration 1 (initial) in ${location.display} was applied from different SQL than this Haul ships; the database or the installation was changed by hand. Restore the database from a backup or rebuild it (\`haul db rebuild\`).`);
    } finally {
      raw.close();
    }
  });

  it('three `haul db migrate` processes starting at once on a new file apply each migration once', async () => {
    const env = haulEnv(path.join(tmp, 'unused-repo'), { HAUL_HOME: path.join(tmp, 'sqlite-concurrent') });
    const runs = await Promise.all([1, 2, 3].map(() => haul(['db', 'migrate', '--json'], env, { timeoutMs: 60_000 })));
    expect(runs.map((r) => [r.status, r.stderr])).toEqual([[0, ''], [0, ''], [0, '']]);
    // SQLite has no lock across processes: each migration's own transaction decides, so the
    // work may be split between processes (one applied 1-3, another 4-7 in one CI run). What
    // must hold: every migration applied exactly once in all, and each process in order.
    const byVersion = (a: string, b: string) => parseInt(a, 10) - parseInt(b, 10);
    const applied = runs.map((r) => (JSON.parse(r.stdout) as { applied: string[] }).applied);
    for (const list of applied) expect(list).toEqual([...list].sort(byVersion));
    expect(applied.flat().sort(byVersion)).toEqual(loadMigrations('sqlite').map((m) => `${m.version}_${m.name}`));
  }, 90_000);

  it('names a DATABASE_URL it cannot use', () => {
    expect(() => databaseLocation(tmp, 'mysql://root:secret@db/haul')).toThrow(`DATABASE_URL="mysql://root:***@db/haul" is neither file:PATH (SQLite) nor postgresql://… (PostgreSQL). Fix it, or unset it to use ${path.join(tmp, 'haul.db')}.`);
  });
});

describe.skipIf(pgSkip)('the schema on PostgreSQL', () => {
  it('migrates a fresh database and round-trips every model', async () => {
    const url = await postgres!.createDatabase();
    const db = await openDatabase({ stateDir: tmp, url });
    try {
      await roundTripEveryModel(db);
    } finally {
      await db.close();
    }
  });

  it('two processes migrating at once apply each migration once', async () => {
    const location = databaseLocation(tmp, await postgres!.createDatabase());
    const results = await Promise.all([migrateDatabase(location), migrateDatabase(location), migrateDatabase(location)]);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, loadMigrations('postgresql').length]);
  });
});
