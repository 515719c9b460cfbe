import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { describeJobLogVerification, verifyJobLog, type JobLogVerification } from '../../jobs/job-log.js';
import { addBusOptions, connectToDaemon, type BusOptions } from '../bus.js';
import { output, withDatabase } from '../context.js';

function parseJobIds(values: string[]): number[] {
  return values.map((v) => {
    if (!/^[1-9][0-9]{0,9}$/.test(v)) throw new HaulError('InvalidArgument', `${JSON.stringify(v)} is not a job number; \`haul status\` and the web console show job numbers.`);
    return Number(v);
  });
}

/** Prints a job's plain-text log from the database's record of it (the daemon need not run). */
async function printJobLog(cmd: Command, jobArg: string): Promise<void> {
  const [id] = parseJobIds([jobArg]);
  const job = await withDatabase(cmd, (db) => db.prisma.job.findUnique({ where: { id: id! }, select: { logPath: true, state: true } }));
  if (!job) throw new HaulError('InvalidArgument', `there is no job ${id}; \`haul jobs\` lists the recent ones (older ones are deleted with their logs by the job retention).`);
  if (!job.logPath) throw new HaulError('InvalidArgument', `job ${id} has no log (it is ${job.state}; a job gets its log when it starts).`);
  try {
    await pipeline(fs.createReadStream(job.logPath), process.stdout);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HaulError('InvalidArgument', `the log of job ${id} is gone: ${job.logPath} does not exist (deleted by hand, or by the job retention).`);
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw new HaulError('InvalidArgument', `cannot read the log of job ${id} at ${job.logPath}: permission denied. Run this as the daemon's user or a member of its group.`);
    throw err;
  }
}

export function registerLog(program: Command): void {
  const log = program.command('log').description("job logs: `haul log JOB` prints a job's log, `haul log verify JOB…` checks them");

  log
    .command('show <job>', { isDefault: true })
    .description("print a job's plain-text log (the same as `haul log JOB`)")
    .action((jobArg: string, _opts: unknown, cmd: Command) => printJobLog(cmd, jobArg));

  addBusOptions(log.command('verify [jobs...]'))
    .description("check that job logs are unchanged since their jobs ended: each file's SHA-256 against the one the database recorded (asks the daemon), or one file against --sha256")
    .option('--file <path>', 'check this log file instead of asking the daemon')
    .option('--sha256 <hex>', 'with --file: the SHA-256 recorded for it')
    .option('--json', 'print the results as JSON')
    .action(async (jobArgs: string[], opts: BusOptions & { file?: string; sha256?: string; json?: boolean }, cmd: Command) => {
      const results: (JobLogVerification & { jobId?: number })[] = [];
      if (opts.file !== undefined) {
        if (jobArgs.length > 0) throw new HaulError('InvalidArgument', 'give job numbers or --file, not both.');
        if (opts.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.sha256)) throw new HaulError('InvalidArgument', `--sha256 takes 64 hexadecimal digits, not ${JSON.stringify(opts.sha256)}.`);
        results.push(await verifyJobLog(opts.file, opts.sha256 ?? null));
      } else {
        const ids = parseJobIds(jobArgs);
        if (ids.length === 0) throw new HaulError('InvalidArgument', 'name the jobs whose logs to check (e.g. `haul log verify 12 13`), or a file with --file.');
        const bus = await connectToDaemon(cmd, opts);
        let jobs;
        try {
          jobs = (await bus.request('list-jobs', { ids, limit: ids.length })).jobs;
        } finally {
          bus.close();
        }
        for (const id of ids) {
          const job = jobs.find((j) => j.id === id);
          if (!job) throw new HaulError('InvalidArgument', `there is no job ${id}; its record may have been deleted with its log (retention).`);
          if (!job.logPath) results.push({ jobId: id, status: 'not-finished', path: '(no log file recorded)', actual: null });
          else results.push({ jobId: id, ...(await verifyJobLog(job.logPath, job.logSha256)) });
        }
      }
      output(opts.json, results, () => results.map((r) => `${r.jobId !== undefined ? `job ${r.jobId}: ` : ''}${describeJobLogVerification(r)}\n`).join(''));
      const bad = results.filter((r) => r.status !== 'ok').length;
      if (bad > 0) throw new HaulError('JobLogUnverified', `${bad} of ${results.length} job logs could not be verified as unchanged (see above).`);
    });
}
