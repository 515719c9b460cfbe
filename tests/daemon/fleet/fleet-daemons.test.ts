// Two `haul daemon` processes on one real PostgreSQL database and one repository, backing up
// real sshd clients: every scheduled slot runs exactly once fleet-wide, and after kill -9 of the
// daemon running a job, the other takes the job over once its lease expires and finishes the
// work, reusing what had arrived; the repository checks clean. An idle daemon takes backups that
// wait in another daemon's queue, and a daemon whose lease was taken over stops its job, joins
// again and goes on. Check schedules, too, fire once per slot fleet-wide.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobStore } from '../../../daemon/jobs/job-store.js';
import { terminalJobStates } from '../../../shared/jobs.js';
import { haul, haulSync } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { createFleetTestbed, onceAt, pollUntil, type FleetTestbed } from '../../helpers/fleet-testbed.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { openTestRepository } from '../../helpers/repo.js';
import { slowLink } from '../../helpers/slow-link.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const users = ['haul-t-flt-u1', 'haul-t-flt-u2', 'haul-t-flt-u3', 'haul-t-flt-u4'];
const skip = sshdSkipReason() ?? postgresSkipReason();
const MiB = 1024 * 1024;
// Short leases, so a dead daemon is taken over within seconds.
const leaseArgs = { HAUL_LEASE: '15s', HAUL_HEARTBEAT: '1s' };

describe.skipIf(skip !== undefined)(`two daemons on one PostgreSQL${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: FleetTestbed;

  beforeAll(async () => {
    bed = await createFleetTestbed('fleet', users);
  }, 180_000);
  afterAll(async () => {
    await bed?.close();
  });

  const jobsSummary = async () => JSON.stringify((await bed.db.prisma.job.findMany({ orderBy: { id: 'asc' } })).map((j) => [j.id, j.clientName, j.state, j.daemonId, j.failureCause, j.failureMessage]));

  it('runs 200 scheduled jobs exactly once each across two daemon processes', async () => {
    const clients = 200;
    const ids: number[] = [];
    for (let i = 0; i < clients; i++) {
      const user = bed.users[i % bed.users.length]!;
      const dir = bed.writeData(user, `c${i}`, { 'a.txt': Buffer.from(`client ${i}\n`), 'b.bin': pseudoRandom(`fleet-${i}`, 4096) });
      ids.push(await bed.addClient(`fleet-${i}`, user, dir));
    }
    // The slots start 40 s from now (time for both daemons to start on a loaded machine; a
    // daemon that starts late catches the slots up, once each all the same), ten a second.
    const first = new Date(Math.ceil(Date.now() / 1000) * 1000 + 40_000);
    for (const [i, id] of ids.entries()) {
      await bed.db.prisma.client.update({ where: { id }, data: { schedule: onceAt(new Date(first.getTime() + Math.floor(i / 10) * 1000)) } });
    }
    const a = bed.startDaemon('fleet-a', ['--max-jobs', '4'], leaseArgs);
    const b = bed.startDaemon('fleet-b', ['--max-jobs', '4'], leaseArgs);
    const ended = await pollUntil(
      async () => {
        const done = await bed.db.prisma.job.count({ where: { state: { in: [...terminalJobStates] } } });
        return done >= clients ? done : undefined;
      },
      300_000,
      jobsSummary,
    );
    // Nothing more comes: a late duplicate would show up within a few heartbeats.
    await new Promise((r) => setTimeout(r, 3_000));
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect([await a.exit, await b.exit, a.stderr(), b.stderr()]).toEqual([{ code: 0, signal: null }, { code: 0, signal: null }, '', '']);

    const jobs = await bed.db.prisma.job.findMany({ where: { clientName: { startsWith: 'fleet-' } } });
    expect(ended).toBe(clients);
    expect(jobs.length).toBe(clients);
    expect(jobs.filter((j) => j.state === 'succeeded' && ['schedule', 'catch-up'].includes(j.trigger)).length, await jobsSummary()).toBe(clients);
    expect(new Set(jobs.map((j) => j.clientName)).size).toBe(clients);
    expect(await bed.db.prisma.scheduleSlot.count()).toBe(clients);
    // Each job's snapshot is in the repository, and no other.
    const repo = await openTestRepository(bed.repoDir);
    const snapshots = await repo.listSnapshots({});
    await repo.close();
    expect(snapshots.length).toBe(clients);
    expect(new Set(snapshots.map((s) => s.id))).toEqual(new Set(jobs.map((j) => j.snapshotId)));
    const byDaemon = { 'fleet-a': jobs.filter((j) => j.daemonId === 'fleet-a').length, 'fleet-b': jobs.filter((j) => j.daemonId === 'fleet-b').length };
    expect(byDaemon['fleet-a'] + byDaemon['fleet-b']).toBe(clients);
    console.info(`200 slots: ${JSON.stringify(byDaemon)} jobs per daemon, ${jobs.filter((j) => j.trigger === 'catch-up').length} caught up`);
    // Both left the fleet on SIGTERM.
    expect(await bed.db.prisma.fleetDaemon.count()).toBe(0);
  }, 420_000);

  it('kill -9 of the daemon running a job: the other takes it over after the lease expires and finishes the work, check --read-data is clean', async () => {
    const dataBytes = 40 * MiB;
    const user = bed.users[0]!;
    const dir = bed.writeData(user, 'big', { 'one.bin': pseudoRandom('fleet-big-1', dataBytes / 2), 'two.bin': pseudoRandom('fleet-big-2', dataBytes / 2) });
    // 8 MiB/s: the backup takes about 5 s, long enough to kill its daemon in the middle.
    const link = await slowLink(bed.sshd.port, 8 * MiB);
    try {
      const slot = new Date(Math.ceil(Date.now() / 1000) * 1000 + 12_000);
      const clientId = await bed.addClient('big', user, dir, { schedule: onceAt(slot), port: link.port });
      const daemons = [bed.startDaemon('kill-a', [], leaseArgs), bed.startDaemon('kill-b', [], leaseArgs)];
      // Killed once the run has stored a first pack (16 MiB), so there is something to reuse.
      const packBytes = () => fs.readdirSync(path.join(bed.repoDir, 'packs'), { withFileTypes: true, recursive: true }).filter((e) => e.isFile() && !e.name.startsWith('.tmp-')).reduce((sum, e) => sum + fs.statSync(path.join(e.parentPath, e.name)).size, 0);
      const packsBefore = packBytes();
      const running = await pollUntil(
        async () => {
          const job = await bed.db.prisma.job.findFirst({ where: { clientId, state: 'transferring' } });
          return job && packBytes() > packsBefore ? job : undefined;
        },
        90_000,
        jobsSummary,
      );
      const storedBeforeKill = packBytes() - packsBefore;
      const victim = daemons.find((d) => d.id === running.daemonId)!;
      const survivor = daemons.find((d) => d !== victim)!;
      victim.child.kill('SIGKILL');
      expect((await victim.exit).signal).toBe('SIGKILL');

      const retry = await pollUntil(
        async () => (await bed.db.prisma.job.findFirst({ where: { clientId, retryOfId: running.id, state: { in: [...terminalJobStates] } } })) ?? undefined,
        120_000,
        jobsSummary,
      );
      const taken = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: running.id } });
      expect([taken.state, taken.failureCause]).toEqual(['failed', 'daemon-restart']);
      expect(taken.failureMessage).toMatch(new RegExp(`^daemon ${victim.id} on .+ stopped renewing its lease \\(last heartbeat .+, lease ran out .+\\) while this job was transferring; daemon ${survivor.id} took it over and queues it once more\\. No snapshot was written; the data it had stored is kept and the next run reuses it\\.$`));
      expect([retry.state, retry.trigger, retry.attempt, retry.daemonId], await jobsSummary()).toEqual(['succeeded', 'retry', 2, survivor.id]);
      // The retry reused what the killed run had stored: it stored only the rest (pack headers
      // and encryption make the packs a little larger than the data they hold).
      expect(Number(retry.bytesNew), JSON.stringify({ storedBeforeKill })).toBeLessThanOrEqual(dataBytes - storedBeforeKill + MiB);
      expect(await bed.db.prisma.job.count({ where: { clientId } })).toBe(2);

      survivor.child.kill('SIGTERM');
      expect(await survivor.exit).toEqual({ code: 0, signal: null });
      const check = await haul(['check', '--read-data'], bed.env);
      expect({ status: check.status, last: check.stdout.trim().split('\n').at(-1) }, check.stderr).toMatchObject({ status: 0, last: expect.stringMatching(/: no errors$/) });
      const target = path.join(bed.tmp, 'restored');
      const restore = haulSync(['restore', `${retry.snapshotId}:${dir}`, '--target', target], bed.env);
      expect(restore.status, restore.stderr).toBe(0);
      for (const name of ['one.bin', 'two.bin']) {
        const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
        expect(sha(path.join(target, name))).toBe(sha(path.join(dir, name)));
      }
    } finally {
      link.close();
    }
  }, 300_000);

  it('an idle daemon takes the backups another daemon queued but cannot start yet; each runs once', async () => {
    // Daemon A runs one job at a time and is held for about 20 s by a big client on a 2 MiB/s
    // link; four small clients queue behind it. Daemon B starts only after A queued them all
    // (so A fired every slot): without taking them, B would run nothing.
    const user = bed.users[1]!;
    const link = await slowLink(bed.sshd.port, 2 * MiB);
    try {
      const slot = new Date(Math.ceil(Date.now() / 1000) * 1000 + 10_000);
      const big = await bed.addClient('adopt-big', user, bed.writeData(user, 'adopt-big', { 'big.bin': pseudoRandom('adopt-big', 40 * MiB) }), { schedule: onceAt(slot), port: link.port });
      const small: number[] = [];
      for (let i = 0; i < 4; i++) {
        const dir = bed.writeData(user, `adopt-${i}`, { 'f.txt': Buffer.from(`small ${i}\n`) });
        small.push(await bed.addClient(`adopt-${i}`, user, dir, { schedule: onceAt(new Date(slot.getTime() + 1000)) }));
      }
      const all = [big, ...small];
      const a = bed.startDaemon('adopt-a', ['--max-jobs', '1'], leaseArgs);
      await pollUntil(async () => ((await bed.db.prisma.job.count({ where: { clientId: { in: all } } })) === 5 ? true : undefined), 90_000, jobsSummary);
      const b = bed.startDaemon('adopt-b', ['--max-jobs', '4'], leaseArgs);
      await pollUntil(async () => ((await bed.db.prisma.job.count({ where: { clientId: { in: all }, state: { in: [...terminalJobStates] } } })) === 5 ? true : undefined), 180_000, jobsSummary);
      await new Promise((r) => setTimeout(r, 3_000));
      for (const d of [a, b]) d.child.kill('SIGTERM');
      expect([await a.exit, await b.exit, a.stderr(), b.stderr()]).toEqual([{ code: 0, signal: null }, { code: 0, signal: null }, '', '']);

      const jobs = await bed.db.prisma.job.findMany({ where: { clientId: { in: all } }, orderBy: { id: 'asc' } });
      // Exactly one job per client, every one a success; A fired every slot.
      expect(jobs.map((j) => [j.clientName, j.state]).sort(), await jobsSummary()).toEqual(['adopt-0', 'adopt-1', 'adopt-2', 'adopt-3', 'adopt-big'].map((n) => [n, 'succeeded']));
      expect(await bed.db.prisma.scheduleSlot.count({ where: { clientId: { in: all }, daemonId: 'adopt-a' } })).toBe(5);
      expect(jobs.find((j) => j.clientId === big)!.daemonId).toBe('adopt-a');
      const onB = jobs.filter((j) => j.daemonId === 'adopt-b');
      expect(onB.length, await jobsSummary()).toBeGreaterThanOrEqual(1);
      const takes = fs.readFileSync(b.logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"takes job'));
      for (const j of onB) expect(takes.some((l) => l.includes(`takes job ${j.id} (${j.clientName}), queued by daemon adopt-a at `)), `B's log for job ${j.id}`).toBe(true);
      // A lets go of them while its one place is still busy with the big client.
      const left = fs.readFileSync(a.logFile, 'utf8').split('\n').filter((l) => l.includes('leaves this queue: daemon adopt-b took it'));
      expect(left.length, left.join('\n')).toBeGreaterThanOrEqual(1);
      for (const l of left) expect(onB.some((j) => l.includes(`"msg":"job ${j.id} (${j.clientName}) leaves this queue`))).toBe(true);
    } finally {
      link.close();
    }
  }, 300_000);

  it('a daemon whose lease was taken over stops its running job, joins again and goes on starting jobs', async () => {
    // What another daemon's takeover does to a starved daemon, done here by the test: remove its
    // FleetDaemon row and fail its running job. With --max-jobs 1, a job slot left occupied by
    // the stopped job would keep the small client's backup queued for ever.
    const user = bed.users[2]!;
    const link = await slowLink(bed.sshd.port, 2 * MiB);
    try {
      const slot = new Date(Math.ceil(Date.now() / 1000) * 1000 + 8_000);
      const big = await bed.addClient('lease-big', user, bed.writeData(user, 'lease-big', { 'big.bin': pseudoRandom('lease-big', 60 * MiB) }), { schedule: onceAt(slot), port: link.port });
      const small = await bed.addClient('lease-small', user, bed.writeData(user, 'lease-small', { 'f.txt': Buffer.from('small\n') }), { schedule: onceAt(new Date(slot.getTime() + 2000)) });
      const d = bed.startDaemon('lease-a', ['--max-jobs', '1'], leaseArgs);
      const running = await pollUntil(async () => (await bed.db.prisma.job.findFirst({ where: { clientId: big, state: 'transferring' } })) ?? undefined, 90_000, jobsSummary);
      const message = 'taken over by the test: the lease of lease-a ran out';
      await bed.db.prisma.fleetDaemon.deleteMany({ where: { id: 'lease-a' } });
      await new JobStore(bed.db.prisma).finish(running.id, { state: 'failed', cause: 'daemon-restart', message });
      const smallJob = await pollUntil(async () => (await bed.db.prisma.job.findFirst({ where: { clientId: small, state: { in: [...terminalJobStates] } } })) ?? undefined, 120_000, async () => `${await jobsSummary()}\n${d.logTail(30)}`);
      expect([smallJob.state, smallJob.daemonId], await jobsSummary()).toEqual(['succeeded', 'lease-a']);
      // The job failed by the takeover stays as the takeover wrote it; the daemon is back in the fleet.
      expect(await bed.db.prisma.job.findUniqueOrThrow({ where: { id: running.id } })).toMatchObject({ state: 'failed', failureCause: 'daemon-restart', failureMessage: message });
      expect(await bed.db.prisma.fleetDaemon.count({ where: { id: 'lease-a' } })).toBe(1);
      const log = fs.readFileSync(d.logFile, 'utf8');
      expect(log).toContain('this daemon missed its heartbeats and another daemon took its jobs over; its running jobs are stopped');
      d.child.kill('SIGTERM');
      expect([await d.exit, d.stderr()]).toEqual([{ code: 0, signal: null }, '']);
    } finally {
      link.close();
    }
  }, 300_000);

  it('a check schedule fires once per slot fleet-wide: one daemon queues the check, the other logs that it was fired elsewhere', async () => {
    // Every 4 s; prune off, and a structure-only check, so each check is quick.
    const maintenance = { ...leaseArgs, HAUL_CHECK_SCHEDULE: '*/4 * * * * *', HAUL_CHECK_READ_DATA: 'off', HAUL_PRUNE_SCHEDULE: 'off' };
    const daemons = [bed.startDaemon('check-a', ['--log-level', 'debug'], maintenance), bed.startDaemon('check-b', ['--log-level', 'debug'], maintenance)];
    const checks = () => bed.db.prisma.job.findMany({ where: { kind: 'check' }, include: { transitions: { where: { state: 'queued' } } }, orderBy: { id: 'asc' } });
    // Slots both daemons saw: each logs its start before its timers run, so wait for both logs.
    const started = (d: (typeof daemons)[number]) => fs.existsSync(d.logFile) && fs.readFileSync(d.logFile, 'utf8').includes('haul daemon started');
    const bothSince = await pollUntil(async () => (daemons.every(started) ? new Date() : undefined), 90_000, jobsSummary);
    await pollUntil(
      async () => {
        const done = (await checks()).filter((j) => (terminalJobStates as readonly string[]).includes(j.state) && j.queuedAt > bothSince);
        return done.length >= 4 ? done : undefined;
      },
      120_000,
      jobsSummary,
    );
    // A slot in the moment of the stop may find one daemon already stopping: left out below.
    const stoppedAt = new Date(Date.now() - 1000);
    for (const d of daemons) d.child.kill('SIGTERM');
    for (const d of daemons) expect(await d.exit).toEqual({ code: 0, signal: null });

    const jobs = await checks();
    const slotOf = (j: (typeof jobs)[number]) => /^slot (.+)$/.exec(j.transitions[0]?.detail ?? '')?.[1];
    const slotRows = await bed.db.prisma.maintenanceSlot.findMany({ where: { kind: 'check' }, orderBy: { slot: 'asc' } });
    // One job per recorded slot, queued by the daemon that recorded it; never two for one slot.
    expect(jobs.map(slotOf).sort()).toEqual(slotRows.map((r) => r.slot.toISOString()));
    expect(jobs.map((j) => [slotOf(j), j.daemonId])).toEqual(jobs.map((j) => [slotOf(j), slotRows.find((r) => r.slot.toISOString() === slotOf(j))!.daemonId]));
    expect(jobs.every((j) => j.state === 'succeeded'), await jobsSummary()).toBe(true);
    // Both daemons' timers fired for the slots both ran through: the one that lost logged it.
    const firedElsewhere = (d: (typeof daemons)[number]) =>
      fs.readFileSync(d.logFile, 'utf8').split('\n').filter((l) => l.includes('was fired by another daemon')).map((l) => (JSON.parse(l) as { slot: string }).slot);
    const lost = new Set([...firedElsewhere(daemons[0]!), ...firedElsewhere(daemons[1]!)]);
    const sharedSlots = slotRows.filter((r) => r.slot > bothSince && r.slot < stoppedAt).map((r) => r.slot.toISOString());
    expect(sharedSlots.length).toBeGreaterThanOrEqual(3);
    for (const slot of sharedSlots) expect(lost.has(slot), `slot ${slot} fired by only one daemon`).toBe(true);
    expect(firedElsewhere(daemons[0]!).length + firedElsewhere(daemons[1]!).length).toBe(lost.size);
  }, 300_000);
});
