// The two databases Haul supports, for store tests that must behave the same on both: a fresh
// SQLite file, and a fresh database on a private real PostgreSQL server (skipped, with the reason,
// where PostgreSQL cannot run). Call at the top level of a test file: it registers the hooks that
// start and stop PostgreSQL.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import { postgresSkipReason, startPostgres, type TestPostgres } from './postgres.js';

export interface TestDatabaseBackend {
  name: 'SQLite' | 'PostgreSQL';
  /** Why this backend cannot run here, or undefined. */
  skip: string | undefined;
  /** A new, migrated, empty database. */
  open(): Promise<Database>;
}

export function testDatabases(): TestDatabaseBackend[] {
  const pgSkip = postgresSkipReason();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-stores-'));
  let postgres: TestPostgres | undefined;
  let counter = 0;
  beforeAll(async () => {
    if (!pgSkip) postgres = await startPostgres();
  }, 60_000);
  afterAll(() => {
    postgres?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return [
    { name: 'SQLite', skip: undefined, open: () => openDatabase({ stateDir: path.join(tmp, `sqlite-${++counter}`) }) },
    { name: 'PostgreSQL', skip: pgSkip, open: async () => openDatabase({ stateDir: tmp, url: await postgres!.createDatabase() }) },
  ];
}

/**
 * Real argon2id at a low cost (1 MiB, 1 pass), for tests that hash and verify many passwords on
 * a shared 2-core machine. One test checks the production cost (users: "stores an argon2id hash").
 */
export const testPasswordHashCost = { memoryCost: 1024, timeCost: 1 };
