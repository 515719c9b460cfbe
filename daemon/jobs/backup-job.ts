// A backup as a daemon job: the client's row becomes its configuration, the pull backup runs
// with the job's phases, progress and log, and the saved snapshot is listed in the database
// (daemon/database/snapshot-listing.ts) so the console shows it without opening the repository.
// The client's quota (client-quota.ts) can stop it; its retention policy runs after it.
import type { Client } from '../../prisma/generated/sqlite/client.js';
import { formatBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import type { ClientConfig } from '../clients/client-config.js';
import { clientFromRow } from '../database/client-store.js';
import { recordSnapshot } from '../database/snapshot-listing.js';
import { shortId } from '../repository/snapshot.js';
import { watchQuota } from './client-quota.js';
import type { JobContext, JobOutcome } from './job-context.js';
import { applyRetentionAfterBackup } from './maintenance-jobs.js';
import { runPullBackupJob } from './pull-backup-job.js';

const phaseWords = (client: ClientConfig) => ({
  connecting: `connecting to ${client.user}@${client.host}:${client.port}`,
  'pushing-probe': 'logged in; checking the probe on the client',
  transferring: 'running the probe: walking, chunking and sending',
  finalizing: 'the probe sent everything; saving the trees and the snapshot',
});

/** The database row as the pull backup wants it; a client with nothing to back up is refused. */
function clientConfigOf(row: Client): ClientConfig {
  const client = clientFromRow(row);
  if (client.paths.length === 0) {
    throw new HaulError('InvalidArgument', `client "${row.name}" has no paths to back up; add some with \`haul client set ${row.name} --path /srv\`.`);
  }
  return client;
}

export async function runBackupJob(ctx: JobContext): Promise<JobOutcome> {
  const { job, log } = ctx;
  const client = clientConfigOf(ctx.client);
  log(`job ${job.id}: ${job.kind} of client "${client.name}" (${job.trigger}${job.attempt > 1 ? `, attempt ${job.attempt}` : ''}): paths ${client.paths.join(', ')}${client.excludes.length ? `; excludes ${client.excludes.join(', ')}` : ''}`);
  const words = phaseWords(client);
  const quota = await watchQuota(ctx.prisma, ctx.client, log);
  const result = await runPullBackupJob({
    repo: ctx.repo,
    client,
    identity: ctx.identity,
    probeDir: ctx.probeDir,
    ...(ctx.previousCacheDir ? { previousCacheDir: ctx.previousCacheDir, writeDigestLater: true } : {}),
    limits: { stallMs: ctx.stallMs },
    timeouts: { connectMs: ctx.connectTimeoutMs },
    signal: AbortSignal.any([ctx.signal, quota.signal]),
    lockWaitMs: ctx.lockWaitMs,
    pinHostKey: (fingerprint) => ctx.pinHostKey(fingerprint),
    onPhase: (state) => {
      log(words[state]);
      ctx.phase(state);
    },
    onLog: (line) => log(line),
    onProgress: (p) => {
      quota.observe(p.bytesNew);
      ctx.progress({ filesDone: p.files, bytesScanned: p.bytesScanned, bytesNew: p.bytesNew, bytesOnWire: p.bytesOnWire, currentPath: p.currentPath, ...(p.expectedBytes !== undefined ? { totalBytes: p.expectedBytes } : {}) });
    },
  });
  const s = result.snapshot.stats;
  const counters = { filesTotal: s.files, filesDone: s.files, bytesScanned: s.bytesRead, bytesNew: s.bytesNew, bytesOnWire: result.bytesOnWire, bytesStored: s.bytesStored, errors: s.errors };
  const over = await quota.settle(ctx.repo, result.id, s.bytesStored);
  if (over) {
    log(`failed (quota): ${over.message}`, 'ERROR');
    return { state: 'failed', cause: 'quota', message: over.message, counters };
  }
  log(`snapshot ${shortId(result.id)} saved: ${s.files} files, ${s.dirs} directories, ${formatBytes(s.bytes)} (${formatBytes(s.bytesRead)} read on the client); ${formatBytes(s.bytesNew)} new in ${s.blobsNew} blobs, ${formatBytes(s.bytesStored)} stored; ${formatBytes(result.bytesOnWire)} on the wire`);
  if (s.errors > 0) log(`${s.errors} item(s) could not be read on the client and are not in the snapshot (see the warnings above)`, 'WARN');
  try {
    await recordSnapshot(ctx.prisma, result.id, result.snapshot, ctx.client.id);
  } catch (err) {
    // The snapshot is durable in the repository, which is the source of truth: the job succeeded.
    log(`warning: the snapshot is saved, but listing it in the database failed (${(err as Error).message}); \`haul db rebuild\` lists it.`, 'WARN');
  }
  await applyRetentionAfterBackup(ctx.repo, ctx.prisma, client, log);
  // The digest for the next backup is written once the job's end is out (runner: afterEnd).
  return { state: 'succeeded', snapshotId: result.id, counters, ...(result.writeDigest ? { afterEnd: result.writeDigest } : {}) };
}
