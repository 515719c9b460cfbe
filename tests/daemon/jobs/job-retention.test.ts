// Job retention on both databases: rows that ended before the cutoff go with their transitions
// and their log files; newer rows, running or queued jobs (however old), files outside logs/ and
// the logs of kept jobs stay. Real JobLog files in a real state directory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../daemon/database/open-database.js';
import { JobLog } from '../../../daemon/jobs/job-log.js';
import { deleteJobsOlderThan } from '../../../daemon/jobs/job-retention.js';
import { JobStore } from '../../../daemon/jobs/job-store.js';
import { testDatabases } from '../../helpers/test-databases.js';

const databases = testDatabases('job-retention');
const day = 86_400_000;

for (const dbCase of databases) {
  describe.skipIf(dbCase.skip !== undefined)(`job retention on ${dbCase.name}${dbCase.skip ? ` (skipped: ${dbCase.skip})` : ''}`, () => {
    let db: Database;
    let stateDir: string;

    beforeAll(async () => {
      db = await dbCase.open();
      stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-retention-'));
    }, 60_000);
    afterAll(async () => {
      await db?.close();
      if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    });

    /** A job that ended `ageDays` ago, with a real log file dated then. */
    async function endedJob(store: JobStore, ageDays: number, state: 'succeeded' | 'failed' = 'succeeded'): Promise<{ id: number; log: string }> {
      const at = new Date(Date.now() - ageDays * day);
      const job = await store.create({ clientId: null, clientName: 'web1', trigger: 'schedule' });
      const log = JobLog.create({ stateDir, jobId: job.id, date: at });
      log.info('a line');
      const seal = log.finish();
      fs.utimesSync(seal.path, at, at);
      await store.attachLog(job.id, seal.path);
      await store.finish(job.id, state === 'succeeded' ? { state, logSha256: seal.sha256 } : { state, cause: 'unreachable', message: 'no route', logSha256: seal.sha256 });
      await db.prisma.job.update({ where: { id: job.id }, data: { finishedAt: at, queuedAt: at } });
      return { id: job.id, log: seal.path };
    }

    it('deletes the jobs that ended before the cutoff, their transitions and their logs, and nothing else', async () => {
      const store = new JobStore(db.prisma);
      const old = [await endedJob(store, 400), await endedJob(store, 380, 'failed')];
      const kept = await endedJob(store, 10);
      // Queued long ago and still open (another daemon's, say): never deleted.
      const open = await store.create({ clientId: null, clientName: 'web1', trigger: 'manual' });
      await db.prisma.job.update({ where: { id: open.id }, data: { queuedAt: new Date(Date.now() - 500 * day) } });
      // A row pointing outside logs/ must not make retention delete that file.
      const outside = path.join(stateDir, 'not-a-log.txt');
      fs.writeFileSync(outside, 'keep me');
      const odd = await endedJob(store, 390);
      await db.prisma.job.update({ where: { id: odd.id }, data: { logPath: outside } });
      // A log whose row was deleted by hand, as old as the cutoff: removed with the rest.
      const orphan = JobLog.create({ stateDir, jobId: 9999, date: new Date(Date.now() - 400 * day) });
      orphan.info('orphan');
      const orphanPath = orphan.finish().path;
      const oldTime = new Date(Date.now() - 400 * day);
      fs.utimesSync(orphanPath, oldTime, oldTime);

      const result = await deleteJobsOlderThan(db.prisma, stateDir, new Date(Date.now() - 365 * day));

      expect(result.jobs.sort((a, b) => a - b)).toEqual([old[0]!.id, old[1]!.id, odd.id]);
      // The two old logs by their rows, the orphan and the odd job's real log by age.
      expect(result.logs).toBe(4);
      expect((await db.prisma.job.findMany({ orderBy: { id: 'asc' }, select: { id: true } })).map((j) => j.id)).toEqual([kept.id, open.id]);
      expect(await db.prisma.jobTransition.count({ where: { jobId: { in: [old[0]!.id, old[1]!.id, odd.id] } } })).toBe(0);
      expect(old.map((j) => fs.existsSync(j.log))).toEqual([false, false]);
      expect([fs.existsSync(kept.log), fs.existsSync(outside), fs.existsSync(orphanPath), fs.existsSync(odd.log)]).toEqual([true, true, false, false]);

      // Run again: nothing left to do.
      expect(await deleteJobsOlderThan(db.prisma, stateDir, new Date(Date.now() - 365 * day))).toEqual({ jobs: [], logs: 0, logBytes: 0 });
    }, 60_000);
  });
}
