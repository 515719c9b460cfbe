// `haul jobs`: the recent jobs from the database (the daemon need not run): id, client, kind,
// trigger, state, times, bytes and, for failures, the cause and message.
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { jobStates } from '../../../shared/jobs.js';
import { formatBytes } from '../../../shared/display.js';
import { openDatabase } from '../../database/open-database.js';
import { JobStore, type JobRecord } from '../../jobs/job-store.js';
import { parseCount } from '../../service/daemon-config.js';
import { globalOptions, output, stateDirectory } from '../context.js';

/** A job as JSON: counters as numbers (exact up to 2^53 bytes), times as ISO strings. */
export function jobJson(job: JobRecord): Record<string, unknown> {
  return {
    id: job.id,
    client: job.clientName,
    kind: job.kind,
    trigger: job.trigger,
    attempt: job.attempt,
    retryOf: job.retryOfId,
    state: job.state,
    queuedAt: job.queuedAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    files: Number(job.filesDone),
    bytesScanned: Number(job.bytesScanned),
    bytesNew: Number(job.bytesNew),
    bytesOnWire: Number(job.bytesOnWire),
    bytesStored: Number(job.bytesStored),
    durationMs: job.durationMs,
    errors: job.errors,
    snapshot: job.snapshotId,
    cause: job.failureCause,
    message: job.failureMessage,
    requestedBy: job.requestedBy,
    daemon: job.daemonId,
  };
}

function when(d: Date | null): string {
  return d ? d.toISOString().replace('T', ' ').slice(0, 19) : '-';
}

function took(job: JobRecord): string {
  if (!job.startedAt || !job.finishedAt) return '-';
  const s = (job.finishedAt.getTime() - job.startedAt.getTime()) / 1000;
  return s < 120 ? `${s.toFixed(1)}s` : `${Math.round(s / 60)}m`;
}

function table(jobs: JobRecord[]): string {
  if (jobs.length === 0) return 'no jobs\n';
  const rows = jobs.map((j) => [String(j.id), j.clientName ?? '-', j.kind, j.trigger + (j.attempt > 1 ? ` #${j.attempt}` : ''), j.state, when(j.queuedAt), took(j), formatBytes(Number(j.bytesNew)), formatBytes(Number(j.bytesOnWire)), j.failureCause ?? '']);
  const head = ['ID', 'CLIENT', 'KIND', 'TRIGGER', 'STATE', 'QUEUED (UTC)', 'TOOK', 'NEW', 'WIRE', 'CAUSE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const failures = jobs.filter((j) => j.failureMessage && j.state !== 'succeeded').map((j) => `job ${j.id}: ${j.failureMessage}`);
  return [line(head), ...rows.map(line), ...(failures.length ? ['', ...failures] : [])].join('\n') + '\n';
}

export function registerJobs(program: Command): void {
  program
    .command('jobs')
    .description("list recent jobs from the daemon's database, newest first")
    .option('--client <name>', 'only this client')
    .option('--state <state>', `only jobs in this state (${jobStates.join(', ')}); repeatable`, (v: string, acc: string[]) => [...acc, v], [])
    .option('--limit <n>', 'at most this many (default 20)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { client?: string; state: string[]; limit?: string; json?: boolean }, cmd: Command) => {
      for (const s of opts.state) {
        if (!(jobStates as readonly string[]).includes(s)) throw new HaulError('InvalidArgument', `${JSON.stringify(s)} is not a job state; use one of ${jobStates.join(', ')}.`);
      }
      const db = await openDatabase({ stateDir: stateDirectory(globalOptions(cmd)) });
      try {
        const jobs = await new JobStore(db.prisma).list({
          ...(opts.client !== undefined ? { clientName: opts.client } : {}),
          ...(opts.state.length ? { states: opts.state } : {}),
          limit: opts.limit === undefined ? 20 : parseCount(opts.limit, '--limit'),
        });
        output(opts.json, jobs.map(jobJson), () => table(jobs));
      } finally {
        await db.close();
      }
    });
}
