// The database as the arbiter between daemons. A job runs only after its daemon claimed it
// (Job.claimedAt, Job.daemonId), and a claim succeeds only while no other unfinished job of the
// same client is claimed, by any daemon. A schedule slot (a client's backup, or a check or prune
// of the repository) is fired by the one daemon that first records it. The claim's lease is its
// daemon's: it lasts while the daemon's heartbeat renews its FleetDaemon row (daemon-registry.ts).
import type { PrismaClient as PostgresPrismaClient } from '../../prisma/generated/postgresql/client.js';
import { terminalJobStates } from '../../shared/jobs.js';
import type { DatabaseProvider } from '../database/database-url.js';
import type { PrismaClient } from '../database/open-database.js';
import { isUniqueViolation } from '../database/prisma-errors.js';
import type { JobRecord } from '../jobs/job-store.js';

/** claimed: run it. client-busy: another claimed job of the client is unfinished; try later. gone: no longer queued (ended, or claimed elsewhere). */
export type ClaimResult = { result: 'claimed' } | { result: 'client-busy'; by: { jobId: number; daemonId: string | null } } | { result: 'locked' } | { result: 'gone' };

const unfinished = { notIn: [...terminalJobStates] };

/** True when the insert went in; false when a unique index says another daemon inserted it first. */
async function firstToInsert(insert: Promise<unknown>): Promise<boolean> {
  try {
    await insert;
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

export class JobLeases {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly daemonId: string,
    private readonly provider: DatabaseProvider,
  ) {}

  /**
   * Claims a queued job for this daemon. On PostgreSQL the client's row is locked first, so two
   * daemons claiming jobs of one client take turns, and the job's row is taken with SKIP LOCKED,
   * so a daemon never waits on a job another is claiming. On SQLite the write transaction
   * already serialises claims. The partial unique index Job_one_claimed_per_client backs both.
   */
  async claim(job: Pick<JobRecord, 'id' | 'clientId'>): Promise<ClaimResult> {
    // SQLite serves one daemon, whose queue already keeps a client's jobs apart: a plain
    // conditional update claims. An interactive transaction there reads, then has to upgrade to
    // a write lock, which fails at once (SQLITE_BUSY) when the web console wrote in between.
    if (this.provider !== 'postgresql') return this.claimAlone(job);
    try {
      return await this.prisma.$transaction(async (tx) => {
        if (this.provider === 'postgresql') {
          if (job.clientId !== null) await tx.$queryRaw`SELECT "id" FROM "Client" WHERE "id" = ${job.clientId} FOR UPDATE`;
          const rows = await tx.$queryRaw<{ id: number }[]>`SELECT "id" FROM "Job" WHERE "id" = ${job.id} AND "state" = 'queued' AND "claimedAt" IS NULL FOR UPDATE SKIP LOCKED`;
          if (rows.length === 0) {
            // SKIP LOCKED also skips a row another transaction holds for a moment (another
            // daemon's look for jobs to adopt, a state write): still queued, it is not gone.
            const waiting = await tx.job.count({ where: { id: job.id, state: 'queued', claimedAt: null } });
            return waiting === 1 ? ({ result: 'locked' } as const) : ({ result: 'gone' } as const);
          }
        }
        if (job.clientId !== null) {
          const other = await tx.job.findFirst({ where: { clientId: job.clientId, id: { not: job.id }, claimedAt: { not: null }, state: unfinished }, select: { id: true, daemonId: true } });
          if (other) return { result: 'client-busy', by: { jobId: other.id, daemonId: other.daemonId } } as const;
        }
        const claimed = await tx.job.updateMany({ where: { id: job.id, state: 'queued', claimedAt: null }, data: { claimedAt: new Date(), daemonId: this.daemonId } });
        return claimed.count === 1 ? ({ result: 'claimed' } as const) : ({ result: 'gone' } as const);
      });
    } catch (err) {
      // The unique index caught a claim that raced past the check: the other claim won.
      if (isUniqueViolation(err) || /Job_one_claimed_per_client|UNIQUE constraint failed: Job\.clientId/.test(String((err as Error).message))) {
        return { result: 'client-busy', by: { jobId: 0, daemonId: null } };
      }
      throw err;
    }
  }

  private async claimAlone(job: Pick<JobRecord, 'id' | 'clientId'>): Promise<ClaimResult> {
    if (job.clientId !== null) {
      const other = await this.prisma.job.findFirst({ where: { clientId: job.clientId, id: { not: job.id }, claimedAt: { not: null }, state: unfinished }, select: { id: true, daemonId: true } });
      if (other) return { result: 'client-busy', by: { jobId: other.id, daemonId: other.daemonId } };
    }
    const claimed = await this.prisma.job.updateMany({ where: { id: job.id, state: 'queued', claimedAt: null }, data: { claimedAt: new Date(), daemonId: this.daemonId } });
    return claimed.count === 1 ? { result: 'claimed' } : { result: 'gone' };
  }

  /** The same client, typed for what only PostgreSQL has (skipDuplicates). */
  private get postgres(): PostgresPrismaClient {
    return this.prisma as unknown as PostgresPrismaClient;
  }

  /** Records that this daemon fires `slot` for the client; false when another daemon did first. */
  async claimSlot(clientId: number, slot: Date): Promise<boolean> {
    const data = { clientId, slot, daemonId: this.daemonId };
    // Every daemon's timer fires every slot, so all but one insert collide. On PostgreSQL a
    // failed statement costs the pool its connection (node-postgres drops a client whose query
    // failed): ON CONFLICT DO NOTHING loses the race without an error. SQLite has no such
    // clause in Prisma's createMany, and serves one daemon anyway.
    if (this.provider === 'postgresql') return (await this.postgres.scheduleSlot.createMany({ data: [data], skipDuplicates: true })).count === 1;
    return firstToInsert(this.prisma.scheduleSlot.create({ data }));
  }

  /** Records that this daemon fires the `kind` maintenance (check, prune) of `slot`; false when another daemon did first. */
  async claimMaintenanceSlot(kind: string, slot: Date): Promise<boolean> {
    const data = { kind, slot, daemonId: this.daemonId };
    if (this.provider === 'postgresql') return (await this.postgres.maintenanceSlot.createMany({ data: [data], skipDuplicates: true })).count === 1;
    return firstToInsert(this.prisma.maintenanceSlot.create({ data }));
  }

  /** An unfinished job of the client on any daemon (for coalescing slots fleet-wide). */
  async unfinishedJobOf(clientId: number): Promise<JobRecord | undefined> {
    return (await this.prisma.job.findFirst({ where: { clientId, kind: 'backup', state: unfinished }, orderBy: { id: 'asc' } })) ?? undefined;
  }

  /**
   * Backups another daemon queued that nobody has claimed after waiting `waitedMs`, oldest first:
   * work an idle daemon can take (daemon.ts, adoptWaitingJobs). Their not-before time has come.
   */
  waitingElsewhere(limit: number, waitedMs: number, skip: number[]): Promise<JobRecord[]> {
    const now = Date.now();
    return this.prisma.job.findMany({
      where: {
        kind: 'backup',
        state: 'queued',
        claimedAt: null,
        daemonId: { not: this.daemonId },
        queuedAt: { lte: new Date(now - waitedMs) },
        OR: [{ notBefore: null }, { notBefore: { lte: new Date(now) } }],
        ...(skip.length > 0 ? { id: { notIn: skip } } : {}),
      },
      orderBy: { queuedAt: 'asc' },
      take: limit,
    });
  }

  /** Of these jobs (queued here), the ones another daemon has claimed. */
  claimedElsewhere(ids: number[]): Promise<Pick<JobRecord, 'id' | 'clientName' | 'daemonId'>[]> {
    return this.prisma.job.findMany({ where: { id: { in: ids }, claimedAt: { not: null }, daemonId: { not: this.daemonId } }, select: { id: true, clientName: true, daemonId: true } });
  }

  /** The unfinished jobs a daemon had, queued or running (for a takeover). */
  unfinishedJobsOf(daemonId: string): Promise<JobRecord[]> {
    return this.prisma.job.findMany({ where: { daemonId, state: unfinished }, orderBy: { id: 'asc' } });
  }
}
