// What a pull backup tells the probe about this client's previous snapshot (docs/probe-protocol.md,
// PREVIOUS and KNOWN): a record for every file whose chunks the repository still has and for every
// directory whose whole subtree is such files and directories, plus the fingerprints of those
// chunks. The records are numbered; the probe's UNCHANGED names one by number, and the server
// takes that entry (a file's chunk list, a directory's saved tree) from here, never from the probe.
//
// The digest keeps, per record, only where its entry lives: a directory's node and totals, or a
// file's saved tree and its position there. A file's node is read from its tree only when an
// UNCHANGED names it, so a digest loaded from the cache (previous-cache.ts) costs no tree at all
// when the probe names the whole tree unchanged.
import { hash } from 'node:crypto';
import * as os from 'node:os';
import { displayBytes } from '../../shared/display.js';
import { BodyWriter, EntryKind } from '../../shared/probe-protocol.js';
import type { Repository } from '../repository/repository.js';
import { nameBytes, type TreeNode } from '../repository/tree.js';

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

/** A directory with a record: kept whole, it is small and names its saved subtree. */
export interface DigestDir {
  path: Buffer;
  node: TreeNode;
  totals: SubtreeTotals;
}

/** A saved tree holding files with records, and the directory path it lists. */
export interface DigestTree {
  id: string;
  path: Buffer;
}

/** `refs` per record: [where, node index, first chunk, chunk count]; `where` is a tree index, or a dir index with this bit. */
const dirRef = 0x8000_0000;
const refWords = 4;

/**
 * First 8 bytes of SHA-256(path), as a record stores them (u64 LE). One-shot hashing, here and in
 * metadataDigest: no Hash object per call, a third faster over a digest's tens of thousands.
 */
function pathHash(path: Buffer): Buffer {
  return hash('sha256', path, 'buffer').subarray(0, 8);
}

const metadataBytes = Buffer.alloc(33);

/**
 * First 8 bytes (u64 LE) of SHA-256(u8 kind · u64 size · i64 mtime · i64 ctime · u64 inode); for a
 * directory `size` is the number of entries in it.
 */
function metadataDigest(kind: number, size: bigint, mtime: bigint, ctime: bigint, inode: bigint): Buffer {
  const b = metadataBytes;
  b[0] = kind;
  b.writeBigUInt64LE(size, 1);
  b.writeBigInt64LE(mtime, 9);
  b.writeBigInt64LE(ctime, 17);
  b.writeBigUInt64LE(inode, 25);
  return hash('sha256', b, 'buffer').subarray(0, 8);
}

const slash = Buffer.from('/');

export function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 ? Buffer.concat([dir, name]) : Buffer.concat([dir, slash, name]);
}

/** The parts of a digest, as the cache file stores them. */
export interface DigestParts {
  /** PREVIOUS records, 16 bytes each. */
  records: Buffer;
  refs: Uint32Array;
  trees: DigestTree[];
  dirs: DigestDir[];
  /** Blob IDs (32 bytes each) the snapshot references and the repository had when the digest was built. */
  chunkIds: Buffer;
  /** Their fingerprints (8 bytes each; 0 when the snapshot recorded none). */
  chunkFingerprints: Buffer;
  /** The nonzero fingerprints, sorted, without repeats (KNOWN). */
  known: BigUint64Array;
}

export class PreviousDigest {
  private ids: Set<string> | undefined;
  /** Trees read to resolve file records, by ID (the walk fills it as it goes). */
  readonly treeNodes = new Map<string, TreeNode[]>();
  /** Trees loaded from the repository by `entry`, for the tests and the log. */
  treesLoaded = 0;

  constructor(readonly parts: DigestParts) {}

  static empty(): PreviousDigest {
    return new DigestBuilder().finish();
  }

  get count(): number {
    return this.parts.records.length / 16;
  }

  get records(): Buffer {
    return this.parts.records;
  }

  get known(): BigUint64Array {
    return this.parts.known;
  }

  /** Whether the previous snapshot references this blob ID (hex); built on first use. */
  ownsBlob(hex: string): boolean {
    if (!this.ids) {
      this.ids = new Set();
      const ids = this.parts.chunkIds;
      for (let i = 0; i < ids.length; i += 32) this.ids.add(ids.toString('hex', i, i + 32));
    }
    return this.ids.has(hex);
  }

  /** The totals of a directory record; undefined for a file record. */
  totalsOf(index: number): SubtreeTotals | undefined {
    const where = this.parts.refs[index * refWords]!;
    return where & dirRef ? this.parts.dirs[where & ~dirRef]!.totals : undefined;
  }

  /** Record `index`'s entry, its file node read from its saved tree if no one has yet. */
  async entry(index: number, repo: Repository): Promise<PreviousEntry | undefined> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return undefined;
    const { refs, dirs, trees } = this.parts;
    const where = refs[index * refWords]!;
    if (where & dirRef) return dirs[where & ~dirRef];
    const tree = trees[where]!;
    let nodes = this.treeNodes.get(tree.id);
    if (!nodes) {
      nodes = (await repo.loadTree(tree.id)).nodes;
      this.treesLoaded++;
      this.treeNodes.set(tree.id, nodes);
    }
    const node = nodes[refs[index * refWords + 1]!];
    if (node?.type !== 'file') throw new Error(`previous-snapshot digest: record ${index} does not name a file in tree ${tree.id.slice(0, 16)}`);
    return { path: joinPath(tree.path, nameBytes(node)), node };
  }
}

const noFingerprint = Buffer.alloc(8);

/** A file's saved chunk fingerprints (8 bytes each), if it has any. */
function savedFingerprints(node: TreeNode): Buffer | undefined {
  return node.fingerprints ? Buffer.from(node.fingerprints, 'base64') : undefined;
}

/** Chunk i's fingerprint (8 bytes) in a file's saved list; zeros when none was recorded. */
function fingerprintAt(fingerprints: Buffer | undefined, i: number): Buffer {
  return fingerprints && fingerprints.length >= (i + 1) * 8 ? fingerprints.subarray(i * 8, i * 8 + 8) : noFingerprint;
}

/** u32 values appended in place, doubling as needed. */
class GrowingU32 {
  private values = new Uint32Array(16 * 1024);
  length = 0;

  push(a: number, b: number, c: number, d: number): void {
    if (this.length + 4 > this.values.length) {
      const bigger = new Uint32Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = a;
    this.values[this.length++] = b;
    this.values[this.length++] = c;
    this.values[this.length++] = d;
  }

  done(): Uint32Array {
    return this.values.slice(0, this.length);
  }
}

/**
 * A copy of `values` whose bytes are little-endian, the order of the cache file and of `Buffer`'s
 * LE reads (on little-endian hosts, the same bytes).
 */
export function littleEndian<T extends Uint32Array | BigUint64Array>(values: T): T {
  const copy = values.slice() as T;
  if (os.endianness() === 'BE') {
    const bytes = new Uint8Array(copy.buffer);
    const width = copy.BYTES_PER_ELEMENT;
    for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
  }
  return copy;
}

/** A copy of the bytes in an ArrayBuffer of their own, so typed arrays can view them aligned. */
export function aligned(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
}

/** Builds a digest record by record, in the walk's post-order (a directory after its contents). */
export class DigestBuilder {
  private readonly records = new BodyWriter();
  private readonly refs = new GrowingU32();
  private readonly trees: DigestTree[] = [];
  private readonly treeIndex = new Map<string, number>();
  private readonly dirs: DigestDir[] = [];
  private readonly chunkIds = new BodyWriter();
  private readonly fingerprints = new BodyWriter();

  private get chunkCount(): number {
    return this.chunkIds.length / 32;
  }

  tree(id: string, path: Buffer): number {
    // By ID and path: equal directories in two places (hard-linked copies) have one tree ID.
    const key = `${id}/${path.toString('latin1')}`;
    let i = this.treeIndex.get(key);
    if (i === undefined) {
      i = this.trees.push({ id, path }) - 1;
      this.treeIndex.set(key, i);
    }
    return i;
  }

  /** A file's chunks (all of them present, `ids` decoded from its content); with `record`, also its PREVIOUS record. */
  file(node: TreeNode, ids: readonly Buffer[], record: { path: Buffer; tree: number; index: number } | undefined): void {
    const first = this.chunkCount;
    const fp = savedFingerprints(node);
    ids.forEach((id, i) => this.chunk(id, fingerprintAt(fp, i)));
    if (!record || node.inode === undefined) return;
    this.records.bytes(pathHash(record.path));
    this.records.bytes(metadataDigest(EntryKind.file, BigInt(node.size ?? 0), BigInt(node.mtime), BigInt(node.ctime), BigInt(node.inode)));
    this.refs.push(record.tree, record.index, first, this.chunkCount - first);
  }

  /** A chunk the repository has, of a file without a record (another of its chunks is gone). */
  chunk(id: Buffer, fingerprint: Buffer): void {
    this.chunkIds.bytes(id);
    this.fingerprints.bytes(fingerprint);
  }

  dir(path: Buffer, node: TreeNode, totals: SubtreeTotals, entries: number): void {
    this.records.bytes(pathHash(path));
    this.records.bytes(metadataDigest(EntryKind.dir, BigInt(entries), BigInt(node.mtime), BigInt(node.ctime), BigInt(node.inode!)));
    this.refs.push(dirRef | (this.dirs.push({ path, node, totals }) - 1), 0, 0, 0);
  }

  /**
   * Directory record `index` of `from` with everything below it, as they are: a directory named
   * unchanged keeps its saved tree, so its records, trees and chunks stay valid.
   */
  copyWholeDir(from: PreviousDigest, index: number): SubtreeTotals {
    const totals = from.totalsOf(index)!;
    const { records, refs, trees, dirs, chunkIds, chunkFingerprints } = from.parts;
    // A directory with a record is whole: every entry below it has one, just before its own, and
    // their chunks follow each other in record order.
    const firstRecord = index - (totals.files + totals.dirs - 1);
    this.records.bytes(records.subarray(firstRecord * 16, (index + 1) * 16));
    let firstChunk = -1;
    let endChunk = -1;
    const shiftTo = this.chunkCount;
    for (let i = firstRecord; i <= index; i++) {
      const where = refs[i * refWords]!;
      const first = refs[i * refWords + 2]!;
      const count = refs[i * refWords + 3]!;
      if (count > 0) {
        if (firstChunk < 0) firstChunk = first;
        endChunk = first + count;
      }
      const mapped = where & dirRef ? dirRef | (this.dirs.push(dirs[where & ~dirRef]!) - 1) : this.tree(trees[where]!.id, trees[where]!.path);
      this.refs.push(mapped, refs[i * refWords + 1]!, count > 0 ? shiftTo + first - firstChunk : 0, count);
    }
    if (firstChunk >= 0) {
      this.chunkIds.bytes(chunkIds.subarray(firstChunk * 32, endChunk * 32));
      this.fingerprints.bytes(chunkFingerprints.subarray(firstChunk * 8, endChunk * 8));
    }
    return totals;
  }

  finish(): PreviousDigest {
    const chunkFingerprints = Buffer.from(this.fingerprints.done());
    // Sorted natively, then without repeats and without 0 (no fingerprint recorded).
    const sorted = littleEndian(new BigUint64Array(aligned(chunkFingerprints)));
    sorted.sort();
    let n = 0;
    for (const f of sorted) if (f !== 0n && (n === 0 || sorted[n - 1] !== f)) sorted[n++] = f;
    return new PreviousDigest({ records: Buffer.from(this.records.done()), refs: this.refs.done(), trees: this.trees, dirs: this.dirs, chunkIds: Buffer.from(this.chunkIds.done()), chunkFingerprints, known: sorted.slice(0, n) });
  }
}

/** Where the walk finds a directory's entries: saved trees, or the session's own new directories. */
export interface SnapshotSource {
  /** The directory's entries (sorted by name, as saved) and its tree ID; undefined if unreadable. */
  listing(node: TreeNode, path: Buffer): Promise<{ treeId: string; nodes: TreeNode[] } | undefined>;
  /** The record number in `from` of a directory reused whole from that digest. */
  reused?(node: TreeNode): number | undefined;
  from?: PreviousDigest;
  /** Whether the repository still has this chunk. */
  present(id: Buffer): boolean;
}

/** Walks a snapshot from its root tree in post-order and builds its digest. */
export async function buildDigest(root: { treeId: string; nodes: TreeNode[] }, source: SnapshotSource): Promise<PreviousDigest> {
  const out = new DigestBuilder();

  /** The subtree's totals if every entry in it got a record, so the directory can. */
  const walk = async (listing: { treeId: string; nodes: TreeNode[] }, dir: Buffer): Promise<SubtreeTotals | undefined> => {
    const totals: SubtreeTotals = { files: 0, dirs: 1, bytes: 0 };
    let whole = true;
    let treeIndex: number | undefined;
    for (const [index, node] of listing.nodes.entries()) {
      const path = joinPath(dir, nameBytes(node));
      let sub: SubtreeTotals | undefined;
      if (node.type === 'dir') {
        const reused = source.reused?.(node);
        if (reused !== undefined) sub = out.copyWholeDir(source.from!, reused);
        else {
          const inner = await source.listing(node, path);
          const innerTotals = inner ? await walk(inner, path) : undefined;
          if (innerTotals && node.inode !== undefined) {
            out.dir(path, node, innerTotals, inner!.nodes.length);
            sub = innerTotals;
          }
        }
        if (!sub) whole = false;
        else {
          totals.files += sub.files;
          totals.dirs += sub.dirs;
          totals.bytes += sub.bytes;
        }
        continue;
      }
      if (node.type !== 'file' || !node.content) {
        whole = false;
        continue;
      }
      // Only chunks the repository still has are offered. A file with a lost chunk is read
      // again (no record); of its chunks, only the lost ones travel again.
      const ids = node.content.map((c) => Buffer.from(c, 'hex'));
      if (ids.every((id) => source.present(id)) && node.inode !== undefined) {
        treeIndex ??= out.tree(listing.treeId, dir);
        out.file(node, ids, { path, tree: treeIndex, index });
        totals.files++;
        totals.bytes += node.size ?? 0;
        continue;
      }
      whole = false;
      const fp = savedFingerprints(node);
      ids.forEach((id, i) => {
        if (source.present(id)) out.chunk(id, fingerprintAt(fp, i));
      });
    }
    return whole ? totals : undefined;
  };

  await walk(root, Buffer.from('/'));
  return out.finish();
}

/** Walks the previous snapshot's saved trees; `log` hears about trees that cannot be read. */
export async function loadPreviousRecords(repo: Repository, rootTree: string | undefined, log: (line: string) => void): Promise<PreviousDigest> {
  if (!rootTree) return PreviousDigest.empty();
  const loaded = new Map<string, TreeNode[]>();
  const load = async (treeId: string, dir: Buffer) => {
    try {
      const nodes = (await repo.loadTree(treeId)).nodes;
      loaded.set(treeId, nodes);
      return { treeId, nodes };
    } catch (err) {
      log(`warning: previous snapshot's directory ${displayBytes(dir)} is unreadable (${(err as Error).message}); its files are read again`);
      return undefined;
    }
  };
  const root = await load(rootTree, Buffer.from('/'));
  if (!root) return PreviousDigest.empty();
  const digest = await buildDigest(root, {
    listing: (node, path) => (node.subtree ? load(node.subtree, path) : Promise.resolve(undefined)),
    present: (id) => repo.hasBlob(id),
  });
  // The walk read every tree already: UNCHANGED files are resolved from them.
  for (const [id, nodes] of loaded) digest.treeNodes.set(id, nodes);
  digest.treesLoaded = loaded.size;
  return digest;
}
