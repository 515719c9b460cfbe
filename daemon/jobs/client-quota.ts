// A client's storage quotas as a watch on the bytes one backup adds (docs/operations.md, Quotas):
// the client's own quota and its tenant's (all the tenant's clients together). Its signal stops
// the backup once the usage so far plus the new bytes would pass either, and `settle` decides on
// the stored total once the snapshot is saved.
import type { Client } from '../../prisma/generated/sqlite/client.js';
import { formatBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import type { JobLogLevel } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';
import { clientUsage } from '../maintenance/client-usage.js';
import type { Repository } from '../repository/repository.js';

/** One quota that applies to a client's backups, with what it already uses. */
export interface QuotaLimit {
  /** Set when the limit is the tenant's, not the client's own. */
  tenant?: string;
  quotaBytes: number;
  usedBytes: number;
}

/** The client's own quota and its tenant's, each with its usage now; empty when neither has one. */
export async function quotaLimits(prisma: PrismaClient, client: Client): Promise<QuotaLimit[]> {
  const limits: QuotaLimit[] = [];
  if (client.quotaBytes !== null) limits.push({ quotaBytes: Number(client.quotaBytes), usedBytes: await clientUsage(prisma, client) });
  const tenant = await prisma.tenant.findUnique({ where: { id: client.tenantId }, select: { name: true, quotaBytes: true } });
  if (tenant?.quotaBytes != null) {
    // Only a tenant with a quota costs its clients' usage: most backups skip this.
    const clients = await prisma.client.findMany({ where: { tenantId: client.tenantId }, select: { id: true, storedBytes: true, storedBytesAt: true } });
    const used = await Promise.all(clients.map((c) => clientUsage(prisma, c)));
    limits.push({ tenant: tenant.name, quotaBytes: Number(tenant.quotaBytes), usedBytes: used.reduce((a, b) => a + b, 0) });
  }
  return limits;
}

export interface QuotaWatch {
  /** Aborts the backup once it would pass a quota. */
  signal: AbortSignal;
  observe: (bytesNew: number) => void;
  /** After the snapshot is saved: over a quota after all, the snapshot is removed and the error returned. */
  settle: (repo: Repository, snapshotId: string, bytesStored: number) => Promise<HaulError | undefined>;
}

function exceeded(client: string, limit: QuotaLimit, adding: number): HaulError {
  const added = adding > 0 ? ` and this backup had ${formatBytes(adding)} of new data` : '';
  const rest = 'The backup stopped without a snapshot; what it stored is kept and consistent, and the next run reuses it.';
  if (limit.tenant === undefined) {
    return new HaulError('QuotaExceeded', `client ${client} would pass its storage quota of ${formatBytes(limit.quotaBytes)}: it uses ${formatBytes(limit.usedBytes)}${added}. ${rest} Raise the quota (\`haul client set ${client} --quota …\`), or forget old snapshots and prune.`);
  }
  return new HaulError('QuotaExceeded', `client ${client} would pass the storage quota of its tenant ${limit.tenant}, ${formatBytes(limit.quotaBytes)} for all its clients: they use ${formatBytes(limit.usedBytes)}${added}. ${rest} Raise the tenant's quota (\`haul tenant edit ${limit.tenant} --quota …\`), or forget old snapshots of its clients and prune.`);
}

/**
 * New bytes count before compression, so a backup close to a limit stops a little early rather
 * than late. A client already at a quota fails before connecting.
 */
export async function watchQuota(prisma: PrismaClient, row: Client, log: (line: string, level?: JobLogLevel) => void): Promise<QuotaWatch> {
  const watch = new AbortController();
  const limits = await quotaLimits(prisma, row);
  if (limits.length === 0) return { signal: watch.signal, observe: () => undefined, settle: () => Promise.resolve(undefined) };
  const passed = (adding: number) => limits.find((l) => l.usedBytes + adding > l.quotaBytes);
  const full = limits.find((l) => l.usedBytes >= l.quotaBytes);
  if (full) throw exceeded(row.name, full, 0);
  for (const l of limits) log(`quota: ${formatBytes(l.usedBytes)} of ${formatBytes(l.quotaBytes)} used before this backup${l.tenant === undefined ? '' : ` by tenant ${l.tenant}'s clients`}`);
  return {
    signal: watch.signal,
    observe: (bytesNew) => {
      const limit = watch.signal.aborted ? undefined : passed(bytesNew);
      if (!limit) return;
      const err = exceeded(row.name, limit, bytesNew);
      // Not from inside the session's progress callback: stop it from the event loop, as a cancel does.
      setImmediate(() => watch.abort(err));
    },
    // The last chunks may arrive after the last progress report: the stored total decides.
    // The snapshot goes again (as forget would); its data stays for the next run to reuse.
    settle: async (repo, snapshotId, bytesStored) => {
      const limit = passed(bytesStored);
      if (!limit) return undefined;
      await repo.storage.delete('snapshots', snapshotId);
      return exceeded(row.name, limit, bytesStored);
    },
  };
}
