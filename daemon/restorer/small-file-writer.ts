// Writes files of at most one chunk on worker threads. A restore of many small files was bound by
// its main thread: per file a read, a decryption, a hash, then open, write, close, chown, chmod
// and utimes, each a call (or a promise round trip) of microseconds (docs/performance.md). Here
// the main thread reads a range of a pack once and hands it over (transferred, not copied) with
// the files whose chunks lie in it; a worker opens each chunk (AES-GCM, bounded zstd, SHA-256,
// the keyed blob ID compared with the one the tree names) and only then creates the file, writes
// it and sets its metadata through the open descriptor.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { blobWorkerFunctions, ownArrayBuffer } from '../repository/blob-worker-pool.js';

/** One file for the writer. Strings are latin1, so raw name bytes survive the message as they are. */
export interface SmallFile {
  path: string;
  /** Where the file's chunk is: its place in the range handed over, and in the pack (its nonce). */
  chunk?: { start: number; length: number; counter: number; zstd: boolean; id: string };
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds, as `fs.futimes` takes them. */
  mtime: number;
}

/**
 * What became of a file: written with its metadata, or why not. `chunk`: the chunk did not open
 * or verify (nothing was created); `size`: its plaintext is `actual` bytes, not the size the
 * snapshot records (nothing was created); `exists`: something is at the path and overwriting was
 * not asked for; `io`: a file-system call failed (whatever was created was removed again).
 */
export type SmallFileOutcome = { ok: true } | { failure: 'chunk' } | { failure: 'size'; actual: number } | { failure: 'exists' } | { failure: 'io'; message: string };

export interface SmallFileBatch {
  /** The pack's AES-256-GCM subkey (absent when no file of the batch has a chunk). */
  key?: Buffer;
  /** Bytes of one pack read in one go; the files' chunks are slices of it. */
  range?: Buffer;
  files: SmallFile[];
}

export interface SmallFileWriterOptions {
  /** The repository's key for blob IDs (HMAC-SHA-256 over the plaintext's SHA-256). */
  idKey: Buffer;
  /** The largest chunk plaintext: decompression stops there. */
  maxChunkSize: number;
  overwrite: boolean;
  /** Owners are set only as root; elsewhere the calls would fail for every foreign owner. */
  setOwners: boolean;
  workers?: number;
}

// Plain CommonJS evaluated from this string, on the blob workers' functions (blob-worker-pool.ts:
// decryptBlob, bounded decompress). The blob ID is crypto.ts's blobIdFromHash. Zero 4 KiB blocks
// are skipped, as in restorer.ts's writeSparse, so sparse files stay sparse.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { createHmac } = require('node:crypto');
${blobWorkerFunctions}
const { maxChunkSize, overwrite, setOwners } = workerData;
const idKey = Buffer.from(workerData.idKey);
const createFlags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const holeBlock = 4096;
const zeroBlock = Buffer.alloc(holeBlock);

// The chunk's verified plaintext, or undefined: authentication, decompression or ID failed.
function openChunk(key, range, c) {
  if (c.length < 16 || c.start + c.length > range.length) return undefined;
  const payload = decryptBlob(key, c.counter, range.subarray(c.start, c.start + c.length));
  if (!payload) return undefined;
  const plain = c.zstd ? decompress(payload, maxChunkSize, false) : payload;
  if (!plain) return undefined;
  const id = createHmac('sha256', idKey).update(createHash('sha256').update(plain).digest()).digest();
  return id.equals(Buffer.from(c.id, 'latin1')) ? plain : undefined;
}

function create(path) {
  try {
    return fs.openSync(path, createFlags, 0o600);
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    if (!overwrite) return undefined;
    fs.rmSync(path, { force: true });
    return fs.openSync(path, createFlags, 0o600);
  }
}

function writeAll(fd, buf, position) {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

// Returns whether the file ends in a hole (then only ftruncate gives it its size).
function writeSparse(fd, plain) {
  let runStart = -1;
  for (let off = 0; off < plain.length; off += holeBlock) {
    const end = Math.min(off + holeBlock, plain.length);
    const zero = end - off === holeBlock && plain.subarray(off, end).equals(zeroBlock);
    if (!zero && runStart < 0) runStart = off;
    if (zero && runStart >= 0) {
      writeAll(fd, plain.subarray(runStart, off), runStart);
      runStart = -1;
    }
  }
  if (runStart >= 0) writeAll(fd, plain.subarray(runStart), runStart);
  return plain.length > 0 && runStart < 0;
}

function writeFile(f, plain) {
  const path = Buffer.from(f.path, 'latin1');
  const fd = create(path);
  if (fd === undefined) return { failure: 'exists' };
  try {
    if (writeSparse(fd, plain)) fs.ftruncateSync(fd, plain.length);
    if (setOwners) {
      try { fs.fchownSync(fd, f.uid, f.gid); } catch { /* owners unknown here: the data still counts */ }
    }
    fs.fchmodSync(fd, f.mode);
    fs.futimesSync(fd, f.mtime, f.mtime);
    fs.closeSync(fd);
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    try { fs.unlinkSync(path); } catch { /* gone already */ }
    return { failure: 'io', message: err.message };
  }
  return { ok: true };
}

const empty = Buffer.alloc(0);
function writeBatch({ key, range, files: json }) {
  const files = JSON.parse(json);
  const keyBuf = key && Buffer.from(key);
  const rangeBuf = range ? Buffer.from(range) : empty;
  return files.map((f) => {
    try {
      const plain = f.chunk ? openChunk(keyBuf, rangeBuf, f.chunk) : empty;
      if (!plain) return { failure: 'chunk' };
      if (plain.length !== f.size) return { failure: 'size', actual: plain.length };
      return writeFile(f, plain);
    } catch (err) {
      return { failure: 'io', message: err.message };
    }
  });
}

parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, outcomes: writeBatch(m) }));
`;

interface Writer {
  worker: Worker;
  /** Batches posted and not answered yet, by message ID. */
  pending: Map<number, { resolve: (outcomes: SmallFileOutcome[]) => void; reject: (err: unknown) => void }>;
}

/**
 * Worker threads that verify and write small files. Each batch is posted at once to the worker
 * with the fewest outstanding, which takes them in order: a worker that finishes one finds the
 * next already waiting, instead of idling until the busy main thread hands it one.
 */
export class SmallFileWriter {
  private readonly writers: Writer[] = [];
  private nextId = 0;

  constructor(options: SmallFileWriterOptions) {
    const bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
    const workerData = { bindingPath, idKey: Uint8Array.from(options.idKey), maxChunkSize: options.maxChunkSize, overwrite: options.overwrite, setOwners: options.setOwners };
    // File creation waits on the disk as much as on a core, so a worker more than the cores.
    const count = options.workers ?? Math.min(4, availableParallelism() + 1);
    for (let i = 0; i < count; i++) {
      const writer: Writer = { worker: new Worker(workerSource, { eval: true, workerData }), pending: new Map() };
      writer.worker.on('message', (m: { id: number; outcomes: SmallFileOutcome[] }) => this.answered(writer, m));
      writer.worker.on('error', (err) => {
        for (const job of writer.pending.values()) job.reject(err);
        writer.pending.clear();
        this.writers.splice(this.writers.indexOf(writer), 1);
      });
      // An idle worker never keeps the process alive.
      writer.worker.unref();
      this.writers.push(writer);
    }
  }

  /** Writes a batch; one outcome per file, in order. Rejects only if a worker itself dies. */
  write(batch: SmallFileBatch): Promise<SmallFileOutcome[]> {
    const writer = this.writers.reduce<Writer | undefined>((best, w) => (!best || w.pending.size < best.pending.size ? w : best), undefined);
    if (!writer) return Promise.reject(new Error('the restore\'s writer threads have stopped'));
    const range = batch.range && ownArrayBuffer(batch.range);
    const key = batch.key && Uint8Array.from(batch.key).buffer;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      writer.pending.set(id, { resolve, reject });
      if (writer.pending.size === 1) writer.worker.ref();
      // One string is cloned in one copy, an array of objects field by field (measured: 0.65 s
      // of the main thread for 18,000 files).
      writer.worker.postMessage({ id, key, range, files: JSON.stringify(batch.files) }, range ? [range] : []);
    });
  }

  private answered(writer: Writer, m: { id: number; outcomes: SmallFileOutcome[] }): void {
    const job = writer.pending.get(m.id);
    writer.pending.delete(m.id);
    if (writer.pending.size === 0) writer.worker.unref();
    job?.resolve(m.outcomes);
  }

  async close(): Promise<void> {
    const workers = this.writers.splice(0).map((w) => w.worker);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
