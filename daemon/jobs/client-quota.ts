// A client's storage quota as a watch on the bytes one backup adds (docs/operations.md, Quotas):
// its signal stops the backup once the usage so far plus the new bytes would pass the quota, and
// `settle` decides on the stored total once the snapshot is saved.
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

/**
 * New bytes count before compression, so a backup close to the limit stops a little early rather
 * than late. A client already at its quota fails before connecting.
 */
export async function watchQuota(prisma: PrismaClient, row: Client, log: (line: string, level?: JobLogLevel) => void): Promise<QuotaWatch> {
  const watch = new AbortController();
  if (row.quotaBytes === null) return { signal: watch.signal, observe: () => undefined, settle: () => Promise.resolve(undefined) };
  const quota = Number(row.quotaBytes);
  const used = await clientUsage(prisma, row);
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
