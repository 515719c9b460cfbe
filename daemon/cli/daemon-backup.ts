// `haul backup` on a server whose daemon runs: the backup becomes one of the daemon's jobs, so it
// waits behind that client's running job instead of racing it, has its job log and audit line,
// shows in the console, and uses the daemon's open repository and database (no passphrase here,
// no start-up cost); this command follows the job to its end. Without a daemon (or with
// --no-daemon) backup.ts runs the backup in this process.
import * as os from 'node:os';
import type { Command } from 'commander';
import type { BusClient, EventSubscription } from '../../shared/bus/bus-client.js';
import { cancelTimeoutMs, isTerminalJobState, jobTopicPrefix, type Job } from '../../shared/bus/messages.js';
import { displayText, formatDuration } from '../../shared/display.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import { shortId } from '../repository/snapshot.js';
import { busNamed, connectToDaemon, type BusOptions } from './bus.js';
import { jobCounts, jobTitle } from './job-lines.js';
import { createProgress } from './progress.js';

export interface DaemonBackupOptions extends BusOptions {
  json?: boolean;
  quiet?: boolean;
}

/**
 * Asks the daemon to back up `client` now and follows the job. Resolves to undefined, having done
 * nothing, when no daemon listens on this state directory's bus and none was named (--bus,
 * HAUL_BUS): the caller then backs up in this process.
 */
export async function backupThroughDaemon(cmd: Command, client: string, opts: DaemonBackupOptions): Promise<Job | undefined> {
  const named = busNamed(opts);
  let bus: BusClient;
  try {
    bus = await connectToDaemon(cmd, opts);
  } catch (err) {
    if (!named && isHaulError(err, 'DaemonNotRunning')) return undefined;
    throw err;
  }
  try {
    // Subscribed before the job exists: none of its log lines or states can be missed, however
    // fast it runs (the job's own topic is known only from run-now's answer).
    const subscription = await bus.subscribe({ topics: [jobTopicPrefix] });
    try {
      const { job: queued } = await bus.request('run-now', { client, requestedBy: requester() });
      const job = await followJob(bus, subscription, queued, opts);
      report(job, bus.endpoint, opts);
      return job;
    } finally {
      subscription.close();
    }
  } finally {
    bus.close();
  }
}

/** Who asked, for the job's record and the audit trail: "alice with haul backup". */
function requester(): string {
  let user = 'someone';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry for this uid (a container): the bus peer still names the connection.
  }
  return `${user} with haul backup`.replace(/\p{Cc}/gu, '?').slice(0, 128);
}

async function followJob(bus: BusClient, subscription: EventSubscription, queued: Job, opts: DaemonBackupOptions): Promise<Job> {
  const quiet = opts.quiet || opts.json;
  if (!quiet) process.stderr.write(`backup of ${displayText(queued.clientName ?? '')} runs as job ${queued.id} of the Haul daemon at ${bus.endpoint}${queued.state === 'queued' ? '' : ` (${queued.state})`}; Ctrl-C cancels it\n`);
  const progress = createProgress(`backup ${queued.clientName ?? ''}`, { quiet: Boolean(quiet), bytes: true });
  let cancelling = false;
  const cancel = () => {
    // A second Ctrl-C leaves at once; the daemon goes on stopping the job.
    if (cancelling) process.exit(130);
    cancelling = true;
    if (!quiet) process.stderr.write(`cancelling job ${queued.id}… (Ctrl-C again leaves without waiting)\n`);
    bus.request('cancel', { jobId: queued.id, requestedBy: requester() }, { timeoutMs: cancelTimeoutMs }).catch((err: unknown) => {
      process.stderr.write(`haul: could not cancel job ${queued.id}: ${(err as Error).message}\n`);
      subscription.close();
    });
  };
  process.on('SIGINT', cancel);
  process.on('SIGTERM', cancel);
  try {
    if (isTerminalJobState(queued.state)) return queued;
    // Every job's events come (the topic is a prefix); only this one's count.
    for await (const event of subscription) {
      if (event.type === 'job-progress' && event.jobId === queued.id) {
        progress.update(Number(event.bytesScanned), undefined, event.currentPath ?? '');
      } else if (event.type === 'job-log' && event.jobId === queued.id) {
        if (!quiet) process.stderr.write(`${displayText(event.line.slice(event.line.indexOf(' ') + 1))}\n`);
      } else if (event.type === 'job-state' && event.job.id === queued.id && isTerminalJobState(event.job.state)) {
        return event.job;
      }
    }
    throw new HaulError('DaemonNotRunning', `the Haul daemon at ${bus.endpoint} stopped sending news of job ${queued.id} before it ended; \`haul jobs --client ${queued.clientName ?? ''}\` shows how it ended.`);
  } finally {
    progress.stop();
    process.off('SIGINT', cancel);
    process.off('SIGTERM', cancel);
  }
}

/** Prints the outcome as the in-process backup does, or throws it as the error that sets the exit code. */
function report(job: Job, endpoint: string, opts: DaemonBackupOptions): void {
  const name = displayText(job.clientName ?? '');
  if (job.state !== 'succeeded') {
    throw new HaulError('JobFailed', `job ${job.id} (${jobTitle(job)}) ${job.state}${job.failureCause ? ` (${job.failureCause})` : ''}${job.failureMessage ? `: ${displayText(job.failureMessage)}` : ''}`);
  }
  const took = job.startedAt && job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.startedAt) : undefined;
  if (opts.json) process.stdout.write(`${JSON.stringify({ via: 'daemon', daemon: endpoint, job }, null, 2)}\n`);
  else process.stdout.write(`snapshot ${shortId(job.snapshotId ?? '')} saved for client ${name} by job ${job.id} of the daemon\n  ${jobCounts(job)}${took !== undefined ? `; ${formatDuration(took)}` : ''}\n`);
  if (job.errors > 0) {
    throw new HaulError('IncompleteSnapshot', `the snapshot ${shortId(job.snapshotId ?? '')} was saved, but ${job.errors} item(s) could not be read on the client (the job's log names them: \`haul log ${job.id}\`).`);
  }
}
