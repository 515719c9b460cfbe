// What the database knows about backups: clients, the job history with each job's state
// timeline, the snapshot listing and the numbers behind the statistics. The database is the
// source of truth for history (the daemon writes every job and snapshot there), so these pages
// read it directly and keep working while the daemon restarts; anything that acts, or touches
// repository data, goes to the daemon over the bus instead. Every listing takes the caller's
// tenants (undefined: all), so rows of other tenants are never read, let alone counted.
import type { PrismaClient } from '../../daemon/database/open-database.js';
import { HaulError } from '../../shared/errors.js';
import type { ClientSummary, JobDetail, JobQuery, JobSummary, SnapshotSummary, StatisticsPoint } from './daemon-link.js';

type JobRow = Awaited<ReturnType<PrismaClient['job']['findFirstOrThrow']>>;

function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

function jsonList(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

export function jobSummary(row: JobRow): JobSummary {
  return {
    id: row.id,
    client: row.clientName,
    kind: row.kind,
    state: row.state,
    trigger: row.trigger,
    requestedBy: row.requestedBy,
    queuedAt: row.queuedAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    filesTotal: Number(row.filesTotal),
    filesDone: Number(row.filesDone),
    bytesScanned: Number(row.bytesScanned),
    bytesNew: Number(row.bytesNew),
    bytesOnWire: Number(row.bytesOnWire),
    errors: row.errors,
    failureCause: row.failureCause,
    failureMessage: row.failureMessage,
    snapshotId: row.snapshotId,
  };
}

/** A where-clause on rows that point at a client: only those tenants' clients. */
function ofTenants(tenantIds: number[] | undefined) {
  return tenantIds === undefined ? {} : { client: { tenantId: { in: tenantIds } } };
}

export class BackupRecords {
  constructor(private readonly prisma: PrismaClient) {}

  async clients(tenantIds?: number[]): Promise<ClientSummary[]> {
    const rows = await this.prisma.client.findMany({ where: tenantIds === undefined ? {} : { tenantId: { in: tenantIds } }, orderBy: { name: 'asc' }, include: { tenant: { select: { name: true } } } });
    const out: ClientSummary[] = [];
    for (const row of rows) {
      const last = await this.prisma.job.findFirst({ where: { clientId: row.id, kind: 'backup' }, orderBy: { id: 'desc' } });
      const lastGood = await this.prisma.snapshot.findFirst({ where: { clientId: row.id }, orderBy: { time: 'desc' } });
      out.push({
        name: row.name,
        tenant: row.tenant.name,
        address: `${row.sshUser}@${row.host}${row.port === 22 ? '' : `:${row.port}`}`,
        enabled: row.enabled,
        hostKeyPinned: row.hostKey !== null,
        hostKey: row.hostKey,
        schedule: row.schedule,
        paths: jsonList(row.paths),
        excludes: jsonList(row.excludes),
        retention: row.retention,
        lastJob: last ? { id: last.id, state: last.state, finishedAt: iso(last.finishedAt), failureMessage: last.failureMessage } : null,
        lastSnapshot: lastGood ? { id: lastGood.id, time: lastGood.time.toISOString() } : null,
      });
    }
    return out;
  }

  async jobs(query: JobQuery): Promise<JobSummary[]> {
    const rows = await this.prisma.job.findMany({
      where: {
        ...(query.client ? { clientName: query.client } : {}),
        ...(query.state ? { state: query.state } : {}),
        ...(query.kind ? { kind: query.kind } : {}),
        ...(query.beforeId ? { id: { lt: query.beforeId } } : {}),
        ...ofTenants(query.tenantIds),
      },
      orderBy: { id: 'desc' },
      take: query.limit,
    });
    return rows.map(jobSummary);
  }

  async job(id: number): Promise<JobDetail> {
    const row = await this.prisma.job.findUnique({ where: { id }, include: { transitions: { orderBy: { id: 'asc' } } } });
    if (!row) throw new HaulError('JobNotFound', `there is no job ${id}; the Jobs page lists them.`);
    return {
      ...jobSummary(row),
      logPath: row.logPath,
      timeline: row.transitions.map((t) => ({ state: t.state, at: t.at.toISOString(), detail: t.detail })),
    };
  }

  async snapshots(client?: string, tenantIds?: number[]): Promise<SnapshotSummary[]> {
    const rows = await this.prisma.snapshot.findMany({ where: { ...(client ? { clientName: client } : {}), ...ofTenants(tenantIds) }, orderBy: { time: 'desc' }, take: 1000 });
    return rows.map((s) => ({ id: s.id, client: s.clientName, time: s.time.toISOString(), paths: jsonList(s.paths), files: Number(s.files), bytes: Number(s.bytes) }));
  }

  /**
   * One point per snapshot, oldest first: what the Statistics page plots per client. The bytes
   * on the wire live on the job that made the snapshot (null for a snapshot no job row names,
   * e.g. one made by `haul backup` on the command line).
   */
  async statistics(client?: string, tenantIds?: number[]): Promise<StatisticsPoint[]> {
    const rows = await this.prisma.snapshot.findMany({ where: { ...(client ? { clientName: client } : {}), ...ofTenants(tenantIds) }, orderBy: { time: 'asc' }, take: 5000 });
    const jobs = await this.prisma.job.findMany({ where: { snapshotId: { in: rows.map((s) => s.id) } }, select: { snapshotId: true, bytesOnWire: true } });
    const onWire = new Map(jobs.map((j) => [j.snapshotId, Number(j.bytesOnWire)]));
    return rows.map((s) => ({
      client: s.clientName, time: s.time.toISOString(), bytes: Number(s.bytes), bytesNew: Number(s.bytesNew), bytesStored: Number(s.bytesStored),
      bytesOnWire: onWire.get(s.id) ?? null, durationMs: s.durationMs,
    }));
  }
}
