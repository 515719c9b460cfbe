// The jobs in the database: each one created queued, each state change written as it happens
// (Job.state and a JobTransition row in one transaction), progress counters written at most
// every few seconds, and the end with its typed cause. After a crash, `recoverInterruptedJobs`
// closes what the dead daemon left open. Writes for one job are applied in the order they were
// asked for, so callers may fire a transition without awaiting it.
import type { Job, JobTransition, Prisma } from '../../prisma/generated/sqlite/client.js';
import { HaulError } from '../../shared/errors.js';
import { isTerminalJobState, jobStates, terminalJobStates, type FailureCause, type JobKind, type JobPhase, type JobState, type JobTrigger } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';

export type JobRecord = Job;
export type JobTransitionRecord = JobTransition;

export interface NewJob {
  clientId: number | null;
  clientName: string;
  kind?: JobKind;
  trigger: JobTrigger;
  attempt?: number;
  retryOfId?: number;
  requestedBy?: string;
  /** Why it was queued, kept with the `queued` transition (e.g. the missed slot of a catch-up). */
  detail?: string;
  /** It starts no earlier than this (a retry's backoff). */
  notBefore?: Date;
}

export interface JobCounters {
  filesTotal?: number;
  filesDone?: number;
  bytesScanned?: number;
  bytesNew?: number;
  bytesOnWire?: number;
  /** Bytes written to storage (after dedup, compression, encryption). */
  bytesStored?: number;
  errors?: number;
}

interface EndCommon {
  counters?: JobCounters;
  /** SHA-256 of the job's log file, written when the job ends (see docs/daemon.md). */
  logSha256?: string;
  /** From leaving the queue to the end. */
  durationMs?: number;
}

export type JobEnd =
  | (EndCommon & { state: 'succeeded'; snapshotId?: string; detail?: string })
  | (EndCommon & { state: 'failed'; cause: FailureCause; message: string })
  | (EndCommon & { state: 'cancelled'; message: string });

export interface JobChange {
  job: JobRecord;
  /** The state before this change; null when the job was just queued. */
  previousState: JobState | null;
  state: JobState;
  at: Date;
  detail: string | null;
}

export interface JobFilter {
  ids?: number[];
  clientName?: string;
  states?: string[];
  kind?: string;
  /** Only jobs with a smaller ID (the next page of a newest-first listing). */
  beforeId?: number;
  /** Newest first; default 50. */
  limit?: number;
}

export interface JobStoreOptions {
  /** Written into every job this store creates; recovery closes only this daemon's jobs. */
  daemonId?: string;
  /** Progress counters reach the database at most this often per job. Default 2 s. */
  progressIntervalMs?: number;
}

interface PendingProgress {
  counters: JobCounters | undefined;
  lastWrite: number;
  timer: NodeJS.Timeout | undefined;
}

type JobData = Prisma.JobUncheckedUpdateManyInput;

function counterData(c: JobCounters | undefined): JobData {
  const data: JobData = {};
  if (!c) return data;
  for (const key of ['filesTotal', 'filesDone', 'bytesScanned', 'bytesNew', 'bytesOnWire', 'bytesStored'] as const) {
    const v = c[key];
    if (v !== undefined) data[key] = BigInt(Math.max(0, Math.trunc(v)));
  }
  if (c.errors !== undefined) data.errors = c.errors;
  return data;
}

/** The states a job may be in just before `state`: only forward moves are allowed. */
function statesBefore(state: JobState): string[] {
  const i = jobStates.indexOf(state);
  return jobStates.slice(0, i).filter((s) => !isTerminalJobState(s));
}

export class JobStore {
  private readonly listeners = new Set<(change: JobChange) => void>();
  private readonly chains = new Map<number, Promise<unknown>>();
  private readonly progress = new Map<number, PendingProgress>();
  readonly daemonId: string | undefined;
  private readonly progressIntervalMs: number;

  constructor(private readonly prisma: PrismaClient, options: JobStoreOptions = {}) {
    this.daemonId = options.daemonId;
    this.progressIntervalMs = options.progressIntervalMs ?? 2_000;
  }

  /** Called after every state written (queued, each phase, the end, recovery). Returns an unsubscribe. */
  onChange(listener: (change: JobChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(job: JobRecord, previousState: string | null, at: Date, detail: string | null): void {
    for (const l of this.listeners) l({ job, previousState: previousState as JobState | null, state: job.state as JobState, at, detail });
  }

  /** Runs `work` after every earlier write for the same job. */
  private serial<T>(id: number, work: () => Promise<T>): Promise<T> {
    const before = this.chains.get(id) ?? Promise.resolve();
    const next = before.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return next;
  }

  async create(job: NewJob): Promise<JobRecord> {
    const at = new Date();
    const created = await this.prisma.job.create({
      data: {
        clientId: job.clientId,
        clientName: job.clientName,
        kind: job.kind ?? 'backup',
        state: 'queued',
        trigger: job.trigger,
        attempt: job.attempt ?? 1,
        retryOfId: job.retryOfId ?? null,
        requestedBy: job.requestedBy ?? null,
        queuedAt: at,
        daemonId: this.daemonId ?? null,
        notBefore: job.notBefore ?? null,
        transitions: { create: { state: 'queued', at, detail: job.detail ?? null } },
      },
    });
    this.emit(created, null, at, job.detail ?? null);
    return created;
  }

  /** Moves a job one phase on; startedAt is set when it leaves the queue. */
  transition(id: number, state: JobPhase, detail?: string): Promise<JobRecord> {
    return this.serial(id, () => this.write(id, state, {}, detail ?? null));
  }

  private async write(id: number, state: JobState, data: JobData, detail: string | null): Promise<JobRecord> {
    const at = new Date();
    const written = await this.prisma.$transaction(async (tx) => {
      // Written before anything is read: on SQLite a transaction that reads first cannot wait for
      // the write lock and fails at once (SQLITE_BUSY) when another connection wrote meanwhile.
      // Conditional, so a concurrent writer (another process ending the job) cannot be overtaken.
      const allowed = statesBefore(state);
      let previous: string | undefined;
      // Leaving the queue starts the clock, whichever state comes first (a repository job has no 'connecting').
      if (allowed.includes('queued') && !isTerminalJobState(state)) {
        const started = await tx.job.updateMany({ where: { id, state: 'queued' }, data: { ...data, startedAt: at, state } });
        if (started.count === 1) previous = 'queued';
      }
      if (previous === undefined) {
        const moved = await tx.job.updateMany({ where: { id, state: { in: allowed.filter((s) => s !== 'queued' || isTerminalJobState(state)) } }, data: { ...data, state } });
        if (moved.count !== 1) return undefined;
        // Every state a job enters has its transition row: the newest one is the state it left.
        previous = (await tx.jobTransition.findFirst({ where: { jobId: id }, orderBy: { id: 'desc' }, select: { state: true } }))?.state ?? 'queued';
      }
      await tx.jobTransition.create({ data: { jobId: id, state, at, detail } });
      return { job: await tx.job.findUniqueOrThrow({ where: { id } }), previous };
    });
    const updated = written?.job;
    if (!updated) {
      const current = await this.prisma.job.findUnique({ where: { id } });
      if (!current) throw new HaulError('JobNotFound', `job ${id} does not exist; \`haul jobs\` lists the jobs.`);
      throw new HaulError('InvalidArgument', `job ${id} is ${current.state} and cannot become ${state}: a job only moves forward and never leaves ${terminalJobStates.join(', ')}.`);
    }
    this.emit(updated, written!.previous, at, detail);
    return updated;
  }

  /** Keeps the latest counters; they reach the database at most once per interval (and at the end). */
  recordProgress(id: number, counters: JobCounters): void {
    let p = this.progress.get(id);
    if (!p) {
      p = { counters: undefined, lastWrite: 0, timer: undefined };
      this.progress.set(id, p);
    }
    p.counters = counters;
    if (p.timer) return;
    const wait = p.lastWrite + this.progressIntervalMs - Date.now();
    const pending = p;
    pending.timer = setTimeout(() => {
      pending.timer = undefined;
      void this.writeProgress(id).catch(() => undefined);
    }, Math.max(0, wait));
    pending.timer.unref();
  }

  private writeProgress(id: number): Promise<void> {
    return this.serial(id, async () => {
      const p = this.progress.get(id);
      if (!p?.counters) return;
      const data = counterData(p.counters);
      p.counters = undefined;
      p.lastWrite = Date.now();
      // Only while running: a late write must never touch an ended job.
      await this.prisma.job.updateMany({ where: { id, state: { notIn: [...terminalJobStates] } }, data });
    });
  }

  /** Writes counters still waiting for their interval. */
  async flushProgress(id: number): Promise<void> {
    const p = this.progress.get(id);
    if (p?.timer) {
      clearTimeout(p.timer);
      p.timer = undefined;
    }
    await this.writeProgress(id);
  }

  /** Records where the job's plain-text log is. */
  attachLog(id: number, logPath: string): Promise<void> {
    return this.serial(id, async () => {
      await this.prisma.job.update({ where: { id }, data: { logPath } });
    });
  }

  /** Ends a job: state, cause, final counters and finish time, with its last transition. */
  async finish(id: number, end: JobEnd): Promise<JobRecord> {
    await this.flushProgress(id);
    this.progress.delete(id);
    const data: JobData = { ...counterData(end.counters), finishedAt: new Date() };
    if (end.logSha256 !== undefined) data.logSha256 = end.logSha256;
    if (end.durationMs !== undefined) data.durationMs = Math.round(end.durationMs);
    let detail: string | null = null;
    if (end.state === 'succeeded') {
      if (end.snapshotId !== undefined) data.snapshotId = end.snapshotId;
      detail = end.detail ?? (end.snapshotId ? `snapshot ${end.snapshotId}` : null);
    } else if (end.state === 'failed') {
      Object.assign(data, { failureCause: end.cause, failureMessage: end.message });
      detail = `${end.cause}: ${end.message}`;
    } else {
      Object.assign(data, { failureCause: 'cancelled', failureMessage: end.message });
      detail = end.message;
    }
    return this.serial(id, () => this.write(id, end.state, data, detail));
  }

  async get(id: number): Promise<JobRecord | undefined> {
    return (await this.prisma.job.findUnique({ where: { id } })) ?? undefined;
  }

  async list(filter: JobFilter = {}): Promise<JobRecord[]> {
    return this.prisma.job.findMany({
      where: {
        ...(filter.clientName !== undefined ? { clientName: filter.clientName } : {}),
        ...(filter.states ? { state: { in: filter.states } } : {}),
        ...(filter.kind !== undefined ? { kind: filter.kind } : {}),
        ...(filter.ids || filter.beforeId !== undefined ? { id: { ...(filter.ids ? { in: filter.ids } : {}), ...(filter.beforeId !== undefined ? { lt: filter.beforeId } : {}) } } : {}),
      },
      orderBy: { id: 'desc' },
      take: filter.limit ?? 50,
    });
  }

  transitions(id: number): Promise<JobTransitionRecord[]> {
    return this.prisma.jobTransition.findMany({ where: { jobId: id }, orderBy: { id: 'asc' } });
  }

  /** When the client's newest job of `kind` was queued (for catch-up), or undefined. */
  /**
   * When each client's newest job of `kind` was queued, in one query (a start-up with thousands
   * of clients must not ask once per client). Clients without such a job are absent.
   */
  async lastQueuedAt(kind: JobKind = 'backup'): Promise<Map<number, Date>> {
    const rows = await this.prisma.job.groupBy({ by: ['clientId'], where: { clientId: { not: null }, kind }, _max: { queuedAt: true } });
    const last = new Map<number, Date>();
    for (const r of rows) if (r.clientId !== null && r._max.queuedAt) last.set(r.clientId, r._max.queuedAt);
    return last;
  }

  /**
   * Jobs left queued or running by a daemon that was killed: they can never finish, so they
   * fail with cause daemon-restart. Only this daemon's jobs (and jobs no daemon claimed), so
   * daemons sharing one PostgreSQL database leave each other's running jobs alone.
   */
  async recoverInterruptedJobs(): Promise<JobRecord[]> {
    const open = await this.prisma.job.findMany({
      where: {
        state: { notIn: [...terminalJobStates] },
        OR: [{ daemonId: null }, ...(this.daemonId !== undefined ? [{ daemonId: this.daemonId }] : [])],
      },
      orderBy: { id: 'asc' },
    });
    const recovered: JobRecord[] = [];
    for (const job of open) {
      const message =
        job.state === 'queued'
          ? 'the daemon stopped (killed, crashed or the machine restarted) before this job started. A scheduled run that was missed starts once after the restart.'
          : `the daemon stopped (killed, crashed or the machine restarted) while this job was ${job.state}. No snapshot was written; the data it had stored is kept and the next run reuses it.`;
      try {
        recovered.push(await this.finish(job.id, { state: 'failed', cause: 'daemon-restart', message }));
      } catch (err) {
        // Another process ended it meanwhile: nothing left to recover.
        if (!(err instanceof HaulError && err.code === 'InvalidArgument')) throw err;
      }
    }
    return recovered;
  }
}
