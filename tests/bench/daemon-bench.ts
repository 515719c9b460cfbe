// `npm run bench:daemon`: one real `haul daemon` process with 50 clients asked to back up at
// once over real SSH (a few sshd users, each client its own small data set). Reported: jobs per
// minute, the daemon's peak RSS, its event-loop lag (prom-client's figures on /metrics) and the
// latency of bus events (from the daemon stamping an event to a subscriber receiving it).
//
// Environment:
//   BENCH_CLIENTS       clients (default 50)
//   BENCH_MAX_JOBS      jobs the daemon runs at once (default 8)
//   BENCH_FILES         files per client (default 200, about 4 KiB each)
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BusClient } from '../../shared/bus/bus-client.js';
import { defaultBusEndpoints } from '../../shared/bus/endpoints.js';
import { isTerminalJobState } from '../../shared/jobs.js';
import { openDatabase } from '../../daemon/database/open-database.js';
import { authorizedKeysLine, loadOrCreateServerIdentity } from '../../daemon/session/server-identity.js';
import { haulEnv } from '../helpers/cli.js';
import { ensureUser, freePort, startSshd } from '../helpers/sshd.js';
import { envNumber, log, rootDir, table } from './common.js';

const clients = Math.round(envNumber('BENCH_CLIENTS', 50));
const maxJobs = Math.round(envNumber('BENCH_MAX_JOBS', 8));
const filesPerClient = Math.round(envNumber('BENCH_FILES', 200));
// The compiled bench lives in dist/tests/bench: the CLI is the project's own bin/haul.
const haulBin = path.join(rootDir, 'bin', 'haul');
const users = Array.from({ length: 5 }, (_, i) => `haul-t-dbench${i}`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function rssOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

async function metric(port: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function main(): Promise<void> {
  execFileSync('bash', [path.join(rootDir, 'probe', 'build.sh')], { stdio: 'pipe' });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-daemon-bench-'));
  const stateDir = path.join(tmp, 'home');
  const env = haulEnv(path.join(tmp, 'repo'), { HAUL_HOME: stateDir });
  execFileSync(process.execPath, [haulBin, 'init', '--quiet'], { env, stdio: 'pipe' });
  const unix = users.map((u) => ensureUser(u));
  const sshd = await startSshd({ users });
  const identity = loadOrCreateServerIdentity(path.join(stateDir, 'identity'));
  for (const u of users) sshd.authorize(u, authorizedKeysLine(identity));

  log(`writing ${clients} data sets of ${filesPerClient} files`);
  const db = await openDatabase({ stateDir, url: '' });
  for (let c = 0; c < clients; c++) {
    const u = unix[c % unix.length]!;
    const dir = path.join(u.home, `dbench-c${c}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < filesPerClient; f++) fs.writeFileSync(path.join(dir, `f${f}`), randomBytes(4096));
    execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, dir]);
    await db.prisma.client.create({ data: { name: `c${c}`, host: sshd.host, port: sshd.port, sshUser: u.name, hostKey: sshd.hostKeyFingerprint, paths: JSON.stringify([dir]) } });
  }
  await db.close();

  const httpPort = await freePort();
  const daemon = spawn(process.execPath, [haulBin, 'daemon', '--http-port', String(httpPort), '--max-jobs', String(maxJobs), '--log-file', path.join(tmp, 'daemon.log'), '--time-zone', 'UTC', '--grace', '0'], { env, stdio: 'ignore' });
  const endpoint = defaultBusEndpoints(stateDir).commands;
  for (let i = 0; !fs.existsSync(endpoint.slice('ipc://'.length)); i++) {
    if (i > 600 || daemon.exitCode !== null) throw new Error('the daemon did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const bus = await BusClient.connect({ endpoint, timeoutMs: 30_000 });
  const events = await bus.subscribe({ topics: ['job/'] });
  const latencies: number[] = [];
  const ended = new Set<number>();
  let failed = 0;
  let eventCount = 0;
  const consuming = (async () => {
    for await (const event of events) {
      eventCount++;
      latencies.push(Date.now() - Date.parse(event.at));
      if (event.type === 'job-state' && isTerminalJobState(event.job.state) && !ended.has(event.job.id)) {
        ended.add(event.job.id);
        if (event.job.state !== 'succeeded') failed++;
        if (ended.size === clients) return;
      }
    }
  })();

  let peakRss = 0;
  let maxLagP99 = 0;
  let maxLag = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssOf(daemon.pid!).rss);
    void Promise.all([metric(httpPort, 'nodejs_eventloop_lag_p99_seconds'), metric(httpPort, 'nodejs_eventloop_lag_max_seconds')]).then(([p99, max]) => {
      maxLagP99 = Math.max(maxLagP99, p99 ?? 0);
      maxLag = Math.max(maxLag, max ?? 0);
    }, () => undefined);
  }, 500);

  log(`asking for ${clients} backups at once (the daemon runs ${maxJobs} at a time)`);
  const started = Date.now();
  await Promise.all(Array.from({ length: clients }, (_, c) => bus.request('run-now', { client: `c${c}` })));
  await consuming;
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const hwm = rssOf(daemon.pid!).hwm;
  events.close();
  bus.close();
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  await sshd.stop();

  latencies.sort((a, b) => a - b);
  const rows = [
    ['clients (backups asked at once)', String(clients)],
    ['jobs succeeded / failed', `${clients - failed} / ${failed}`],
    ['wall time', `${seconds.toFixed(1)} s`],
    ['jobs per minute', (clients / (seconds / 60)).toFixed(1)],
    ['daemon peak RSS (VmHWM)', `${(hwm / 2 ** 20).toFixed(1)} MiB (sampled peak ${(peakRss / 2 ** 20).toFixed(1)} MiB)`],
    ['event-loop lag, worst p99 / max', `${(maxLagP99 * 1000).toFixed(1)} ms / ${(maxLag * 1000).toFixed(1)} ms`],
    ['bus events received', String(eventCount)],
    ['bus event latency p50 / p95 / max', `${percentile(latencies, 50)} ms / ${percentile(latencies, 95)} ms / ${latencies.at(-1)} ms`],
  ];
  console.log(table(['measure', 'value'], rows, ['l', 'r']));
  fs.rmSync(tmp, { recursive: true, force: true });
  if (failed > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
