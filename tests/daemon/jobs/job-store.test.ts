// The job store on both databases Haul supports: a fresh SQLite file and a fresh database of a
// real PostgreSQL server. Every state change must be a Job update plus a JobTransition row,
// progress must reach the database throttled, and recovery must close exactly the jobs a killed
// daemon left open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../daemon/database/open-database.js';
import { JobStore, type JobChange } from '../../../daemon/jobs/job-store.js';
import { testDatabases } from '../../helpers/test-databases.js';

const databases = testDatabases('job-store');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const dbCase of databases) {
  describe.skipIf(dbCase.skip !== undefined)(`job store on ${dbCase.name}${dbCase.skip ? ` (skipped: ${dbCase.skip})` : ''}`, () => {
    let db: Database;
    let clientId: number;

    beforeAll(async () => {
      db = await dbCase.open();
      clientId = (await db.prisma.client.create({ data: { name: 'web1', host: 'web1.example.org', sshUser: 'backup' } })).id;
    }, 60_000);
    afterAll(async () => {
      await db?.close();
    });

    it('records every state change as it happens: Job.state, startedAt, finishedAt and one transition row each', async () => {
      const store = new JobStore(db.prisma, { daemonId: 'd1' });
      const seen: JobChange[] = [];
      store.onChange((c) => seen.push(c));
      const job = await store.create({ clientId, clientName: 'web1', trigger: 'manual', requestedBy: 'alice' });
      expect(job).toMatchObject({ state: 'queued', kind: 'backup', trigger: 'manual', attempt: 1, requestedBy: 'alice', daemonId: 'd1', startedAt: null, finishedAt: null });
      // Fired without awaiting, as the runner does: the store keeps them in order.
      const phases = [store.transition(job.id, 'connecting'), store.transition(job.id, 'pushing-probe'), store.transition(job.id, 'transferring', 'probe x86_64')];
      await Promise.all(phases);
      const running = await store.get(job.id);
      expect(running?.state).toBe('transferring');
      expect(running?.startedAt).toBeInstanceOf(Date);
      const done = await store.finish(job.id, { state: 'succeeded', snapshotId: 'ab'.repeat(32), counters: { filesDone: 12, bytesScanned: 3000, bytesNew: 2000, bytesOnWire: 2100, errors: 1 }, logSha256: 'cd'.repeat(32) });
      expect(done).toMatchObject({ state: 'succeeded', snapshotId: 'ab'.repeat(32), filesDone: 12n, bytesScanned: 3000n, bytesNew: 2000n, bytesOnWire: 2100n, errors: 1, logSha256: 'cd'.repeat(32), failureCause: null });
      expect(done.finishedAt!.getTime()).toBeGreaterThanOrEqual(done.startedAt!.getTime());
      const rows = await store.transitions(job.id);
      expect(rows.map((t) => [t.state, t.detail])).toEqual([
        ['queued', null],
        ['connecting', null],
        ['pushing-probe', null],
        ['transferring', 'probe x86_64'],
        ['succeeded', `snapshot ${'ab'.repeat(32)}`],
      ]);
      expect(seen.map((c) => [c.previousState, c.state])).toEqual([
      [null, 'queued'],
      ['queued', 'connecting'],
      ['connecting', 'pushing-probe'],
      ['pushing-probe', 'transferring'],
      ['transferring', 'succeeded'],
    ]);
      expect(seen.every((c) => c.job.id === job.id)).toBe(true);
    });

    it('refuses a move backwards or out of an ended job, and writes nothing for it', async () => {
      const store = new JobStore(db.prisma);
      const job = await store.create({ clientId, clientName: 'web1', trigger: 'schedule' });
      await store.transition(job.id, 'connecting');
      await store.finish(job.id, { state: 'failed', cause: 'unreachable', message: 'Cannot reach client "web1": connection refused' });
      await expect(store.transition(job.id, 'transferring')).rejects.toThrow(`job ${job.id} is failed and cannot become transferring: a job only moves forward and never leaves succeeded, failed, cancelled.`);
      await expect(store.finish(job.id, { state: 'cancelled', message: 'too late' })).rejects.toThrow(`job ${job.id} is failed and cannot become cancelled`);
      await expect(store.transition(987654, 'connecting')).rejects.toThrow('job 987654 does not exist; `haul jobs` lists the jobs.');
      expect((await store.transitions(job.id)).map((t) => t.state)).toEqual(['queued', 'connecting', 'failed']);
      expect(await store.get(job.id)).toMatchObject({ state: 'failed', failureCause: 'unreachable', failureMessage: 'Cannot reach client "web1": connection refused' });
    });

    it('writes progress at most once per interval, the latest counters winning, and never after the end', async () => {
      const store = new JobStore(db.prisma, { progressIntervalMs: 300 });
      const job = await store.create({ clientId, clientName: 'web1', trigger: 'manual' });
      await store.transition(job.id, 'connecting');
      await store.transition(job.id, 'transferring');
      store.recordProgress(job.id, { bytesScanned: 1, filesDone: 1 });
      await sleep(100);
      // First write happened at once (nothing written before).
      expect((await store.get(job.id))?.bytesScanned).toBe(1n);
      for (let i = 2; i <= 50; i++) store.recordProgress(job.id, { bytesScanned: i, filesDone: i });
      await sleep(50);
      expect((await store.get(job.id))?.bytesScanned).toBe(1n);
      await sleep(350);
      expect(await store.get(job.id)).toMatchObject({ bytesScanned: 50n, filesDone: 50n });
      store.recordProgress(job.id, { bytesScanned: 60 });
      await store.finish(job.id, { state: 'cancelled', message: 'cancelled by alice' });
      // The counters recorded just before the end were flushed by finish, not lost.
      expect(await store.get(job.id)).toMatchObject({ state: 'cancelled', bytesScanned: 60n, failureCause: 'cancelled', failureMessage: 'cancelled by alice' });
      store.recordProgress(job.id, { bytesScanned: 70 });
      await sleep(400);
      expect((await store.get(job.id))?.bytesScanned).toBe(60n);
    });

    it('lists newest first, filtered by client and state', async () => {
      const store = new JobStore(db.prisma);
      const other = await db.prisma.client.create({ data: { name: 'db2', host: 'db2', sshUser: 'backup' } });
      const a = await store.create({ clientId: other.id, clientName: 'db2', trigger: 'schedule' });
      const b = await store.create({ clientId: other.id, clientName: 'db2', trigger: 'retry', attempt: 2, retryOfId: a.id });
      await store.finish(a.id, { state: 'failed', cause: 'connection-lost', message: 'lost' });
      expect((await store.list({ clientName: 'db2' })).map((j) => j.id)).toEqual([b.id, a.id]);
      expect((await store.list({ clientName: 'db2', states: ['queued'] })).map((j) => [j.id, j.attempt, j.retryOfId])).toEqual([[b.id, 2, a.id]]);
      expect((await store.list({ limit: 1 })).map((j) => j.id)).toEqual([b.id]);
      expect((await store.lastQueuedAt()).get(other.id)).toEqual(b.queuedAt);
      await store.finish(b.id, { state: 'cancelled', message: 'test over' });
    });

    it("recovers exactly this daemon's unfinished jobs as failed/daemon-restart, leaving other daemons' running jobs alone", async () => {
      const mine = new JobStore(db.prisma, { daemonId: 'recover-me' });
      const theirs = new JobStore(db.prisma, { daemonId: 'other-daemon' });
      const queued = await mine.create({ clientId, clientName: 'web1', trigger: 'schedule' });
      const transferring = await mine.create({ clientId, clientName: 'web1', trigger: 'manual' });
      await mine.transition(transferring.id, 'connecting');
      await mine.transition(transferring.id, 'transferring');
      const ended = await mine.create({ clientId, clientName: 'web1', trigger: 'manual' });
      await mine.finish(ended.id, { state: 'cancelled', message: 'x' });
      const foreign = await theirs.create({ clientId, clientName: 'web1', trigger: 'manual' });
      await theirs.transition(foreign.id, 'connecting');

      // A new daemon process with the same id starts: a fresh store, as after kill -9.
      const restarted = new JobStore(db.prisma, { daemonId: 'recover-me' });
      const recovered = await restarted.recoverInterruptedJobs();
      expect(recovered.map((j) => [j.id, j.state, j.failureCause])).toEqual([
        [queued.id, 'failed', 'daemon-restart'],
        [transferring.id, 'failed', 'daemon-restart'],
      ]);
      expect(recovered[1]!.failureMessage).toBe('the daemon stopped (killed, crashed or the machine restarted) while this job was transferring. No snapshot was written; the data it had stored is kept and the next run reuses it.');
      expect((await restarted.transitions(transferring.id)).map((t) => t.state)).toEqual(['queued', 'connecting', 'transferring', 'failed']);
      expect((await restarted.get(foreign.id))?.state).toBe('connecting');
      expect((await restarted.get(ended.id))?.state).toBe('cancelled');
      // Idempotent: nothing left to recover.
      expect(await restarted.recoverInterruptedJobs()).toEqual([]);
      await theirs.finish(foreign.id, { state: 'cancelled', message: 'test over' });
    });
  });
}
