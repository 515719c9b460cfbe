// zstd is the most expensive step of storing a chunk, so large chunks are compressed on worker
// threads while the main thread goes on chunking, hashing and encrypting. (The repository keeps
// small blobs on the main thread: for them a message round trip costs more than zstd.)
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { compressBlob, defaultZstdLevel, type Compression } from './compression.js';

export interface CompressedBlob {
  data: Uint8Array;
  compression: Compression;
}

// The worker is plain CommonJS evaluated from this string, so it runs the same whether Haul
// runs compiled or from TypeScript sources (tests), with no separate file to locate.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const zstd = require(workerData.bindingPath);
parentPort.on('message', ({ id, data }) => {
  const input = new Uint8Array(data);
  const out = Buffer.allocUnsafeSlow(zstd.compressBound(input.length));
  const n = zstd.compress(out, input, workerData.level);
  if (n > input.length - (input.length >> 5)) {
    parentPort.postMessage({ id, data, compression: 0 }, [data]);
  } else {
    const result = out.buffer.slice(out.byteOffset, out.byteOffset + n);
    parentPort.postMessage({ id, data: result, compression: 1 }, [result]);
  }
});
`;

interface Pending {
  resolve: (r: CompressedBlob) => void;
  reject: (e: unknown) => void;
}

export class CompressionPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private nextWorker = 0;

  constructor(size = Math.min(4, Math.max(1, availableParallelism() - 1)), private readonly level = defaultZstdLevel) {
    const bindingPath = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
    for (let i = 0; i < size; i++) {
      const w = new Worker(workerSource, { eval: true, workerData: { bindingPath, level } });
      w.on('message', (m: { id: number; data: ArrayBuffer; compression: Compression }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (this.pending.size === 0) this.workers.forEach((x) => x.unref());
        p?.resolve({ data: new Uint8Array(m.data), compression: m.compression });
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      // Idle workers must not keep the process alive; busy ones must (see compress()).
      w.unref();
      this.workers.push(w);
    }
  }

  compress(data: Uint8Array): Promise<CompressedBlob> {
    if (this.workers.length === 0) return Promise.resolve(compressBlob(data, this.level));
    // The caller's buffer is reused for the next chunk: the worker gets its own copy.
    const copy = new ArrayBuffer(data.length);
    new Uint8Array(copy).set(data);
    const id = this.nextId++;
    const worker = this.workers[this.nextWorker++ % this.workers.length]!;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, data: copy }, [copy]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
