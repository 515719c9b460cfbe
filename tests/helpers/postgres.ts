// A real PostgreSQL server for tests: a private cluster (initdb) owned by the `postgres` Unix
// user, in a temporary directory, on a free port of 127.0.0.1 with trust authentication. Each
// caller gets fresh databases from `createDatabase()`. Needs root and Debian's postgresql
// package; `postgresSkipReason()` says why a suite cannot run otherwise.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { freePort } from './sshd.js';

const BIN = '/usr/lib/postgresql/15/bin';

export interface TestPostgres {
  readonly port: number;
  /** Creates an empty database and returns its connection URL. */
  createDatabase(name?: string): Promise<string>;
  /** Drops a database (closing its connections) and creates it again, empty. */
  recreateDatabase(name: string): Promise<void>;
  stop(): void;
}

export function postgresSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'PostgreSQL tests need root (they run a private cluster as the postgres user)';
  if (!fs.existsSync(`${BIN}/initdb`)) return `no ${BIN}/initdb: apt-get install -y postgresql`;
  if (spawnSync('id', ['postgres']).status !== 0) return 'no postgres Unix user: apt-get install -y postgresql';
  return undefined;
}

function asPostgres(args: string[]): void {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${r.status}): ${r.stderr || r.stdout}`);
}

let counter = 0;

async function admin(port: number, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres` });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-pg-'));
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  spawnSync('chown', ['-R', 'postgres:postgres', dir]);
  asPostgres([`${BIN}/initdb`, '-D', data, '--auth=trust', '-U', 'postgres', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
  const port = await freePort();
  // fsync off: test data need not survive a power cut, and it makes each test several times faster.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  asPostgres([`${BIN}/pg_ctl`, '-D', data, '-l', path.join(dir, 'log'), '-o', options, '-w', 'start']);
  let stopped = false;
  return {
    port,
    async createDatabase(name?: string) {
      const db = name ?? `haul_test_${process.pid}_${++counter}`;
      await admin(port, [`CREATE DATABASE "${db}"`]);
      return `postgresql://postgres@127.0.0.1:${port}/${db}`;
    },
    async recreateDatabase(name: string) {
      await admin(port, [`DROP DATABASE "${name}" WITH (FORCE)`, `CREATE DATABASE "${name}"`]);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      spawnSync('runuser', ['-u', 'postgres', '--', `${BIN}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop']);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
