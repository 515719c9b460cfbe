// Job history retention: job rows that ended before a cutoff are deleted with their transitions
// (cascade) and their plain-text logs, so the database and logs/ do not grow forever. The daemon
// runs it once a day with its configured age (HAUL_JOB_RETENTION). Running and queued jobs are
// never touched, however old. Logs are removed by the path their row recorded, then
// pruneJobLogs removes what is left of that age (logs of rows deleted by hand, say).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { terminalJobStates } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';
import { jobLogDirectory, pruneJobLogs } from './job-log.js';

export interface JobRetentionResult {
  /** IDs of the job rows deleted. */
  jobs: number[];
  /** Log files deleted. */
  logs: number;
  logBytes: number;
}

// A batch per statement: a large first run does not hold the database's write lock for long.
const BATCH = 500;

export async function deleteJobsOlderThan(prisma: PrismaClient, stateDir: string, cutoff: Date): Promise<JobRetentionResult> {
  const result: JobRetentionResult = { jobs: [], logs: 0, logBytes: 0 };
  const logRoot = jobLogDirectory(stateDir) + path.sep;
  for (;;) {
    const old = await prisma.job.findMany({
      where: { state: { in: [...terminalJobStates] }, finishedAt: { lt: cutoff } },
      select: { id: true, logPath: true },
      orderBy: { id: 'asc' },
      take: BATCH,
    });
    if (old.length === 0) break;
    await prisma.job.deleteMany({ where: { id: { in: old.map((j) => j.id) } } });
    result.jobs.push(...old.map((j) => j.id));
    for (const { logPath } of old) {
      // Only files under logs/: a row edited to point elsewhere must not delete anything else.
      if (!logPath || !path.resolve(logPath).startsWith(logRoot)) continue;
      try {
        const st = fs.lstatSync(logPath);
        if (!st.isFile()) continue;
        fs.unlinkSync(logPath);
        result.logs++;
        result.logBytes += st.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  const leftovers = pruneJobLogs(stateDir, cutoff);
  result.logs += leftovers.removed.length;
  result.logBytes += leftovers.bytes;
  return result;
}
