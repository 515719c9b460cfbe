// `npm run bench:fleet`: a fleet through a compressed day. FLEET_CLIENTS clients (default 1,000),
// each a Client row with a small data folder of its own in the home of one of FLEET_USERS Unix
// users of one real sshd, each scheduled once in a "day" squeezed into FLEET_DAY seconds (the
// nightly slots of a real fleet, spread the same way). First one `haul daemon`, then two on the
// same work (a fresh PostgreSQL database and repository each time). Reported: jobs completed,
// queue delay (queued to started) p50/p95/p99/max, peak RSS of each daemon, peak PostgreSQL
// connections of the daemons, repository objects and bytes written per second, and the machine's
// load average while it ran (the machine may be shared: the numbers mean little without it).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { terminalJobStates } from '../../shared/jobs.js';
import { createFleetTestbed, dailyAt, pollUntil, type FleetDaemonProcess, type FleetTestbed } from '../helpers/fleet-testbed.js';
import { postgresSkipReason } from '../helpers/postgres.js';
import { sshdSkipReason } from '../helpers/sshd.js';
import { envNumber, log, mib, table } from './common.js';

const clients = envNumber('FLEET_CLIENTS', 1000);
const userCount = envNumber('FLEET_USERS', 8);
const daySeconds = envNumber('FLEET_DAY', 600);
const maxJobs = envNumber('FLEET_MAX_JOBS', 4);
// Which phases run: "1,2" (default) is one daemon, then two; "1" or "2" runs one of them.
const phases = (process.env['FLEET_PHASES'] ?? '1,2').split(',').map(Number);
const logLevel = process.env['FLEET_LOG_LEVEL'] ?? 'warn';
// Each daemon's log is copied here after a phase (the testbed's folder is removed).
const logsDir = process.env['FLEET_LOGS'] ?? path.join(os.tmpdir(), 'haul-fleet-bench-logs');

interface PhaseResult {
  daemons: number;
  succeeded: number;
  failed: number;
  wallSeconds: number;
  delay: { p50: number; p95: number; p99: number; max: number };
  /** The 1-minute load average, sampled every second: mean and peak. */
  load: { mean: number; peak: number };
  jobsPerDaemon: number[];
  /** Jobs run by another daemon than the one that fired their slot (taken from its queue). */
  taken: number;
  peakRss: number[];
  peakConnections: number;
  objects: number;
  bytes: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function repositoryFiles(dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    count++;
    bytes += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return { count, bytes };
}

async function runPhase(daemonCount: number): Promise<PhaseResult> {
  const users = Array.from({ length: userCount }, (_, i) => `haul-t-fb-u${i + 1}`);
  log(`${daemonCount} daemon(s): setting up PostgreSQL, sshd with ${userCount} users, ${clients} clients`);
  const bed: FleetTestbed = await createFleetTestbed('fleetbench', users);
  try {
    const ids: number[] = [];
    for (let i = 0; i < clients; i++) {
      const user = bed.users[i % bed.users.length]!;
      const dir = bed.writeData(user, `c${i}`, { 'etc.conf': Buffer.from(`client ${i}\n`.repeat(20)), 'data.bin': Buffer.alloc(8192, i % 251), 'log.txt': Buffer.from(`${i} `.repeat(500)) });
      ids.push(await bed.addClient(`bench-${i}`, user, dir));
    }
    // The day starts once the schedules are written and the daemons have started.
    const setupSeconds = 45 + Math.ceil(clients / 20);
    const dayStart = Date.now() + setupSeconds * 1000;
    for (const [i, id] of ids.entries()) {
      // Evenly through the day, as cron slots spread over a night would be.
      const slot = new Date(Math.ceil((dayStart + (i / clients) * daySeconds * 1000) / 1000) * 1000);
      // A daily rule, as a real fleet's nightly schedules are (a once-a-year rule costs the
      // daemon's slot arithmetic several times more at start-up).
      await bed.db.prisma.client.update({ where: { id }, data: { schedule: dailyAt(slot) } });
    }
    const watcher = new pg.Client({ connectionString: bed.databaseUrl });
    await watcher.connect();
    const connections = async () => Number((await watcher.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)).rows[0]!.n);
    const baseline = await connections();
    const before = repositoryFiles(bed.repoDir);
    const daemons: FleetDaemonProcess[] = [];
    for (let d = 0; d < daemonCount; d++) daemons.push(bed.startDaemon(`bench-${d + 1}`, ['--max-jobs', String(maxJobs), '--log-level', logLevel]));
    // A daemon that ends before the day is over is a finding, not noise: say so at once.
    let dayOver = false;
    for (const d of daemons) void d.exit.then((e) => dayOver || log(`daemon ${d.id} exited early (code ${e.code}, signal ${e.signal}): ${d.stderr().slice(-2000)}`));
    const peakRss = daemons.map(() => 0);
    let peakConnections = 0;
    const loads: number[] = [];
    const sampler = setInterval(() => {
      loads.push(os.loadavg()[0]!);
      daemons.forEach((d, i) => (peakRss[i] = Math.max(peakRss[i]!, rssOf(d.child.pid!))));
      void connections().then((n) => (peakConnections = Math.max(peakConnections, n - baseline)), () => undefined);
    }, 1000);
    log(`day of ${daySeconds} s starts at ${new Date(dayStart).toISOString()}`);
    await pollUntil(
      async () => {
        const done = await bed.db.prisma.job.count({ where: { state: { in: [...terminalJobStates] } } });
        return done >= clients ? done : undefined;
      },
      (setupSeconds + daySeconds) * 1000 + 3_600_000,
      async () => `${await bed.db.prisma.job.count({ where: { state: { in: [...terminalJobStates] } } })} of ${clients} jobs ended`,
    );
    const wallSeconds = (Date.now() - dayStart) / 1000;
    dayOver = true;
    clearInterval(sampler);
    const after = repositoryFiles(bed.repoDir);
    for (const d of daemons) d.child.kill('SIGTERM');
    await Promise.all(daemons.map((d) => d.exit));
    await watcher.end();
    const jobs = await bed.db.prisma.job.findMany({ where: { clientName: { startsWith: 'bench-' } } });
    const firedBy = new Map((await bed.db.prisma.scheduleSlot.findMany({ select: { clientId: true, daemonId: true } })).map((r) => [r.clientId, r.daemonId]));
    const delays = jobs.filter((j) => j.startedAt).map((j) => (j.startedAt!.getTime() - j.queuedAt.getTime()) / 1000).sort((a, b) => a - b);
    // Repository writes over the time jobs ran: from the day's start to the last job's end.
    const lastEnd = Math.max(...jobs.map((j) => j.finishedAt?.getTime() ?? 0));
    const activeSeconds = Math.max(1, (lastEnd - dayStart) / 1000);
    return {
      daemons: daemonCount,
      succeeded: jobs.filter((j) => j.state === 'succeeded').length,
      failed: jobs.filter((j) => j.state !== 'succeeded').length,
      wallSeconds,
      delay: { p50: percentile(delays, 50), p95: percentile(delays, 95), p99: percentile(delays, 99), max: delays.at(-1) ?? 0 },
      load: { mean: loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length), peak: Math.max(0, ...loads) },
      jobsPerDaemon: daemons.map((d) => jobs.filter((j) => j.daemonId === d.id).length),
      taken: jobs.filter((j) => j.clientId !== null && firedBy.has(j.clientId) && firedBy.get(j.clientId) !== j.daemonId).length,
      peakRss,
      peakConnections,
      objects: (after.count - before.count) / activeSeconds,
      bytes: (after.bytes - before.bytes) / activeSeconds,
    };
  } finally {
    fs.mkdirSync(logsDir, { recursive: true });
    for (const f of fs.readdirSync(bed.tmp).filter((n) => /^daemon-.*\.log$/.test(n))) fs.copyFileSync(path.join(bed.tmp, f), path.join(logsDir, `${daemonCount}-${f}`));
    log(`daemon logs in ${logsDir}`);
    await bed.close();
  }
}

async function main(): Promise<void> {
  const skip = sshdSkipReason() ?? postgresSkipReason();
  if (skip) throw new Error(`the fleet benchmark needs real sshd and PostgreSQL: ${skip}`);
  const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
  const loadBefore = uptime();
  const results: PhaseResult[] = [];
  for (const daemons of phases) {
    results.push(await runPhase(daemons));
    // Each phase's row as soon as it is known: a later phase that hangs does not lose it.
    log(`phase done: ${JSON.stringify(results.at(-1))}; ${uptime()}`);
  }
  const rows = results.map((r) => [
    String(r.daemons),
    `${r.succeeded} / ${clients}${r.failed ? ` (${r.failed} failed)` : ''}`,
    `${r.jobsPerDaemon.join(' + ')}${r.daemons > 1 ? ` (${r.taken} taken)` : ''}`,
    `${r.delay.p50.toFixed(1)} s`,
    `${r.delay.p95.toFixed(1)} s`,
    `${r.delay.p99.toFixed(1)} s`,
    `${r.delay.max.toFixed(1)} s`,
    r.peakRss.map((b) => mib(b)).join(', '),
    String(r.peakConnections),
    `${r.objects.toFixed(1)} /s, ${mib(r.bytes)}/s`,
    `${r.wallSeconds.toFixed(0)} s`,
    `${r.load.mean.toFixed(1)} (peak ${r.load.peak.toFixed(1)})`,
  ]);
  process.stdout.write(`\nFleet benchmark: ${clients} clients on ${userCount} sshd users, a day of ${daySeconds} s, --max-jobs ${maxJobs} per daemon, ${os.cpus().length} cores\n`);
  process.stdout.write(`uptime before: ${loadBefore}\nuptime after:  ${uptime()}\n\n`);
  process.stdout.write(
    table(['daemons', 'jobs succeeded', 'per daemon', 'delay p50', 'delay p95', 'delay p99', 'delay max', 'peak RSS', 'PG connections', 'repository writes', 'day took', 'load (1 min, 2 cores)'], rows, ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
