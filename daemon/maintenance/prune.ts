// `haul prune`: remove data no snapshot references. Under the exclusive repository lock (no
// backup, restore or check runs meanwhile) it marks every blob reachable from a snapshot,
// deletes packs with nothing in use, repacks packs whose unused share passes a threshold, and
// rewrites only the index files that mention a changed pack.
//
// Crash safety comes from the order of the steps; each leaves a consistent repository:
//   1. new packs (the used blobs of repacked packs) are written: until indexed they are ignored;
//   2. their index file is written: those blobs are now in two places, which is harmless;
//   3. index files naming a repacked or deleted pack are replaced by filtered copies;
//   4. only then are packs deleted: no index names them any more.
// A crash leaves at worst unindexed packs and duplicate index entries, which the next prune
// (or `haul repair index`) tidies. Memory: the chunk index plus one bit per blob, one pack being
// repacked, and one index file at a time.
import { formatBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import { lockRepository } from '../repository/lock.js';
import { decodeEntry, indexEntryLength, recordStoredBytes, type EncodedPackRecord } from '../repository/index-file.js';
import { packCipher, packPreambleLength, readPackHeaderEntries } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';
import { shortId } from '../repository/snapshot.js';
import { PackCopier, retirePacks } from './pack-replacement.js';

export interface PruneOptions {
  /** Repack a partly used pack when at least this share of its bytes is unused (0..1). */
  repackThreshold?: number;
  /** Work out and report what would be done, change nothing. */
  dryRun?: boolean;
  /** How long to wait for running backups to release the repository. */
  lockWaitMs?: number;
  onProgress?: (phase: PrunePhase, done: number, total: number) => void;
}

export type PrunePhase = 'index' | 'mark' | 'repack' | 'rewrite-index' | 'delete';

export interface PruneReport {
  dryRun: boolean;
  snapshots: number;
  blobsUsed: number;
  blobsUnused: number;
  packsBefore: number;
  packsKept: number;
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  indexFilesRewritten: number;
  bytesBefore: number;
  bytesAfter: number;
  bytesFreed: number;
  durationMs: number;
  /** Stored bytes of the used blobs, by the client whose oldest snapshot uses each first. */
  storedBytesByClient: Record<string, number>;
}

interface PackUsage {
  size: number;
  indexedBytes: number;
  usedBytes: number;
}

function refused(why: string): HaulError {
  return new HaulError('PruneRefused', `prune stopped before changing anything: ${why}`);
}

export async function pruneRepository(repo: Repository, options: PruneOptions = {}): Promise<PruneReport> {
  const started = Date.now();
  const threshold = options.repackThreshold ?? 0.1;
  if (!(threshold >= 0 && threshold <= 1)) throw new HaulError('InvalidArgument', `the repack threshold must be between 0 and 1, not ${threshold}.`);
  const lock = await lockRepository(repo, 'exclusive', { purpose: options.dryRun ? 'prune --dry-run' : 'prune', waitMs: options.lockWaitMs ?? 0 });
  try {
    return await prune(repo, threshold, options, started);
  } finally {
    await lock.release();
  }
}

async function prune(repo: Repository, threshold: number, options: PruneOptions, started: number): Promise<PruneReport> {
  const progress = options.onProgress ?? (() => undefined);

  // 1. Index: every indexed blob, and per pack the bytes its index entries cover (once per pack).
  progress('index', 0, 1);
  const usage = new Map<string, PackUsage>();
  const indexFiles = new Map<string, string[]>();
  await repo.loadIndex(
    (file, err) => {
      throw refused(`index file ${file} cannot be read (${(err as Error).message.split('. Run')[0]}). Run \`haul repair index\`, then prune again.`);
    },
    (file, pack) => {
      const packs = indexFiles.get(file) ?? [];
      packs.push(pack.name);
      indexFiles.set(file, packs);
      if (usage.has(pack.name)) return;
      usage.set(pack.name, { size: 0, indexedBytes: recordStoredBytes(pack), usedBytes: 0 });
    },
  );
  const stored = new Map<string, number>();
  for await (const p of repo.storage.list('packs')) stored.set(p.name, p.size);
  for (const [name, u] of usage) {
    const size = stored.get(name);
    if (size === undefined) throw refused(`pack ${name} is in the index but missing from storage. Run \`haul check\` to see what it affects.`);
    u.size = size;
  }

  // 2. Mark every blob a snapshot reaches.
  const used = new Uint8Array(Math.ceil(repo.index.size / 8));

  // Each blob is charged to the client whose oldest snapshot reaches it first: the client that
  // uploaded it (docs/operations.md, Quotas). Snapshots are small; all are read, then walked oldest first.
  const snapshotNames: string[] = [];
  for await (const s of repo.storage.list('snapshots')) snapshotNames.push(s.name);
  const snapshots = [];
  let done = 0;
  for (const name of snapshotNames) {
    progress('mark', done++, snapshotNames.length * 2);
    try {
      snapshots.push(await repo.readSnapshot(name));
    } catch (err) {
      throw refused(`snapshot ${shortId(name)} cannot be read (${(err as Error).message}). Without it prune cannot know what that snapshot needs; run \`haul check\`.`);
    }
  }
  snapshots.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  const storedBytesByClient: Record<string, number> = {};
  // One scratch buffer for every ID a tree names: a million Buffer.from calls cost seconds of GC.
  const idBytes = Buffer.alloc(32);
  const mark = (hex: string, owner: string, what: () => string): void => {
    const n = idBytes.write(hex, 'hex') === 32 && hex.length === 64 ? repo.index.recordNumber(idBytes) : -1;
    if (n < 0) throw refused(`${what()} refers to blob ${hex.slice(0, 16)}, which is not in the index. Run \`haul repair index\` and \`haul check\` first.`);
    if (used[n >>> 3]! & (1 << (n & 7))) return;
    used[n >>> 3]! |= 1 << (n & 7);
    storedBytesByClient[owner] = (storedBytesByClient[owner] ?? 0) + repo.index.recordLength(n);
  };
  const seenTrees = new Set<string>();
  for (const snap of snapshots) {
    progress('mark', done++, snapshotNames.length * 2);
    const pending = [snap.tree];
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (seenTrees.has(id)) continue;
      seenTrees.add(id);
      mark(id, snap.client, () => `snapshot ${shortId(snap.id)}`);
      let tree;
      try {
        tree = await repo.loadTree(id);
      } catch (err) {
        throw refused(`directory listing ${id.slice(0, 16)} of snapshot ${shortId(snap.id)} cannot be read (${(err as Error).message.split('. Run')[0]}). Run \`haul check --read-data\`.`);
      }
      for (const node of tree.nodes) {
        if (node.subtree) pending.push(node.subtree);
        for (const c of node.content ?? []) mark(c, snap.client, () => `snapshot ${shortId(snap.id)}`);
      }
    }
  }

  // 3. Per-pack accounting and the plan.
  let blobsUsed = 0;
  const packNames = new Map<number, string>();
  const packName = (packNumber: number): string => {
    let name = packNames.get(packNumber);
    if (name === undefined) {
      name = repo.index.packName(packNumber);
      packNames.set(packNumber, name);
    }
    return name;
  };
  for (let n = 0; n < repo.index.size; n++) {
    if (!(used[n >>> 3]! & (1 << (n & 7)))) continue;
    blobsUsed++;
    usage.get(packName(repo.index.recordPackNumber(n)))!.usedBytes += repo.index.recordLength(n);
  }
  const toDelete: string[] = [];
  const toRepack: string[] = [];
  for (const [name, size] of stored) {
    const u = usage.get(name);
    if (!u || u.usedBytes === 0) toDelete.push(name);
    else if (u.indexedBytes - u.usedBytes >= threshold * u.indexedBytes && u.usedBytes < u.indexedBytes) toRepack.push(name);
    void size;
  }
  const bytesBefore = [...stored.values()].reduce((a, b) => a + b, 0);
  const report: PruneReport = {
    dryRun: !!options.dryRun,
    snapshots: snapshotNames.length,
    blobsUsed,
    blobsUnused: repo.index.size - blobsUsed,
    packsBefore: stored.size,
    packsKept: stored.size - toDelete.length - toRepack.length,
    packsDeleted: toDelete.length,
    packsRepacked: toRepack.length,
    packsWritten: 0,
    indexFilesRewritten: 0,
    bytesBefore,
    bytesAfter: 0,
    bytesFreed: 0,
    durationMs: 0,
    storedBytesByClient,
  };
  const freedByDeletes = toDelete.reduce((a, p) => a + stored.get(p)!, 0);
  if (options.dryRun) {
    // Repacking keeps the used bytes (plus a pack header per new pack): close enough to report.
    const repackFreed = toRepack.reduce((a, p) => a + usage.get(p)!.indexedBytes - usage.get(p)!.usedBytes, 0);
    report.bytesFreed = freedByDeletes + repackFreed;
    report.bytesAfter = bytesBefore - report.bytesFreed;
    report.durationMs = Date.now() - started;
    return report;
  }

  // 4. Repack: copy each used blob's payload into new packs; its GCM tag is checked on the way.
  const copier = new PackCopier(repo, { verifyContent: false });
  done = 0;
  // The next pack is read while this one is copied: the disk and the CPU work side by side.
  const readPack = (name: string | undefined) => {
    if (name === undefined) return undefined;
    const read = repo.storage.read('packs', name);
    read.catch(() => undefined); // awaited in its turn; should prune stop before, no unhandled rejection
    return read;
  };
  let next = readPack(toRepack[0]);
  for (const [i, name] of toRepack.entries()) {
    progress('repack', done++, toRepack.length);
    const whole = (await next)!;
    next = readPack(toRepack[i + 1]);
    const preamble = whole.subarray(0, packPreambleLength);
    let header: EncodedPackRecord;
    try {
      header = readPackHeaderEntries(repo.keys, name, preamble, whole, whole.length);
    } catch (err) {
      throw refused(`pack ${name} cannot be repacked: ${(err as Error).message.split('. Run')[0]}. Run \`haul check --read-data\`.`);
    }
    const cipher = packCipher(repo.keys, preamble);
    // Entries stay encoded; only a blob that is copied becomes an object.
    for (let k = 0, o = 0; k < header.count; k++, o += indexEntryLength) {
      const n = repo.index.recordNumber(header.entries, o + 2);
      if (n < 0 || !(used[n >>> 3]! & (1 << (n & 7)))) continue;
      const e = decodeEntry(header.entries, k);
      if (repo.index.recordOffset(n) !== e.offset || packName(repo.index.recordPackNumber(n)) !== name) continue; // the index uses another copy
      if (!(await copier.copy(e, cipher, whole.subarray(e.offset, e.offset + e.length)))) {
        throw refused(`blob ${e.id.toString('hex').slice(0, 16)} in pack ${name} is damaged, and a snapshot needs it. Run \`haul check --read-data\` to see which files are affected, and \`haul repair packs\`.`);
      }
    }
  }
  await copier.finish();
  report.packsWritten = copier.written.length;

  // 5 and 6. Replace the index files that name a pack about to go, then delete those packs.
  const going = new Set([...toDelete, ...toRepack]);
  report.indexFilesRewritten = (await retirePacks(repo, going, indexFiles, progress)).indexFilesRewritten;
  const newBytes = copier.bytesWritten;
  const freed = [...going].reduce((a, p) => a + stored.get(p)!, 0);
  report.bytesAfter = bytesBefore - freed + newBytes;
  report.bytesFreed = freed - newBytes;
  report.durationMs = Date.now() - started;
  return report;
}

export function formatPruneReport(r: PruneReport): string {
  const verb = r.dryRun ? 'would ' : '';
  return `${r.snapshots} snapshots use ${r.blobsUsed} blobs; ${r.blobsUnused} blobs are unused\n` +
    `packs: ${r.packsBefore} before, ${r.packsKept} kept as they are, ${verb}delete ${r.packsDeleted}, ${verb}repack ${r.packsRepacked}` +
    (r.dryRun ? '' : ` into ${r.packsWritten} new; ${r.indexFilesRewritten} index files rewritten`) + '\n' +
    `${r.dryRun ? 'would free about' : 'freed'} ${formatBytes(r.bytesFreed)} (${formatBytes(r.bytesBefore)} -> ${formatBytes(r.bytesAfter)}) in ${(r.durationMs / 1000).toFixed(1)} s` +
    (r.dryRun ? ' (dry run: nothing was changed)' : '') + '\n';
}
