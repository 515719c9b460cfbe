// Opens Haul's database through a Prisma driver adapter (libsql for SQLite, pg for PostgreSQL),
// bringing its schema up to date first. Prisma 7 compiles queries per SQL dialect, so each
// provider has its own generated client; their TypeScript types are identical.
//
// The drivers and generated clients are loaded only when a database is opened, and only the
// provider's own: every `haul` command imports this module, and most never touch the database.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PrismaClient } from '../../prisma/generated/sqlite/client.js';
import { HaulError } from '../../shared/errors.js';
import { databaseLocation, type DatabaseLocation } from './database-url.js';
import { importLegacyClientList, type LegacyImportResult } from './legacy-client-import.js';
import { libsqlMigrationDriver, loadMigrations, migrate, pgMigrationDriver, type MigrationResult } from './migrate.js';

export type { PrismaClient } from '../../prisma/generated/sqlite/client.js';

/** How long a SQLite connection waits for another process's write lock before failing. */
const SQLITE_BUSY_TIMEOUT_MS = 10_000;

export interface Database {
  readonly prisma: PrismaClient;
  readonly location: DatabaseLocation;
  /** Set when this open imported an earlier installation's clients.json. */
  readonly legacyImport?: LegacyImportResult;
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
    const { createClient } = await import('@libsql/client');
    const client = createClient({ url: location.url, timeout: SQLITE_BUSY_TIMEOUT_MS });
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
  const { default: pg } = await import('pg');
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
  /** Skip migrating and importing clients.json (for `haul db status`, which only reports). */
  migrate?: boolean;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const location = databaseLocation(options.stateDir, options.url);
  if (options.migrate !== false) await migrateDatabase(location);
  let prisma: PrismaClient;
  if (location.provider === 'sqlite') {
    // intMode bigint: byte counters pass 2^53, and Prisma turns Int columns back into numbers.
    // timeout: a second process (the CLI beside the daemon) waits for the write lock instead of
    // failing; set for every connection of the pool (a PRAGMA would reach only one of them).
    const [{ PrismaClient }, { PrismaLibSql }] = await Promise.all([import('../../prisma/generated/sqlite/client.js'), import('@prisma/adapter-libsql')]);
    prisma = new PrismaClient({ adapter: new PrismaLibSql({ url: location.url, intMode: 'bigint', timeout: SQLITE_BUSY_TIMEOUT_MS }) });
    await prisma.$queryRawUnsafe('SELECT 1').catch((err: unknown) => {
      throw unavailable(location, err);
    });
  } else {
    const [{ PrismaClient: PostgresPrismaClient }, { PrismaPg }] = await Promise.all([import('../../prisma/generated/postgresql/client.js'), import('@prisma/adapter-pg')]);
    prisma = new PostgresPrismaClient({ adapter: new PrismaPg({ connectionString: location.url }) }) as unknown as PrismaClient;
    await prisma.$connect().catch((err: unknown) => {
      throw unavailable(location, err);
    });
  }
  let legacyImport: LegacyImportResult | undefined;
  if (options.migrate !== false) {
    try {
      legacyImport = await importLegacyClientList(prisma, options.stateDir);
    } catch (err) {
      await prisma.$disconnect();
      throw err;
    }
  }
  return {
    prisma,
    location,
    ...(legacyImport ? { legacyImport } : {}),
    close: () => prisma.$disconnect(),
  };
}
