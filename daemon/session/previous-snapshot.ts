// What a backup tells the probe about this client's previous snapshot: the snapshot itself and its
// digest (PREVIOUS records, KNOWN fingerprints), from the cached digest when it is usable, else
// from the snapshot's trees. The job loads it while it connects to the client, so a no-change
// re-run does not wait for it after the probe has started.
import { shortId, type StoredSnapshot } from '../repository/snapshot.js';
import type { Repository } from '../repository/repository.js';
import { loadPreviousCache } from './previous-cache.js';
import { loadPreviousRecords, PreviousDigest } from './previous-records.js';

export interface PreviousSnapshot {
  /** The client's latest snapshot, the new one's parent; undefined for a first backup. */
  parent: StoredSnapshot | undefined;
  digest: PreviousDigest;
}

/**
 * Loads the repository's index (the digest's chunks are checked against it) and the client's
 * latest snapshot with its digest. Read only: the caller holds the repository's shared lock, so
 * no prune can remove what the digest names before the backup references it.
 */
export async function loadPreviousSnapshot(repo: Repository, client: string, previousCacheDir: string | undefined, log: (line: string) => void): Promise<PreviousSnapshot> {
  await repo.loadIndex();
  const parent = (await repo.listSnapshots({ client })).at(-1);
  if (!parent) return { parent, digest: PreviousDigest.empty() };
  const cached = previousCacheDir ? await loadPreviousCache(repo, previousCacheDir, client, parent.id, log) : undefined;
  const digest = cached ?? (await loadPreviousRecords(repo, parent.tree, log));
  log(`previous snapshot ${shortId(parent.id)}: ${digest.count} record(s) and ${digest.known.length} known chunk(s), ${cached ? 'from the cached digest' : `from its ${digest.treesLoaded} tree(s)`}`);
  return { parent, digest };
}
