// The bus commands behind the console's snapshot pages: one directory of a snapshot at a time
// (`list-directory`) and what changed between two snapshots of a client (`diff-snapshots`). The
// web process holds no repository key, so it asks the daemon; both answers are read-only and
// bounded in size, because a directory may hold millions of entries and a reply must stay under
// the bus's 1 MiB message limit.
import type { BusServer } from '../bus/bus-server.js';
import { BusLimits, type DiffEntry, type DirectoryEntry } from '../../shared/bus/messages.js';
import { HaulError } from '../../shared/errors.js';
import type { Repository } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { nameBytes, targetBytes, type Tree, type TreeNode } from '../repository/tree.js';
import { resolvePath } from '../restorer/restorer.js';

/** Nanoseconds since the epoch as an ISO time, or null where JavaScript's Date cannot write one. */
function isoTime(ns: string): string | null {
  const ms = Number(BigInt(ns) / 1_000_000n);
  if (!Number.isFinite(ms) || ms < Date.UTC(0, 0, 1) || ms > Date.UTC(9999, 11, 31, 23, 59, 59, 999)) return null;
  return new Date(ms).toISOString();
}

export function directoryEntry(node: TreeNode): DirectoryEntry {
  return {
    name: node.name,
    nameRaw: node.nameRaw ?? null,
    type: node.type,
    size: String(node.size ?? 0),
    mode: node.mode & 0o7777,
    mtime: isoTime(node.mtime),
    target: node.type === 'symlink' ? targetBytes(node).toString('utf8') : null,
  };
}

/** The directory at `path` of a snapshot; a path that names a file is refused with what to do. */
async function directoryAt(repo: Repository, snapshot: StoredSnapshot, path: string): Promise<Tree> {
  const found = await resolvePath(repo, snapshot, path);
  if (!found.tree) throw new HaulError('PathNotFound', `${path} in snapshot ${snapshot.id.slice(0, 8)} is a file, not a directory; download it instead of listing it.`);
  return found.tree;
}

/** Finds two snapshots of one client; a diff across clients makes no sense and is refused. */
async function snapshotPair(repo: Repository, from: string, to: string, client: string | undefined): Promise<[StoredSnapshot, StoredSnapshot]> {
  const older = await repo.findSnapshot(from, client);
  const newer = await repo.findSnapshot(to, client ?? older.client);
  if (older.client !== newer.client) {
    throw new HaulError('InvalidArgument', `snapshot ${older.id.slice(0, 8)} is of client ${older.client} but ${newer.id.slice(0, 8)} is of ${newer.client}; compare two snapshots of the same client.`);
  }
  return [older, newer];
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type !== b.type || a.size !== b.size || a.mode !== b.mode || a.mtime !== b.mtime) return false;
  if (a.type === 'symlink') return targetBytes(a).equals(targetBytes(b));
  return (a.content ?? []).join() === (b.content ?? []).join();
}

/** Collects differences until the count or byte budget runs out, then says it was cut short. */
class DiffCollector {
  readonly added: DiffEntry[] = [];
  readonly changed: DiffEntry[] = [];
  readonly removed: DiffEntry[] = [];
  truncated = false;
  private count = 0;
  private bytes = 0;

  full(): boolean {
    return this.truncated;
  }

  push(list: DiffEntry[], path: string, node: TreeNode): void {
    if (this.truncated) return;
    if (this.count >= BusLimits.maxDiffEntries || this.bytes + path.length > BusLimits.maxDirectoryPageBytes) {
      this.truncated = true;
      return;
    }
    this.count++;
    this.bytes += path.length;
    list.push({ path, type: node.type, size: String(node.size ?? 0) });
  }
}

/** Walks two trees side by side by raw name; equal subtree IDs are skipped unread (deduplication makes most of a tree equal). */
async function diffTrees(repo: Repository, prefix: string, older: Tree, newer: Tree, out: DiffCollector): Promise<void> {
  const before = new Map(older.nodes.map((n) => [nameBytes(n).toString('latin1'), n]));
  const after = new Map(newer.nodes.map((n) => [nameBytes(n).toString('latin1'), n]));
  for (const [key, node] of after) {
    if (out.full()) return;
    const path = `${prefix}/${node.name}`;
    const old = before.get(key);
    if (!old) out.push(out.added, path, node);
    else if (old.type === 'dir' && node.type === 'dir') {
      if (old.subtree !== node.subtree) await diffTrees(repo, path, await repo.loadTree(old.subtree!), await repo.loadTree(node.subtree!), out);
    } else if (old.type === 'dir' || node.type === 'dir') {
      out.push(out.removed, path, old);
      out.push(out.added, path, node);
    } else if (!sameContent(old, node)) out.push(out.changed, path, node);
  }
  for (const [key, node] of before) {
    if (!after.has(key)) out.push(out.removed, `${prefix}/${node.name}`, node);
  }
}

/** Runs `fn` on a fresh handle: the daemon's own one has not seen the packs of later backups. */
async function withFreshHandle<T>(repository: Repository, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = repository.reopen();
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}

export function registerSnapshotHandlers(bus: BusServer, repository: Repository): void {
  bus.handle('list-directory', ({ snapshot: ref, client, path, offset }) => withFreshHandle(repository, async (repo) => {
    const snapshot = await repo.findSnapshot(ref, client);
    const tree = await directoryAt(repo, snapshot, path);
    const entries: DirectoryEntry[] = [];
    let bytes = 0;
    let next = offset;
    for (; next < tree.nodes.length; next++) {
      const entry = directoryEntry(tree.nodes[next]!);
      const size = entry.name.length + (entry.nameRaw?.length ?? 0) + (entry.target?.length ?? 0) + 128;
      if (entries.length > 0 && bytes + size > BusLimits.maxDirectoryPageBytes) break;
      bytes += size;
      entries.push(entry);
    }
    return { snapshot: snapshot.id, client: snapshot.client, path, entries, total: tree.nodes.length, nextOffset: next < tree.nodes.length ? next : null };
  }));

  bus.handle('diff-snapshots', ({ from, to, client, path }) => withFreshHandle(repository, async (repo) => {
    const [older, newer] = await snapshotPair(repo, from, to, client);
    const out = new DiffCollector();
    const prefix = path === '/' ? '' : path.replace(/\/+$/, '');
    await diffTrees(repo, prefix, await directoryAt(repo, older, path), await directoryAt(repo, newer, path), out);
    return { from: older.id, to: newer.id, client: older.client, added: out.added, changed: out.changed, removed: out.removed, truncated: out.truncated };
  }));
}
