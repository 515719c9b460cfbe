import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';
import { alignedSharedBuffer, writeDirect, type AlignedStarts } from './direct-io.js';
import { assertObjectName, type ByteRange, type ObjectKind, type Storage, type StoredObject } from './storage.js';

const tempPrefix = '.tmp-';

function storageError(what: string, err: unknown): HaulError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new HaulError('DiskFull', `${what}: the disk holding the repository is full. Free space on it, then run the backup again: nothing already stored was lost, and what this run stored is reused.`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new HaulError('StorageFailure', `${what}: permission denied. Check that the Haul user owns the repository directory.`, { cause: err });
  }
  return new HaulError('StorageFailure', `${what}: ${(err as Error).message}`, { cause: err });
}

/** A repository in a local directory. Packs live in 256 subdirectories named by their first byte. */
export class LocalStorage implements Storage {
  readonly location: string;
  /** Open handles of recently read packs: a restore reads many blobs from each pack. */
  private readonly handles = new Map<string, Promise<fs.FileHandle>>();
  private static readonly maxHandles = 32;
  /** Buffers from allocateWriteBuffer that direct writes accept (see direct-io.ts); after one trial failed, none are made. */
  private readonly alignedStarts: AlignedStarts = new WeakMap();
  private directIo = true;

  constructor(readonly root: string) {
    this.location = path.resolve(root);
  }

  private dirOf(kind: ObjectKind, name: string): string {
    if (kind === 'config') return this.location;
    if (kind === 'packs') return path.join(this.location, 'packs', name.slice(0, 2));
    return path.join(this.location, kind);
  }

  private pathOf(kind: ObjectKind, name: string): string {
    assertObjectName(name);
    return path.join(this.dirOf(kind, name), kind === 'config' ? 'config' : name);
  }

  async isInitialised(): Promise<boolean> {
    try {
      await fs.access(path.join(this.location, 'config'));
      return true;
    } catch {
      return false;
    }
  }

  async create(): Promise<void> {
    try {
      await fs.mkdir(this.location, { recursive: true, mode: 0o700 });
      const entries = await fs.readdir(this.location);
      if (entries.length > 0) {
        throw new HaulError('RepositoryExists', `${this.location} is not empty. Choose a new or empty directory for the repository.`);
      }
      for (const dir of ['keys', 'index', 'snapshots', 'locks', 'packs']) {
        await fs.mkdir(path.join(this.location, dir), { mode: 0o700 });
      }
      for (let i = 0; i < 256; i++) {
        await fs.mkdir(path.join(this.location, 'packs', i.toString(16).padStart(2, '0')), { mode: 0o700 });
      }
      await syncDir(path.join(this.location, 'packs'));
      await syncDir(this.location);
      await syncDir(path.dirname(this.location));
    } catch (err) {
      if (err instanceof HaulError) throw err;
      throw storageError(`cannot create the repository at ${this.location}`, err);
    }
  }

  async *list(kind: ObjectKind): AsyncIterable<StoredObject> {
    if (kind === 'config') {
      const s = await this.stat('config', 'config');
      if (s) yield s;
      return;
    }
    const dirs = kind === 'packs'
      ? (await readdirOrEmpty(path.join(this.location, 'packs'))).filter((d) => /^[0-9a-f]{2}$/.test(d)).map((d) => path.join(this.location, 'packs', d))
      : [path.join(this.location, kind)];
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (name.startsWith(tempPrefix)) continue;
        try {
          const st = await fs.stat(path.join(dir, name));
          if (st.isFile()) yield { name, size: st.size };
        } catch (err) {
          // Deleted between readdir and stat: a concurrent prune; the object is simply gone.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(`cannot list ${dir}`, err);
        }
      }
    }
  }

  async read(kind: ObjectKind, name: string, range?: ByteRange): Promise<Buffer> {
    const file = this.pathOf(kind, name);
    try {
      if (!range) return await fs.readFile(file);
      const fh = await this.handle(file);
      {
        const buf = Buffer.allocUnsafe(range.length);
        let done = 0;
        while (done < range.length) {
          const { bytesRead } = await fh.read(buf, done, range.length - done, range.offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        if (done !== range.length) {
          throw new HaulError('ObjectCorrupt', `${kind}/${name} is shorter than expected (wanted bytes ${range.offset}..${range.offset + range.length}, file ends at ${range.offset + done}). The file was truncated: run \`haul check --read-data\` to see what is affected.`);
        }
        return buf;
      }
    } catch (err) {
      if (err instanceof HaulError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HaulError('BlobMissing', `${kind}/${name} is missing from the repository at ${this.location}. Run \`haul check\` to see what is affected.`, { cause: err });
      }
      throw storageError(`cannot read ${kind}/${name}`, err);
    }
  }

  async close(): Promise<void> {
    const open = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(open.map((h) => h.then((f) => f.close()).catch(() => undefined)));
  }

  /** Objects are immutable once written, so a cached handle never reads stale bytes. */
  private handle(file: string): Promise<fs.FileHandle> {
    let h = this.handles.get(file);
    if (h) {
      this.handles.delete(file);
      this.handles.set(file, h);
      return h;
    }
    h = fs.open(file, 'r');
    h.catch(() => this.handles.delete(file));
    this.handles.set(file, h);
    if (this.handles.size > LocalStorage.maxHandles) {
      const [oldest, old] = this.handles.entries().next().value as [string, Promise<fs.FileHandle>];
      this.handles.delete(oldest);
      void old.then((f) => f.close()).catch(() => undefined);
    }
    return h;
  }

  /** Shared memory that `write` stores with direct I/O (see direct-io.ts) when the disk allows it. */
  allocateWriteBuffer(length: number): Buffer {
    if (this.directIo) {
      const scratch = path.join(this.location, 'packs', tempPrefix + 'direct-' + randomBytes(8).toString('hex'));
      const aligned = alignedSharedBuffer(length, scratch, this.alignedStarts);
      if (aligned) return aligned;
      this.directIo = false;
    }
    return Buffer.from(new SharedArrayBuffer(length));
  }

  async write(kind: ObjectKind, name: string, data: Buffer | readonly Buffer[]): Promise<void> {
    const final = this.pathOf(kind, name);
    const dir = path.dirname(final);
    const temp = path.join(dir, tempPrefix + randomBytes(8).toString('hex'));
    let fh: fs.FileHandle | undefined;
    try {
      const parts = Buffer.isBuffer(data) ? [data] : data;
      const direct = parts.length === 1 && (await writeDirect(temp, parts[0]!, this.alignedStarts));
      if (!direct) {
        fh = await fs.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
        let pending = parts.filter((p) => p.length > 0);
        while (pending.length > 0) {
          const { bytesWritten } = await fh.writev(pending);
          pending = dropWritten(pending, bytesWritten);
        }
        await fh.sync();
        await fh.close();
        fh = undefined;
      }
      await fs.rename(temp, final);
      await syncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw storageError(`cannot store ${kind}/${name}`, err);
    }
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    const file = this.pathOf(kind, name);
    const cached = this.handles.get(file);
    this.handles.delete(file);
    void cached?.then((f) => f.close()).catch(() => undefined);
    try {
      await fs.rm(file, { force: true });
      await syncDir(path.dirname(file));
    } catch (err) {
      throw storageError(`cannot delete ${kind}/${name}`, err);
    }
  }

  async stat(kind: ObjectKind, name: string): Promise<StoredObject | undefined> {
    try {
      const st = await fs.stat(this.pathOf(kind, name));
      return { name, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError(`cannot stat ${kind}/${name}`, err);
    }
  }
}

function dropWritten(parts: Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const p of parts) {
    if (written >= p.length) {
      written -= p.length;
      continue;
    }
    rest.push(written > 0 ? p.subarray(written) : p);
    written = 0;
  }
  return rest;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw storageError(`cannot list ${dir}`, err);
  }
}

/** A rename is durable only once the directory holding it is synced. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
