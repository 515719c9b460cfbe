// Gathers the restore's files of at most one chunk into batches for the SmallFileWriter: the
// chunks a batch needs are grouped by pack and read as ranges (neighbouring small files were
// usually packed next to each other, so one read serves dozens of them), and each range goes to
// a worker with its files. What fails there is turned into the same error the one-file-at-a-time
// path gives, by loading that one chunk again here.
import { HaulError } from '../../shared/errors.js';
import { BlobType, type BlobLocation } from '../repository/blob.js';
import { Compression } from '../repository/compression.js';
import type { Repository } from '../repository/repository.js';
import type { TreeNode } from '../repository/tree.js';
import { SmallFileWriter, type SmallFile, type SmallFileOutcome } from './small-file-writer.js';

/** A batch is cut at this many files; fewer wait at most one turn of the event loop. */
const maxBatchFiles = 512;
/** Chunks at most this far apart in a pack are read together (the gap is read and dropped). */
const maxGap = 64 * 1024;
/** One read, and one worker's share, at most this long or this many files. */
const maxRangeBytes = 2 * 1024 * 1024;
const maxRangeFiles = 96;
/** Bytes read but not yet written; more waits, so memory stays bounded on any tree. */
const maxBytesInFlight = 32 * 1024 * 1024;

interface Pending {
  path: Buffer;
  node: TreeNode;
  file: SmallFile;
  id?: Buffer;
  loc?: BlobLocation;
  resolve: (r: void) => void;
  reject: (err: unknown) => void;
}

export class SmallFileQueue {
  private readonly writer: SmallFileWriter;
  private pending: Pending[] = [];
  private flushScheduled = false;
  private bytesInFlight = 0;
  private readonly waitingForRoom: (() => void)[] = [];

  constructor(private readonly repo: Repository, options: { overwrite: boolean; setOwners: boolean }) {
    this.writer = new SmallFileWriter({ idKey: repo.keys.id, maxChunkSize: repo.config.chunker.maxSize, ...options });
  }

  /**
   * Restores one file of at most one chunk, with its mode, owner and mtime. Rejects with a
   * RestoreRefused error whose message says why (nothing is left at the path then, unless it
   * was there before).
   */
  write(path: Buffer, node: TreeNode, mtimeSeconds: number): Promise<void> {
    const file: SmallFile = { path: path.toString('latin1'), size: node.size ?? 0, mode: node.mode, uid: node.uid, gid: node.gid, mtime: mtimeSeconds };
    return new Promise<void>((resolve, reject) => {
      const p: Pending = { path, node, file, resolve, reject };
      const hex = node.content?.[0];
      if (hex !== undefined) {
        p.id = Buffer.from(hex, 'hex');
        p.loc = this.repo.locate(p.id);
      }
      this.pending.push(p);
      if (this.pending.length >= maxBatchFiles) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    await this.writer.close();
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const byPack = new Map<string, Pending[]>();
    const empty: Pending[] = [];
    for (const p of batch) {
      if (!p.id) empty.push(p);
      else if (!p.loc) void this.refuse(p, { failure: 'chunk' });
      else {
        const list = byPack.get(p.loc.pack);
        if (list) list.push(p);
        else byPack.set(p.loc.pack, [p]);
      }
    }
    if (empty.length > 0) void this.send(undefined, empty);
    for (const [pack, files] of byPack) {
      for (const range of ranges(files)) void this.send(pack, range);
    }
  }

  /** Reads the range that holds `files`' chunks (all in `pack`, sorted by offset) and writes them. */
  private async send(pack: string | undefined, files: Pending[]): Promise<void> {
    const start = files[0]!.loc?.offset ?? 0;
    const length = files.reduce((end, p) => Math.max(end, p.loc ? p.loc.offset + p.loc.length : 0), start) - start;
    await this.room(length);
    try {
      let outcomes: SmallFileOutcome[];
      try {
        const range = pack ? await this.repo.storage.read('packs', pack, { offset: start, length }) : undefined;
        const key = pack ? (await this.repo.cipherFor(pack)).subkey : undefined;
        for (const p of files) {
          if (p.loc) p.file.chunk = { start: p.loc.offset - start, length: p.loc.length, counter: p.loc.offset, zstd: p.loc.compression === Compression.zstd, id: p.id!.toString('latin1') };
        }
        outcomes = await this.writer.write({ ...(key ? { key } : {}), ...(range ? { range } : {}), files: files.map((p) => p.file) });
      } catch (err) {
        // The pack could not be read (missing, truncated, bad header): each file says why itself.
        for (const p of files) void this.refuse(p, { failure: 'chunk' }, err);
        return;
      }
      files.forEach((p, i) => {
        const outcome = outcomes[i]!;
        if ('ok' in outcome) p.resolve();
        else void this.refuse(p, outcome);
      });
    } finally {
      this.release(length);
    }
  }

  /** Rejects a file with the message the one-chunk-at-a-time path would give. */
  private async refuse(p: Pending, outcome: Exclude<SmallFileOutcome, { ok: true }>, cause?: unknown): Promise<void> {
    switch (outcome.failure) {
      case 'exists':
        return p.reject(new HaulError('RestoreRefused', 'already exists; use --overwrite to replace it'));
      case 'io':
        return p.reject(new HaulError('RestoreRefused', outcome.message));
      case 'size':
        return p.reject(notRestored(`content adds up to ${outcome.actual} bytes, the snapshot says ${p.node.size}`));
      case 'chunk':
        try {
          // Loading it once more here gives the exact reason (missing, authentication, decompression, hash).
          await this.repo.loadBlob(p.id!, BlobType.data);
          p.reject(notRestored(`chunk ${p.id!.toString('hex').slice(0, 16)} did not verify on the writer thread${cause ? `: ${(cause as Error).message}` : ''}`));
        } catch (err) {
          p.reject(notRestored((err as Error).message));
        }
    }
  }

  private async room(bytes: number): Promise<void> {
    while (this.bytesInFlight > 0 && this.bytesInFlight + bytes > maxBytesInFlight) {
      await new Promise<void>((resolve) => this.waitingForRoom.push(resolve));
    }
    this.bytesInFlight += bytes;
  }

  private release(bytes: number): void {
    this.bytesInFlight -= bytes;
    for (const wake of this.waitingForRoom.splice(0)) wake();
  }
}

function notRestored(message: string): HaulError {
  return new HaulError('RestoreRefused', `not restored: ${message}`);
}

/** Files of one pack cut into runs that are read with one call each. */
function ranges(files: Pending[]): Pending[][] {
  files.sort((a, b) => a.loc!.offset - b.loc!.offset);
  const out: Pending[][] = [];
  let run: Pending[] = [];
  let runStart = 0;
  let runEnd = 0;
  for (const p of files) {
    const { offset, length } = p.loc!;
    const fits = run.length > 0 && run.length < maxRangeFiles && offset - runEnd <= maxGap && offset + length - runStart <= maxRangeBytes;
    if (!fits) {
      if (run.length > 0) out.push(run);
      run = [];
      runStart = offset;
      runEnd = offset;
    }
    run.push(p);
    runEnd = Math.max(runEnd, offset + length);
  }
  if (run.length > 0) out.push(run);
  return out;
}
