// Opening a blob (AES-GCM, bounded zstd, SHA-256) is most of a restore's CPU. The pool does it
// on worker threads, so a restore uses every core while the main thread issues file-system
// calls. A worker only returns plaintext and its SHA-256; the caller compares the keyed ID,
// so nothing is taken as verified that the main thread did not check.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface OpenedBlob {
  plain: Buffer;
  sha256: Buffer;
  /** The zstd frame the blob was stored as, when it was. */
  zstdFrame?: Buffer;
}

/** Why a blob could not be opened; the caller turns it into an error that names the blob. */
export type OpenFailure = 'authentication' | 'decompression';

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

// Plain CommonJS evaluated from this string, like the compression pool's, so it runs the same
// from compiled output and from TypeScript sources. The nonce layout is crypto.ts's (domain 0,
// blob, then the counter as 64 bits big-endian); the bounded decompression is compression.ts's.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { createDecipheriv, createHash } = require('node:crypto');
const zstd = require(workerData.bindingPath);
const nonce = Buffer.alloc(12);
function open({ key, counter, ct, zstdFrame, limit }) {
  const data = new Uint8Array(ct);
  if (data.length < 16) return { failure: 'authentication' };
  nonce.writeUInt32BE(0, 0);
  nonce.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  nonce.writeUInt32BE(counter >>> 0, 8);
  const d = createDecipheriv('aes-256-gcm', new Uint8Array(key), nonce);
  d.setAuthTag(data.subarray(data.length - 16));
  const payload = d.update(data.subarray(0, data.length - 16));
  try { d.final(); } catch { return { failure: 'authentication' }; }
  let plain = payload;
  if (zstdFrame) {
    plain = undefined;
    try {
      const declared = zstd.findFrameCompressedSize(payload) === payload.length ? zstd.getFrameContentSize(payload) : null;
      if (declared !== null && declared <= limit) {
        const out = Buffer.allocUnsafeSlow(declared);
        if (zstd.decompress(out, payload) === declared) plain = out;
      }
    } catch {}
    if (!plain) return { failure: 'decompression' };
  }
  return { plain, sha: createHash('sha256').update(plain).digest(), frame: zstdFrame ? payload : undefined };
}
const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
parentPort.on('message', (m) => {
  const r = open(m);
  if (r.failure) return parentPort.postMessage({ id: m.id, failure: r.failure });
  const plain = own(r.plain), sha = own(r.sha), frame = r.frame && own(r.frame);
  parentPort.postMessage({ id: m.id, plain, sha, frame }, frame && frame !== plain ? [plain, frame] : [plain]);
});
`;

interface Job {
  id: number;
  request: OpenRequest;
  resolve: (r: OpenedBlob | OpenFailure) => void;
  reject: (e: unknown) => void;
}

interface Reply {
  id: number;
  failure?: OpenFailure;
  plain?: ArrayBuffer;
  sha?: ArrayBuffer;
  frame?: ArrayBuffer;
}

/** Workers that open blobs, one job each at a time; the rest wait here, in order. */
export class BlobOpenPool {
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private nextId = 0;

  constructor(size = Math.min(4, availableParallelism())) {
    const bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
    for (let i = 0; i < size; i++) {
      const w = new Worker(workerSource, { eval: true, workerData: { bindingPath } });
      w.on('message', (m: Reply) => this.finished(w, m));
      w.on('error', (err) => {
        this.running.get(w)?.reject(err);
        this.running.delete(w);
        for (const job of this.queue.splice(0)) job.reject(err);
      });
      // An idle worker never keeps the process alive.
      w.unref();
      this.idle.push(w);
    }
  }

  /** Plaintext and SHA-256 of a blob, or why it could not be opened. */
  open(request: OpenRequest): Promise<OpenedBlob | OpenFailure> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(worker, job);
      worker.ref();
      const { key, counter, ciphertext, zstd, limit } = job.request;
      // Transferred, not copied: a buffer that shares its memory (Node's small-buffer pool, a
      // slice of a larger read) is copied first, since transferring would detach the rest.
      const ct = ownArrayBuffer(ciphertext);
      worker.postMessage({ id: job.id, key: Uint8Array.from(key).buffer, counter, ct, zstdFrame: zstd, limit }, [ct]);
    }
  }

  private finished(worker: Worker, m: Reply): void {
    const job = this.running.get(worker);
    this.running.delete(worker);
    worker.unref();
    this.idle.push(worker);
    this.dispatch();
    if (!job || job.id !== m.id) return;
    if (m.failure) return job.resolve(m.failure);
    const plain = Buffer.from(m.plain!);
    job.resolve({ plain, sha256: Buffer.from(m.sha!), ...(job.request.zstd ? { zstdFrame: Buffer.from(m.frame!) } : {}) });
  }

  async close(): Promise<void> {
    const workers = [...this.idle, ...this.running.keys()];
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function ownArrayBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return Uint8Array.prototype.slice.call(b).buffer as ArrayBuffer;
}
