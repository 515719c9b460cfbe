// `haul daemon`: the long-running service. It opens (and migrates) the database, closes the jobs
// a killed predecessor left open, starts the scheduler and the job queue, and serves /healthz and
// /metrics. Everything else talks to it through this object: the bus calls runNow, cancel and
// reload; the bus and the per-job log listen to `events` and `openJobLog`.
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import schedule from 'node-schedule';
import type { Client } from '../../prisma/generated/sqlite/client.js';
import { HaulError } from '../../shared/errors.js';
import { isTerminalJobState, type JobLogLevel, type JobTrigger } from '../../shared/jobs.js';
import { ClientStore } from '../database/client-store.js';
import { openDatabase, type Database } from '../database/open-database.js';
import type { JobProgress } from '../jobs/job-context.js';
import { JobLog, type JobLogLine } from '../jobs/job-log.js';
import { deleteJobsOlderThan } from '../jobs/job-retention.js';
import { FleetMember } from '../fleet/fleet-member.js';
import { JobRunner, type JobLogSink } from '../jobs/job-runner.js';
import { describeRestore, type RestoreRequest } from '../jobs/restore-job.js';
import { JobStore, type JobChange, type JobFilter, type JobRecord } from '../jobs/job-store.js';
import { repositoryJobName, type MaintenanceKind } from '../jobs/maintenance-jobs.js';
import { Notifier } from '../notifications/notifier.js';
import { indexUnindexedPacks } from '../repository/index-repair.js';
import { Repository } from '../repository/repository.js';
import { previousCacheDirectory, previousCacheWritesSettled, removeOrphanedPreviousCaches } from '../session/previous-cache.js';
import { loadOrCreateServerIdentity, type ServerIdentity } from '../session/server-identity.js';
import { openStorage } from '../storage/open-storage.js';
import { BlackoutCalendar } from '../scheduler/blackout-windows.js';
import { JobQueue } from '../scheduler/job-queue.js';
import { retryDelay } from '../scheduler/retry-policy.js';
import { Scheduler, type ReloadResult } from '../scheduler/scheduler.js';
import { resolveDaemonConfig, type DaemonConfig, type DaemonOptions } from './daemon-config.js';
import { DaemonAlerts } from './daemon-alerts.js';
import { createDaemonLogger, type DaemonLogger } from './daemon-logger.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { startHealthEndpoint, type HealthEndpoint, type HealthReport } from './health-endpoint.js';
import { startDaemonBus, type DaemonBus } from './daemon-bus.js';

export type { DaemonOptions, DaemonConfig } from './daemon-config.js';

/** What the daemon tells listeners (the bus publishes these). */
export interface DaemonEvents {
  /** A job was queued, moved to a phase, or ended. */
  'job-state': [JobChange];
  /** A running job's counters, a few times a second at most. */
  'job-progress': [{ job: JobRecord; progress: JobProgress }];
  /** One line of a job's log, as the job wrote it (unescaped, without time and level). */
  'job-log': [{ job: JobRecord; line: string; level: JobLogLevel; at: Date }];
  /** The same line exactly as the daemon's job log file holds it (only with the default log). */
  'job-log-line': [JobLogLine];
}

export interface DaemonHooks {
  /** Opens the plain-text log of a job as it starts; default: logs/YYYY/MM/job-<id>.log (daemon/jobs/job-log.ts). */
  openJobLog?: (job: JobRecord) => JobLogSink | Promise<JobLogSink>;
  env?: NodeJS.ProcessEnv;
}

export interface DaemonStatus {
  daemonId: string;
  startedAt: string;
  uptimeSeconds: number;
  stopping: boolean;
  timeZone: string;
  maxConcurrentJobs: number;
  blackout: string[];
  /** When the blackout window the daemon is in ends, if it is in one. */
  blackoutUntil: string | undefined;
  /** Running jobs as last written (state, counters at their last write). */
  running: JobRecord[];
  /** Waiting jobs, in queue order. */
  queued: JobRecord[];
  scheduled: { client: string; next: string | undefined }[];
}

interface EnqueueExtra {
  detail?: string;
  attempt?: number;
  retryOfId?: number;
  requestedBy?: string;
  /** A retry waits for its backoff. */
  notBefore?: Date;
}

export class Daemon {
  readonly events = new EventEmitter<DaemonEvents>();
  readonly startedAt = new Date();
  private stopping: Promise<void> | undefined;
  /** Jobs being written to the database, by client: a second request meanwhile gets the same job. */
  private readonly enqueuing = new Map<string, Promise<JobRecord>>();
  /** The latest record of each job this daemon runs (the queue holds them as they were queued). */
  private readonly runningRecords = new Map<number, JobRecord>();
  private blackout: BlackoutCalendar;
  private readonly queue: JobQueue;
  private readonly scheduler: Scheduler;
  private http: HealthEndpoint | undefined;
  private readonly metrics: DaemonMetrics;
  private readonly runner: JobRunner;
  /** What each queued or running restore job restores (a restore is not resumed after a restart). */
  private readonly restoreRequests = new Map<number, RestoreRequest>();
  private retentionTimer: NodeJS.Timeout | undefined;
  /** Looks for backups other daemons queued but cannot start yet (PostgreSQL only). */
  private adoptTimer: NodeJS.Timeout | undefined;
  private adopting: Promise<void> | undefined;
  /** Jobs taken from another daemon's queue: the claim decides who runs them. */
  private readonly adopted = new Set<number>();
  /** The bus, when the daemon serves one (`bus` option); set by start(). */
  bus: DaemonBus | undefined;
  /** Leases and slots shared with other daemons on the same database (daemon/fleet/). */
  private readonly fleet: FleetMember;
  /** The check and prune timers (node-schedule), by kind. */
  private readonly maintenanceTimers = new Map<MaintenanceKind, schedule.Job>();
  readonly alerts: DaemonAlerts | undefined;

  private constructor(
    private config: DaemonConfig,
    private readonly options: DaemonOptions,
    private readonly env: NodeJS.ProcessEnv,
    readonly database: Database,
    readonly store: JobStore,
    readonly repository: Repository,
    readonly log: DaemonLogger,
    readonly identity: ServerIdentity,
    hooks: DaemonHooks,
  ) {
    this.runner = new JobRunner({
      prisma: database.prisma,
      store,
      repository,
      identity,
      probeDir: config.probeDir,
      previousCacheDir: previousCacheDirectory(config.stateDir),
      timeouts: config.timeouts,
      restoreRequest: (jobId) => this.restoreRequests.get(jobId),
      openJobLog: hooks.openJobLog ?? ((job) => this.openJobLog(job)),
      onLog: (job, line, level) => this.events.emit('job-log', { job, line, level, at: new Date() }),
      onProgress: (job, progress) => this.events.emit('job-progress', { job, progress }),
      onInternalError: (job, err) => log.error({ err, job: job.id }, `job ${job.id}: unexpected error (a bug in Haul)`),
      onAfterJobWarning: (job, line) => log.warn({ job: job.id }, `after job ${job.id}: ${line}`),
      maintenance: { checkReadDataSubset: config.maintenance.checkReadData ?? undefined, repackThreshold: undefined, lockWaitMs: config.maintenance.lockWaitMs },
    });
    if (config.notifications) {
      this.alerts = new DaemonAlerts({
        notifier: new Notifier(config.notifications, (line) => log.warn(line)),
        prisma: database.prisma,
        log,
        maxAttempts: config.retry.maxAttempts,
        overdueCheckIntervalMs: config.overdueCheckIntervalMs,
        digestSchedule: config.digestSchedule,
        timeZone: config.timeZone,
      });
      const alerts = this.alerts;
      this.events.on('job-log', ({ job, line, level }) => alerts.jobLog(job, line, level));
    }
    this.blackout = new BlackoutCalendar(config.blackout, config.timeZone);
    this.metrics = new DaemonMetrics(() => this.queue.queued.length);
    this.queue = new JobQueue({
      maxConcurrent: config.maxConcurrentJobs,
      blackout: this.blackout,
      run: (job, signal) => this.runJob(job, signal),
      onSettled: (job, err) => {
        if (err) this.log.error({ err, job: job.id }, 'a job ended with an error the runner did not handle; this is a bug in Haul');
      },
      onHold: (until, window, waiting) => this.log.info({ window, until: until.toISOString(), waiting }, `blackout window ${window}: ${waiting} due job(s) wait until ${until.toISOString()}`),
    });
    this.scheduler = new Scheduler({
      prisma: database.prisma,
      timeZone: config.timeZone,
      lastQueuedAt: () => store.lastQueuedAt(),
      onDue: (client, trigger, slot) => {
        void this.due(client, trigger, slot);
      },
      onInvalid: (client, err) => this.log.error({ client: client.name }, `${err.message} The client is not scheduled until that is fixed.`),
    });
    this.fleet = new FleetMember({
      prisma: database.prisma,
      openHeartbeatDatabase: () => openDatabase({ stateDir: config.stateDir, migrate: false, ...(config.databaseUrl !== undefined ? { url: config.databaseUrl } : {}) }),
      store,
      daemonId: config.daemonId,
      provider: database.location.provider,
      databaseName: database.location.display,
      busEndpoint: config.bus?.advertise ?? null,
      ...config.fleet,
      onTakenOver: (job, from) => this.requeueTakenOver(job, from.id),
      onLeaseLost: () => {
        this.log.error({ running: this.queue.running.map((j) => j.id) }, 'this daemon missed its heartbeats and another daemon took its jobs over; its running jobs are stopped');
        this.cancelRunning('this daemon lost its lease (it missed its heartbeats) and another daemon took the job over.');
      },
      onError: (err, what) => this.log.error({ err }, `${what}: ${(err as Error).message}`),
    });
    store.onChange((change) => {
      if (isTerminalJobState(change.state) || change.state === 'queued') this.runningRecords.delete(change.job.id);
      else this.runningRecords.set(change.job.id, change.job);
      this.metrics.observe(change);
      const { job } = change;
      const fields = { job: job.id, client: job.clientName, state: change.state, ...(job.failureCause ? { cause: job.failureCause } : {}) };
      if (change.state === 'failed') this.log.warn(fields, `job ${job.id} (${job.clientName}) failed: ${job.failureMessage ?? ''}`);
      else this.log.info(fields, `job ${job.id} (${job.clientName}) ${change.state}${change.detail ? `: ${change.detail}` : ''}`);
      this.events.emit('job-state', change);
      if (isTerminalJobState(change.state)) this.alerts?.jobEnded(job);
    });
  }

  static async start(options: DaemonOptions, hooks: DaemonHooks = {}): Promise<Daemon> {
    const env = hooks.env ?? process.env;
    // Settings from the database come later; these first values say where the database is.
    const initial = resolveDaemonConfig(options, env, new Map());
    const log = createDaemonLogger({ file: initial.logFile, level: initial.logLevel, daemonId: initial.daemonId });
    const database = await openDatabase({ stateDir: initial.stateDir, ...(initial.databaseUrl !== undefined ? { url: initial.databaseUrl } : {}) });
    let repository: Repository | undefined;
    let daemon: Daemon | undefined;
    try {
      const config = resolveDaemonConfig(options, env, await Daemon.readSettings(database));
      repository = await Repository.open(await openStorage(config.repository, env), options.passphrase);
      const store = new JobStore(database.prisma, { daemonId: config.daemonId, progressIntervalMs: config.progressIntervalMs });
      const identity = loadOrCreateServerIdentity(path.join(config.stateDir, 'identity'));
      const started = new Daemon(config, options, env, database, store, repository, log, identity, hooks);
      daemon = started;
      // The bus first: its sockets refuse a second daemon on this state directory before that
      // one could take the first one's running jobs for interrupted ones.
      if (config.bus) started.bus = await startDaemonBus(started, config.bus);
      // Joined before recovery: a refused second daemon must not close the jobs of the one that runs.
      const takenOver = await started.fleet.join();
      if (takenOver.length > 0) await started.indexLeftoverPacks();
      await started.recover();
      // Listening first: a port in use fails the start before any job has begun.
      if (config.http) started.http = await startHealthEndpoint({ ...config.http, health: () => started.health(), metrics: started.metrics.registry });
      started.scheduleRetention();
      const reload = await started.scheduler.reload();
      const caughtUp = await started.scheduler.catchUp();
      started.scheduleMaintenance();
      started.startAdopting();
      started.alerts?.start();
      log.info(
        {
          database: database.location.display,
          repository: config.repository,
          timeZone: config.timeZone,
          maxConcurrentJobs: config.maxConcurrentJobs,
          blackout: config.blackout.map((w) => w.text),
          http: started.http ? `${started.http.host}:${started.http.port}` : 'off',
          scheduled: reload.scheduled,
          catchUp: caughtUp.map((c) => c.client),
          maintenance: config.maintenance,
          notifications: config.notifications ? { email: !!config.notifications.email, webhook: !!config.notifications.webhook, digest: config.notifications.digest } : 'off',
        },
        `haul daemon started: ${reload.scheduled.length} client(s) scheduled, ${caughtUp.length} missed run(s) to catch up`,
      );
      return started;
    } catch (err) {
      await daemon?.fleet.leave();
      daemon?.scheduler.stop();
      clearInterval(daemon?.adoptTimer);
      if (daemon?.retentionTimer) clearInterval(daemon.retentionTimer);
      await daemon?.bus?.stop();
      await daemon?.http?.close();
      await repository?.close();
      await database.close();
      // On stderr the caller prints the error itself; a log file should have it too.
      if (initial.logFile) log.error({ err }, `haul daemon could not start: ${(err as Error).message}`);
      log.flush();
      throw err;
    }
  }

  private static async readSettings(database: Database): Promise<Map<string, string>> {
    const rows = await database.prisma.setting.findMany();
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  /** Jobs a killed daemon left open fail (daemon-restart); packs they wrote get indexed for reuse. */
  private async recover(): Promise<void> {
    const recovered = await this.store.recoverInterruptedJobs();
    if (recovered.length === 0) return;
    this.log.warn({ jobs: recovered.map((j) => j.id) }, `closed ${recovered.length} job(s) left open by a daemon that stopped without finishing them (cause daemon-restart)`);
    await this.indexLeftoverPacks();
  }

  /** Packs written by jobs that never finished get indexed, so the next runs reuse them. */
  private async indexLeftoverPacks(): Promise<void> {
    const handle = this.repository.reopen();
    try {
      const indexed = await indexUnindexedPacks(handle);
      if (indexed.packs > 0 || indexed.unreadablePacks.length > 0) {
        this.log.info({ packs: indexed.packs, blobs: indexed.blobs, unreadable: indexed.unreadablePacks }, `indexed ${indexed.packs} pack(s) (${indexed.blobs} blobs) the interrupted job(s) had written, so the next runs reuse them`);
      }
    } catch (err) {
      this.log.error({ err }, `could not index the packs left by interrupted jobs: ${(err as Error).message}. They stay unused until \`haul repair index\`; backups go on.`);
    } finally {
      await handle.close();
    }
  }

  private clientKey(client: Pick<Client, 'id'>): string {
    return `id:${client.id}`;
  }

  /** A schedule slot came or was missed: queue one run, unless the client already has one. */
  private async due(client: Client, trigger: 'schedule' | 'catch-up', slot: Date): Promise<void> {
    if (this.stopping) return;
    const busy = this.queue.clientState({ clientId: client.id, clientName: client.name });
    const pending = busy.queued ?? busy.running;
    if (pending || this.enqueuing.has(this.clientKey(client))) {
      this.log.info({ client: client.name, slot: slot.toISOString(), job: pending?.id }, `the ${trigger === 'catch-up' ? 'missed' : 'scheduled'} run of ${client.name} at ${slot.toISOString()} is skipped: job ${pending?.id ?? '(being queued)'} is already ${busy.queued ? 'queued' : 'running'}`);
      return;
    }
    try {
      if (!(await this.fleetMayFire(client, trigger, slot))) return;
      await this.enqueue(client, trigger, { detail: `${trigger === 'catch-up' ? 'missed slot' : 'slot'} ${slot.toISOString()}` });
    } catch (err) {
      this.log.error({ err, client: client.name }, `could not queue the ${trigger} run of ${client.name}: ${(err as Error).message}`);
    }
  }

  private enqueue(client: Client, trigger: JobTrigger, extra: EnqueueExtra): Promise<JobRecord> {
    const key = this.clientKey(client);
    const queued = this.createAndQueue(client, trigger, extra).finally(() => {
      if (this.enqueuing.get(key) === queued) this.enqueuing.delete(key);
    });
    this.enqueuing.set(key, queued);
    return queued;
  }

  private async createAndQueue(client: Client, trigger: JobTrigger, extra: EnqueueExtra): Promise<JobRecord> {
    const job = await this.store.create({
      clientId: client.id,
      clientName: client.name,
      trigger,
      ...(extra.detail !== undefined ? { detail: extra.detail } : {}),
      ...(extra.attempt !== undefined ? { attempt: extra.attempt } : {}),
      ...(extra.retryOfId !== undefined ? { retryOfId: extra.retryOfId } : {}),
      ...(extra.requestedBy !== undefined ? { requestedBy: extra.requestedBy } : {}),
      ...(extra.notBefore !== undefined ? { notBefore: extra.notBefore } : {}),
    });
    try {
      this.queue.add(job, extra.notBefore);
    } catch (err) {
      await this.store.finish(job.id, { state: 'cancelled', message: (err as Error).message });
      throw err;
    }
    return job;
  }

  // ---- fleet: the database decides between daemons (daemon/fleet/) ----

  /** The slot fires here only if no daemon fired it yet and the client has no unfinished job anywhere. */
  private async fleetMayFire(client: Client, trigger: 'schedule' | 'catch-up', slot: Date): Promise<boolean> {
    if (!(await this.fleet.leases.claimSlot(client.id, slot))) {
      this.log.debug({ client: client.name, slot: slot.toISOString() }, `the ${trigger} slot ${slot.toISOString()} of ${client.name} was fired by another daemon`);
      return false;
    }
    const other = await this.fleet.leases.unfinishedJobOf(client.id);
    if (!other) return true;
    this.log.info({ client: client.name, slot: slot.toISOString(), job: other.id }, `the ${trigger === 'catch-up' ? 'missed' : 'scheduled'} run of ${client.name} at ${slot.toISOString()} is skipped: job ${other.id} is already ${other.state} on daemon ${other.daemonId ?? '(none)'}`);
    return false;
  }

  /** Claims the job before it runs; a client busy on another daemon sends it back to wait. */
  private async claimBeforeRun(job: JobRecord): Promise<boolean> {
    let claim: Awaited<ReturnType<typeof this.fleet.leases.claim>>;
    try {
      claim = await this.fleet.leases.claim(job);
    } catch (err) {
      this.log.error({ err, job: job.id }, `could not claim job ${job.id} in the database`);
      // An adopted job is still in the queue of the daemon that queued it.
      if (this.adopted.delete(job.id)) return false;
      // Left queued, the job would wait forever: it fails, saying why, and a retry may follow.
      await this.store.finish(job.id, { state: 'failed', cause: 'internal', message: `the daemon could not claim the job in the database (${(err as Error).message.trim().split('\n').at(-1)}); check the database, then run it again.` }).catch(() => undefined);
      return false;
    }
    if (claim.result === 'claimed') return true;
    // The daemon that queued an adopted job still holds it and tries again itself.
    if (this.adopted.delete(job.id)) return false;
    if (claim.result === 'locked' && !this.stopping) {
      // Left out of the queue, a job nobody else holds would wait in the database for ever.
      const at = new Date(Date.now() + 1000);
      this.log.info({ job: job.id, client: job.clientName }, `job ${job.id} (${job.clientName}) was held by another database transaction when it was to start; trying again at ${at.toISOString()}`);
      this.queue.add(job, at);
    } else if (claim.result === 'client-busy' && !this.stopping) {
      const at = new Date(Date.now() + this.config.fleet.heartbeatMs);
      this.log.info({ job: job.id, client: job.clientName, busyWith: claim.by }, `job ${job.id} (${job.clientName}) waits: the client has job ${claim.by.jobId} on daemon ${claim.by.daemonId ?? '(unknown)'}; trying again at ${at.toISOString()}`);
      this.queue.add(job, at);
    } else if (claim.result === 'client-busy') {
      await this.store.finish(job.id, { state: 'cancelled', message: 'the daemon was stopped before this job started; a scheduled run that was missed starts once after the restart.' });
    }
    return false;
  }

  /** A dead daemon's job, failed by the takeover, is queued here once more (a retry). */
  private async requeueTakenOver(job: JobRecord, from: string): Promise<void> {
    this.log.warn({ job: job.id, client: job.clientName, from }, `took over job ${job.id} (${job.clientName}) from daemon ${from}, whose lease expired`);
    if (job.clientId === null || this.stopping) return;
    const client = await this.database.prisma.client.findUnique({ where: { id: job.clientId } });
    if (!client?.enabled) return;
    // Indexed first, so the retry finds what the dead daemon's run had stored.
    await this.indexLeftoverPacks();
    await this.enqueue(client, 'retry', { attempt: job.attempt + 1, retryOfId: job.id, detail: `job ${job.id} was taken over from daemon ${from}, whose lease expired` });
  }

  /**
   * A daemon only runs the jobs it queued, and whichever daemon records a slot first queues it;
   * so one daemon can have a queue while another idles (seen in the fleet benchmark). An idle
   * daemon takes backups that have waited elsewhere and runs them once its claim succeeds; the
   * daemon that queued them finds them claimed and drops them.
   */
  private startAdopting(): void {
    if (this.database.location.provider !== 'postgresql') return;
    const everyMs = Math.min(2_000, this.config.fleet.heartbeatMs);
    this.adoptTimer = setInterval(() => {
      this.adopting ??= this.dropJobsClaimedElsewhere()
        .then(() => this.adoptWaitingJobs(everyMs))
        .finally(() => (this.adopting = undefined));
    }, everyMs);
    this.adoptTimer.unref();
  }

  /** Queued jobs here that another daemon took and claimed leave this queue (and its counts). */
  private async dropJobsClaimedElsewhere(): Promise<void> {
    const waiting = this.queue.queued.slice(0, 1000).map((j) => j.id);
    if (waiting.length === 0 || this.stopping) return;
    try {
      for (const job of await this.fleet.leases.claimedElsewhere(waiting)) {
        this.adopted.delete(job.id);
        if (!this.queue.remove(job.id)) continue;
        this.log.info({ job: job.id, client: job.clientName, by: job.daemonId }, `job ${job.id} (${job.clientName}) leaves this queue: daemon ${job.daemonId ?? '(none)'} took it`);
      }
    } catch (err) {
      this.log.error({ err }, `could not check whether queued jobs were taken by other daemons: ${(err as Error).message}`);
    }
  }

  private async adoptWaitingJobs(waitedMs: number): Promise<void> {
    const free = this.config.maxConcurrentJobs - this.queue.running.length - this.queue.queued.length;
    if (free <= 0 || this.stopping || this.blackout.endOf(new Date())) return;
    try {
      const jobs = await this.fleet.leases.waitingElsewhere(free, waitedMs, [...this.adopted]);
      for (const job of jobs) {
        if (this.stopping) return;
        const busy = this.queue.clientState(job);
        if (busy.queued ?? busy.running) continue;
        this.adopted.add(job.id);
        this.log.info({ job: job.id, client: job.clientName, from: job.daemonId }, `takes job ${job.id} (${job.clientName}), queued by daemon ${job.daemonId ?? '(none)'} at ${job.queuedAt.toISOString()} and not started there yet`);
        this.queue.add(job, job.notBefore ?? undefined);
      }
    } catch (err) {
      this.log.error({ err }, `could not look for jobs waiting on other daemons: ${(err as Error).message}`);
    }
  }

  // ---- end fleet ----

  private async runJob(job: JobRecord, signal: AbortSignal): Promise<void> {
    if (!(await this.claimBeforeRun(job))) return;
    this.adopted.delete(job.id);
    const ended = await this.runner.run(job, signal).finally(() => this.restoreRequests.delete(job.id));
    // Only backups are retried: a restore asked for by an operator is theirs to ask again.
    if (ended.state !== 'failed' || ended.kind !== 'backup' || this.stopping) return;
    const delay = retryDelay(this.config.retry, ended.failureCause ?? '', ended.attempt);
    if (delay === undefined || ended.clientId === null) return;
    const client = await this.database.prisma.client.findUnique({ where: { id: ended.clientId } });
    if (!client?.enabled) return;
    const at = new Date(Date.now() + delay);
    await this.enqueue(client, 'retry', {
      attempt: ended.attempt + 1,
      retryOfId: ended.id,
      notBefore: at,
      detail: `retry ${ended.attempt + 1} of ${this.config.retry.maxAttempts} after job ${ended.id} failed (${ended.failureCause}); starts at ${at.toISOString()} or later`,
    }).catch((err: unknown) => this.log.error({ err, job: ended.id }, `could not queue the retry of job ${ended.id}: ${(err as Error).message}`));
  }

  /** (Re)starts the verify and prune timers from the configuration. */
  private scheduleMaintenance(): void {
    for (const timer of this.maintenanceTimers.values()) timer.cancel();
    this.maintenanceTimers.clear();
    const { checkSchedule, pruneSchedule } = this.config.maintenance;
    for (const [kind, rule] of [['check', checkSchedule], ['prune', pruneSchedule]] as const) {
      if (rule === null) continue;
      const timer = schedule.scheduleJob({ rule, tz: this.config.timeZone }, (slot: Date) => {
        if (this.stopping) return;
        this.fireMaintenanceSlot(kind, slot).catch((err: unknown) => this.log.error({ err, kind }, `could not queue the scheduled ${kind}: ${(err as Error).message}`));
      });
      if (timer) this.maintenanceTimers.set(kind, timer);
    }
  }

  /** Every daemon's timer fires; the one that records the slot first queues the job. */
  private async fireMaintenanceSlot(kind: MaintenanceKind, slot: Date): Promise<void> {
    if (!(await this.fleet.leases.claimMaintenanceSlot(kind, slot))) {
      this.log.debug({ kind, slot: slot.toISOString() }, `the scheduled ${kind} of slot ${slot.toISOString()} was fired by another daemon`);
      return;
    }
    await this.runMaintenance(kind, undefined, `slot ${slot.toISOString()}`);
  }

  /**
   * Queues a repository job (verify or prune), or returns the one of that kind already waiting.
   * Repository jobs run one at a time, in the queue like backups; prune waits for running
   * backups to release the repository, and backups started meanwhile wait for prune.
   */
  async runMaintenance(kind: MaintenanceKind, requestedBy?: string, detail?: string): Promise<JobRecord> {
    if (this.stopping) throw new HaulError('DaemonStopping', 'the daemon is shutting down and starts no more jobs; run it again after the restart.');
    const waiting = this.queue.queued.find((j) => j.kind === kind);
    if (waiting) return waiting;
    const running = this.queue.running.find((j) => j.kind === kind);
    if (running && requestedBy === undefined) {
      this.log.info({ kind, job: running.id }, `the scheduled ${kind} is skipped: job ${running.id} is still running`);
      return running;
    }
    const job = await this.store.create({
      clientId: null,
      clientName: repositoryJobName,
      kind,
      trigger: requestedBy === undefined ? 'schedule' : 'manual',
      ...(requestedBy !== undefined ? { requestedBy } : {}),
      ...(detail !== undefined || requestedBy !== undefined ? { detail: detail ?? `requested by ${requestedBy}` } : {}),
    });
    this.queue.add(job);
    return job;
  }

  // ---- what the bus calls ----

  /** Queues a backup of `clientName` now (or returns the one already waiting for it). */
  async runNow(clientName: string, requestedBy?: string): Promise<JobRecord> {
    if (this.stopping) throw new HaulError('DaemonStopping', 'the daemon is shutting down and starts no more jobs; run it again after the restart.');
    const client = await this.database.prisma.client.findUnique({ where: { name: clientName } });
    if (!client) throw new HaulError('ClientNotFound', `there is no client named ${JSON.stringify(clientName)}; \`haul client list\` shows them.`);
    if (!client.enabled) throw new HaulError('InvalidArgument', `client ${clientName} is disabled; enable it first (\`haul client set ${clientName} --enable\`).`);
    const queued = this.queue.clientState({ clientId: client.id, clientName: client.name }).queued;
    const waiting = (queued?.kind === 'backup' ? queued : undefined) ?? (await this.enqueuing.get(this.clientKey(client)));
    if (waiting) return waiting;
    return this.enqueue(client, 'manual', requestedBy !== undefined ? { requestedBy, detail: `requested by ${requestedBy}` } : {});
  }

  /**
   * Queues a restore of `request` onto `clientName`. The snapshot is resolved by the caller (the
   * bus), so a wrong ID fails the request, not a job. Runs like any job: queued behind a job of
   * the same client, logged, cancellable; not retried.
   */
  async restore(clientName: string, request: RestoreRequest, requestedBy?: string): Promise<JobRecord> {
    if (this.stopping) throw new HaulError('DaemonStopping', 'the daemon is shutting down and starts no more jobs; run it again after the restart.');
    const client = await this.database.prisma.client.findUnique({ where: { name: clientName } });
    if (!client) throw new HaulError('ClientNotFound', `there is no client named ${JSON.stringify(clientName)} to restore onto; \`haul client list\` shows them.`);
    if (!client.enabled) throw new HaulError('InvalidArgument', `client ${clientName} is disabled, so the daemon does not connect to it; enable it first (\`haul client set ${clientName} --enable\`).`);
    const job = await this.store.create({
      clientId: client.id,
      clientName: client.name,
      kind: 'restore',
      trigger: 'manual',
      detail: describeRestore(request, client.name) + (requestedBy !== undefined ? `, requested by ${requestedBy}` : ''),
      ...(requestedBy !== undefined ? { requestedBy } : {}),
    });
    this.restoreRequests.set(job.id, request);
    try {
      this.queue.add(job);
    } catch (err) {
      this.restoreRequests.delete(job.id);
      await this.store.finish(job.id, { state: 'cancelled', message: (err as Error).message });
      throw err;
    }
    return job;
  }

  /**
   * Cancels a queued or running job and resolves with its final record once it has ended. A job
   * already finalizing completes its snapshot instead (and ends succeeded).
   */
  async cancel(jobId: number, requestedBy?: string): Promise<JobRecord> {
    const who = requestedBy ?? 'an operator';
    const queued = this.queue.remove(jobId);
    if (queued) return this.store.finish(jobId, { state: 'cancelled', message: `cancelled by ${who} before it started` });
    const kind = this.queue.running.find((j) => j.id === jobId)?.kind;
    const aftermath = kind === 'restore' ? 'what was already written on the client stays there.' : 'no snapshot was written, what arrived is kept for the next run.';
    const running = this.queue.abort(jobId, new HaulError('JobCancelled', `cancelled by ${who} while it ran; ${aftermath}`));
    if (running) {
      await running;
      return (await this.store.get(jobId))!;
    }
    const job = await this.store.get(jobId);
    if (!job) throw new HaulError('JobNotFound', `there is no job ${jobId}; \`haul jobs\` lists the recent ones.`);
    if (isTerminalJobState(job.state)) throw new HaulError('InvalidArgument', `job ${jobId} has already ended (${job.state}); there is nothing to cancel.`);
    throw new HaulError('InvalidArgument', `job ${jobId} is ${job.state} on daemon ${job.daemonId ?? '(unknown)'}, not on this one (${this.config.daemonId}); cancel it there.`);
  }

  /** Re-reads the Client table and the daemon's settings (time zone, limits, blackout windows). */
  async reload(): Promise<ReloadResult & { timeZone: string; maxConcurrentJobs: number; blackout: string[] }> {
    const config = resolveDaemonConfig(this.options, this.env, await Daemon.readSettings(this.database));
    this.config = { ...this.config, timeZone: config.timeZone, maxConcurrentJobs: config.maxConcurrentJobs, blackout: config.blackout };
    this.blackout = new BlackoutCalendar(config.blackout, config.timeZone);
    this.queue.reconfigure({ maxConcurrent: config.maxConcurrentJobs, blackout: this.blackout });
    this.config = { ...this.config, maintenance: config.maintenance };
    this.scheduleMaintenance();
    const result = await this.scheduler.reload(config.timeZone);
    this.log.info({ ...result, timeZone: config.timeZone, maxConcurrentJobs: config.maxConcurrentJobs }, 'reloaded clients and settings');
    return { ...result, timeZone: config.timeZone, maxConcurrentJobs: config.maxConcurrentJobs, blackout: config.blackout.map((w) => w.text) };
  }

  listJobs(filter: JobFilter = {}): Promise<JobRecord[]> {
    return this.store.list(filter);
  }

  status(): DaemonStatus {
    const now = new Date();
    return {
      daemonId: this.config.daemonId,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.round((now.getTime() - this.startedAt.getTime()) / 1000),
      stopping: this.stopping !== undefined,
      timeZone: this.config.timeZone,
      maxConcurrentJobs: this.config.maxConcurrentJobs,
      blackout: this.config.blackout.map((w) => w.text),
      blackoutUntil: this.blackout.endOf(now)?.toISOString(),
      running: this.queue.running.map((j) => this.runningRecords.get(j.id) ?? j),
      queued: [...this.queue.queued],
      scheduled: this.scheduler.scheduledClients.map((c) => ({ client: c.name, next: this.scheduler.nextRun(c.id)?.toISOString() })),
    };
  }

  get httpAddress(): { host: string; port: number } | undefined {
    return this.http ? { host: this.http.host, port: this.http.port } : undefined;
  }

  get effectiveConfig(): DaemonConfig {
    return this.config;
  }

  private async health(): Promise<HealthReport> {
    const base = { daemonId: this.config.daemonId, uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000), running: this.queue.running.length, queued: this.queue.queued.length };
    if (this.stopping) return { status: 'stopping', ...base };
    try {
      await this.database.prisma.$queryRawUnsafe('SELECT 1');
      return { status: 'ok', database: 'ok', ...base };
    } catch (err) {
      return { status: 'unhealthy', database: (err as Error).message, ...base };
    }
  }

  /**
   * Stops: no new jobs, running ones get `graceMs` (default from the config) to finish, then are
   * cancelled cleanly (packs written so far are indexed, no snapshot). Safe to call twice; the
   * second call with a shorter grace cuts the wait short.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    const graceMs = options.graceMs ?? this.config.graceMs;
    if (this.stopping) {
      if (options.graceMs !== undefined) this.cancelRunning(`the daemon was asked again to stop; the job was cancelled without waiting for the grace period.`);
      return this.stopping;
    }
    this.stopping = (async () => {
      this.log.info({ graceMs, running: this.queue.running.map((j) => j.id) }, `stopping: ${this.queue.running.length} running job(s) get ${graceMs / 1000} s to finish`);
      this.scheduler.stop();
      if (this.retentionTimer) clearInterval(this.retentionTimer);
      clearInterval(this.adoptTimer);
      await this.adopting;
      for (const timer of this.maintenanceTimers.values()) timer.cancel();
      const neverStarted = await this.queue.drain(graceMs, new HaulError('DaemonStopping', `the daemon was stopped and the job did not finish within the grace period of ${graceMs / 1000} s; no snapshot was written, what arrived is kept for the next run.`));
      for (const job of neverStarted) {
        await this.store.finish(job.id, { state: 'cancelled', message: 'the daemon was stopped before this job started; a scheduled run that was missed starts once after the restart.' }).catch((err: unknown) => this.log.error({ err, job: job.id }, 'could not record the cancellation'));
      }
      // Digests the last jobs left to write (the next backups read them): a few ms each.
      await previousCacheWritesSettled();
      await this.fleet.leave();
      // The bus goes last but one: clients see the jobs end before it closes.
      await this.bus?.stop();
      await this.alerts?.stop();
      await this.http?.close();
      await this.repository.close();
      await this.database.close();
      this.log.info('haul daemon stopped');
      this.log.flush();
    })();
    return this.stopping;
  }

  /** The default job log: one file per job under <stateDir>/logs, every line also an event. */
  private openJobLog(job: JobRecord): JobLogSink {
    const file = JobLog.create({ stateDir: this.config.stateDir, jobId: job.id, onLine: (line) => this.events.emit('job-log-line', line) });
    const write = { INFO: (t: string) => file.info(t), WARN: (t: string) => file.warn(t), ERROR: (t: string) => file.error(t) };
    return {
      path: file.path,
      write: (line, level) => write[level](line),
      finish: async () => {
        const seal = file.finish();
        if (seal.lostLines > 0) this.log.error({ job: job.id, lost: seal.lostLines }, `${seal.lostLines} line(s) of the log of job ${job.id} could not be written to ${seal.path}: ${seal.firstWriteError}`);
        return seal.sha256;
      },
    };
  }

  /**
   * Now and then once a day: job history older than the retention age is deleted (unless that is
   * switched off), and so are the cached digests of removed clients.
   */
  private scheduleRetention(): void {
    void this.applyRetention();
    this.retentionTimer = setInterval(() => void this.applyRetention(), 86_400_000);
    this.retentionTimer.unref();
  }

  async applyRetention(): Promise<void> {
    await this.deleteOldJobs();
    await this.removeOrphanedDigests();
  }

  private async deleteOldJobs(): Promise<void> {
    if (this.config.jobRetentionMs <= 0) return;
    const cutoff = new Date(Date.now() - this.config.jobRetentionMs);
    try {
      const removed = await deleteJobsOlderThan(this.database.prisma, this.config.stateDir, cutoff);
      if (removed.jobs.length > 0 || removed.logs > 0) {
        this.log.info({ jobs: removed.jobs.length, logs: removed.logs, logBytes: removed.logBytes, cutoff: cutoff.toISOString() }, `job retention: deleted ${removed.jobs.length} job(s) and ${removed.logs} log file(s) that ended before ${cutoff.toISOString()}`);
      }
    } catch (err) {
      this.log.error({ err }, `job retention failed: ${(err as Error).message}; the old jobs stay until the next run (in a day).`);
    }
  }

  /** The cached previous-snapshot digests of removed clients (only disk space: they are sealed and name nothing). */
  private async removeOrphanedDigests(): Promise<void> {
    const dir = previousCacheDirectory(this.config.stateDir);
    try {
      const clients = (await new ClientStore(this.database.prisma).list()).map((c) => c.name);
      const removed = await removeOrphanedPreviousCaches(dir, this.repository.keys, clients, new Date(Date.now() - 3_600_000));
      if (removed.files > 0) this.log.info({ files: removed.files, bytes: removed.bytes }, `deleted ${removed.files} cached previous-snapshot digest(s) of removed clients (${removed.bytes} bytes) from ${dir}`);
    } catch (err) {
      this.log.error({ err }, `cleaning ${dir} failed: ${(err as Error).message}; the files of removed clients stay until the next run (in a day). They hold nothing readable without the repository's keys.`);
    }
  }

  private cancelRunning(message: string): void {
    for (const job of this.queue.running) void this.queue.abort(job.id, new HaulError('DaemonStopping', message));
  }
}

export function startDaemon(options: DaemonOptions, hooks: DaemonHooks = {}): Promise<Daemon> {
  return Daemon.start(options, hooks);
}
