// When the daemon runs jobs: cron schedules with seconds, blackout windows, catch-up after
// downtime and reloads of the Client table. Real sshd clients (separate Unix users), real
// SQLite, real backups into a real repository.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ClientStore } from '../../../daemon/database/client-store.js';
import { decodePreviousCache, previousCachePath } from '../../../daemon/session/previous-cache.js';
import { openTestRepository } from '../../helpers/repo.js';
import { createDaemonTestbed, fullRun, transitionsOf, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const S1 = 'haul-t-dmn-s1';
const S2 = 'haul-t-dmn-s2';
const skip = sshdSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** "HH:MM:SS" in UTC, `offsetMs` from now. */
function utcClock(offsetMs: number): string {
  return new Date(Date.now() + offsetMs).toISOString().slice(11, 19);
}

describe.skipIf(skip !== undefined)(`daemon scheduling over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let dataS1: string;
  let dataS2: string;

  beforeAll(async () => {
    bed = await createDaemonTestbed('dmn-schedule', [S1, S2]);
    dataS1 = bed.writeData(S1, 'data', { 'a.bin': pseudoRandom('s1', 300_000), 'notes.txt': Buffer.from('first client\n') });
    dataS2 = bed.writeData(S2, 'data', { 'b.bin': pseudoRandom('s2', 200_000) });
  }, 120_000);
  afterAll(async () => {
    await bed?.close();
  });
  afterEach(async () => {
    await bed.reset();
  });

  it('fires 6-field cron schedules (with seconds) for each client, through every state, and stops when the schedule is removed', async () => {
    const s1 = await bed.addClient('sched-1', S1, dataS1, { schedule: '*/2 * * * * *' });
    const s2 = await bed.addClient('sched-2', S2, dataS2, { schedule: '*/2 * * * * *' });
    const daemon = await bed.start();
    expect(daemon.status().scheduled.map((s) => s.client).sort()).toEqual(['sched-1', 'sched-2']);
    // (A slot between adding the clients and the start is caught up first: trigger catch-up.)
    const firedBySchedule = (j: { clientId: number | null; state: string; trigger: string }, id: number) => j.clientId === id && j.state === 'succeeded' && j.trigger === 'schedule';
    const jobs = await bed.waitForJobs((all) => [s1, s2].every((id) => all.some((j) => firedBySchedule(j, id))), 30_000);
    for (const id of [s1, s2]) {
      const job = jobs.find((j) => firedBySchedule(j, id))!;
      expect(await transitionsOf(bed.db, job.id)).toEqual(fullRun);
      // The slot it was queued for is a whole even second, and it was queued at that slot.
      const queued = await bed.db.prisma.jobTransition.findFirstOrThrow({ where: { jobId: job.id, state: 'queued' } });
      const slot = new Date(queued.detail!.replace('slot ', ''));
      expect(slot.getUTCSeconds() % 2).toBe(0);
      expect(slot.getUTCMilliseconds()).toBe(0);
      expect(job.queuedAt.getTime() - slot.getTime()).toBeLessThan(1000);
      const repo = await openTestRepository(bed.repoDir);
      const snap = (await repo.listSnapshots()).find((s) => s.id === job.snapshotId)!;
      expect(snap.client).toBe(id === s1 ? 'sched-1' : 'sched-2');
      expect(snap.stats.files).toBe(id === s1 ? 2 : 1);
    }

    // No schedule any more: after the reload no new job is queued.
    await bed.db.prisma.client.updateMany({ where: { id: { in: [s1, s2] } }, data: { schedule: null } });
    const reload = await daemon.reload();
    expect(reload.unscheduled.sort()).toEqual(['sched-1', 'sched-2']);
    await bed.waitForJobs((all) => all.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.state)), 30_000);
    const settled = await bed.db.prisma.job.count();
    await sleep(4_500);
    expect(await bed.db.prisma.job.count()).toBe(settled);
    expect(daemon.status().scheduled).toEqual([]);
  }, 90_000);

  it('starts no job inside a blackout window: a due job waits in the queue and starts when the window ends', async () => {
    await bed.addClient('blackout-1', S1, dataS1);
    // Long enough that the window is still open once the daemon has started on a loaded machine.
    const endsIn = 10_000;
    const window = `${utcClock(-60_000)}-${utcClock(endsIn)}`;
    const daemon = await bed.start({ blackout: [window] });
    const blackoutEnd = new Date(daemon.status().blackoutUntil!);
    expect(blackoutEnd.getTime() - Date.now()).toBeGreaterThan(1_000);
    const job = await daemon.runNow('blackout-1', 'alice');
    await sleep(1_000);
    expect((await bed.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).state).toBe('queued');
    expect(await transitionsOf(bed.db, job.id)).toEqual(['queued']);
    expect(daemon.status().queued.map((j) => [j.id, j.clientName, j.trigger, j.state])).toEqual([[job.id, 'blackout-1', 'manual', 'queued']]);
    const [done] = await bed.waitForJobs((all) => all[0]?.id === job.id && all[0].state === 'succeeded', 30_000);
    expect(done!.startedAt!.getTime()).toBeGreaterThanOrEqual(blackoutEnd.getTime());
    expect(done!.startedAt!.getTime() - blackoutEnd.getTime()).toBeLessThan(1_500);
    expect(done!.requestedBy).toBe('alice');
  }, 60_000);

  it('catches up a run missed while the daemon was down exactly once, however many slots it missed', async () => {
    const dayMs = 24 * 3_600_000;
    const twoDaysAgo = new Date(Date.now() - 2 * dayMs - 60_000);
    // Daily at 04:00:00 UTC; created (and last backed up) more than two days ago: two or three slots missed.
    const missed = await bed.addClient('catchup-1', S1, dataS1, { schedule: '0 0 4 * * *', createdAt: twoDaysAgo });
    await bed.db.prisma.job.create({ data: { clientId: missed, clientName: 'catchup-1', kind: 'backup', state: 'succeeded', trigger: 'schedule', queuedAt: twoDaysAgo, finishedAt: twoDaysAgo } });
    // Backed up after its latest slot: nothing missed.
    const current = await bed.addClient('catchup-2', S2, dataS2, { schedule: '0 0 4 * * *', createdAt: twoDaysAgo });
    await bed.db.prisma.job.create({ data: { clientId: current, clientName: 'catchup-2', kind: 'backup', state: 'succeeded', trigger: 'manual', queuedAt: new Date(), finishedAt: new Date() } });

    const lastSlot = new Date(Date.now() - ((Date.now() - 4 * 3_600_000) % dayMs));
    const first = await bed.start();
    const jobs = await bed.waitForJobs((all) => all.some((j) => j.trigger === 'catch-up' && j.state === 'succeeded'), 30_000);
    const catchUps = jobs.filter((j) => j.trigger === 'catch-up');
    expect(catchUps.map((j) => j.clientName)).toEqual(['catchup-1']);
    const queued = await bed.db.prisma.jobTransition.findFirstOrThrow({ where: { jobId: catchUps[0]!.id, state: 'queued' } });
    expect(queued.detail).toBe(`missed slot ${lastSlot.toISOString()}`);
    await first.stop();

    // Down and up again: the missed slot is covered now; no second catch-up.
    const second = await bed.start();
    await sleep(1_000);
    expect(await bed.db.prisma.job.count({ where: { trigger: 'catch-up' } })).toBe(1);
    expect(second.status().queued).toEqual([]);
    expect(second.status().running).toEqual([]);
    expect(second.status().scheduled.map((s) => [s.client, s.next])).toEqual([
      ['catchup-1', new Date(lastSlot.getTime() + dayMs).toISOString()],
      ['catchup-2', new Date(lastSlot.getTime() + dayMs).toISOString()],
    ]);
  }, 60_000);

  it('hands every line of a job to its log sink and the job-log events, and stores the log path and its SHA-256', async () => {
    await bed.addClient('logged', S1, dataS1);
    const events: string[] = [];
    const progress: number[] = [];
    let sinkLines: string[] = [];
    const logPath = path.join(bed.tmp, 'job.log');
    const daemon = await bed.start({}, {
      openJobLog: () => {
        sinkLines = [];
        fs.writeFileSync(logPath, '');
        return {
          path: logPath,
          write: (line) => {
            sinkLines.push(line);
            fs.appendFileSync(logPath, `${line}\n`);
          },
          finish: async () => createHash('sha256').update(fs.readFileSync(logPath)).digest('hex'),
        };
      },
    });
    const levels = new Set<string>();
    daemon.events.on('job-log', ({ line, level }) => {
      events.push(line);
      levels.add(level);
    });
    daemon.events.on('job-progress', ({ progress: p }) => progress.push(p.bytesScanned));
    const job = await daemon.runNow('logged');
    const [done] = await bed.waitForJobs((all) => all[0]?.id === job.id && all[0].state === 'succeeded', 30_000);
    expect(done!.logPath).toBe(logPath);
    expect(done!.logSha256).toBe(createHash('sha256').update(fs.readFileSync(logPath)).digest('hex'));
    expect(events).toEqual(sinkLines);
    expect(sinkLines[0]).toBe(`job ${job.id}: backup of client "logged" (manual): paths ${dataS1}`);
    expect(sinkLines[1]).toBe(`connecting to ${S1}@127.0.0.1:${bed.sshd.port}`);
    expect(sinkLines).toContain('running the probe: walking, chunking and sending');
    expect(sinkLines).toContain('the probe sent everything; saving the trees and the snapshot');
    expect(sinkLines.find((l) => l.startsWith('snapshot '))).toMatch(/^snapshot [0-9a-f]{8} saved: 2 files, 3 directories, 293\.0 KiB \(293\.0 KiB read on the client\); /);
    expect(sinkLines.at(-1)).toMatch(new RegExp(`^job ${job.id} succeeded after \\d+\\.\\d s$`));
    expect(progress.length).toBeGreaterThan(0);
    expect([...levels]).toEqual(['INFO']);
  });

  it('a second backup of a client takes PREVIOUS from the digest the first one cached in the state directory', async () => {
    await bed.addClient('cached', S1, dataS1);
    const daemon = await bed.start();
    const lines: string[] = [];
    daemon.events.on('job-log', ({ line }) => lines.push(line));
    const cacheDir = path.join(bed.stateDir, 'cache', 'previous');
    const digest = previousCachePath(cacheDir, daemon.repository.keys, 'cached');
    // Written just after the job has ended (the runner's afterEnd), not as part of it: wait until
    // the file describes the job's snapshot (decoding throws while it is missing or older).
    const describes = (snapshotId: string) => vi.waitFor(() => decodePreviousCache(daemon.repository.keys, fs.readFileSync(digest), 'cached', snapshotId), { timeout: 5_000 });
    const first = await daemon.runNow('cached');
    const [firstRow] = await bed.waitForJobs((all) => all[0]?.id === first.id && all[0].state === 'succeeded', 30_000);
    const firstSnapshot = lines.find((l) => l.startsWith('snapshot '))!.split(' ')[1]!;
    await describes(firstRow!.snapshotId!);
    lines.length = 0;
    const second = await daemon.runNow('cached');
    const [secondRow] = await bed.waitForJobs((all) => all[0]?.id === second.id && all[0].state === 'succeeded', 30_000);
    expect(lines.find((l) => l.startsWith('previous snapshot '))).toMatch(new RegExp(`^previous snapshot ${firstSnapshot}: \\d+ record\\(s\\) and \\d+ known chunk\\(s\\), from the cached digest$`));
    await describes(secondRow!.snapshotId!);

    // Once the client is removed, the daemon's daily housekeeping deletes its digest (when it is
    // over an hour old), and leaves the files of registered clients alone.
    const other = previousCachePath(cacheDir, daemon.repository.keys, 'still-here');
    await bed.addClient('still-here', S2, dataS2);
    fs.copyFileSync(digest, other);
    const dayAgo = new Date(Date.now() - 86_400_000);
    for (const f of [digest, other]) fs.utimesSync(f, dayAgo, dayAgo);
    await new ClientStore(bed.db.prisma).remove('cached');
    await daemon.applyRetention();
    // (Other tests of this file leave digests of their own clients here, younger than an hour.)
    expect(fs.existsSync(digest)).toBe(false);
    expect(fs.existsSync(other)).toBe(true);
  });

  it('a digest that cannot be written after its job is a warning in the daemon\'s log: the job succeeded and its sealed log is untouched', async () => {
    await bed.addClient('unwritable', S1, dataS1);
    // A file where the cache directory belongs: creating the digest fails.
    const cacheDir = path.join(bed.stateDir, 'cache', 'previous');
    const aside = `${cacheDir}.aside`;
    fs.renameSync(cacheDir, aside);
    fs.writeFileSync(cacheDir, 'not a directory');
    const logFile = path.join(bed.stateDir, 'unwritable-daemon.log');
    try {
      const daemon = await bed.start({ logLevel: 'warn', logFile });
      const job = await daemon.runNow('unwritable');
      const [row] = await bed.waitForJobs((all) => all[0]?.id === job.id && all[0].state === 'succeeded', 30_000);
      const warning = `after job ${job.id}: warning: the digest of this snapshot could not be cached (`;
      await vi.waitFor(() => expect(fs.readFileSync(logFile, 'utf8')).toContain(warning), { timeout: 5_000 });
      expect(fs.readFileSync(logFile, 'utf8')).toContain('); the next backup reads its trees instead');
      expect(fs.readFileSync(row!.logPath!, 'utf8')).not.toContain('could not be cached');
    } finally {
      fs.rmSync(cacheDir, { force: true });
      fs.renameSync(aside, cacheDir);
    }
  });

  it('refuses a bad schedule in the database with a clear log line and schedules the other clients', async () => {
    await bed.addClient('bad-cron', S1, dataS1, { schedule: '61 * * * *' });
    await bed.addClient('good-cron', S2, dataS2, { schedule: '0 0 4 * * *', createdAt: new Date() });
    const logFile = path.join(bed.tmp, 'bad-cron.log');
    const daemon = await bed.start({ logFile, logLevel: 'info' });
    expect(daemon.status().scheduled.map((s) => s.client)).toEqual(['good-cron']);
    await daemon.stop();
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; client?: string });
    expect(lines.filter((l) => l.level >= 50).map((l) => [l.client, l.msg])).toEqual([
      ['bad-cron', 'the schedule of client "bad-cron" "61 * * * *" is not a valid cron expression (Constraint error, got value 61 expected range 0-59). Use 5 fields (minute hour day-of-month month day-of-week), e.g. "0 3 * * *" for 03:00 every day, or 6 with seconds first. The client is not scheduled until that is fixed.'],
    ]);
  });
});
