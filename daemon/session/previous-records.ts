// What a pull backup tells the probe about this client's previous snapshot (docs/probe-protocol.md,
// PREVIOUS and KNOWN): a record for every file whose chunks the repository still has and for every
// directory whose whole subtree is such files and directories, plus the fingerprints of those
// chunks. The records are numbered; the probe's UNCHANGED names one by number, and the server
// takes that entry (a file's chunk list, a directory's saved tree) from here, never from the probe.
import { createHash } from 'node:crypto';
import { displayBytes } from '../../shared/display.js';
import { EntryKind } from '../../shared/probe-protocol.js';
import type { Repository } from '../repository/repository.js';
import { nameBytes, type Tree, type TreeNode } from '../repository/tree.js';

/** What an unchanged directory adds to the snapshot's counts, itself included. */
export interface SubtreeTotals {
  files: number;
  dirs: number;
  bytes: number;
}

export interface PreviousEntry {
  path: Buffer;
  node: TreeNode;
  /** Directories only. */
  totals?: SubtreeTotals;
}

export interface PreviousRecords {
  /** PREVIOUS records, 16 bytes each, in the order of `entries`. */
  records: Buffer;
  entries: PreviousEntry[];
  /** Blob IDs (hex) the previous snapshot references and the repository still has. */
  ownIds: Set<string>;
  /** Their fingerprints, sorted, without repeats (KNOWN). */
  known: BigUint64Array;
}

export function pathHash(path: Buffer): bigint {
  return createHash('sha256').update(path).digest().readBigUInt64LE(0);
}

/**
 * First 8 bytes (u64 LE) of SHA-256(u8 kind · u64 size · i64 mtime · i64 ctime · u64 inode); for a
 * directory `size` is the number of entries in it.
 */
export function metadataDigest(kind: number, size: bigint, mtime: bigint, ctime: bigint, inode: bigint): bigint {
  const b = Buffer.alloc(33);
  b[0] = kind;
  b.writeBigUInt64LE(size, 1);
  b.writeBigInt64LE(mtime, 9);
  b.writeBigInt64LE(ctime, 17);
  b.writeBigUInt64LE(inode, 25);
  return createHash('sha256').update(b).digest().readBigUInt64LE(0);
}

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}

/** Walks the previous snapshot's trees; `log` hears about trees that cannot be read. */
export async function loadPreviousRecords(repo: Repository, rootTree: string | undefined, log: (line: string) => void): Promise<PreviousRecords> {
  const entries: PreviousEntry[] = [];
  const hashes: bigint[] = [];
  const ownIds = new Set<string>();
  const fingerprints: bigint[] = [];
  const add = (entry: PreviousEntry, digest: bigint) => {
    entries.push(entry);
    hashes.push(pathHash(entry.path), digest);
  };

  /** The subtree's totals and entry count if every entry in it got a record, so the directory can. */
  const walk = async (treeId: string, dir: Buffer): Promise<{ totals: SubtreeTotals; count: number } | undefined> => {
    let tree: Tree;
    try {
      tree = await repo.loadTree(treeId);
    } catch (err) {
      log(`warning: previous snapshot's directory ${displayBytes(dir)} is unreadable (${(err as Error).message}); its files are read again`);
      return undefined;
    }
    const totals: SubtreeTotals = { files: 0, dirs: 1, bytes: 0 };
    let whole = true;
    for (const node of tree.nodes) {
      const path = joinPath(dir, nameBytes(node));
      if (node.type === 'dir') {
        const sub = node.subtree ? await walk(node.subtree, path) : undefined;
        if (sub && node.inode !== undefined) {
          add({ path, node, totals: sub.totals }, metadataDigest(EntryKind.dir, BigInt(sub.count), BigInt(node.mtime), BigInt(node.ctime), BigInt(node.inode)));
          totals.files += sub.totals.files;
          totals.dirs += sub.totals.dirs;
          totals.bytes += sub.totals.bytes;
        } else whole = false;
        continue;
      }
      if (node.type !== 'file' || !node.content) {
        whole = false;
        continue;
      }
      // Only chunks the repository still has are offered. A file with a lost chunk is read
      // again (no record); of its chunks, only the lost ones travel again.
      const fp = node.fingerprints ? Buffer.from(node.fingerprints, 'base64') : undefined;
      let present = true;
      node.content.forEach((c, i) => {
        if (!repo.hasBlob(Buffer.from(c, 'hex'))) {
          present = false;
          return;
        }
        ownIds.add(c);
        if (fp && fp.length >= (i + 1) * 8) fingerprints.push(fp.readBigUInt64LE(i * 8));
      });
      if (!present || node.inode === undefined) {
        whole = false;
        continue;
      }
      add({ path, node }, metadataDigest(EntryKind.file, BigInt(node.size ?? 0), BigInt(node.mtime), BigInt(node.ctime), BigInt(node.inode)));
      totals.files++;
      totals.bytes += node.size ?? 0;
    }
    return whole ? { totals, count: tree.nodes.length } : undefined;
  };

  if (rootTree) await walk(rootTree, Buffer.from('/'));
  const records = Buffer.alloc(hashes.length * 8);
  hashes.forEach((v, i) => records.writeBigUInt64LE(v, i * 8));
  return { records, entries, ownIds, known: BigUint64Array.from(new Set(fingerprints)).sort() };
}
