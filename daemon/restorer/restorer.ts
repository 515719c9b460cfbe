// Restores a snapshot (or a path inside one) into a local directory. Every chunk is verified
// before it is written; a file with a damaged chunk is removed and reported, never left half
// right. Names were validated when the tree was decoded, and files are created with O_EXCL and
// O_NOFOLLOW, so nothing is written outside the target, even through symlinks in the snapshot.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, constants as fsConstants, lchownSync, lutimesSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { mapConcurrently } from '../../shared/concurrency.js';
import { displayBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import { BlobType } from '../repository/blob.js';
import type { Repository } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { isValidUtf8, nameBytes, targetBytes, type Tree, type TreeNode } from '../repository/tree.js';
import { SmallFileQueue } from './small-file-queue.js';

export interface RestoreProgress {
  files: number;
  bytes: number;
  totalBytes?: number;
  currentPath: string;
}

export interface RestoreOptions {
  /** Replace existing files in the target instead of refusing them. */
  overwrite?: boolean;
  onProgress?: (p: RestoreProgress) => void;
}

export interface RestoreProblem {
  path: string;
  message: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  bytes: number;
  problems: RestoreProblem[];
}

export function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length > 0 && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}

/** Finds the node at `subpath` ("/" or "" for the whole snapshot). */
export async function resolvePath(repo: Repository, snapshot: StoredSnapshot, subpath: string): Promise<{ tree?: Tree; node?: TreeNode }> {
  const parts = subpath.split('/').filter(Boolean);
  let tree = await repo.loadTree(snapshot.tree);
  let node: TreeNode | undefined;
  for (let i = 0; i < parts.length; i++) {
    const part = Buffer.from(parts[i]!);
    node = tree.nodes.find((n) => nameBytes(n).equals(part));
    if (!node) throw new HaulError('PathNotFound', `${subpath} is not in snapshot ${snapshot.id.slice(0, 8)}. \`haul ls ${snapshot.id.slice(0, 8)}\` lists what it holds.`);
    if (i < parts.length - 1 || node.type === 'dir') {
      if (node.type !== 'dir') throw new HaulError('PathNotFound', `${parts.slice(0, i + 1).join('/')} in snapshot ${snapshot.id.slice(0, 8)} is not a directory.`);
      tree = await repo.loadTree(node.subtree!);
    }
  }
  return node && node.type !== 'dir' ? { node } : { tree };
}

export class Restorer {
  private readonly result: RestoreResult = { files: 0, dirs: 0, bytes: 0, problems: [] };
  /** The first restored path of each hard-linked inode, once its content is complete. */
  private readonly hardLinks = new Map<string, Promise<Buffer | undefined>>();
  private readonly isRoot = process.getuid?.() === 0;
  private lastProgress = 0;
  private smallFiles: SmallFileQueue | undefined;

  constructor(private readonly repo: Repository, private readonly options: RestoreOptions = {}) {}

  async restore(snapshot: StoredSnapshot, subpath: string, target: string): Promise<RestoreResult> {
    const found = await resolvePath(this.repo, snapshot, subpath);
    const targetBuf = Buffer.from(target);
    await fs.mkdir(target, { recursive: true });
    try {
      if (found.node) await this.restoreNode(targetBuf, found.node);
      else await this.restoreTree(targetBuf, found.tree!);
    } finally {
      await this.smallFiles?.close();
      this.smallFiles = undefined;
    }
    this.options.onProgress?.({ files: this.result.files, bytes: this.result.bytes, currentPath: '' });
    return this.result;
  }

  private problem(path: Buffer, message: string): void {
    this.result.problems.push({ path: displayBytes(path), message });
  }

  private async restoreTree(dir: Buffer, tree: Tree): Promise<void> {
    // Small files go to the writer threads many at a time (they are batched there); the other
    // entries are restored side by side, since one at a time leaves the disk and the thread pool
    // idle between their calls.
    const small = tree.nodes.filter(isSmallFile);
    const others = tree.nodes.filter((n) => n.type !== 'dir' && !isSmallFile(n));
    await Promise.all([
      mapConcurrently(small, smallFilesInParallel, async (node) => {
        const full = joinPath(dir, nameBytes(node));
        try {
          await this.writeSmallFile(full, node);
        } catch (err) {
          this.problem(full, (err as Error).message);
        }
      }),
      mapConcurrently(others, filesInParallel, (node) => this.restoreNode(dir, node)),
    ]);
    // Sibling directories too: creating files is serialised per directory by the file system.
    await mapConcurrently(tree.nodes.filter((n) => n.type === 'dir'), dirsInParallel, (node) => this.restoreNode(dir, node));
  }

  private async restoreNode(dir: Buffer, node: TreeNode): Promise<void> {
    const full = joinPath(dir, nameBytes(node));
    try {
      switch (node.type) {
        case 'dir':
          await this.restoreDir(full, node);
          return;
        case 'file':
          // A small file got its metadata from the writer thread, except a further hard link.
          if (await this.restoreFile(full, node)) return;
          break;
        case 'symlink':
          await this.replaceable(full, () => fs.symlink(targetBytes(node), full));
          break;
        case 'fifo':
          await this.replaceable(full, () => createSpecial(full, ['mkfifo', '-m', (node.mode & 0o777).toString(8)]));
          break;
        case 'chardev':
        case 'blockdev':
          if (!this.isRoot) {
            this.problem(full, 'device node not restored: creating device nodes needs root');
            return;
          }
          await this.replaceable(full, () => createSpecial(full, ['mknod'], [node.type === 'chardev' ? 'c' : 'b', ...deviceNumbers(node.rdev ?? 0)]));
          break;
        case 'socket':
          // A socket is only meaningful to the process that bound it; there is nothing to restore.
          return;
      }
      await this.applyMetadata(full, node);
    } catch (err) {
      this.problem(full, (err as Error).message);
    }
  }

  private async restoreDir(full: Buffer, node: TreeNode): Promise<void> {
    try {
      await fs.mkdir(full, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await fs.lstat(full);
      if (!st.isDirectory()) {
        if (!this.options.overwrite) throw new HaulError('RestoreRefused', 'exists and is not a directory; use --overwrite to replace it');
        await fs.rm(full, { force: true });
        await fs.mkdir(full, { mode: 0o700 });
      }
    }
    this.result.dirs++;
    let tree: Tree;
    try {
      tree = await this.repo.loadTree(node.subtree!);
    } catch (err) {
      this.problem(full, `directory contents not restored: ${(err as Error).message}`);
      return;
    }
    await this.restoreTree(full, tree);
    await this.applyMetadata(full, node);
  }

  /** Creates an entry, replacing an existing one only with --overwrite. */
  private async replaceable(full: Buffer, create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!this.options.overwrite) throw new HaulError('RestoreRefused', 'already exists; use --overwrite to replace it');
      await fs.rm(full, { force: true });
      await create();
    }
  }

  /** Returns whether the file's metadata is already applied. */
  private async restoreFile(full: Buffer, node: TreeNode): Promise<boolean> {
    const linkKey = node.links && node.links > 1 && node.inode ? `${node.device}:${node.inode}` : undefined;
    const firstLink = linkKey ? this.hardLinks.get(linkKey) : undefined;
    const first = firstLink ? await firstLink : undefined;
    if (first) {
      await this.replaceable(full, () => fs.link(first, full));
      this.result.files++;
      return false;
    }
    if (linkKey && !firstLink) {
      const done = this.writeFile(full, node);
      this.hardLinks.set(linkKey, done.then(() => full, () => undefined));
      return done;
    }
    return this.writeFile(full, node);
  }

  private async writeFile(full: Buffer, node: TreeNode): Promise<boolean> {
    if (hasOneChunkAtMost(node)) {
      await this.writeSmallFile(full, node);
      return true;
    }
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
    let fh: fs.FileHandle | undefined;
    await this.replaceable(full, async () => {
      fh = await fs.open(full, flags, 0o600);
    });
    let position = 0;
    const content = node.content ?? [];
    const load = (i: number) => (i < content.length ? this.repo.loadBlob(Buffer.from(content[i]!, 'hex'), BlobType.data) : undefined);
    // The next chunk is read and opened (on the worker pool) while this one is written.
    let next = load(0);
    try {
      for (let i = 0; i < content.length; i++) {
        const chunk = await next!;
        next = load(i + 1);
        await writeSparse(fh!, chunk, position);
        position += chunk.length;
        this.result.bytes += chunk.length;
        this.progress(full);
      }
      if (position !== node.size) throw new HaulError('BlobCorrupt', `content adds up to ${position} bytes, the snapshot says ${node.size}`);
      await fh!.truncate(position);
      await fh!.close();
      fh = undefined;
    } catch (err) {
      // A chunk read ahead that fails after this failure is not unhandled.
      next?.catch(() => undefined);
      await fh?.close().catch(() => undefined);
      await fs.rm(full, { force: true });
      throw new HaulError('RestoreRefused', `not restored: ${(err as Error).message}`, { cause: err });
    }
    this.result.files++;
    return false;
  }

  /** A file of at most one chunk, verified, written and given its metadata on a writer thread. */
  private async writeSmallFile(full: Buffer, node: TreeNode): Promise<void> {
    // Started on the first small file: its worker threads cost a few milliseconds each.
    this.smallFiles ??= new SmallFileQueue(this.repo, { overwrite: Boolean(this.options.overwrite), setOwners: this.isRoot });
    await this.smallFiles.write(full, node, secondsForUtimes(BigInt(node.mtime)));
    this.result.bytes += node.size ?? 0;
    this.result.files++;
    this.progress(full);
  }

  private async applyMetadata(full: Buffer, node: TreeNode): Promise<void> {
    if (this.isRoot) {
      try {
        lchownSync(full, node.uid, node.gid);
      } catch {
        // Owners that do not exist here, or file systems without owners: the data still counts.
      }
    }
    if (node.type !== 'symlink') chmodSync(full, node.mode);
    const mtime = secondsForUtimes(BigInt(node.mtime));
    lutimesSync(full, mtime, mtime);
  }

  private progress(current: Buffer): void {
    const now = Date.now();
    if (!this.options.onProgress || now - this.lastProgress < 200) return;
    this.lastProgress = now;
    this.options.onProgress({ files: this.result.files, bytes: this.result.bytes, currentPath: current.toString('utf8') });
  }
}

/** A regular file of at most one chunk, not hard-linked (a link must wait for its first path). */
function isSmallFile(node: TreeNode): boolean {
  return node.type === 'file' && hasOneChunkAtMost(node) && !(node.links && node.links > 1);
}

function hasOneChunkAtMost(node: TreeNode): boolean {
  return (node.content?.length ?? 0) <= 1;
}

const filesInParallel = 8;
/** Two writer batches' worth per directory; a directory of a million files waits its turn. */
const smallFilesInParallel = 1024;
const dirsInParallel = 4;
const holeBlock = 4096;
const zeroBlock = Buffer.alloc(holeBlock);

/** Writes a chunk but skips 4 KiB blocks of zeros: they become holes, so sparse files stay sparse. */
async function writeSparse(fh: fs.FileHandle, chunk: Buffer, position: number): Promise<void> {
  let runStart = -1;
  for (let off = 0; off < chunk.length; off += holeBlock) {
    const end = Math.min(off + holeBlock, chunk.length);
    // compare() with offsets, not two subarrays: a GiB of chunks is 260,000 blocks of garbage.
    const zero = zeroBlock.compare(chunk, off, end, 0, end - off) === 0;
    if (!zero && runStart < 0) runStart = off;
    if (zero && runStart >= 0) {
      await writeAll(fh, chunk.subarray(runStart, off), position + runStart);
      runStart = -1;
    }
  }
  if (runStart >= 0) await writeAll(fh, chunk.subarray(runStart), position + runStart);
}

async function writeAll(fh: fs.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Node takes times as a double of seconds (about 0.24 µs of resolution today) and libuv on
 * Node 20 truncates it to whole microseconds. Aiming at the middle of the stored microsecond
 * lands inside it on every version: restored mtimes are exact to the microsecond.
 */
function secondsForUtimes(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  const micros = (ns % 1_000_000_000n) / 1000n;
  return Number(sec) + (Number(micros) + 0.5) / 1e6;
}

/** Linux's dev_t layout: major in bits 8-19, minor in bits 0-7 and 20-31. */
function deviceNumbers(rdev: number): [string, string] {
  return [String((rdev >>> 8) & 0xfff), String((rdev & 0xff) | ((rdev >>> 12) & 0xfff00))];
}

/**
 * Node has no mkfifo or mknod, so the coreutils commands make the node under a plain temporary
 * name (command arguments are text, stored names may not be), and a rename gives it its bytes.
 */
async function createSpecial(full: Buffer, command: string[], after: string[] = []): Promise<void> {
  try {
    await fs.lstat(full);
    const err = new Error('already exists') as NodeJS.ErrnoException;
    err.code = 'EEXIST';
    throw err;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = full.subarray(0, full.lastIndexOf(0x2f));
  if (!isValidUtf8(dir)) throw new Error(`cannot create a ${command[0] === 'mkfifo' ? 'fifo' : 'device node'} below a directory whose name is not UTF-8`);
  const temp = `${dir.toString('utf8')}/.haul-special-${randomBytes(6).toString('hex')}`;
  const r = spawnSync(command[0]!, [...command.slice(1), temp, ...after], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(r.stderr?.toString().trim() || `${command[0]} failed`);
  await fs.rename(temp, full);
}
