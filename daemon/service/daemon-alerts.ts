// What the daemon tells people about, through daemon/notifications/: a job that failed for good
// (a transient cause only on its last try), a verify that found damage (with the damaged files
// and snapshots from its log), a backup stopped by its client's quota, a client with no
// successful backup for longer than its threshold (once per overdue spell), and the daily
// digest. Alerts about a client also go to its tenant's recipients. Deliveries never block or fail a job; a lost one is in the daemon's log.
import schedule from 'node-schedule';
import type { JobLogLevel } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';
import { tenantOfClient } from '../database/tenants.js';
import { transientCauses } from '../jobs/failure-cause.js';
import type { JobRecord } from '../jobs/job-store.js';
import { quotaLimits } from '../jobs/client-quota.js';
import type { Notification } from '../notifications/notification.js';
import type { Notifier } from '../notifications/notifier.js';
import type { DaemonLogger } from './daemon-logger.js';

export interface DaemonAlertsOptions {
  notifier: Notifier;
  prisma: PrismaClient;
  log: DaemonLogger;
  /** Tries in all for transient causes: a failure before the last try is not news yet. */
  maxAttempts: number;
  overdueCheckIntervalMs: number;
  digestSchedule: string;
  timeZone: string;
}

/** The most damage lines one verify notification lists; the job log has them all. */
const maxProblemsListed = 50;

export class DaemonAlerts {
  private readonly checkErrors = new Map<number, string[]>();
  /** Per client, the last success (ISO, or "never") an overdue notice was sent for. */
  private readonly overdueSent = new Map<number, string>();
  private readonly pending = new Set<Promise<unknown>>();
  private overdueTimer: NodeJS.Timeout | undefined;
  private digestTimer: schedule.Job | null = null;

  constructor(private readonly options: DaemonAlertsOptions) {}

  start(): void {
    const tick = () => this.track(this.checkOverdue());
    tick();
    this.overdueTimer = setInterval(tick, this.options.overdueCheckIntervalMs);
    this.overdueTimer.unref();
    if (this.options.notifier.wants('daily-digest')) {
      this.digestTimer = schedule.scheduleJob({ rule: this.options.digestSchedule, tz: this.options.timeZone }, (at: Date) => this.track(this.sendDigest(at)));
    }
  }

  /** Every line of a job's log: a verify's damage lines are kept for its notification. */
  jobLog(job: JobRecord, line: string, level: JobLogLevel): void {
    if (job.kind !== 'check' || level !== 'ERROR' || !line.startsWith('error: ')) return;
    const lines = this.checkErrors.get(job.id) ?? [];
    if (lines.length < maxProblemsListed) lines.push(line.slice('error: '.length));
    this.checkErrors.set(job.id, lines);
  }

  /** A job reached its end state. */
  jobEnded(job: JobRecord): void {
    const problems = this.checkErrors.get(job.id) ?? [];
    this.checkErrors.delete(job.id);
    if (job.state !== 'failed') return;
    const cause = job.failureCause ?? 'internal';
    if (transientCauses.includes(cause as (typeof transientCauses)[number]) && job.attempt < this.options.maxAttempts) return;
    this.track(this.notifyFailure(job, cause, problems));
  }

  private async notifyFailure(job: JobRecord, cause: string, problems: string[]): Promise<void> {
    const finishedAt = (job.finishedAt ?? new Date()).toISOString();
    if (job.kind === 'check' && problems.length > 0) {
      await this.send({ kind: 'verify-failed', jobId: job.id, errors: problems.length, problems, finishedAt });
      return;
    }
    if (cause === 'quota' && job.clientId !== null) {
      const client = await this.options.prisma.client.findUnique({ where: { id: job.clientId } });
      const limits = client ? await quotaLimits(this.options.prisma, client) : [];
      // The quota that stopped it: the one now full, else the client's own.
      const limit = limits.find((l) => l.usedBytes >= l.quotaBytes) ?? limits[0];
      if (client && limit) {
        await this.send({ kind: 'quota-exceeded', client: client.name, ...(limit.tenant === undefined ? {} : { tenant: limit.tenant }), usedBytes: limit.usedBytes, quotaBytes: limit.quotaBytes, jobId: job.id }, client.id);
        return;
      }
    }
    await this.send({ kind: 'job-failed', jobId: job.id, client: job.clientId === null ? null : job.clientName, jobKind: job.kind, cause, message: job.failureMessage ?? '', finishedAt, attempt: job.attempt }, job.clientId);
  }

  /** Clients whose newest successful backup is older than their threshold; each spell is told once. */
  async checkOverdue(now = new Date()): Promise<string[]> {
    const clients = await this.options.prisma.client.findMany({ where: { enabled: true, overdueHours: { not: null } }, orderBy: { name: 'asc' } });
    const overdue: string[] = [];
    for (const c of clients) {
      const last = await this.lastSuccess(c.id);
      // A new client is measured from when it was added, not from the epoch.
      const since = last ?? c.createdAt;
      if (now.getTime() - since.getTime() <= c.overdueHours! * 3_600_000) continue;
      overdue.push(c.name);
      const key = last?.toISOString() ?? 'never';
      if (this.overdueSent.get(c.id) === key) continue;
      this.overdueSent.set(c.id, key);
      await this.send({ kind: 'client-overdue', client: c.name, lastSuccess: last?.toISOString() ?? null, thresholdHours: c.overdueHours! }, c.id);
    }
    return overdue;
  }

  private async lastSuccess(clientId: number): Promise<Date | undefined> {
    const job = await this.options.prisma.job.findFirst({ where: { clientId, kind: 'backup', state: 'succeeded' }, orderBy: { finishedAt: 'desc' }, select: { finishedAt: true } });
    return job?.finishedAt ?? undefined;
  }

  /** The jobs that ended in the 24 hours before `at`. */
  async sendDigest(at = new Date()): Promise<void> {
    const from = new Date(at.getTime() - 86_400_000);
    const jobs = await this.options.prisma.job.findMany({ where: { finishedAt: { gt: from, lte: at } }, orderBy: { id: 'asc' } });
    const failed = jobs.filter((j) => j.state === 'failed');
    const overdue = await this.checkOverdue(at);
    await this.send({
      kind: 'daily-digest',
      date: at.toISOString().slice(0, 10),
      succeeded: jobs.filter((j) => j.state === 'succeeded').length,
      failed: failed.length,
      bytesNew: Number(jobs.reduce((sum, j) => sum + (j.kind === 'backup' ? j.bytesNew : 0n), 0n)),
      overdue,
      failures: failed.map((j) => ({ client: j.clientName ?? '(removed)', cause: j.failureCause ?? 'internal' })),
    });
  }

  /** Alerts about one client also go to its tenant's recipients. */
  private async send(n: Notification, clientId: number | null = null): Promise<void> {
    const alsoTo = clientId === null ? [] : (await tenantOfClient(this.options.prisma, clientId))?.notifyEmails ?? [];
    const results = await this.options.notifier.notify(n, { alsoTo });
    for (const r of results) {
      if (r.ok) this.options.log.info({ notification: n.kind, target: r.target }, `notification ${n.kind} sent by ${r.target}`);
    }
  }

  private track(work: Promise<unknown>): void {
    const p = work.catch((err: unknown) => this.options.log.error({ err }, `a notification could not be prepared: ${(err as Error).message}`)).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Waits for notifications on their way (so a stopping daemon sends what it has). */
  async stop(): Promise<void> {
    clearInterval(this.overdueTimer);
    this.digestTimer?.cancel();
    await Promise.allSettled([...this.pending]);
    this.options.notifier.close();
  }
}
