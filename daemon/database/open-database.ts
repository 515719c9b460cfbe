// Opens Haul's database through a Prisma driver adapter (libsql for SQLite, pg for PostgreSQL),
// bringing its schema up to date first. Prisma 7 compiles queries per SQL dialect, so each
// provider has its own generated client; their TypeScript types are identical.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createClient } from '@libsql/client';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient as PostgresPrismaClient } from '../../prisma/generated/postgresql/client.js';
import { PrismaClient } from '../../prisma/generated/sqlite/client.js';
import { HaulError } from '../../shared/errors.js';
import { databaseLocation, type DatabaseLocation } from './database-url.js';
import { libsqlMigrationDriver, loadMigrations, migrate, pgMigrationDriver, type MigrationResult } from './migrate.js';

export type { PrismaClient } from '../../prisma/generated/sqlite/client.js';

export interface Database {
  readonly prisma: PrismaClient;
  readonly location: DatabaseLocation;
  close(): Promise<void>;
}

function unavailable(location: DatabaseLocation, err: unknown): HaulError {
  const what = location.provider === 'sqlite'
    ? `cannot open the SQLite database ${location.display}: ${(err as Error).message}. Check that its directory exists and is writable.`
    : `cannot reach the PostgreSQL database ${location.display}: ${(err as Error).message}. Check that the server runs and DATABASE_URL is right.`;
  return new HaulError('DatabaseUnavailable', what, { cause: err });
}

/** Applies pending migrations (what `haul db migrate` and the daemon's start do). */
export async function migrateDatabase(location: DatabaseLocation): Promise<MigrationResult> {
  const migrations = loadMigrations(location.provider);
  if (location.provider === 'sqlite') {
    fs.mkdirSync(path.dirname(location.display), { recursive: true, mode: 0o700 });
    const client = createClient({ url: location.url });
    try {
      // WAL lets the CLI read while the daemon writes; it is a property of the file, set once.
      await client.execute('PRAGMA journal_mode = WAL').catch((err: unknown) => {
        throw unavailable(location, err);
      });
      return await migrate(libsqlMigrationDriver(client), migrations, location.display);
    } finally {
      client.close();
    }
  }
  const client = new pg.Client({ connectionString: location.url });
  await client.connect().catch((err: unknown) => {
    throw unavailable(location, err);
  });
  try {
    return await migrate(pgMigrationDriver(client), migrations, location.display);
  } finally {
    await client.end();
  }
}

export interface OpenDatabaseOptions {
  /** The state directory that holds haul.db when DATABASE_URL is not set. */
  stateDir: string;
  /** Overrides DATABASE_URL. */
  url?: string;
  /** Skip migrating (for `haul db` commands that report on an unmigrated database). */
  migrate?: boolean;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const location = databaseLocation(options.stateDir, options.url);
  if (options.migrate !== false) await migrateDatabase(location);
  let prisma: PrismaClient;
  if (location.provider === 'sqlite') {
    // intMode bigint: byte counters pass 2^53, and Prisma turns Int columns back into numbers.
    // timeout: a second process (the CLI beside the daemon) waits up to 10 s for the write lock
    // instead of failing. It must be given here: libsql keeps a pool of connections, and a
    // `PRAGMA busy_timeout` would reach only the one connection that ran it.
    prisma = new PrismaClient({ adapter: new PrismaLibSql({ url: location.url, intMode: 'bigint', timeout: 10_000 }) });
    await prisma.$queryRawUnsafe('SELECT 1').catch((err: unknown) => {
      throw unavailable(location, err);
    });
  } else {
    prisma = new PostgresPrismaClient({ adapter: new PrismaPg({ connectionString: location.url }) }) as unknown as PrismaClient;
    await prisma.$connect().catch((err: unknown) => {
      throw unavailable(location, err);
    });
  }
  return {
    prisma,
    location,
    close: () => prisma.$disconnect(),
  };
}
