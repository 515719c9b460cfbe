// The database's listing of the repository's snapshots (table "Snapshot"): one row per snapshot
// with its client, time, paths and statistics, for the console and for `haul jobs` to show
// without opening the repository. The repository stays the source of truth (docs/security.md,
// invariant 5): a backup adds its row after the snapshot is durable, and `haul db rebuild`
// recreates the whole listing from the repository when the database was lost or has drifted.
import { HaulError } from '../../shared/errors.js';
import type { Repository } from '../repository/repository.js';
import { shortId, type Snapshot, type StoredSnapshot } from '../repository/snapshot.js';
import type { PrismaClient } from './open-database.js';
import { isUniqueViolation } from './prisma-errors.js';

type SnapshotRow = Awaited<ReturnType<PrismaClient['snapshot']['findFirstOrThrow']>>;
type SnapshotColumns = Omit<SnapshotRow, 'id'>;

const INT32_MAX = 2 ** 31 - 1;

/** The row for a snapshot; `clientId` null when no client row carries its name. */
function snapshotColumns(snapshot: Snapshot, clientId: number | null): SnapshotColumns {
  const time = new Date(snapshot.time);
  if (Number.isNaN(time.getTime())) throw new HaulError('ObjectCorrupt', `its time ${JSON.stringify(snapshot.time)} is not a date`);
  const s = snapshot.stats;
  return {
    clientId,
    clientName: snapshot.client,
    hostname: snapshot.hostname,
    time,
    paths: JSON.stringify(snapshot.paths),
    tags: JSON.stringify(snapshot.tags),
    files: BigInt(s.files),
    dirs: BigInt(s.dirs),
    bytes: BigInt(s.bytes),
    bytesNew: BigInt(s.bytesNew),
    bytesStored: BigInt(s.bytesStored),
    // 32-bit columns: a counter that large is kept at the limit rather than failing the row.
    errors: Math.min(s.errors, INT32_MAX),
    durationMs: Math.min(s.durationMs, INT32_MAX),
  };
}

function sameColumns(a: SnapshotColumns, b: SnapshotColumns): boolean {
  return (Object.keys(b) as (keyof SnapshotColumns)[]).every((k) => {
    const x = a[k];
    const y = b[k];
    return x instanceof Date && y instanceof Date ? x.getTime() === y.getTime() : x === y;
  });
}

/**
 * Lists one snapshot that is already durable in the repository. Without `clientId` the row is
 * linked to the client row of the snapshot's name, if there is one. Recording twice is harmless.
 */
export async function recordSnapshot(prisma: PrismaClient, id: string, snapshot: Snapshot, clientId?: number): Promise<void> {
  const owner = clientId ?? (await prisma.client.findUnique({ where: { name: snapshot.client }, select: { id: true } }))?.id ?? null;
  const columns = snapshotColumns(snapshot, owner);
  await prisma.snapshot.upsert({ where: { id }, create: { id, ...columns }, update: columns });
}

export interface PlaceholderClient {
  name: string;
  host: string;
}

export interface RebuildResult {
  /** Readable snapshots in the repository: after the rebuild each has exactly one row. */
  snapshots: number;
  added: string[];
  updated: string[];
  unchanged: number;
  /** Rows removed because their snapshot is no longer in the repository. */
  removed: string[];
  /** Snapshots in the repository that could not be read; a row they had is kept as it was. */
  unreadable: { id: string; message: string }[];
  /** Client rows created, disabled, for names that have snapshots but had no row. */
  placeholders: PlaceholderClient[];
}

// Writes go in batches, each one transaction: a long rebuild never holds SQLite's write lock for
// longer than a batch takes, so the daemon's own writes wait briefly instead of failing.
const BATCH = 200;

// A placeholder's host comes from the snapshot; one that is no host name is replaced.
const hostPattern = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;
export const PLACEHOLDER_USER = 'root';
export const UNKNOWN_HOST = 'unknown.invalid';

/**
 * Makes the listing match the repository: a row for every readable snapshot (added or corrected),
 * none for a snapshot that is gone. Idempotent; interrupted, it is simply run again.
 */
export async function rebuildSnapshotListing(prisma: PrismaClient, repo: Repository): Promise<RebuildResult> {
  const stored = await repo.listSnapshots();
  const unreadable = repo.unreadableSnapshots.map((u) => ({ ...u }));
  const result: RebuildResult = { snapshots: 0, added: [], updated: [], unchanged: 0, removed: [], unreadable, placeholders: [] };

  const clientIds = new Map((await prisma.client.findMany({ select: { id: true, name: true } })).map((c) => [c.name, c.id]));
  const latestByClient = new Map<string, StoredSnapshot>();
  for (const s of stored) latestByClient.set(s.client, s); // oldest first: the last one wins
  for (const [name, latest] of latestByClient) {
    if (clientIds.has(name)) continue;
    const host = hostPattern.test(latest.hostname) ? latest.hostname : UNKNOWN_HOST;
    // Disabled and without a pin: it is never contacted until an operator has checked the
    // address (`haul client set NAME --address … --enable`).
    try {
      const row = await prisma.client.create({
        data: { name, host, port: 22, sshUser: PLACEHOLDER_USER, paths: JSON.stringify(latest.paths), enabled: false },
        select: { id: true },
      });
      clientIds.set(name, row.id);
      result.placeholders.push({ name, host });
    } catch (err) {
      // An operator added the client meanwhile: link to that row.
      if (!isUniqueViolation(err)) throw err;
      clientIds.set(name, (await prisma.client.findUniqueOrThrow({ where: { name }, select: { id: true } })).id);
    }
  }

  const existing = new Map((await prisma.snapshot.findMany()).map((r) => [r.id, r]));
  const writes: ReturnType<PrismaClient['snapshot']['upsert']>[] = [];
  for (const s of stored) {
    let columns: SnapshotColumns;
    try {
      columns = snapshotColumns(s, clientIds.get(s.client) ?? null);
    } catch (err) {
      result.unreadable.push({ id: s.id, message: `snapshot ${shortId(s.id)} cannot be listed: ${(err as Error).message}` });
      continue;
    }
    result.snapshots++;
    const row = existing.get(s.id);
    if (row && sameColumns(row, columns)) {
      result.unchanged++;
      continue;
    }
    (row ? result.updated : result.added).push(s.id);
    writes.push(prisma.snapshot.upsert({ where: { id: s.id }, create: { id: s.id, ...columns }, update: columns }));
  }

  const listed = new Set(stored.map((s) => s.id));
  const keep = new Set(result.unreadable.map((u) => u.id));
  const gone: string[] = [];
  for (const id of existing.keys()) {
    if (listed.has(id) || keep.has(id)) continue;
    // A backup that finished during this rebuild has a row but was not in our listing.
    if (await repo.storage.stat('snapshots', id)) continue;
    gone.push(id);
  }
  result.removed = gone;

  for (let i = 0; i < writes.length; i += BATCH) await prisma.$transaction(writes.slice(i, i + BATCH));
  for (let i = 0; i < gone.length; i += BATCH) await prisma.snapshot.deleteMany({ where: { id: { in: gone.slice(i, i + BATCH) } } });
  return result;
}
