// Haul's own migration step (Prisma's migrate needs a download this machine cannot make): the
// SQL files in prisma/migrations/<provider>/NNNN_name.sql are applied in order, each in one
// transaction together with its row in "_haul_migrations". Idempotent; refuses a database that a
// newer Haul has migrated, and one whose applied SQL was changed afterwards.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client as LibsqlClient } from '@libsql/client';
import type pg from 'pg';
import { HaulError } from '../../shared/errors.js';
import type { DatabaseProvider } from './database-url.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationResult {
  applied: Migration[];
  /** The database's version after the run. */
  version: number;
}

/** prisma/migrations of this installation (compiled code lives in dist/daemon/database). */
export function migrationsDirectory(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
  return path.join(root, 'prisma', 'migrations');
}

export function loadMigrations(provider: DatabaseProvider, dir = migrationsDirectory()): Migration[] {
  const folder = path.join(dir, provider);
  const migrations = fs.readdirSync(folder)
    .filter((f) => f.endsWith('.sql'))
    .map((file) => {
      const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
      if (!m) throw new HaulError('MigrationFailed', `${path.join(folder, file)} is not named NNNN_name.sql; rename it.`);
      const sql = fs.readFileSync(path.join(folder, file), 'utf8');
      return { version: Number(m[1]), name: m[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new HaulError('MigrationFailed', `the migrations in ${folder} skip or repeat version ${i + 1}; this installation is damaged, reinstall Haul.`);
  });
  return migrations;
}

/** The few operations migrating needs, over either driver. */
export interface MigrationDriver {
  /** Runs one or more statements, no results. */
  execute(sql: string): Promise<void>;
  /** Runs statements in one transaction: all of them or, on an error, none. */
  executeAtomically(sql: string): Promise<void>;
  appliedMigrations(): Promise<{ version: number; name: string; checksum: string }[]>;
  /** Runs `work` while holding a lock that keeps other Haul processes from migrating. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
}

const createTable = `CREATE TABLE IF NOT EXISTS "_haul_migrations" (
  "version" INTEGER PRIMARY KEY,
  "name" TEXT NOT NULL,
  "checksum" TEXT NOT NULL,
  "appliedAt" TEXT NOT NULL
)`;

export async function migrate(driver: MigrationDriver, migrations: Migration[], databaseName: string): Promise<MigrationResult> {
  return driver.exclusive(async () => {
    await driver.execute(createTable);
    const applied = await driver.appliedMigrations();
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const row of applied) {
      const ours = known.get(row.version);
      if (!ours) {
        throw new HaulError('DatabaseTooNew', `the database ${databaseName} is at version ${Math.max(...applied.map((r) => r.version))}, newer than this Haul knows (${migrations.length}): a newer Haul has used it. Upgrade Haul; do not downgrade a database.`);
      }
      if (ours.checksum !== row.checksum) {
        throw new HaulError('MigrationFailed', `migration ${row.version} (${row.name}) in ${databaseName} was applied from different SQL than this Haul ships; the database or the installation was changed by hand. Restore the database from a backup or rebuild it (\`haul db rebuild\`).`);
      }
    }
    const done = new Set(applied.map((r) => r.version));
    const pending = migrations.filter((m) => !done.has(m.version));
    const appliedNow: Migration[] = [];
    for (const m of pending) {
      // The record goes first: when another process (SQLite has no advisory lock) applied this
      // migration meanwhile, its primary key stops ours before any of the schema SQL runs.
      const record = `INSERT INTO "_haul_migrations" ("version", "name", "checksum", "appliedAt") VALUES (${m.version}, '${m.name}', '${m.checksum}', '${new Date().toISOString()}')`;
      try {
        await driver.executeAtomically(`${record};\n${m.sql}\n;`);
        appliedNow.push(m);
      } catch (err) {
        const byOther = (await driver.appliedMigrations().catch(() => [])).find((r) => r.version === m.version);
        if (byOther?.checksum === m.checksum) continue;
        throw new HaulError('MigrationFailed', `migration ${m.version} (${m.name}) failed on ${databaseName}: ${(err as Error).message}. Nothing of it was applied; fix the cause and start again.`, { cause: err });
      }
    }
    return { applied: appliedNow, version: migrations.length };
  });
}

export function libsqlMigrationDriver(client: LibsqlClient): MigrationDriver {
  return {
    execute: async (sql) => {
      await client.executeMultiple(sql);
    },
    executeAtomically: async (sql) => {
      // IMMEDIATE takes the write lock first (waiting up to the busy timeout for another
      // process), so the transaction never has to upgrade a read lock, which WAL can refuse.
      try {
        await client.executeMultiple(`BEGIN IMMEDIATE;\n${sql}\nCOMMIT;`);
      } catch (err) {
        await client.execute('ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    appliedMigrations: async () => {
      const r = await client.execute('SELECT "version", "name", "checksum" FROM "_haul_migrations" ORDER BY "version"');
      return r.rows.map((row) => ({ version: Number(row['version']), name: String(row['name']), checksum: String(row['checksum']) }));
    },
    // No lock across processes: each migration's own transaction (its record first) decides.
    exclusive: (work) => work(),
  };
}

// Any fixed number: every Haul process sharing the PostgreSQL database uses the same one.
const PG_MIGRATION_LOCK = 0x4841554c;

export function pgMigrationDriver(client: pg.Client): MigrationDriver {
  return {
    execute: async (sql) => {
      await client.query(sql);
    },
    executeAtomically: async (sql) => {
      try {
        await client.query(`BEGIN;\n${sql}\nCOMMIT;`);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    appliedMigrations: async () => {
      const r = await client.query<{ version: number; name: string; checksum: string }>('SELECT "version", "name", "checksum" FROM "_haul_migrations" ORDER BY "version"');
      return r.rows.map((row) => ({ version: Number(row.version), name: row.name, checksum: row.checksum }));
    },
    exclusive: async (work) => {
      await client.query('SELECT pg_advisory_lock($1)', [PG_MIGRATION_LOCK]);
      try {
        return await work();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [PG_MIGRATION_LOCK]);
      }
    },
  };
}
