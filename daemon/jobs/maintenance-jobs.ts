// The daemon's repository jobs, run by the job runner like backups (states, log, cause):
// 'check' verifies the structure and re-reads a rolling share of the packs, 'prune' frees what
// no snapshot uses and recounts each client's stored bytes for quotas. Also the retention a
// backup applies to its own client once its snapshot is saved.
import { formatBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import type { JobLogLevel } from '../../shared/jobs.js';
import { checkRepository, parseSubset } from '../checker/checker.js';
import type { ClientConfig } from '../clients/client-config.js';
import type { PrismaClient } from '../database/open-database.js';
import { tenantOfClient } from '../database/tenants.js';
import { recordPruneRecount } from '../maintenance/client-usage.js';
import { forgetSnapshots } from '../maintenance/forget.js';
import { formatPruneReport, pruneRepository } from '../maintenance/prune.js';
import { lockRepository } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { shortId } from '../repository/snapshot.js';
import type { JobEnd, JobRecord } from './job-store.js';

/** What the client row of a maintenance job says: these jobs belong to the whole repository. */
export const repositoryJobName = '(repository)';

export type MaintenanceKind = 'check' | 'prune';

export function isMaintenanceKind(kind: string): kind is MaintenanceKind {
  return kind === 'check' || kind === 'prune';
}

export interface MaintenanceSettings {
  /** "day/7" (a different seventh each day) or "k/n": the packs a check re-reads; undefined: structure only. */
  checkReadDataSubset: string | undefined;
  /** Prune repacks a pack with at least this share unused (default 0.1). */
  repackThreshold: number | undefined;
  /** How long a prune waits for running backups to release the repository. */
  lockWaitMs: number;
}

export interface MaintenanceRun {
  repo: Repository;
  prisma: PrismaClient;
  settings: MaintenanceSettings;
  signal: AbortSignal;
  log: (line: string, level?: JobLogLevel) => void;
}

type MaintenanceEnd = Extract<JobEnd, { state: 'succeeded' }>;

/** Throws the abort reason from inside a long loop (via its progress callback). */
function stopIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new HaulError('JobCancelled', 'the job was cancelled.');
}

export function runMaintenanceJob(job: JobRecord, run: MaintenanceRun): Promise<MaintenanceEnd> {
  if (job.kind === 'check') return runCheck(run);
  if (job.kind === 'prune') return runPrune(run);
  throw new HaulError('InvalidArgument', `job ${job.id} is of kind ${JSON.stringify(job.kind)}, which is not a repository job.`);
}

async function runCheck({ repo, settings, signal, log }: MaintenanceRun): Promise<MaintenanceEnd> {
  const subset = settings.checkReadDataSubset === undefined ? undefined : parseSubset(settings.checkReadDataSubset);
  log(`verifying the repository: structure${subset ? `, and re-reading part ${subset.part} of ${subset.of} of the packs (${settings.checkReadDataSubset})` : ' only'}`);
  const lock = await lockRepository(repo, 'shared', { purpose: 'check (daemon)', waitMs: settings.lockWaitMs });
  let report;
  try {
    report = await checkRepository(repo, { readData: subset !== undefined, ...(subset ? { readDataSubset: subset } : {}), onProgress: () => stopIfAborted(signal) });
  } finally {
    await lock.release();
  }
  for (const p of report.problems) log(`${p.severity}: ${p.message}`, p.severity === 'error' ? 'ERROR' : 'WARN');
  const summary = `checked ${report.snapshots} snapshots, ${report.trees} trees, ${report.packs} packs, ${report.indexFiles} index files${subset ? `, ${report.blobs} blobs (${formatBytes(report.bytesRead)} read)` : ''}: ${report.errors === 0 ? 'no errors' : `${report.errors} error(s)`}${report.warnings ? `, ${report.warnings} warning(s)` : ''}`;
  log(summary);
  if (report.errors > 0) {
    throw new HaulError('CheckFailed', `the repository has ${report.errors} error(s), listed in this job's log with the snapshots and files they affect. Run \`haul repair packs\`, then back up the affected clients again (see docs/operations.md, Verify).`);
  }
  return { state: 'succeeded', detail: summary, counters: { bytesScanned: report.bytesRead } };
}

async function runPrune({ repo, prisma, settings, signal, log }: MaintenanceRun): Promise<MaintenanceEnd> {
  log(`pruning: waiting up to ${Math.round(settings.lockWaitMs / 1000)} s for running backups to release the repository`);
  const report = await pruneRepository(repo, {
    lockWaitMs: settings.lockWaitMs,
    ...(settings.repackThreshold !== undefined ? { repackThreshold: settings.repackThreshold } : {}),
    onProgress: () => stopIfAborted(signal),
  });
  for (const line of formatPruneReport(report).trimEnd().split('\n')) log(line);
  await recordPruneRecount(prisma, report.storedBytesByClient, new Date());
  const usage = Object.entries(report.storedBytesByClient).sort(([a], [b]) => a.localeCompare(b));
  log(`stored bytes by client (each chunk charged to the client that uploaded it first): ${usage.length ? usage.map(([c, b]) => `${c} ${formatBytes(b)}`).join(', ') : 'none'}`);
  return { state: 'succeeded', detail: `freed ${formatBytes(report.bytesFreed)}`, counters: { bytesStored: report.bytesAfter } };
}

/**
 * After a backup: forgets the client's snapshots its retention policy (or, without one, its
 * tenant's default) no longer keeps (prune frees their data on its own schedule). A failure here
 * is a warning: the new snapshot is saved.
 */
export async function applyRetentionAfterBackup(repo: Repository, prisma: PrismaClient, client: ClientConfig, log: (line: string, level?: JobLogLevel) => void): Promise<void> {
  const tenant = client.retention ? undefined : await tenantOfClient(prisma, client.id);
  const policy = client.retention ?? tenant?.retention;
  if (!policy) return;
  try {
    const result = await forgetSnapshots(repo, { client: client.name, policy });
    const gone = result.decisions.filter((d) => !d.keep);
    log(`retention ${JSON.stringify(policy)}${tenant ? ` (the default of tenant ${tenant.name})` : ''}: ${gone.length === 0 ? 'nothing to forget' : `forgot ${gone.length}`} of ${result.decisions.length} snapshot(s) of ${client.name}; their data is freed by the next prune`);
    for (const d of gone) log(`forgot snapshot ${shortId(d.snapshot.id)} of ${d.snapshot.time}`);
    if (result.removed.length) await prisma.snapshot.deleteMany({ where: { id: { in: result.removed } } });
  } catch (err) {
    log(`retention was not applied: ${(err as Error).message} The new snapshot is saved; the next backup applies the policy again, or run \`haul forget --client ${client.name}\`.`, 'WARN');
  }
}
