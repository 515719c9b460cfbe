// Jobs and events as `haul status` and `haul watch` print them: one line each, times in the
// local time zone, and every text that came over the bus escaped (it is data).
import type { BusEvent, Job, JobProgressEvent } from '../../shared/bus/messages.js';
import { displayText, formatBytes, formatCount, formatDuration } from '../../shared/display.js';

const two = (n: number) => String(n).padStart(2, '0');

export function localTime(iso: string): string {
  const d = new Date(iso);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export function localDateTime(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${localTime(iso)}`;
}

/** "backup of web1" */
export function jobTitle(job: Job): string {
  return `${job.kind}${job.clientName ? ` of ${displayText(job.clientName)}` : ''}`;
}

/** "3,456 of 5,000 files, 1.2 GiB scanned, 45.0 MiB new, 12.0 MiB sent, 2 errors" */
export function jobCounts(c: Pick<JobProgressEvent, 'filesTotal' | 'filesDone' | 'bytesScanned' | 'bytesNew' | 'bytesOnWire' | 'errors'>): string {
  const files = c.filesTotal !== '0' ? `${formatCount(BigInt(c.filesDone))} of ${formatCount(BigInt(c.filesTotal))} files` : `${formatCount(BigInt(c.filesDone))} files`;
  const parts = [files, `${formatBytes(Number(c.bytesScanned))} scanned`, `${formatBytes(Number(c.bytesNew))} new`, `${formatBytes(Number(c.bytesOnWire))} sent`];
  if (c.errors > 0) parts.push(`${formatCount(c.errors)} ${c.errors === 1 ? 'error' : 'errors'}`);
  return parts.join(', ');
}

/** What follows the state of a job that ended: ", snapshot 1a2b3c4d" or " (unreachable): why". */
function jobEnding(job: Job): string {
  if (job.state === 'succeeded') return job.snapshotId ? `, snapshot ${job.snapshotId.slice(0, 8)}` : '';
  if (job.state === 'failed' || job.state === 'cancelled') {
    return `${job.failureCause ? ` (${job.failureCause})` : ''}${job.failureMessage ? `: ${displayText(job.failureMessage)}` : ''}`;
  }
  return '';
}

/** One job for `haul status`. */
export function jobLine(job: Job): string {
  if (job.state === 'queued') return `job ${job.id}  ${jobTitle(job)}  queued ${localDateTime(job.queuedAt)} (${job.trigger})`;
  const since = job.startedAt ? `  (started ${localDateTime(job.startedAt)})` : '';
  return `job ${job.id}  ${jobTitle(job)}  ${job.state}${jobEnding(job)}  ${jobCounts(job)}${since}`;
}

/** One event for `haul watch`. */
export function eventLine(event: BusEvent): string {
  const at = localTime(event.at);
  switch (event.type) {
    case 'job-state': {
      const change = event.previousState ? `${event.previousState} -> ${event.job.state}` : `${event.job.state} (${event.job.trigger})`;
      return `${at}  job ${event.job.id}  ${jobTitle(event.job)}: ${change}${jobEnding(event.job)}`;
    }
    case 'job-progress': {
      const rate = event.bytesPerSecond !== null ? `, ${formatBytes(event.bytesPerSecond)}/s` : '';
      const eta = event.etaSeconds !== null ? `, ${formatDuration(event.etaSeconds * 1000)} left` : '';
      return `${at}  job ${event.jobId}  ${jobCounts(event)}${rate}${eta}`;
    }
    case 'job-log':
      // The line as in the log file, without its own timestamp: already escaped, escaped again in case.
      return `${at}  job ${event.jobId}  ${displayText(event.line.slice(event.line.indexOf(' ') + 1))}`;
    case 'daemon-status':
      return `${at}  daemon  ${event.status.running.length} running, ${event.status.queuedTotal} queued`;
  }
}
