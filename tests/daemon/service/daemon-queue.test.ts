// How the daemon runs what is due: the global limit and one job per client (with exact
// ordering), retries with backoff for transient causes only, cancel mid-transfer, timeouts,
// and the health and metrics endpoint. Real sshd clients, real SQLite, real backups; a real TCP
// proxy in front of sshd plays the network going down and coming back.
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobRecord } from '../../../daemon/jobs/job-store.js';
import { haulSync } from '../../helpers/cli.js';
import { createDaemonTestbed, fullRun, transitionsOf, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { indexEntries, openTestRepository } from '../../helpers/repo.js';
import { freePort, sshdSkipReason } from '../../helpers/sshd.js';

const Q = ['haul-t-dmn-q1', 'haul-t-dmn-q2', 'haul-t-dmn-q3', 'haul-t-dmn-q4'] as const;
const MiB = 1024 * 1024;
const bigBytes = 48 * MiB;
const skip = sshdSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ProxyOptions {
  /** Cut the first connection that has carried this many bytes from the client. */
  cutAfterBytes?: number;
  /** Limit each connection's client-to-daemon direction to this rate (a slow link). */
  bytesPerSecond?: number;
}

/** A TCP proxy to sshd on a port of its own: down until `up()`, optionally slow or cutting. */
async function tcpProxy(target: number): Promise<{ port: number; up(options?: ProxyOptions): Promise<void>; down(): Promise<void>; cuts: number }> {
  const port = await freePort();
  let server: net.Server | undefined;
  const sockets = new Set<net.Socket>();
  const proxy = {
    port,
    cuts: 0,
    async up(options: ProxyOptions = {}) {
      let cutPending = options.cutAfterBytes !== undefined;
      server = net.createServer((inbound) => {
        const outbound = net.connect(target, '127.0.0.1');
        sockets.add(inbound).add(outbound);
        let fromClient = 0;
        const started = Date.now();
        outbound.on('data', (d: Buffer) => {
          fromClient += d.length;
          if (cutPending && fromClient > options.cutAfterBytes!) {
            cutPending = false;
            proxy.cuts++;
            inbound.destroy();
            outbound.destroy();
            return;
          }
          if (options.bytesPerSecond) {
            const ahead = (fromClient / options.bytesPerSecond) * 1000 - (Date.now() - started);
            if (ahead > 0) {
              outbound.pause();
              setTimeout(() => outbound.resume(), ahead);
            }
          }
        });
        inbound.pipe(outbound).pipe(inbound);
        for (const s of [inbound, outbound]) {
          s.on('error', () => undefined);
          s.on('close', () => {
            inbound.destroy();
            outbound.destroy();
            sockets.delete(s);
          });
        }
      });
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    },
    async down() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      server = undefined;
    },
  };
  return proxy;
}

/** The probe processes of `user` still alive (a zombie is dead, only not yet reaped by sshd). */
async function liveProbesOf(user: string): Promise<string[]> {
  const live = () =>
    spawnSync('ps', ['-u', user, '-o', 'stat=,args='], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.includes('haul-probe') && !l.trim().startsWith('Z'));
  // The probe gets SIGTERM and EOF when its channel closes; give it a moment to go.
  for (let i = 0; i < 40 && live().length > 0; i++) await sleep(50);
  return live();
}

describe.skipIf(skip !== undefined)(`daemon job queue over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  const data: Record<string, string> = {};
  let big: string;

  beforeAll(async () => {
    bed = await createDaemonTestbed('dmn-queue', [...Q]);
    for (const [i, user] of Q.entries()) data[user] = bed.writeData(user, 'small', { 'f.bin': pseudoRandom(`q${i}`, 2 * MiB) });
    big = bed.writeData(Q[0], 'big', { 'big-1.bin': pseudoRandom('big-1', 24 * MiB), 'big-2.bin': pseudoRandom('big-2', 24 * MiB) });
  }, 120_000);
  afterAll(async () => {
    await bed?.close();
  });

  afterEach(async () => {
    await bed.reset();
  });

  it('runs at most the global limit at once, starting queued jobs strictly in queue order', async () => {
    for (const [i, user] of Q.entries()) await bed.addClient(`c${i + 1}`, user, data[user]!);
    const daemon = await bed.start({ maxConcurrentJobs: 2 });
    let running = 0;
    let most = 0;
    const started: string[] = [];
    daemon.events.on('job-state', ({ job, state }) => {
      if (state === 'connecting') {
        started.push(job.clientName!);
        most = Math.max(most, ++running);
      }
      if (['succeeded', 'failed', 'cancelled'].includes(state)) running--;
    });
    const queued = [];
    for (const name of ['c1', 'c2', 'c3', 'c4']) queued.push(await daemon.runNow(name));
    expect(daemon.status().running.map((r) => r.clientName)).toEqual(['c1', 'c2']);
    expect(daemon.status().queued.map((r) => r.clientName)).toEqual(['c3', 'c4']);
    const jobs = await bed.waitForJobs((all) => all.length === 4 && all.every((j) => j.state === 'succeeded'), 60_000);
    // c1 and c2 start together, and so may c3 and c4 when c1 and c2 end at once: their
    // 'connecting' writes race, so only the pairs are ordered. The queue order itself is
    // asserted on status() above and by the start times below.
    expect([started.slice(0, 2).sort(), started.slice(2).sort()]).toEqual([['c1', 'c2'], ['c3', 'c4']]);
    expect(most).toBe(2);
    const byId = (id: number) => jobs.find((j) => j.id === id)!;
    // c3 started only when one of c1, c2 had ended; c4 only when a second slot was free.
    const [c1, c2, c3, c4] = queued.map((q) => byId(q.id));
    expect(c3!.startedAt!.getTime()).toBeGreaterThanOrEqual(Math.min(c1!.finishedAt!.getTime(), c2!.finishedAt!.getTime()));
    const endsBeforeC4 = [c1!, c2!, c3!].filter((j) => j.finishedAt!.getTime() <= c4!.startedAt!.getTime());
    expect(endsBeforeC4.length).toBeGreaterThanOrEqual(2);
    for (const j of [c1, c2, c3, c4]) expect(await transitionsOf(bed.db, j!.id)).toEqual(fullRun);
  }, 90_000);

  it('never runs two jobs of one client at once: its next job waits while other clients go ahead', async () => {
    await bed.addClient('busy', Q[0], big);
    await bed.addClient('other', Q[1], data[Q[1]]!);
    const daemon = await bed.start({ maxConcurrentJobs: 3 });
    const first = await daemon.runNow('busy');
    const second = await daemon.runNow('busy', 'bob');
    // Asked again while one waits: the waiting job is the answer, not a third one.
    expect((await daemon.runNow('busy', 'carol')).id).toBe(second.id);
    const other = await daemon.runNow('other');
    expect(daemon.status().running.map((r) => r.id).sort()).toEqual([first.id, other.id].sort());
    expect(daemon.status().queued.map((r) => r.id)).toEqual([second.id]);
    const jobs = await bed.waitForJobs((all) => all.length === 3 && all.every((j) => j.state === 'succeeded'), 90_000);
    const get = (id: number) => jobs.find((j) => j.id === id)!;
    expect(get(other.id).startedAt!.getTime()).toBeLessThan(get(second.id).startedAt!.getTime());
    expect(get(second.id).startedAt!.getTime()).toBeGreaterThanOrEqual(get(first.id).finishedAt!.getTime());
    expect(get(second.id).requestedBy).toBe('bob');
  }, 120_000);

  it('retries an unreachable client with exponential backoff until it is back, then succeeds', async () => {
    const proxy = await tcpProxy(bed.sshd.port);
    await bed.addClient('flaky', Q[2], data[Q[2]]!, { port: proxy.port });
    const daemon = await bed.start({ retry: { maxAttempts: 4, baseDelayMs: 500, maxDelayMs: 10_000 } });
    let failures = 0;
    daemon.events.on('job-state', ({ state }) => {
      // sshd comes back after the second failure: the third try must succeed.
      if (state === 'failed' && ++failures === 2) void proxy.up();
    });
    const first = await daemon.runNow('flaky');
    const jobs = (await bed.waitForJobs((all) => all.some((j) => j.state === 'succeeded'), 60_000)).reverse();
    expect(jobs.map((j) => [j.id === first.id, j.trigger, j.attempt, j.state, j.failureCause])).toEqual([
      [true, 'manual', 1, 'failed', 'unreachable'],
      [false, 'retry', 2, 'failed', 'unreachable'],
      [false, 'retry', 3, 'succeeded', null],
    ]);
    expect(jobs[0]!.failureMessage).toBe(`Cannot reach client "flaky" (${Q[2]}@127.0.0.1:${proxy.port}): connection refused; nothing accepts connections there. Check that sshd runs on the client and listens on port ${proxy.port}, and that the port is right.`);
    expect([jobs[1]!.retryOfId, jobs[2]!.retryOfId]).toEqual([jobs[0]!.id, jobs[1]!.id]);
    // Backoff: 0.5 s, then 1 s.
    expect(jobs[1]!.startedAt!.getTime() - jobs[0]!.finishedAt!.getTime()).toBeGreaterThanOrEqual(500);
    expect(jobs[2]!.startedAt!.getTime() - jobs[1]!.finishedAt!.getTime()).toBeGreaterThanOrEqual(1000);
    await sleep(1_500);
    expect(await bed.db.prisma.job.count()).toBe(3);
    await proxy.down();
  }, 60_000);

  it('retries a job whose connection dropped mid-transfer (connection-lost); the retry reuses what arrived', async () => {
    const proxy = await tcpProxy(bed.sshd.port);
    await proxy.up({ cutAfterBytes: 28 * MiB, bytesPerSecond: 80 * MiB });
    await bed.addClient('dropped', Q[0], big, { port: proxy.port });
    const daemon = await bed.start({ retry: { maxAttempts: 2, baseDelayMs: 200, maxDelayMs: 200 } });
    await daemon.runNow('dropped');
    const jobs = (await bed.waitForJobs((all) => all.some((j) => j.state === 'succeeded') || all.filter((j) => j.state === 'failed').length >= 2, 90_000)).reverse();
    expect(proxy.cuts).toBe(1);
    expect(jobs.map((j) => [j.attempt, j.state, j.failureCause])).toEqual([
      [1, 'failed', 'connection-lost'],
      [2, 'succeeded', null],
    ]);
    expect(jobs[0]!.failureMessage).toMatch(new RegExp(`^The SSH connection to client "dropped" \\(${Q[0]}@127\\.0\\.0\\.1:${proxy.port}\\) was lost during the backup \\(.*\\)\\. No snapshot was written; what arrived is kept and the next run reuses it\\. If it keeps happening, check the network and the client's sshd log\\.$`));
    // The first try stored at least one pack; the second stored only the rest.
    expect(Number(jobs[1]!.bytesNew)).toBeLessThan(bigBytes - 10 * MiB);
    await proxy.down();
  }, 120_000);

  it('cancels a job mid-transfer: the probe stops, the repository passes check, and the next run reuses the packs it wrote', async () => {
    // A link of 40 MiB/s: the job is surely mid-transfer when it is cancelled, however fast this machine.
    const proxy = await tcpProxy(bed.sshd.port);
    await proxy.up({ bytesPerSecond: 40 * MiB });
    await bed.addClient('cancel-me', Q[0], big, { port: proxy.port });
    const dataBytes = async () => (await indexEntries(await openTestRepository(bed.repoDir))).map((e) => e.split(' ')).filter((f) => f[2] === '0').reduce((sum, f) => sum + Number(f[6]), 0);
    const before = await dataBytes();
    const daemon = await bed.start();
    const job = await daemon.runNow('cancel-me');
    const cancelled = new Promise<JobRecord>((resolve, reject) => {
      daemon.events.on('job-progress', ({ job: j, progress }) => {
        // Once a pack (16 MiB) is complete, well before the 48 MiB are in.
        if (j.id === job.id && progress.bytesNew > 20 * MiB) daemon.cancel(job.id, 'alice').then(resolve, reject);
      });
    });
    const ended = await cancelled;
    expect([ended.state, ended.failureCause, ended.failureMessage]).toEqual(['cancelled', 'cancelled', 'cancelled by alice while it ran; no snapshot was written, what arrived is kept for the next run.']);
    expect(await transitionsOf(bed.db, job.id)).toEqual(['queued', 'connecting', 'pushing-probe', 'transferring', 'cancelled']);
    expect(Number(ended.bytesNew)).toBeLessThan(bigBytes);
    expect(await liveProbesOf(Q[0])).toEqual([]);
    const check = haulSync(['check'], bed.env);
    expect({ status: check.status, tail: check.stdout.trim().split('\n').at(-1) }).toMatchObject({ status: 0, tail: expect.stringMatching(/: no errors$/) });
    expect((await openTestRepository(bed.repoDir).then((r) => r.listSnapshots())).filter((s) => s.client === 'cancel-me')).toEqual([]);
    const kept = (await dataBytes()) - before;
    expect(kept).toBeGreaterThanOrEqual(16 * MiB);

    const again = await daemon.runNow('cancel-me');
    const [done] = await bed.waitForJobs((all) => all[0]?.id === again.id && all[0].state === 'succeeded', 90_000);
    // Everything not kept from the cancelled run, and nothing more (trees are a few hundred bytes).
    expect(Number(done!.bytesNew)).toBeLessThanOrEqual(bigBytes - kept + 64 * 1024);
    expect(Number(done!.bytesNew)).toBeGreaterThanOrEqual(bigBytes - kept);
    const verify = haulSync(['check', '--read-data'], bed.env);
    expect(verify.status).toBe(0);
    await proxy.down();
  }, 120_000);

  it('stops a job at its total time limit (cause timeout) and cancels a queued job before it starts', async () => {
    const proxy = await tcpProxy(bed.sshd.port);
    await proxy.up({ bytesPerSecond: 10 * MiB });
    await bed.addClient('slow', Q[0], big, { port: proxy.port });
    await bed.addClient('waiting', Q[1], data[Q[1]]!);
    const daemon = await bed.start({ jobTimeoutMs: 700, maxConcurrentJobs: 1 });
    const slow = await daemon.runNow('slow');
    const waiting = await daemon.runNow('waiting');
    const cancelled = await daemon.cancel(waiting.id, 'bob');
    expect([cancelled.state, cancelled.failureCause, cancelled.failureMessage, cancelled.startedAt]).toEqual(['cancelled', 'cancelled', 'cancelled by bob before it started', null]);
    await expect(daemon.cancel(waiting.id)).rejects.toThrow(`job ${waiting.id} has already ended (cancelled); there is nothing to cancel.`);
    await expect(daemon.cancel(99_999)).rejects.toThrow('there is no job 99999; `haul jobs` lists the recent ones.');
    const [timedOut] = await bed.waitForJobs((all) => all.find((j) => j.id === slow.id)?.state === 'failed', 30_000);
    const slowJob = (await bed.db.prisma.job.findUniqueOrThrow({ where: { id: slow.id } }));
    expect(timedOut).toBeDefined();
    expect([slowJob.failureCause, slowJob.failureMessage]).toEqual(['timeout', 'the job ran longer than its limit of 0.7 s and was stopped. Nothing was saved as a snapshot; what arrived is kept for the next run. Raise the limit (HAUL_JOB_TIMEOUT) or find out why the client is slow.']);
    // A timeout is not transient: no retry.
    await sleep(500);
    expect(await bed.db.prisma.job.count()).toBe(2);
    expect(await liveProbesOf(Q[0])).toEqual([]);
    await proxy.down();
  }, 60_000);

  it('refuses run-now for unknown and disabled clients with what to do', async () => {
    await bed.db.prisma.client.create({ data: { name: 'off', host: '127.0.0.1', sshUser: Q[3], paths: '["/x"]', enabled: false } });
    const daemon = await bed.start();
    await expect(daemon.runNow('nope')).rejects.toThrow('there is no client named "nope"; `haul client list` shows them.');
    await expect(daemon.runNow('off')).rejects.toThrow('client off is disabled; enable it first (`haul client set off --enable`).');
    await daemon.stop();
    await expect(daemon.runNow('off')).rejects.toThrow('the daemon is shutting down and starts no more jobs; run it again after the restart.');
  });

  it('never retries a changed host key; /healthz and /metrics report the jobs', async () => {
    await bed.addClient('good', Q[3], data[Q[3]]!);
    await bed.addClient('impostor', Q[3], data[Q[3]]!, { hostKey: `SHA256:${'A'.repeat(43)}` });
    const daemon = await bed.start({ http: { port: 0 }, retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 100 } });
    const url = `http://127.0.0.1:${daemon.httpAddress!.port}`;
    await daemon.runNow('good');
    await daemon.runNow('impostor');
    const jobs = await bed.waitForJobs((all) => all.length === 2 && all.every((j) => ['succeeded', 'failed'].includes(j.state)), 60_000);
    await sleep(600);
    expect(await bed.db.prisma.job.count()).toBe(2);
    const bad = jobs.find((j) => j.clientName === 'impostor')!;
    expect(bad.failureCause).toBe('host-key-changed');
    expect(bad.failureMessage).toContain(`Haul pinned SHA256:${'A'.repeat(43)}, the client now shows an ED25519 key ${bed.sshd.hostKeyFingerprint}`);
    const good = jobs.find((j) => j.clientName === 'good')!;

    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', database: 'ok', running: 0, queued: 0 });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => metrics.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1];
    expect(value('haul_jobs_finished_total{state="succeeded",cause=""}')).toBe('1');
    expect(value('haul_jobs_finished_total{state="failed",cause="host-key-changed"}')).toBe('1');
    expect(value('haul_backup_bytes_total{kind="new"}')).toBe(String(good.bytesNew));
    expect(value('haul_backup_bytes_total{kind="wire"}')).toBe(String(good.bytesOnWire));
    expect(value('haul_job_duration_seconds_count{state="succeeded"}')).toBe('1');
    expect(value('haul_queue_length')).toBe('0');
    expect(value('haul_jobs{state="queued"}')).toBe('0');
    expect(value('haul_jobs{state="transferring"}')).toBe('0');
    expect(metrics).toContain('process_resident_memory_bytes');
    expect((await fetch(`${url}/other`)).status).toBe(404);
    await daemon.stop();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  }, 60_000);
});
