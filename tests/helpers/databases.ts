// Runs a suite on both databases Haul supports: a fresh SQLite file, and a fresh database on a
// real PostgreSQL server (tests/helpers/postgres.ts, started on first use and stopped after the
// file's tests). Call at the top level of a test file, then `describe.each(databases)`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { postgresSkipReason, startPostgres, type TestPostgres } from './postgres.js';

export interface DatabaseUnderTest {
  name: 'SQLite' | 'PostgreSQL';
  /** Why this database cannot be tested here, or undefined. */
  skip: string | undefined;
  /** The DATABASE_URL of a new, empty database. */
  freshUrl(): Promise<string>;
  /** Throws the database away and makes an empty one at the same URL (the database was lost). */
  lose(url: string): Promise<void>;
}

export function databasesUnderTest(): DatabaseUnderTest[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-dbs-'));
  let postgres: Promise<TestPostgres> | undefined;
  let counter = 0;
  afterAll(async () => {
    if (postgres) (await postgres).stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const pg = () => (postgres ??= startPostgres());
  return [
    {
      name: 'SQLite',
      skip: undefined,
      freshUrl: async () => `file:${path.join(dir, `haul-${++counter}.db`)}`,
      lose: async (url) => {
        const file = url.slice('file:'.length);
        for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
      },
    },
    {
      name: 'PostgreSQL',
      skip: postgresSkipReason(),
      freshUrl: async () => (await pg()).createDatabase(),
      lose: async (url) => {
        const name = new URL(url).pathname.slice(1);
        await (await pg()).recreateDatabase(name);
      },
    },
  ];
}
