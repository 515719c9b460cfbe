// Several `haul daemon` processes on one real PostgreSQL database and one repository, backing up
// clients of a real sshd: each client is a Client row whose small data folder belongs to one of a
// few Unix users (many clients share a user; each client has its own folder). Used by the fleet
// tests and by `npm run bench:fleet`; free of vitest so the benchmark can load it.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import { authorizedKeysLine, loadOrCreateServerIdentity } from '../../daemon/session/server-identity.js';
import { haulEnv, projectRoot, testNode } from './cli.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import { ensureUser, startSshd, writeOwnedFolder, type TestSshd, type UnixUser } from './sshd.js';

// Compiled for the benchmark this file runs from dist/tests/helpers; the project is above dist/.
const root = path.basename(projectRoot) === 'dist' ? path.dirname(projectRoot) : projectRoot;
const haulBin = path.join(root, 'bin', 'haul');

export interface FleetDaemonProcess {
  id: string;
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logFile: string;
  stderr(): string;
  /** The last lines of its log, one message each, for a failure's description. */
  logTail(lines?: number): string;
}

function logTail(id: string, logFile: string, lines: number): string {
  if (!fs.existsSync(logFile)) return `daemon ${id}: no log yet`;
  const tail = fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).map((line) => {
    try {
      const entry = JSON.parse(line) as { time?: string; msg?: string; err?: { message?: string } };
      return `${entry.time ?? ''} ${entry.msg ?? ''}${entry.err?.message ? ` (${entry.err.message})` : ''}`;
    } catch {
      return line;
    }
  });
  return `daemon ${id}, last ${tail.length} log lines:\n${tail.join('\n')}`;
}

export interface FleetTestbed {
  readonly postgres: TestPostgres;
  readonly databaseUrl: string;
  readonly sshd: TestSshd;
  readonly users: UnixUser[];
  readonly tmp: string;
  readonly repoDir: string;
  readonly db: Database;
  /** The CLI's environment on this repository and database. */
  readonly env: Record<string, string>;
  /** A data folder for one client, in `user`'s home, owned by it. */
  writeData(user: UnixUser, folder: string, files: Record<string, Buffer>): string;
  addClient(name: string, user: UnixUser, dataPath: string, extra?: { schedule?: string; port?: number }): Promise<number>;
  /** Starts `haul daemon --daemon-id ID` as its own process, with its own state directory. */
  startDaemon(id: string, args?: string[], env?: Record<string, string>): FleetDaemonProcess;
  close(): Promise<void>;
}

export async function createFleetTestbed(label: string, userNames: string[]): Promise<FleetTestbed> {
  execFileSync('bash', [path.join(root, 'probe', 'build.sh')], { stdio: 'pipe' });
  const users = userNames.map(ensureUser);
  const postgres = await startPostgres();
  const children: ChildProcess[] = [];
  const dataDirs: string[] = [];
  try {
    const databaseUrl = await postgres.createDatabase();
    const sshd = await startSshd({ users: userNames });
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `haul-${label}-`));
    const repoDir = path.join(tmp, 'repo');
    const identityDir = path.join(tmp, 'identity');
    const env = haulEnv(repoDir, { HAUL_HOME: path.join(tmp, 'cli-home'), DATABASE_URL: databaseUrl });
    const init = spawnSync(testNode, [haulBin, 'init'], { env, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`haul init failed: ${init.stderr}`);
    // One server identity for every daemon: a client authorizes the fleet, not one machine.
    const identity = loadOrCreateServerIdentity(identityDir);
    for (const u of userNames) sshd.authorize(u, authorizedKeysLine(identity));
    const db = await openDatabase({ stateDir: tmp, url: databaseUrl });
    return {
      postgres,
      databaseUrl,
      sshd,
      users,
      tmp,
      repoDir,
      db,
      env,
      writeData(user, folder, files) {
        const dir = writeOwnedFolder(path.join(user.home, `${label}-${folder}`), files, user);
        dataDirs.push(dir);
        return dir;
      },
      async addClient(name, user, dataPath, extra = {}) {
        const row = await db.prisma.client.create({
          data: { name, host: sshd.host, port: extra.port ?? sshd.port, sshUser: user.name, hostKey: sshd.hostKeyFingerprint, paths: JSON.stringify([dataPath]), schedule: extra.schedule ?? null },
        });
        return row.id;
      },
      startDaemon(id, args = [], extraEnv = {}) {
        const home = path.join(tmp, `home-${id}`);
        fs.mkdirSync(home, { recursive: true });
        fs.cpSync(identityDir, path.join(home, 'identity'), { recursive: true });
        const logFile = path.join(tmp, `daemon-${id}.log`);
        const child = spawn(testNode, [haulBin, 'daemon', '--daemon-id', id, '--http-port', 'off', '--log-file', logFile, '--time-zone', 'UTC', ...args], {
          env: { ...env, HAUL_HOME: home, ...extraEnv },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.push(child);
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        return { id, child, exit, logFile, stderr: () => stderr, logTail: (lines = 20) => logTail(id, logFile, lines) };
      },
      async close() {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        await db.close();
        await sshd.stop();
        postgres.stop();
        // HAUL_TEST_KEEP=1 keeps the daemons' logs and the repository for a look after a failure.
        if (process.env['HAUL_TEST_KEEP'] === '1') console.info(`kept ${tmp}`);
        else fs.rmSync(tmp, { recursive: true, force: true });
        for (const d of dataDirs) fs.rmSync(d, { recursive: true, force: true });
      },
    };
  } catch (err) {
    postgres.stop();
    throw err;
  }
}

/** A 6-field cron expression that fires every day at `at`'s time of day (to the second, UTC): a nightly slot. */
export function dailyAt(at: Date): string {
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
}

/** A 6-field cron expression that fires once, at `at` (to the second, UTC), within a year. */
export function onceAt(at: Date): string {
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} *`;
}

/** Polls until `check` returns a value, or throws with `describe()` after `timeoutMs`. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number, describe: () => Promise<string>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs / 1000} s: ${await describe()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
