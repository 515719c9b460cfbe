// zstd, AES-GCM and SHA-256 over whole chunks are most of the CPU of storing, checking and
// reading blobs. The pool runs them on worker threads, so a backup or a restore uses every core
// while the main thread reads the SSH channel, packs and issues file-system calls. The kinds of
// work: compressing a blob to store; hashing a chunk a probe sent, or a batch of them (after
// bounded decompression), and encrypting each one whose plaintext has the hash the probe claimed
// into the place reserved for it in the open pack; opening a stored blob (decrypt, bounded
// decompression, hash). A worker returns bytes and SHA-256s; the caller compares them with the
// ID or the probe's claim and decides what counts as stored (a place whose chunk failed is
// filled with zeros on the main thread, see PackWriter.placed).
//
// One pool per process (`sharedBlobWorkers`): the daemon's concurrent jobs each have their own
// Repository handle but share these threads, so its memory does not grow with the jobs running.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { compressBlob, type Compression } from './compression.js';
import { objectName, type MasterKeys } from './crypto.js';

export interface CompressedBlob {
  data: Uint8Array;
  compression: Compression;
}

export interface OpenedBlob {
  plain: Buffer;
  sha256: Buffer;
  /** The zstd frame the blob was stored as, when it was. */
  zstdFrame?: Buffer;
}

/** Why a blob could not be opened; the caller turns it into an error that names the blob. */
export type OpenFailure = 'authentication' | 'decompression';

export interface HashRequest {
  /** The chunk as received: a zstd frame, or the raw bytes. */
  data: Buffer;
  /** `data` is the only user of its memory: it is moved to the worker, not copied. */
  exclusive: boolean;
  zstd: boolean;
  /** The exact plaintext length: a frame must decompress to precisely this many bytes. */
  rawLength: number;
  /** Where to encrypt `data` (as stored) once its plaintext has the SHA-256 `claim` (see hashBatch). */
  place?: { arena: SharedArrayBuffer; key: Buffer; at: number; counter: number; claim: Buffer };
}

export interface HashedChunk {
  /** SHA-256 of the plaintext. */
  sha256: Buffer;
  /** The same bytes as the request's `data` (moved back from the worker). */
  data: Buffer;
}

/** A batch of received chunks (see HashRequest) in one buffer, for one worker message. */
export interface HashBatchRequest {
  /** The chunks as received, one after the other; moved to the worker and back, not copied. */
  memory: Buffer;
  /**
   * `batchItemWords` numbers per chunk: offset in `memory`, length, 1 for a zstd frame (else 0),
   * exact plaintext length, then where to encrypt it once it matches its claim: an index into
   * `places` (noPlace for none), the offset in that arena, and the nonce counter.
   */
  items: Uint32Array;
  /** The SHA-256 each chunk claims, 32 bytes each: a chunk is encrypted into its place only when its plaintext has it. */
  claims: Buffer;
  /** Pack arenas (shared memory) and their AES-256-GCM keys. */
  places: { arena: SharedArrayBuffer; key: Buffer }[];
}

export const batchItemWords = 7;
export const noPlace = 0xffff_ffff;

export interface HashedBatch {
  /** SHA-256 of each chunk's plaintext, 32 bytes each in the request's order (zero where it failed). */
  shas: Buffer;
  /** 1 where a frame did not decompress to exactly its plaintext length. */
  failed: Uint8Array;
  /** The request's `memory`, moved back. */
  memory: Buffer;
}

export interface OpenRequest {
  /** The pack's AES-256-GCM subkey. */
  key: Buffer;
  /** The blob's nonce counter (its offset in the pack). */
  counter: number;
  ciphertext: Buffer;
  zstd: boolean;
  /** The largest plaintext allowed (decompression is bounded by it). */
  limit: number;
}

/**
 * The functions every blob-handling worker needs, as plain CommonJS for a worker evaluated from a
 * string (so it runs the same from compiled output and from TypeScript sources, with no file to
 * locate): `zstd` (the binding, from `workerData.bindingPath`), bounded `decompress`, and
 * `decryptBlob`. The nonce layout is crypto.ts's (domain 0, blob, then the counter as 64 bits
 * big-endian); the bounded decompression is compression.ts's. The restore's small-file writer
 * (daemon/restorer/small-file-writer.ts) builds on them too.
 */
export const blobWorkerFunctions = `
const zstd = require(require('node:worker_threads').workerData.bindingPath);
const { createDecipheriv, createHash } = require('node:crypto');
const nonce = Buffer.alloc(12);
// Reused: zstd.decompress creates and frees a context per call.
const decompressor = new zstd.DCtx();
// One zstd frame declaring its size, at most limit bytes (exactly limit when exact): else undefined.
// With scratch (a buffer of at least limit bytes), the result is a view into it, valid until the
// next call: for a caller that only hashes it, no fresh memory per chunk (page faults, malloc).
function decompress(frame, limit, exact, scratch) {
  try {
    const declared = zstd.findFrameCompressedSize(frame) === frame.length ? zstd.getFrameContentSize(frame) : null;
    if (declared === null || declared > limit || (exact && declared !== limit)) return undefined;
    const out = scratch ? scratch.subarray(0, declared) : Buffer.allocUnsafeSlow(declared);
    return decompressor.decompress(out, frame) === declared ? out : undefined;
  } catch {
    return undefined;
  }
}
// A blob's nonce: domain 0, then the counter (its offset in the pack) as 64 bits big-endian.
function blobNonce(counter) {
  nonce.writeUInt32BE(0, 0);
  nonce.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  nonce.writeUInt32BE(counter >>> 0, 8);
  return nonce;
}
// The stored payload of a blob (ciphertext then 16-byte tag), or undefined when it does not authenticate.
function decryptBlob(key, counter, data) {
  if (data.length < 16) return undefined;
  const d = createDecipheriv('aes-256-gcm', key, blobNonce(counter));
  d.setAuthTag(data.subarray(data.length - 16));
  const payload = d.update(data.subarray(0, data.length - 16));
  try { d.final(); } catch { return undefined; }
  return payload;
}
`;

// The "worth compressing" rule is compression.ts's.
const workerSource = `
const { parentPort } = require('node:worker_threads');
const { createCipheriv, hash: oneShotHash } = require('node:crypto');
${blobWorkerFunctions}
// crypto.ts's blob encryption, written into shared memory (a pack's arena) at \`at\`.
function encryptInto(key, counter, payload, arena, at) {
  const c = createCipheriv('aes-256-gcm', key, blobNonce(counter));
  const body = c.update(payload);
  c.final();
  const out = new Uint8Array(arena);
  out.set(body, at);
  out.set(c.getAuthTag(), at + body.length);
}
const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
let scratch = Buffer.allocUnsafeSlow(0);
// SHA-256 of a received chunk's plaintext; undefined when a frame does not decompress to exactly rawLength.
function plaintextSha(data, zstdFrame, rawLength) {
  if (zstdFrame && scratch.length < rawLength) scratch = Buffer.allocUnsafeSlow(rawLength);
  const plain = zstdFrame ? decompress(data, rawLength, true, scratch) : data;
  return plain && plain.length === rawLength ? oneShotHash('sha256', plain, 'buffer') : undefined;
}
const work = {
  compress({ data, level }) {
    const input = new Uint8Array(data);
    const out = Buffer.allocUnsafeSlow(zstd.compressBound(input.length));
    const n = zstd.compress(out, input, level);
    if (n > input.length - (input.length >> 5)) return [{ data, compression: 0 }, [data]];
    const result = out.buffer.slice(out.byteOffset, out.byteOffset + n);
    return [{ data: result, compression: 1 }, [result]];
  },
  hash({ buffer, offset, length, zstdFrame, rawLength, place }) {
    const data = new Uint8Array(buffer, offset, length);
    const digest = plaintextSha(data, zstdFrame, rawLength);
    if (!digest) return [{ failure: 'decompression', buffer }, [buffer]];
    if (place && digest.equals(Buffer.from(place.claim))) encryptInto(new Uint8Array(place.key), place.counter, data, place.arena, place.at);
    const sha = own(digest);
    return [{ sha, buffer }, [buffer]];
  },
  hashBatch({ buffer, items, claims, places }) {
    const w = ${batchItemWords}, n = items.length / w;
    const shas = Buffer.alloc(32 * n), failed = new Uint8Array(n), claimed = Buffer.from(claims);
    const keys = places.map((p) => new Uint8Array(p.key));
    for (let i = 0; i < n; i++) {
      const at = w * i, data = new Uint8Array(buffer, items[at], items[at + 1]);
      const sha = plaintextSha(data, items[at + 2] === 1, items[at + 3]), place = items[at + 4];
      if (!sha) {
        failed[i] = 1;
        continue;
      }
      sha.copy(shas, 32 * i);
      if (place !== ${noPlace} && sha.equals(claimed.subarray(32 * i, 32 * i + 32))) encryptInto(keys[place], items[at + 6], data, places[place].arena, items[at + 5]);
    }
    const shaBuffer = shas.buffer.slice(shas.byteOffset, shas.byteOffset + shas.length);
    return [{ buffer, shas: shaBuffer, failed: failed.buffer }, [buffer, shaBuffer, failed.buffer]];
  },
  name({ key, parts }) {
    const mac = require('node:crypto').createHmac('sha256', new Uint8Array(key));
    for (const p of parts) mac.update(p);
    return [{ name: mac.digest('hex') }, []];
  },
  open({ key, counter, ct, zstdFrame, limit }) {
    const payload = decryptBlob(new Uint8Array(key), counter, new Uint8Array(ct));
    if (!payload) return [{ failure: 'authentication' }, []];
    const opened = zstdFrame ? decompress(payload, limit, false) : payload;
    if (!opened) return [{ failure: 'decompression' }, []];
    const plain = own(opened), sha = own(createHash('sha256').update(opened).digest());
    const frame = zstdFrame ? own(payload) : undefined;
    return [{ plain, sha, frame }, frame && frame !== plain ? [plain, frame] : [plain]];
  },
};
parentPort.on('message', (m) => {
  const [reply, transfer] = work[m.kind](m);
  parentPort.postMessage({ id: m.id, ...reply }, transfer);
});
`;

interface Job {
  id: number;
  message: Record<string, unknown>;
  transfer: ArrayBuffer[];
  finish: (m: Reply) => void;
  reject: (e: unknown) => void;
}

interface Reply {
  id: number;
  failure?: OpenFailure;
  plain?: ArrayBuffer;
  sha?: ArrayBuffer;
  frame?: ArrayBuffer;
  buffer?: ArrayBuffer;
  data?: ArrayBuffer;
  compression?: Compression;
  name?: string;
  shas?: ArrayBuffer;
  failed?: ArrayBuffer;
}

/** Workers that compress, hash and open blobs, one job each at a time; the rest wait here, in order. */
export class BlobWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private readonly bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
  private nextId = 0;
  private closed = false;

  constructor(readonly size = Math.min(4, availableParallelism())) {
    for (let i = 0; i < size; i++) this.idle.push(this.startWorker());
  }

  private startWorker(): Worker {
    const w = new Worker(workerSource, { eval: true, workerData: { bindingPath: this.bindingPath } });
    w.on('message', (m: Reply) => this.finished(w, m));
    w.on('error', (err) => {
      // Only the job on this worker fails; a fresh worker takes its place for the ones waiting.
      const job = this.running.get(w);
      this.running.delete(w);
      job?.reject(err);
      if (this.closed) return;
      this.idle.push(this.startWorker());
      this.dispatch();
    });
    // An idle worker never keeps the process alive.
    w.unref();
    return w;
  }

  /**
   * The blob compressed with zstd at `level` when that saves at least 1/32 of its size, else
   * as it is (compression.ts's rule). The caller may reuse `data` at once: the worker gets a copy.
   */
  compress(data: Uint8Array, level: number): Promise<CompressedBlob> {
    if (this.size === 0) return Promise.resolve(compressBlob(data, level));
    const copy = new ArrayBuffer(data.length);
    new Uint8Array(copy).set(data);
    return this.run({ kind: 'compress', data: copy, level }, [copy], (m) => ({ data: new Uint8Array(m.data!), compression: m.compression! }));
  }

  /**
   * crypto.ts's objectName (HMAC-SHA-256 under the MAC key over `parts` in order), on a worker:
   * a pack's name. Parts in shared memory (a pack arena) are read where they are; the others are
   * copied. None may change until the promise settles.
   */
  objectName(keys: MasterKeys, parts: readonly Uint8Array[]): Promise<string> {
    if (this.size === 0) return Promise.resolve(objectName(keys, parts));
    return this.run({ kind: 'name', key: Uint8Array.from(keys.mac).buffer, parts }, [], (m) => m.name!);
  }

  /** Plaintext and SHA-256 of a blob, or why it could not be opened. */
  open(request: OpenRequest): Promise<OpenedBlob | OpenFailure> {
    const { key, counter, ciphertext, zstd, limit } = request;
    // Transferred, not copied: a buffer that shares its memory (Node's small-buffer pool, a
    // slice of a larger read) is copied first, since transferring would detach the rest.
    const ct = ownArrayBuffer(ciphertext);
    return this.run({ kind: 'open', key: Uint8Array.from(key).buffer, counter, ct, zstdFrame: zstd, limit }, [ct], (m) => {
      if (m.failure) return m.failure;
      return { plain: Buffer.from(m.plain!), sha256: Buffer.from(m.sha!), ...(zstd ? { zstdFrame: Buffer.from(m.frame!) } : {}) };
    });
  }

  /**
   * SHA-256 of a received chunk's plaintext, after decompressing a frame to exactly its
   * declared length; 'decompression' when it does not. The bytes come back as `data`.
   */
  hash(request: HashRequest): Promise<HashedChunk | 'decompression'> {
    const { data, exclusive, zstd, rawLength, place } = request;
    const buffer = exclusive ? (data.buffer as ArrayBuffer) : ownArrayBuffer(data);
    const offset = exclusive ? data.byteOffset : 0;
    // Read before the transfer detaches `data` (its length then reads 0).
    const length = data.length;
    const placed = place ? { arena: place.arena, key: Uint8Array.from(place.key).buffer, at: place.at, counter: place.counter, claim: Uint8Array.from(place.claim).buffer } : undefined;
    return this.run({ kind: 'hash', buffer, offset, length, zstdFrame: zstd, rawLength, place: placed }, [buffer], (m) => {
      const back = Buffer.from(m.buffer!, offset, length);
      return m.failure ? 'decompression' : { sha256: Buffer.from(m.sha!), data: back };
    });
  }

  /**
   * `hash` for many small chunks in one message: what one message costs (cloning, waking a
   * thread) is about what decompressing and hashing one small chunk costs. Failures are per
   * chunk. A chunk with a place whose plaintext has the SHA-256 it claims is also encrypted
   * there, as stored (its bytes as received: crypto.ts's blob encryption at the place's counter).
   */
  hashBatch(request: HashBatchRequest): Promise<HashedBatch> {
    const { memory, items, claims, places } = request;
    const buffer = ownArrayBuffer(memory);
    const length = memory.length;
    const message = { kind: 'hashBatch', buffer, items, claims: Uint8Array.from(claims).buffer, places: places.map((p) => ({ arena: p.arena, key: Uint8Array.from(p.key).buffer })) };
    return this.run(message, [buffer], (m) => ({
      shas: Buffer.from(m.shas!),
      failed: new Uint8Array(m.failed!),
      memory: Buffer.from(m.buffer!, 0, length),
    }));
  }

  private run<T>(message: Record<string, unknown>, transfer: ArrayBuffer[], result: (m: Reply) => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the blob worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, message, transfer, finish: (m) => resolve(result(m)), reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      worker.ref();
      worker.postMessage({ id: job.id, ...job.message }, job.transfer);
    }
  }

  private finished(worker: Worker, m: Reply): void {
    const job = this.running.get(worker);
    this.running.delete(worker);
    worker.unref();
    this.idle.push(worker);
    this.dispatch();
    if (job && job.id === m.id) job.finish(m);
  }

  /** Ends the workers; jobs still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new Error('the blob worker pool was closed');
    for (const job of this.queue.splice(0)) job.reject(error);
    for (const job of this.running.values()) job.reject(error);
    const workers = [...this.idle, ...this.running.keys()];
    this.idle.length = 0;
    this.running.clear();
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

let shared: BlobWorkerPool | undefined;

/** The process's pool, started on first use; its idle threads never keep the process alive. */
export function sharedBlobWorkers(): BlobWorkerPool {
  return (shared ??= new BlobWorkerPool());
}

/** The buffer's own memory, to move to a worker; a view into shared memory (Node's pool, a slice) is copied first. */
export function ownArrayBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return Uint8Array.prototype.slice.call(b).buffer as ArrayBuffer;
}
