// Everything a daemon test needs, real: an sshd on 127.0.0.1 with a Unix user per client, a
// repository made by `haul init`, a state directory whose SQLite database holds the clients, and
// the server identity authorized on each client. Daemons start in-process (`start`) or as a real
// `haul daemon` process (tests do that themselves with `env`).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import type { JobRecord } from '../../daemon/jobs/job-store.js';
import { authorizedKeysLine, loadOrCreateServerIdentity } from '../../daemon/session/server-identity.js';
import { startDaemon, type Daemon, type DaemonHooks, type DaemonOptions } from '../../daemon/service/daemon.js';
import { haulEnv, haulSync, projectRoot } from './cli.js';
import { ensureUser, startSshd, writeOwnedFolder, type TestSshd, type UnixUser } from './sshd.js';
import { testPassphrase } from './repo.js';

export interface DaemonTestbed {
  readonly sshd: TestSshd;
  readonly tmp: string;
  readonly stateDir: string;
  readonly repoDir: string;
  /** Environment for the `haul` CLI against this state directory and repository. */
  readonly env: Record<string, string>;
  readonly probeDir: string;
  readonly db: Database;
  user(name: string): UnixUser;
  /** Writes `files` (name -> content) into a fresh data folder of `user`, owned by it; returns its path. */
  writeData(user: string, folder: string, files: Record<string, Buffer>): string;
  /** A client row for `user`'s data folder, reachable through this sshd (or `port`). */
  addClient(name: string, user: string, dataPath: string, extra?: { schedule?: string; port?: number; hostKey?: string; createdAt?: Date }): Promise<number>;
  /** A daemon in this process; stopped by `close`. */
  start(options?: Partial<DaemonOptions>, hooks?: DaemonHooks): Promise<Daemon>;
  /** Polls the database until `predicate` holds for the job list (newest first), or fails after `timeoutMs`. */
  waitForJobs(predicate: (jobs: JobRecord[]) => boolean, timeoutMs?: number): Promise<JobRecord[]>;
  /** Stops the daemons started so far and empties the Job and Client tables (between tests). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

export const testProbeDir = path.join(projectRoot, 'probe', 'dist');

export async function createDaemonTestbed(label: string, users: string[]): Promise<DaemonTestbed> {
  execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
  const unixUsers = new Map(users.map((u) => [u, ensureUser(u)]));
  const sshd = await startSshd({ users });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `haul-${label}-`));
  const stateDir = path.join(tmp, 'home');
  const repoDir = path.join(tmp, 'repo');
  const env = haulEnv(repoDir, { HAUL_HOME: stateDir });
  const init = haulSync(['init'], env);
  if (init.status !== 0) throw new Error(`haul init failed: ${init.stderr}`);
  const identity = loadOrCreateServerIdentity(path.join(stateDir, 'identity'));
  for (const u of users) sshd.authorize(u, authorizedKeysLine(identity));
  const db = await openDatabase({ stateDir, url: '' });
  const daemons: Daemon[] = [];
  const dataDirs: string[] = [];

  const testbed: DaemonTestbed = {
    sshd,
    tmp,
    stateDir,
    repoDir,
    env,
    probeDir: testProbeDir,
    db,
    user(name) {
      const u = unixUsers.get(name);
      if (!u) throw new Error(`${name} is not a user of this testbed`);
      return u;
    },
    writeData(user, folder, files) {
      const u = testbed.user(user);
      const dir = writeOwnedFolder(path.join(u.home, `${label}-${folder}`), files, u);
      dataDirs.push(dir);
      return dir;
    },
    async addClient(name, user, dataPath, extra = {}) {
      const row = await db.prisma.client.create({
        data: {
          name,
          host: sshd.host,
          port: extra.port ?? sshd.port,
          sshUser: user,
          hostKey: extra.hostKey ?? sshd.hostKeyFingerprint,
          paths: JSON.stringify([dataPath]),
          schedule: extra.schedule ?? null,
          ...(extra.createdAt ? { createdAt: extra.createdAt } : {}),
        },
      });
      return row.id;
    },
    async start(options = {}, hooks = {}) {
      const daemon = await startDaemon({
        stateDir,
        repository: repoDir,
        passphrase: testPassphrase,
        databaseUrl: '',
        probeDir: testProbeDir,
        http: false,
        logLevel: 'silent',
        timeZone: 'UTC',
        progressIntervalMs: 200,
        // In-process daemons share one state directory; the tests of the bus start a real process.
        bus: false,
        ...options,
      }, hooks);
      daemons.push(daemon);
      return daemon;
    },
    async waitForJobs(predicate, timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const jobs = await db.prisma.job.findMany({ orderBy: { id: 'desc' } });
        if (predicate(jobs)) return jobs;
        if (Date.now() > until) {
          expect(jobs.map((j) => ({ id: j.id, client: j.clientName, state: j.state, trigger: j.trigger, cause: j.failureCause, message: j.failureMessage })), 'the jobs never reached the expected state').toBe('(see above)');
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async reset() {
      for (const d of daemons.splice(0)) await d.stop({ graceMs: 0 }).catch(() => undefined);
      await db.prisma.job.deleteMany();
      await db.prisma.client.deleteMany();
    },
    async close() {
      for (const d of daemons.splice(0)) await d.stop({ graceMs: 0 }).catch(() => undefined);
      await db.close();
      await sshd.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
      for (const d of dataDirs) fs.rmSync(d, { recursive: true, force: true });
    },
  };
  return testbed;
}

/** The states a job went through, in order, from its transition rows. */
export async function transitionsOf(db: Database, jobId: number): Promise<string[]> {
  return (await db.prisma.jobTransition.findMany({ where: { jobId }, orderBy: { id: 'asc' } })).map((t) => t.state);
}

export const fullRun = ['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded'];
