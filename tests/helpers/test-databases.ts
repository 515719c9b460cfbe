// Both databases Haul supports, for suites that must pass on each: a fresh SQLite file and a
// fresh database of a real PostgreSQL server (started once per file, stopped after it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import { postgresSkipReason, startPostgres, type TestPostgres } from './postgres.js';

export interface DatabaseCase {
  name: 'SQLite' | 'PostgreSQL';
  /** Why this database cannot be tested here, or undefined. */
  skip: string | undefined;
  /** A new, migrated, empty database. */
  open(): Promise<Database>;
}

/** Registers the file's setup and teardown; call it at the top level of a test file. */
export function testDatabases(label: string): DatabaseCase[] {
  const pgSkip = postgresSkipReason();
  let postgres: TestPostgres | undefined;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `haul-${label}-`));
  beforeAll(async () => {
    if (!pgSkip) postgres = await startPostgres();
  }, 60_000);
  afterAll(() => {
    postgres?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return [
    { name: 'SQLite', skip: undefined, open: () => openDatabase({ stateDir: fs.mkdtempSync(path.join(tmp, 'sqlite-')), url: '' }) },
    { name: 'PostgreSQL', skip: pgSkip, open: async () => openDatabase({ stateDir: tmp, url: await postgres!.createDatabase() }) },
  ];
}
