// A restore onto a client as a daemon job (queued by the bus's `restore` command): the same
// restore-to-client path as `haul restore --to-client`, with the job's phases, progress, log and
// stop signal. What the probe could not restore is listed in the log and counted in the job's
// errors; everything else is restored and verified.
import { formatBytes } from '../../shared/display.js';
import { clientFromRow } from '../database/client-store.js';
import { shortId } from '../repository/snapshot.js';
import type { JobContext, JobOutcome } from './job-context.js';
import { runRestoreToClientJob } from './restore-to-client-job.js';

/** What to restore, resolved when the job was queued (the snapshot's full ID). */
export interface RestoreRequest {
  snapshotId: string;
  /** The path in the snapshot, `/` for all of it. */
  path: string;
  /** An absolute directory on the target client (the job's client). */
  target: string;
  overwrite: boolean;
}

export function describeRestore(request: RestoreRequest, clientName: string): string {
  return `restore of snapshot ${shortId(request.snapshotId)}:${request.path} onto ${clientName}:${request.target}${request.overwrite ? ' (overwriting)' : ''}`;
}

export async function runRestoreJob(ctx: JobContext, request: RestoreRequest): Promise<JobOutcome> {
  const { job, log } = ctx;
  const client = clientFromRow(ctx.client);
  log(`job ${job.id}: ${describeRestore(request, client.name)} (${job.trigger}${job.requestedBy ? `, requested by ${job.requestedBy}` : ''})`);
  const snapshot = await ctx.repo.findSnapshot(request.snapshotId);
  ctx.phase('connecting');
  log(`connecting to ${client.user}@${client.host}:${client.port}`);
  let transferring = false;
  const result = await runRestoreToClientJob({
    repo: ctx.repo,
    snapshot,
    subpath: request.path,
    client,
    identity: ctx.identity,
    probeDir: ctx.probeDir,
    target: request.target,
    overwrite: request.overwrite,
    timeouts: { connectMs: ctx.connectTimeoutMs },
    signal: ctx.signal,
    pinHostKey: (fingerprint) => ctx.pinHostKey(fingerprint),
    onLog: (line) => log(line),
    onProgress: (p) => {
      if (!transferring) {
        transferring = true;
        ctx.phase('transferring');
      }
      ctx.progress({ filesDone: p.files, bytesScanned: p.bytes, bytesNew: 0, bytesOnWire: 0, currentPath: p.currentPath, ...(p.totalBytes !== undefined ? { totalBytes: p.totalBytes } : {}) });
    },
  });
  ctx.phase('finalizing');
  for (const problem of result.problems) log(`"${problem.path}": not restored: ${problem.message}`, 'WARN');
  const more = result.problemCount - result.problems.length;
  if (more > 0) log(`… and ${more} more item(s) not restored`, 'WARN');
  if (result.ownerNote) log(`note: ${result.ownerNote}`);
  log(`restored ${result.files} files, ${result.dirs} directories, ${result.symlinks} symlinks, ${result.hardlinks} hard links, ${result.specials} other entries, ${formatBytes(result.bytes)} onto ${client.name}:${request.target}; ${formatBytes(result.bytesOnWire)} on the wire`);
  if (result.problemCount > 0) {
    const hint = result.problems.some((p) => p.exists) ? ' Restore again with overwrite to replace the entries that already exist.' : '';
    log(`${result.problemCount} item(s) were not restored (listed above); everything else was restored and verified.${hint}`, 'WARN');
  }
  return {
    state: 'succeeded',
    snapshotId: snapshot.id,
    counters: { filesTotal: result.files, filesDone: result.files, bytesScanned: result.bytes, bytesNew: 0, bytesOnWire: result.bytesOnWire, errors: result.problemCount },
  };
}
