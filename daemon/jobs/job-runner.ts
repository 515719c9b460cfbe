// Runs one queued job to its end: queued -> connecting -> pushing-probe -> transferring ->
// finalizing -> succeeded | failed | cancelled, each state written to the database as it
// happens. Whatever goes wrong becomes a typed cause (failure-cause.ts); nothing a job meets
// escapes to the daemon. Progress and log lines go to the caller's hooks (the bus, the job log).
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { JobLogLevel } from '../../shared/jobs.js';
import type { Client } from '../../prisma/generated/sqlite/client.js';
import type { ClientConfig } from '../clients/client-config.js';
import { clientFromRow } from '../database/client-store.js';
import type { PrismaClient } from '../database/open-database.js';
import type { Repository } from '../repository/repository.js';
import { shortId } from '../repository/snapshot.js';
import type { PullProgress } from '../session/probe-session.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { failureOf } from './failure-cause.js';
import type { JobEnd, JobRecord, JobStore } from './job-store.js';
import { applyRetentionAfterBackup, isMaintenanceKind, runMaintenanceJob, type MaintenanceSettings } from './maintenance-jobs.js';
import { runPullBackupJob } from './pull-backup-job.js';
import { formatBytes } from '../../shared/display.js';
import { clientUsage } from '../maintenance/client-usage.js';

export interface JobTimeouts {
  /** TCP connect to logged-in SSH session. */
  connectMs: number;
  /** No byte from the probe for this long stops the job (cause timeout). */
  stallMs: number;
  /** The whole job, from leaving the queue to its end. */
  totalMs: number;
}

/** Where a job's plain-text log goes (daemon/jobs/job-log.ts provides one). */
export interface JobLogSink {
  readonly path: string;
  write(line: string, level: JobLogLevel): void;
  /** Closes the file and returns its SHA-256 (hex), stored with the job. */
  finish(): Promise<string>;
}

export interface JobRunnerOptions {
  prisma: PrismaClient;
  store: JobStore;
  /** The daemon's handle; each job works on its own `reopen()` of it. */
  repository: Repository;
  identity: ServerIdentity;
  probeDir: string;
  timeouts: JobTimeouts;
  openJobLog?: (job: JobRecord) => JobLogSink | Promise<JobLogSink>;
  onLog?: (job: JobRecord, line: string, level: JobLogLevel) => void;
  onProgress?: (job: JobRecord, progress: PullProgress) => void;
  /** A failure that is a bug (cause internal), with its stack, for the daemon's own log. */
  onInternalError?: (job: JobRecord, err: unknown) => void;
  /** Check and prune jobs; a backup waits up to `lockWaitMs` while prune holds the repository. */
  maintenance?: MaintenanceSettings;
}

type Log = (line: string, level?: JobLogLevel) => void;

interface QuotaWatch {
  /** Aborts the backup once it would pass the quota. */
  signal: AbortSignal;
  observe: (bytesNew: number) => void;
  /** After the snapshot is saved: over the quota after all, the snapshot is removed and the error returned. */
  settle: (repo: Repository, snapshotId: string, bytesStored: number) => Promise<HaulError | undefined>;
}

const defaultMaintenance: MaintenanceSettings = { checkReadDataSubset: 'day/7', repackThreshold: undefined, lockWaitMs: 0 };

/** The database row as the pull backup wants it; a client with nothing to back up is refused. */
function clientConfigOf(row: Client): ClientConfig {
  const client = clientFromRow(row);
  if (client.paths.length === 0) {
    throw new HaulError('InvalidArgument', `client "${row.name}" has no paths to back up; add some with \`haul client set ${row.name} --path /srv\`.`);
  }
  return client;
}

function duration(ms: number): string {
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

export class JobRunner {
  constructor(private readonly options: JobRunnerOptions) {}

  /** Runs `job` (queued) to its end and returns its final record. Aborting `signal` stops it. */
  async run(job: JobRecord, signal: AbortSignal): Promise<JobRecord> {
    const { store, timeouts } = this.options;
    const started = Date.now();
    let sink: JobLogSink | undefined;
    const log = (line: string, level: JobLogLevel = line.startsWith('warning:') ? 'WARN' : 'INFO') => {
      sink?.write(line, level);
      this.options.onLog?.(job, line, level);
    };
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new HaulError('JobTimedOut', `the job ran longer than its limit of ${duration(timeouts.totalMs)} and was stopped. Nothing was saved as a snapshot; what arrived is kept for the next run. Raise the limit (HAUL_JOB_TIMEOUT) or find out why the client is slow.`));
    }, timeouts.totalMs);
    timer.unref();
    const stop = AbortSignal.any([signal, deadline.signal]);
    let end: JobEnd;
    const attachLog = async () => {
      if (!this.options.openJobLog) return;
      sink = await this.options.openJobLog(job);
      await store.attachLog(job.id, sink.path);
    };
    try {
      switch (job.kind) {
        case 'check':
        case 'prune':
          end = await this.runMaintenance(job, stop, log, attachLog);
          break;
        default:
          end = await this.runBackup(job, stop, log, attachLog);
      }
    } catch (err) {
      const failure = failureOf(err);
      if (failure.cause === 'internal' && !isHaulError(err)) this.options.onInternalError?.(job, err);
      end = failure.cause === 'cancelled' ? { state: 'cancelled', message: failure.message } : { state: 'failed', cause: failure.cause, message: failure.message };
      log(`${end.state === 'cancelled' ? 'cancelled' : `failed (${failure.cause})`}: ${failure.message}`, end.state === 'cancelled' ? 'WARN' : 'ERROR');
    } finally {
      clearTimeout(timer);
    }
    end.durationMs = Date.now() - started;
    log(`job ${job.id} ${end.state} after ${duration(end.durationMs)}`, end.state === 'failed' ? 'ERROR' : 'INFO');
    if (sink) end.logSha256 = await sink.finish();
    return store.finish(job.id, end);
  }

  private async runMaintenance(job: JobRecord, stop: AbortSignal, log: Log, attachLog: () => Promise<void>): Promise<JobEnd> {
    if (!isMaintenanceKind(job.kind)) throw new HaulError('InvalidArgument', `job ${job.id} is not a repository job.`);
    await attachLog();
    // Repository jobs have no connection phases: they go from queued straight to work.
    await this.options.store.transition(job.id, 'transferring');
    log(`job ${job.id}: ${job.kind} of the repository (${job.trigger})`);
    const repo = this.options.repository.reopen();
    try {
      return await runMaintenanceJob(job, { repo, prisma: this.options.prisma, settings: this.options.maintenance ?? defaultMaintenance, signal: stop, log });
    } finally {
      await repo.close();
    }
  }

  private async runBackup(job: JobRecord, stop: AbortSignal, log: Log, attachLog: () => Promise<void>): Promise<JobEnd> {
    const { store, timeouts } = this.options;
    const row = await this.clientOf(job);
    await attachLog();
    const client = clientConfigOf(row);
    log(`job ${job.id}: ${job.kind} of client "${client.name}" (${job.trigger}${job.attempt > 1 ? `, attempt ${job.attempt}` : ''}): paths ${client.paths.join(', ')}${client.excludes.length ? `; excludes ${client.excludes.join(', ')}` : ''}`);
    const quota = await this.quotaOf(row, log);
    const repo = this.options.repository.reopen();
    try {
      const phase = (state: 'connecting' | 'pushing-probe' | 'transferring' | 'finalizing') => {
        const words = { connecting: `connecting to ${client.user}@${client.host}:${client.port}`, 'pushing-probe': 'logged in; checking the probe on the client', transferring: 'running the probe: walking, chunking and sending', finalizing: 'the probe sent everything; saving the trees and the snapshot' };
        log(words[state]);
        store.transition(job.id, state).catch((err: unknown) => this.options.onInternalError?.(job, err));
      };
      const result = await runPullBackupJob({
        repo,
        client,
        identity: this.options.identity,
        probeDir: this.options.probeDir,
        limits: { stallMs: timeouts.stallMs },
        timeouts: { connectMs: timeouts.connectMs },
        signal: AbortSignal.any([stop, quota.signal]),
        lockWaitMs: this.options.maintenance?.lockWaitMs ?? 0,
        pinHostKey: async (fingerprint) => {
          await this.options.prisma.client.update({ where: { id: row.id }, data: { hostKey: fingerprint } });
        },
        onPhase: phase,
        onLog: log,
        onProgress: (p) => {
          quota.observe(p.bytesNew);
          store.recordProgress(job.id, { filesDone: p.files, bytesScanned: p.bytesScanned, bytesNew: p.bytesNew, bytesOnWire: p.bytesOnWire });
          this.options.onProgress?.(job, p);
        },
      });
      const s = result.snapshot.stats;
      const counters = { filesTotal: s.files, filesDone: s.files, bytesScanned: s.bytesRead, bytesNew: s.bytesNew, bytesOnWire: result.bytesOnWire, bytesStored: s.bytesStored, errors: s.errors };
      const over = await quota.settle(repo, result.id, s.bytesStored);
      if (over) {
        log(`failed (quota): ${over.message}`, 'ERROR');
        return { state: 'failed', cause: 'quota', message: over.message, counters };
      }
      log(`snapshot ${shortId(result.id)} saved: ${s.files} files, ${s.dirs} directories, ${formatBytes(s.bytes)} (${formatBytes(s.bytesRead)} read on the client); ${formatBytes(s.bytesNew)} new in ${s.blobsNew} blobs, ${formatBytes(s.bytesStored)} stored; ${formatBytes(result.bytesOnWire)} on the wire`);
      if (s.errors > 0) log(`${s.errors} item(s) could not be read on the client and are not in the snapshot (see the warnings above)`, 'WARN');
      await applyRetentionAfterBackup(repo, this.options.prisma, client, log);
      return { state: 'succeeded', snapshotId: result.id, counters };
    } finally {
      await repo.close();
    }
  }

  /**
   * The client's quota as a watch on the bytes a backup adds: its signal aborts the backup once
   * the usage so far plus the new bytes would pass the quota. New bytes count before compression,
   * so a backup close to the limit stops a little early rather than late.
   */
  private async quotaOf(row: Client, log: Log): Promise<QuotaWatch> {
    const watch = new AbortController();
    if (row.quotaBytes === null) return { signal: watch.signal, observe: () => undefined, settle: () => Promise.resolve(undefined) };
    const quota = Number(row.quotaBytes);
    const used = await clientUsage(this.options.prisma, row);
    const exceeded = (adding: number) => new HaulError('QuotaExceeded', `client ${row.name} would pass its storage quota of ${formatBytes(quota)}: it uses ${formatBytes(used)}${adding > 0 ? ` and this backup had ${formatBytes(adding)} of new data` : ''}. The backup stopped without a snapshot; what it stored is kept and consistent, and the next run reuses it. Raise the quota (\`haul client set ${row.name} --quota …\`), or forget old snapshots and prune.`);
    if (used >= quota) throw exceeded(0);
    log(`quota: ${formatBytes(used)} of ${formatBytes(quota)} used before this backup`);
    return {
      signal: watch.signal,
      observe: (bytesNew) => {
        if (watch.signal.aborted || used + bytesNew <= quota) return;
        const err = exceeded(bytesNew);
        // Not from inside the session's progress callback: stop it from the event loop, as a cancel does.
        setImmediate(() => watch.abort(err));
      },
      // The last chunks may arrive after the last progress report: the stored total decides.
      // The snapshot goes again (as forget would); its data stays for the next run to reuse.
      settle: async (repo, snapshotId, bytesStored) => {
        if (used + bytesStored <= quota) return undefined;
        await repo.storage.delete('snapshots', snapshotId);
        return exceeded(bytesStored);
      },
    };
  }

  private async clientOf(job: JobRecord): Promise<Client> {
    const row = job.clientId === null ? null : await this.options.prisma.client.findUnique({ where: { id: job.clientId } });
    if (!row) throw new HaulError('ClientNotFound', `client "${job.clientName}" was removed after this job was queued; nothing to do.`);
    if (!row.enabled) throw new HaulError('JobCancelled', `client "${row.name}" was disabled after this job was queued; enable it (\`haul client set ${row.name} --enable\`) to back it up again.`);
    return row;
  }
}
