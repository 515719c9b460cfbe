// Runs one queued job to its end: queued -> connecting -> pushing-probe -> transferring ->
// finalizing -> succeeded | failed | cancelled, each state written to the database as it
// happens. The job's kind picks the work (backup-job.ts, restore-job.ts, maintenance-jobs.ts for
// check and prune of the whole repository); the log, the time
// limit, the failure causes and the end are the same for every kind. Whatever goes wrong becomes
// a typed cause (failure-cause.ts); nothing a job meets escapes to the daemon. Progress and log
// lines go to the caller's hooks (the bus, the job log).
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { JobLogLevel } from '../../shared/jobs.js';
import type { Client } from '../../prisma/generated/sqlite/client.js';
import type { PrismaClient } from '../database/open-database.js';
import type { Repository } from '../repository/repository.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { failureOf } from './failure-cause.js';
import { runBackupJob } from './backup-job.js';
import { countersOf, type AfterJob, type JobContext, type JobOutcome, type JobProgress } from './job-context.js';
import type { JobEnd, JobRecord, JobStore } from './job-store.js';
import { isMaintenanceKind, runMaintenanceJob, type MaintenanceSettings } from './maintenance-jobs.js';
import { runRestoreJob, type RestoreRequest } from './restore-job.js';

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
  /** Cached digests of clients' latest snapshots (daemon/session/previous-cache.ts). */
  previousCacheDir?: string;
  timeouts: JobTimeouts;
  /** What a queued restore job restores (held by the daemon from the bus request). */
  restoreRequest?: (jobId: number) => RestoreRequest | undefined;
  openJobLog?: (job: JobRecord) => JobLogSink | Promise<JobLogSink>;
  onLog?: (job: JobRecord, line: string, level: JobLogLevel) => void;
  onProgress?: (job: JobRecord, progress: JobProgress) => void;
  /** A failure that is a bug (cause internal), with its stack, for the daemon's own log. */
  onInternalError?: (job: JobRecord, err: unknown) => void;
  /** A warning from the work that follows a job (JobOutcome.afterEnd), for the daemon's own log. */
  onAfterJobWarning?: (job: JobRecord, line: string) => void;
  /** Check and prune jobs; a backup waits up to `lockWaitMs` while prune holds the repository. */
  maintenance?: MaintenanceSettings;
}

const defaultMaintenance: MaintenanceSettings = { checkReadDataSubset: 'day/7', repackThreshold: undefined, lockWaitMs: 0 };

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
    let repo: Repository | undefined;
    let end: JobEnd;
    let afterEnd: AfterJob | undefined;
    const stop = AbortSignal.any([signal, deadline.signal]);
    const attachLog = async () => {
      if (!this.options.openJobLog) return;
      sink = await this.options.openJobLog(job);
      await store.attachLog(job.id, sink.path);
    };
    try {
      repo = this.options.repository.reopen();
      if (isMaintenanceKind(job.kind)) {
        await attachLog();
        // Repository jobs have no connection phases: they go from queued straight to work.
        await store.transition(job.id, 'transferring');
        log(`job ${job.id}: ${job.kind} of the repository (${job.trigger})`);
        end = await runMaintenanceJob(job, { repo, prisma: this.options.prisma, settings: this.options.maintenance ?? defaultMaintenance, signal: stop, log });
      } else {
        const row = await this.clientOf(job);
        await attachLog();
        const outcome = await this.runKind({
          job,
          client: row,
          repo,
          prisma: this.options.prisma,
          identity: this.options.identity,
          probeDir: this.options.probeDir,
          ...(this.options.previousCacheDir ? { previousCacheDir: this.options.previousCacheDir } : {}),
          connectTimeoutMs: timeouts.connectMs,
          stallMs: timeouts.stallMs,
          lockWaitMs: this.options.maintenance?.lockWaitMs ?? 0,
          signal: stop,
          log,
          phase: (state) => void store.transition(job.id, state).catch((err: unknown) => this.options.onInternalError?.(job, err)),
          progress: (p) => {
            store.recordProgress(job.id, countersOf(p));
            this.options.onProgress?.(job, p);
          },
          pinHostKey: async (fingerprint) => {
            await this.options.prisma.client.update({ where: { id: row.id }, data: { hostKey: fingerprint } });
          },
        });
        if (outcome.state === 'succeeded') afterEnd = outcome.afterEnd;
        end = outcome;
      }
    } catch (err) {
      const failure = failureOf(err);
      if (failure.cause === 'internal' && !isHaulError(err)) this.options.onInternalError?.(job, err);
      end = failure.cause === 'cancelled' ? { state: 'cancelled', message: failure.message } : { state: 'failed', cause: failure.cause, message: failure.message };
      log(`${end.state === 'cancelled' ? 'cancelled' : `failed (${failure.cause})`}: ${failure.message}`, end.state === 'cancelled' ? 'WARN' : 'ERROR');
    } finally {
      clearTimeout(timer);
      await repo?.close();
    }
    end.durationMs = Date.now() - started;
    log(`job ${job.id} ${end.state} after ${duration(end.durationMs)}`, end.state === 'failed' ? 'ERROR' : 'INFO');
    if (sink) end.logSha256 = await sink.finish();
    const record = await store.finish(job.id, end);
    if (afterEnd) void afterEnd((line) => this.options.onAfterJobWarning?.(job, line));
    return record;
  }

  /** One case per kind of job; each returns how its job ended or throws why it did not. */
  private runKind(ctx: JobContext): Promise<JobOutcome> {
    switch (ctx.job.kind) {
      case 'backup':
        return runBackupJob(ctx);
      case 'restore': {
        const request = this.options.restoreRequest?.(ctx.job.id);
        if (!request) throw new HaulError('JobCancelled', `restore job ${ctx.job.id} has no request in this daemon (it was queued by a daemon that has stopped); ask for the restore again.`);
        return runRestoreJob(ctx, request);
      }
      default:
        throw new HaulError('InvalidArgument', `job ${ctx.job.id} is of kind "${ctx.job.kind}", which this daemon does not run.`);
    }
  }

  private async clientOf(job: JobRecord): Promise<Client> {
    const row = job.clientId === null ? null : await this.options.prisma.client.findUnique({ where: { id: job.clientId } });
    if (!row) throw new HaulError('ClientNotFound', `client "${job.clientName}" was removed after this job was queued; nothing to do.`);
    if (!row.enabled) throw new HaulError('JobCancelled', `client "${row.name}" was disabled after this job was queued; enable it (\`haul client set ${row.name} --enable\`) to back it up again.`);
    return row;
  }
}
