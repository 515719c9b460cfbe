// Statistics over time from the job rows: per client (usage against quota, totals, one point
// per day) and for the whole repository. `haul stats --json` prints exactly this shape, which
// docs/cli.md documents for the console's plots; counts are numbers (exact below 2^53 bytes),
// days are UTC dates.
import type { Job } from '../../prisma/generated/sqlite/client.js';
import type { PrismaClient } from '../database/open-database.js';
import { clientUsage } from './client-usage.js';

export interface Totals {
  jobs: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  files: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  bytesStored: number;
  durationMs: number;
}

export interface DayPoint extends Totals {
  /** UTC date the jobs ended, YYYY-MM-DD. */
  date: string;
}

export interface JobPoint {
  id: number;
  state: string;
  finishedAt: string;
  files: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  bytesStored: number;
  durationMs: number | null;
  /** Bytes scanned per second of the job's duration; null without a duration. */
  bytesPerSecond: number | null;
}

export interface ClientStatistics {
  client: string;
  quotaBytes: number | null;
  usedBytes: number;
  /** usedBytes / quotaBytes, or null without a quota. */
  quotaUsed: number | null;
  overdueHours: number | null;
  lastSuccess: string | null;
  totals: Totals;
  days: DayPoint[];
  /** The newest backup jobs of the period, newest first (at most 20). */
  jobs: JobPoint[];
}

export interface RepositoryJobSummary {
  id: number;
  state: string;
  finishedAt: string;
  cause: string | null;
}

export interface Statistics {
  generatedAt: string;
  /** The period: jobs that ended at or after this moment. */
  since: string;
  clients: ClientStatistics[];
  repository: {
    /** Sum of the clients' usage (each chunk counted once, for the client that stored it first). */
    usedBytes: number;
    totals: Totals;
    days: DayPoint[];
    lastCheck: RepositoryJobSummary | null;
    lastPrune: RepositoryJobSummary | null;
  };
}

function emptyTotals(): Totals {
  return { jobs: 0, succeeded: 0, failed: 0, cancelled: 0, files: 0, bytesScanned: 0, bytesNew: 0, bytesOnWire: 0, bytesStored: 0, durationMs: 0 };
}

function add(t: Totals, j: Job): void {
  t.jobs++;
  if (j.state === 'succeeded' || j.state === 'failed' || j.state === 'cancelled') t[j.state]++;
  t.files += Number(j.filesDone);
  t.bytesScanned += Number(j.bytesScanned);
  t.bytesNew += Number(j.bytesNew);
  t.bytesOnWire += Number(j.bytesOnWire);
  t.bytesStored += Number(j.bytesStored);
  t.durationMs += j.durationMs ?? 0;
}

function summarize(jobs: Job[]): { totals: Totals; days: DayPoint[] } {
  const totals = emptyTotals();
  const days = new Map<string, DayPoint>();
  for (const j of jobs) {
    add(totals, j);
    const date = j.finishedAt!.toISOString().slice(0, 10);
    let day = days.get(date);
    if (!day) days.set(date, (day = { date, ...emptyTotals() }));
    add(day, j);
  }
  return { totals, days: [...days.values()].sort((a, b) => a.date.localeCompare(b.date)) };
}

function jobPoint(j: Job): JobPoint {
  const duration = j.durationMs;
  return {
    id: j.id,
    state: j.state,
    finishedAt: j.finishedAt!.toISOString(),
    files: Number(j.filesDone),
    bytesScanned: Number(j.bytesScanned),
    bytesNew: Number(j.bytesNew),
    bytesOnWire: Number(j.bytesOnWire),
    bytesStored: Number(j.bytesStored),
    durationMs: duration,
    bytesPerSecond: duration ? Math.round(Number(j.bytesScanned) / (duration / 1000)) : null,
  };
}

async function lastRepositoryJob(prisma: PrismaClient, kind: 'check' | 'prune'): Promise<RepositoryJobSummary | null> {
  const j = await prisma.job.findFirst({ where: { kind, finishedAt: { not: null } }, orderBy: { finishedAt: 'desc' } });
  return j ? { id: j.id, state: j.state, finishedAt: j.finishedAt!.toISOString(), cause: j.failureCause } : null;
}

export async function collectStatistics(prisma: PrismaClient, options: { client?: string; days: number; now?: Date }): Promise<Statistics> {
  const now = options.now ?? new Date();
  const since = new Date(now.getTime() - options.days * 86_400_000);
  const clients = await prisma.client.findMany({ where: options.client === undefined ? {} : { name: options.client }, orderBy: { name: 'asc' } });
  const backups = await prisma.job.findMany({ where: { kind: 'backup', finishedAt: { gte: since, lte: now } }, orderBy: { finishedAt: 'desc' } });
  const perClient: ClientStatistics[] = [];
  for (const c of clients) {
    const mine = backups.filter((j) => j.clientId === c.id);
    const usedBytes = await clientUsage(prisma, c);
    const last = await prisma.job.findFirst({ where: { clientId: c.id, kind: 'backup', state: 'succeeded' }, orderBy: { finishedAt: 'desc' }, select: { finishedAt: true } });
    const quotaBytes = c.quotaBytes === null ? null : Number(c.quotaBytes);
    perClient.push({
      client: c.name,
      quotaBytes,
      usedBytes,
      quotaUsed: quotaBytes === null ? null : usedBytes / quotaBytes,
      overdueHours: c.overdueHours,
      lastSuccess: last?.finishedAt?.toISOString() ?? null,
      ...summarize(mine),
      jobs: mine.slice(0, 20).map(jobPoint),
    });
  }
  const all = options.client === undefined ? backups : backups.filter((j) => clients.some((c) => c.id === j.clientId));
  return {
    generatedAt: now.toISOString(),
    since: since.toISOString(),
    clients: perClient,
    repository: {
      usedBytes: perClient.reduce((sum, c) => sum + c.usedBytes, 0),
      ...summarize(all),
      lastCheck: await lastRepositoryJob(prisma, 'check'),
      lastPrune: await lastRepositoryJob(prisma, 'prune'),
    },
  };
}
