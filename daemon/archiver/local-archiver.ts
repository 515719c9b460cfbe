// Backs up directories of this machine into the repository: walk, chunk, deduplicate, write
// trees bottom-up, then the snapshot. It exercises the whole engine without SSH; the pull path
// over SSH feeds the same repository layer from the probe's stream instead of the local disk.
import { lstatSync, readFileSync, type BigIntStats } from 'node:fs';
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { displayBytes } from '../../shared/display.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import { GearChunker, chunkFile, cutAll } from '../chunker/gear-chunker.js';
import { BlobType } from '../repository/blob.js';
import { chunkerKeyFor } from '../repository/crypto.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot, SnapshotStats, StoredSnapshot } from '../repository/snapshot.js';
import { encodeBytes, nameBytes, type NodeType, type Tree, type TreeNode } from '../repository/tree.js';
import { OwnerNames } from './owner-names.js';

export interface BackupProgress {
  files: number;
  dirs: number;
  bytesRead: number;
  bytesNew: number;
  currentPath: string;
  /** Bytes the previous snapshot held: an estimate of the total, for an ETA. */
  expectedBytes?: number;
}

export interface LocalBackupOptions {
  client: string;
  paths: string[];
  tags?: string[];
  /** Paths (absolute) to leave out, with everything under them. */
  excludes?: string[];
  /** Stay on the file system of each given path. */
  oneFileSystem?: boolean;
  /** Compare with this snapshot (default: the client's latest) to skip unchanged files. */
  parent?: StoredSnapshot | null;
  onProgress?: (p: BackupProgress) => void;
  onWarning?: (message: string) => void;
}

export interface BackupResult {
  id: string;
  snapshot: Snapshot;
}

interface PathTrie {
  /** Back up this directory entirely. */
  whole: boolean;
  children: Map<string, PathTrie>;
}

function typeOf(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return 'socket';
}

function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}

export class LocalArchiver {
  private readonly owners = new OwnerNames();
  private readonly chunker: GearChunker;
  private readonly stats: SnapshotStats = { files: 0, dirs: 0, bytes: 0, bytesRead: 0, bytesNew: 0, bytesStored: 0, blobsNew: 0, errors: 0, durationMs: 0 };
  private readonly excludes: Set<string>;
  private lastProgress = 0;
  private readonly chunkBuffer: Buffer;
  private expectedBytes: number | undefined;

  constructor(private readonly repo: Repository, private readonly options: LocalBackupOptions) {
    this.chunker = new GearChunker(chunkerKeyFor(repo.keys, options.client), repo.config.chunker);
    this.excludes = new Set((options.excludes ?? []).map((p) => path.resolve(p)));
    this.chunkBuffer = Buffer.allocUnsafe(2 * repo.config.chunker.maxSize);
  }

  async run(): Promise<BackupResult> {
    try {
      return await this.archive();
    } catch (err) {
      await this.repo.indexWrittenPacks();
      throw err;
    }
  }

  private async archive(): Promise<BackupResult> {
    const started = Date.now();
    const { repo, options } = this;
    if (options.paths.length === 0) throw new HaulError('InvalidArgument', 'no paths given: name at least one directory to back up.');
    await repo.loadIndex();
    const parent = options.parent === undefined ? await this.latestFor(options.client) : options.parent;
    this.expectedBytes = parent?.stats.bytes;
    const trie: PathTrie = { whole: false, children: new Map() };
    // Symlinks above a backed-up path are resolved: the snapshot records where the data is.
    const absPaths: string[] = [];
    for (const given of options.paths) {
      const p = path.resolve(given);
      try {
        absPaths.push(await fs.realpath(p));
      } catch {
        throw new HaulError('PathNotFound', `${p} does not exist or cannot be read. Check the path given to the backup.`);
      }
    }
    for (const p of absPaths) {
      let node = trie;
      for (const part of p.split('/').filter(Boolean)) {
        let child = node.children.get(part);
        if (!child) node.children.set(part, (child = { whole: false, children: new Map() }));
        node = child;
      }
      node.whole = true;
    }
    const parentRoot = parent ? await this.loadTreeOrNothing(parent.tree) : undefined;
    const rootTree = await this.archiveTrie(Buffer.from('/'), trie, parentRoot);
    const treeId = await repo.saveTree(rootTree);
    // Blobs still being compressed on the worker pool are counted only once packed: wait for them.
    await repo.flush();
    Object.assign(this.stats, { bytesNew: repo.written.bytesNew, bytesStored: repo.written.bytesStored, blobsNew: repo.written.blobsNew, durationMs: Date.now() - started });
    const snapshot: Snapshot = {
      format: 'haul-snapshot-v1',
      client: options.client,
      time: new Date(started).toISOString(),
      hostname: hostname(),
      paths: absPaths,
      tags: options.tags ?? [],
      tree: treeId,
      ...(parent ? { parent: parent.id } : {}),
      source: 'local',
      stats: this.stats,
    };
    const id = await repo.saveSnapshot(snapshot);
    return { id, snapshot };
  }

  private async latestFor(client: string): Promise<StoredSnapshot | null> {
    const snaps = await this.repo.listSnapshots({ client });
    return snaps.at(-1) ?? null;
  }

  private async loadTreeOrNothing(id: string | undefined): Promise<Tree | undefined> {
    if (!id) return undefined;
    try {
      return await this.repo.loadTree(id);
    } catch (err) {
      // A damaged parent only costs speed: everything below is read again.
      this.warn(`previous tree ${id.slice(0, 16)} unreadable (${(err as Error).message}); reading those files again`);
      return undefined;
    }
  }

  private warn(message: string): void {
    this.stats.errors++;
    this.options.onWarning?.(message);
  }

  private progress(current: Buffer, force = false): void {
    const now = Date.now();
    if (!this.options.onProgress || (!force && now - this.lastProgress < 200)) return;
    this.lastProgress = now;
    this.options.onProgress({
      files: this.stats.files,
      dirs: this.stats.dirs,
      bytesRead: this.stats.bytesRead,
      bytesNew: this.repo.written.bytesNew,
      currentPath: current.toString('utf8'),
      ...(this.expectedBytes !== undefined ? { expectedBytes: this.expectedBytes } : {}),
    });
  }

  /** Directories above a backed-up path: real metadata, but only the children on the way. */
  private async archiveTrie(dir: Buffer, trie: PathTrie, parentTree: Tree | undefined): Promise<Tree> {
    const nodes: TreeNode[] = [];
    for (const [name, child] of trie.children) {
      const nameBuf = Buffer.from(name);
      const full = joinBytes(dir, nameBuf);
      const st = await fs.lstat(full, { bigint: true });
      const node = this.nodeFromStat(nameBuf, st);
      const parentNode = parentTree?.nodes.find((n) => nameBytes(n).equals(nameBuf));
      if (child.whole) {
        if (node.type === 'dir') {
          node.subtree = await this.repo.saveTree(await this.archiveDir(full, st.dev, parentNode));
        } else {
          await this.fillNode(full, node, st, parentNode);
        }
      } else {
        const sub = parentNode?.type === 'dir' ? await this.loadTreeOrNothing(parentNode.subtree) : undefined;
        node.subtree = await this.repo.saveTree(await this.archiveTrie(full, child, sub));
      }
      nodes.push(node);
    }
    return { nodes };
  }

  private async archiveDir(dir: Buffer, device: bigint, parentNode: TreeNode | undefined): Promise<Tree> {
    this.stats.dirs++;
    const parentTree = parentNode?.type === 'dir' ? await this.loadTreeOrNothing(parentNode.subtree) : undefined;
    const parentByName = new Map<string, TreeNode>();
    for (const n of parentTree?.nodes ?? []) parentByName.set(nameBytes(n).toString('latin1'), n);
    let names: Buffer[];
    try {
      names = await fs.readdir(dir, { encoding: 'buffer' });
    } catch (err) {
      this.warn(`cannot list ${displayBytes(dir)}: ${(err as Error).message}; stored as empty`);
      return { nodes: [] };
    }
    names.sort(Buffer.compare);
    const nodes: TreeNode[] = [];
    for (const name of names) {
      const full = joinBytes(dir, name);
      if (this.excludes.has(full.toString('utf8'))) continue;
      let st: BigIntStats;
      try {
        // Synchronous on purpose: metadata comes from the kernel's cache in microseconds, and a
        // promise round trip per call cost more than the call itself (measured: 40k files).
        st = lstatSync(full, { bigint: true });
      } catch (err) {
        // Vanished between readdir and lstat: the file is simply not in this snapshot.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn(`cannot stat ${displayBytes(full)}: ${(err as Error).message}`);
        continue;
      }
      const node = this.nodeFromStat(name, st);
      const previous = parentByName.get(name.toString('latin1'));
      if (node.type === 'dir') {
        if (this.options.oneFileSystem && st.dev !== device) {
          node.subtree = await this.repo.saveTree({ nodes: [] });
        } else {
          node.subtree = await this.repo.saveTree(await this.archiveDir(full, device, previous));
        }
      } else if (!(await this.fillNode(full, node, st, previous))) {
        continue;
      }
      nodes.push(node);
      this.progress(full);
    }
    return { nodes };
  }

  private nodeFromStat(name: Buffer, st: BigIntStats): TreeNode {
    const { text, raw } = encodeBytes(name);
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    const node: TreeNode = {
      name: text,
      ...(raw !== undefined ? { nameRaw: raw } : {}),
      type: typeOf(st),
      mode: Number(st.mode & 0o7777n),
      uid,
      gid,
      mtime: st.mtimeNs.toString(),
      ctime: st.ctimeNs.toString(),
    };
    const user = this.owners.user(uid);
    const group = this.owners.group(gid);
    if (user !== undefined) node.user = user;
    if (group !== undefined) node.group = group;
    // The inode lets the next run trust unchanged metadata; device and link count tie hard links.
    if (node.type === 'file') node.inode = st.ino.toString();
    if (node.type !== 'dir' && st.nlink > 1n) {
      node.inode = st.ino.toString();
      node.device = st.dev.toString();
      node.links = Number(st.nlink);
    }
    if (node.type === 'chardev' || node.type === 'blockdev') node.rdev = Number(st.rdev);
    return node;
  }

  /** Completes a non-directory node; false when the entry could not be read and is left out. */
  private async fillNode(full: Buffer, node: TreeNode, st: BigIntStats, previous: TreeNode | undefined): Promise<boolean> {
    if (node.type === 'symlink') {
      try {
        const target = await fs.readlink(full, { encoding: 'buffer' });
        const { text, raw } = encodeBytes(target);
        node.target = text;
        if (raw !== undefined) node.targetRaw = raw;
      } catch (err) {
        this.warn(`cannot read link ${displayBytes(full)}: ${(err as Error).message}`);
        return false;
      }
      return true;
    }
    if (node.type !== 'file') return true;
    this.stats.files++;
    node.size = Number(st.size);
    this.stats.bytes += node.size;
    if (previous && this.unchanged(previous, st)) {
      node.content = previous.content!;
      return true;
    }
    try {
      if (node.size <= this.chunker.params.minSize) {
        // A file of one chunk is read in one synchronous call (see lstat above for why).
        const whole = readFileSync(full);
        // The file may have changed since lstat: the snapshot records what was read.
        this.stats.bytes += whole.length - node.size;
        node.size = whole.length;
        node.content = await this.storeWhole(whole);
      } else {
        node.content = await this.readContent(full);
      }
    } catch (err) {
      // The repository failing (full disk, I/O error) ends the run; only the file's own trouble
      // (permission, vanished, read error) is a warning and leaves that file out.
      if (isHaulError(err)) throw err;
      this.warn(`cannot read ${displayBytes(full)}: ${(err as Error).message}`);
      this.stats.files--;
      this.stats.bytes -= node.size;
      return false;
    }
    return true;
  }

  /** A file whose size, mtime, ctime and inode match the previous snapshot is not read again. */
  private unchanged(previous: TreeNode, st: BigIntStats): boolean {
    if (previous.type !== 'file' || !previous.content) return false;
    if (previous.size !== Number(st.size) || previous.mtime !== st.mtimeNs.toString() || previous.ctime !== st.ctimeNs.toString()) return false;
    if (previous.inode !== undefined && previous.inode !== st.ino.toString()) return false;
    // Reuse only what the repository still has; a chunk lost to damage is read and stored again.
    return previous.content.every((id) => this.repo.hasBlob(Buffer.from(id, 'hex')));
  }

  /** A file read whole (small enough to be at most a few chunks). */
  private async storeWhole(data: Buffer): Promise<string[]> {
    const ids: string[] = [];
    let start = 0;
    for (const len of cutAll(this.chunker, data)) {
      this.stats.bytesRead += len;
      ids.push((await this.repo.saveBlob(BlobType.data, data.subarray(start, start + len))).id.toString('hex'));
      start += len;
    }
    return ids;
  }

  private async readContent(full: Buffer): Promise<string[]> {
    const fh = await fs.open(full, 'r');
    const ids: string[] = [];
    try {
      for await (const chunk of chunkFile(fh, this.chunker, this.chunkBuffer)) {
        this.stats.bytesRead += chunk.length;
        const { id } = await this.repo.saveBlob(BlobType.data, chunk);
        ids.push(id.toString('hex'));
        this.progress(full);
      }
    } finally {
      await fh.close();
    }
    return ids;
  }
}
