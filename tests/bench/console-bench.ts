// `npm run bench:console`: the console under the load of 50 jobs running at once. A real bus
// server publishes progress for 50 jobs at the daemon's pace (4 updates a second each, the
// coalescing limit); a real `haul web` process (its own RSS, its own event loop) relays them over
// socket.io to several socket.io clients. Reported: event rate, end-to-end latency from the
// daemon's publish (the event's `at`) to the client, the web process's RSS, and how long the job
// history takes to load with 10,000 jobs in the database (API pages, and the page in Chromium when
// it is installed).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { openDatabase } from '../../daemon/database/open-database.js';
import { UserStore } from '../../daemon/database/users.js';
import { BUS_PROTOCOL_VERSION } from '../../shared/bus/messages.js';
import { startTestBus, wireJob } from '../helpers/bus.js';
import { tempDir } from '../helpers/cli.js';
import { ApiClient, chromiumSkipReason, launchChromium } from '../helpers/web.js';
import { envNumber, log, rootDir } from './common.js';

const JOBS = envNumber('BENCH_JOBS', 50);
const CLIENTS = envNumber('BENCH_SOCKETS', 5);
const SECONDS = envNumber('BENCH_SECONDS', 15);
const HISTORY = envNumber('BENCH_HISTORY', 10_000);
const PASSWORD = 'benchmark password';

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

function rssOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

async function seedDatabase(stateDir: string): Promise<void> {
  const db = await openDatabase({ stateDir });
  await new UserStore(db).create({ username: 'bench', role: 'operator', password: PASSWORD });
  const t0 = Date.now() - HISTORY * 60_000;
  for (let i = 0; i < HISTORY; i += 1000) {
    await db.prisma.job.createMany({
      data: Array.from({ length: Math.min(1000, HISTORY - i) }, (_, k) => ({
        clientName: `client${(i + k) % 40}`, kind: 'backup', state: (i + k) % 17 === 0 ? 'failed' : 'succeeded', trigger: 'schedule',
        queuedAt: new Date(t0 + (i + k) * 60_000), finishedAt: new Date(t0 + (i + k) * 60_000 + 30_000), filesDone: 1000n, bytesScanned: 123_456_789n,
      })),
    });
  }
  await db.close();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

async function startWeb(stateDir: string, bus: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(rootDir, 'bin', 'haul'), '--home', stateDir, 'web', '--listen', `127.0.0.1:${port}`, '--bus', bus], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Haul console on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1]!, pid: child.pid!, stop: () => new Promise((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }) });
    });
    child.once('exit', (code) => reject(new Error(`haul web exited with ${code}: ${err}`)));
  });
}

async function connectSocket(url: string, api: ApiClient): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], auth: { csrfToken: api.csrfToken }, extraHeaders: { cookie: api.cookie! } });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const reply = await socket.timeout(10_000).emitWithAck('dashboard:subscribe', {}) as { ok?: true };
  if (!reply.ok) throw new Error(`dashboard:subscribe refused: ${JSON.stringify(reply)}`);
  return socket;
}

async function main(): Promise<void> {
  const tmp = tempDir('benchweb');
  const bus = await startTestBus({}, tmp.dir);
  log(`seeding ${HISTORY} jobs`);
  await seedDatabase(tmp.dir);
  const web = await startWeb(tmp.dir, bus.server.endpoints!.ipc.commands);
  log(`haul web at ${web.url} (pid ${web.pid})`);
  const rssIdle = rssOf(web.pid);
  try {
    const api = new ApiClient(web.url);
    const login = await api.login('bench', PASSWORD);
    if (login.status !== 200) throw new Error(`login failed: ${JSON.stringify(login.body)}`);
    // The link checks the daemon every 5 s; wait until it is connected.
    for (let i = 0; i < 100 && !((await api.request<{ daemon: { connected: boolean } }>('GET', '/api/status')).body.daemon.connected); i++) await new Promise((r) => setTimeout(r, 100));

    const sockets = await Promise.all(Array.from({ length: CLIENTS }, () => connectSocket(web.url, api)));
    const latencies: number[] = [];
    const received = new Array<number>(CLIENTS).fill(0);
    sockets.forEach((s, i) => s.on('daemon:event', (e: { type: string; at: string }) => {
      if (e.type !== 'job-progress') return;
      received[i]!++;
      latencies.push(Date.now() - Date.parse(e.at));
    }));

    for (let id = 1; id <= JOBS; id++) {
      bus.board.add(wireJob(id, { clientName: `client${id % 40}`, queuedAt: new Date().toISOString() }));
      bus.board.transition(id, 'transferring');
    }
    log(`publishing progress for ${JOBS} jobs, 4 a second each, for ${SECONDS} s, to ${CLIENTS} socket.io clients`);
    let published = 0;
    const start = Date.now();
    let rssPeakDuring = 0;
    while (Date.now() - start < SECONDS * 1000) {
      const tick = Date.now();
      for (let id = 1; id <= JOBS; id++) {
        const n = published++;
        bus.server.publish({
          v: BUS_PROTOCOL_VERSION, type: 'job-progress', at: new Date().toISOString(), jobId: id, filesTotal: '100000', filesDone: String(n), bytesScanned: String(n * 65536),
          bytesNew: String(n * 1024), bytesOnWire: String(n * 512), errors: 0, bytesPerSecond: 50 * 1024 * 1024, etaSeconds: 120, currentPath: `/srv/data/file-${n}.bin`,
        });
      }
      rssPeakDuring = Math.max(rssPeakDuring, rssOf(web.pid).rssMiB);
      await new Promise((r) => setTimeout(r, Math.max(0, 250 - (Date.now() - tick))));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const elapsed = (Date.now() - start) / 1000 - 1;
    latencies.sort((a, b) => a - b);
    const totalReceived = received.reduce((a, b) => a + b, 0);
    for (const s of sockets) s.disconnect();

    // The job history: API pages, newest first, as the Jobs page asks for them.
    const timed = async (what: string, url: string) => {
      const t = performance.now();
      const res = await api.request<{ jobs: unknown[] }>('GET', url);
      const ms = performance.now() - t;
      log(`${what}: ${ms.toFixed(1)} ms (${res.body.jobs.length} jobs)`);
      return ms;
    };
    const firstPage = await timed('GET /api/jobs?limit=100 (first page)', '/api/jobs?limit=100');
    const bigPage = await timed('GET /api/jobs?limit=1000', '/api/jobs?limit=1000');
    const filtered = await timed('GET /api/jobs?state=failed&limit=100', '/api/jobs?state=failed&limit=100');
    let pageLoad: number | null = null;
    if (!chromiumSkipReason()) {
      const browser = await launchChromium();
      const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
      const page = await context.newPage();
      await page.goto(web.url);
      await page.getByLabel('User name').fill('bench');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('current-user').waitFor({ state: 'attached' });
      const t = performance.now();
      await page.goto(`${web.url}/#/jobs`);
      await page.reload();
      await page.getByTestId('job-table').locator('tbody tr').nth(99).waitFor();
      pageLoad = performance.now() - t;
      await browser.close();
    }
    const rssEnd = rssOf(web.pid);
    const result = {
      jobs: JOBS, socketClients: CLIENTS, seconds: Math.round(elapsed),
      published, receivedPerClient: received, deliveredRatio: totalReceived / (published * CLIENTS),
      eventsPerSecondPerClient: Math.round(totalReceived / CLIENTS / elapsed), eventsPerSecondAll: Math.round(totalReceived / elapsed),
      latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies.at(-1) },
      webRssMiB: { idle: +rssIdle.rssMiB.toFixed(1), peakDuringEvents: +rssPeakDuring.toFixed(1), end: +rssEnd.rssMiB.toFixed(1), highWater: +rssEnd.peakMiB.toFixed(1) },
      history: { jobs: HISTORY, firstPageMs: +firstPage.toFixed(1), page1000Ms: +bigPage.toFixed(1), failedFilterMs: +filtered.toFixed(1), browserJobsPageMs: pageLoad === null ? null : +pageLoad.toFixed(0) },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await web.stop();
    await bus.stop();
    tmp.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
