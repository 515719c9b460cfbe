import type { Command } from 'commander';
import { isTerminalJobState, jobTopic, type Job } from '../../../shared/bus/messages.js';
import { HaulError } from '../../../shared/errors.js';
import { addBusOptions, connectToDaemon, type BusOptions } from '../bus.js';
import { eventLine, jobLine } from '../job-lines.js';

function parseJobId(value: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(value)) throw new HaulError('InvalidArgument', `--job takes a job number such as 12, not ${JSON.stringify(value)}; \`haul status\` lists running and queued jobs.`);
  return Number(value);
}

/** A followed job has ended: success is exit 0, anything else an error naming the outcome. */
function jobEnded(job: Job): void {
  if (job.state !== 'succeeded') throw new HaulError('JobFailed', `job ${job.id} (${job.kind}${job.clientName ? ` of ${job.clientName}` : ''}) ${job.state}${job.failureMessage ? `: ${job.failureMessage}` : ''}`);
}

export function registerWatch(program: Command): void {
  addBusOptions(program.command('watch'))
    .description("print the daemon's events (job states, progress, log lines) as they happen, until Ctrl-C")
    .option('--job <id>', 'follow one job; exit when it ends: 0 if it succeeded, 1 if not', parseJobId)
    .option('--json', 'print each event as one line of JSON')
    .action(async (opts: BusOptions & { job?: number; json?: boolean }, cmd: Command) => {
      const bus = await connectToDaemon(cmd, opts);
      try {
        // Subscribe first, then read the job: a change between the two cannot be missed.
        const subscription = await bus.subscribe({ topics: opts.job !== undefined ? [jobTopic(opts.job)] : [''] });
        const stop = () => subscription.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          process.stderr.write(`watching the Haul daemon at ${bus.endpoint}${opts.job !== undefined ? `, job ${opts.job}` : ''} (Ctrl-C to stop)\n`);
          if (opts.job !== undefined) {
            const [job] = (await bus.request('list-jobs', { ids: [opts.job] })).jobs;
            if (!job) throw new HaulError('InvalidArgument', `there is no job ${opts.job}; \`haul status\` lists running and queued jobs.`);
            if (!opts.json) process.stdout.write(`${jobLine(job)}\n`);
            if (isTerminalJobState(job.state)) return jobEnded(job);
          }
          let lastCounts = '';
          for await (const event of subscription) {
            if (opts.json) {
              process.stdout.write(`${JSON.stringify(event)}\n`);
            } else if (event.type === 'daemon-status') {
              // The heartbeat comes every 10 s; it is news only when the numbers change.
              const counts = `${event.status.running.length}/${event.status.queuedTotal}`;
              if (counts !== lastCounts) process.stdout.write(`${eventLine(event)}\n`);
              lastCounts = counts;
            } else {
              process.stdout.write(`${eventLine(event)}\n`);
            }
            if (opts.job !== undefined && event.type === 'job-state' && event.job.id === opts.job && isTerminalJobState(event.job.state)) return jobEnded(event.job);
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          subscription.close();
        }
      } finally {
        bus.close();
      }
    });
}
