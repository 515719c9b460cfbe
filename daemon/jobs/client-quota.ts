// A client's storage quota, and its tenant's, as a watch on the bytes one backup adds
// (docs/operations.md, Quotas): its signal stops the backup once the usage so far plus the new
// bytes would pass either quota, and `settle` decides on the stored total once the snapshot is saved.
import type { Client } from '../../prisma/generated/sqlite/client.js';
import { formatBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import type { JobLogLevel } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';
import { clientUsage } from '../maintenance/client-usage.js';
import type { Repository } from '../repository/repository.js';

export interface QuotaWatch {
  /** Aborts the backup once it would pass the quota. */
  signal: AbortSignal;
  observe: (bytesNew: number) => void;
  /** After the snapshot is saved: over the quota after all, the snapshot is removed and the error returned. */
  settle: (repo: Repository, snapshotId: string, bytesStored: number) => Promise<HaulError | undefined>;
}

/** One limit a backup must stay under: the client's own quota, or its tenant's (all its clients together). */
interface QuotaLimit {
  quota: number;
  used: number;
  exceeded(adding: number): HaulError;
}

async function limitsOf(prisma: PrismaClient, row: Client): Promise<QuotaLimit[]> {
  const limits: QuotaLimit[] = [];
  const stopped = 'The backup stopped without a snapshot; what it stored is kept and consistent, and the next run reuses it.';
  if (row.quotaBytes !== null) {
    const quota = Number(row.quotaBytes);
    const used = await clientUsage(prisma, row);
    limits.push({
      quota, used,
      exceeded: (adding) => new HaulError('QuotaExceeded', `client ${row.name} would pass its storage quota of ${formatBytes(quota)}: it uses ${formatBytes(used)}${adding > 0 ? ` and this backup had ${formatBytes(adding)} of new data` : ''}. ${stopped} Raise the quota (\`haul client set ${row.name} --quota …\`), or forget old snapshots and prune.`),
    });
  }
  const tenant = await prisma.tenant.findUnique({ where: { id: row.tenantId }, include: { clients: true } });
  if (tenant?.quotaBytes != null) {
    const quota = Number(tenant.quotaBytes);
    let used = 0;
    for (const c of tenant.clients) used += await clientUsage(prisma, c);
    limits.push({
      quota, used,
      exceeded: (adding) => new HaulError('QuotaExceeded', `client ${row.name} would pass the storage quota of its tenant ${tenant.name}, ${formatBytes(quota)} for its ${tenant.clients.length} client(s) together: they use ${formatBytes(used)}${adding > 0 ? ` and this backup had ${formatBytes(adding)} of new data` : ''}. ${stopped} Raise the tenant's quota (\`haul tenant edit ${tenant.name} --quota …\`), or forget old snapshots of its clients and prune.`),
    });
  }
  return limits;
}

/**
 * New bytes count before compression, so a backup close to the limit stops a little early rather
 * than late. A client already at its quota, or of a tenant at its quota, fails before connecting.
 */
export async function watchQuota(prisma: PrismaClient, row: Client, log: (line: string, level?: JobLogLevel) => void): Promise<QuotaWatch> {
  const watch = new AbortController();
  const limits = await limitsOf(prisma, row);
  if (limits.length === 0) return { signal: watch.signal, observe: () => undefined, settle: () => Promise.resolve(undefined) };
  const passed = (adding: number) => limits.find((l) => l.used + adding > l.quota || (adding === 0 && l.used >= l.quota));
  const full = passed(0);
  if (full) throw full.exceeded(0);
  for (const l of limits) log(`quota: ${formatBytes(l.used)} of ${formatBytes(l.quota)} used before this backup`);
  return {
    signal: watch.signal,
    observe: (bytesNew) => {
      const over = passed(bytesNew);
      if (watch.signal.aborted || !over) return;
      const err = over.exceeded(bytesNew);
      // Not from inside the session's progress callback: stop it from the event loop, as a cancel does.
      setImmediate(() => watch.abort(err));
    },
    // The last chunks may arrive after the last progress report: the stored total decides.
    // The snapshot goes again (as forget would); its data stays for the next run to reuse.
    settle: async (repo, snapshotId, bytesStored) => {
      const over = passed(bytesStored);
      if (!over) return undefined;
      await repo.storage.delete('snapshots', snapshotId);
      return over.exceeded(bytesStored);
    },
  };
}
