// Small chunks a probe sent, gathered to be checked on a worker thread in one message. Checking a
// small file's chunk (bounded decompression, SHA-256) costs about what one message to a worker
// costs, so one message per chunk would gain nothing; on the event loop, the same work made the
// walk of many small files wait on the main thread while the other core idled. The worker also
// encrypts each chunk into the place reserved for it in the open pack (Repository.reserveBlob),
// once its plaintext has the SHA-256 it claims.
import { batchItemWords, noPlace, type HashBatchRequest } from '../repository/blob-worker-pool.js';
import type { BlobPlace } from '../repository/repository.js';

/** What the session needs about a batched chunk once its check is back. */
export interface BatchedChunk {
  /** The probe's claim: the SHA-256 of the plaintext; and the blob ID that follows from it. */
  sha: Buffer;
  id: Buffer;
  rawLength: number;
  zstd: boolean;
  /** The file it belongs to, for an error message. */
  path: Buffer;
  /** Where its bytes are in the batch's memory. */
  offset: number;
  length: number;
}

export class ChunkBatch {
  readonly chunks: BatchedChunk[] = [];
  private used = 0;

  /** `memory`: the batch's bytes, which move to the worker; `maxChunks` bounds the per-chunk records. */
  constructor(readonly memory: Buffer, private readonly maxChunks: number) {}

  get bytes(): number {
    return this.used;
  }

  /** There is room for a chunk of `length` bytes as received. */
  fits(length: number): boolean {
    return this.used + length <= this.memory.length && this.chunks.length < this.maxChunks;
  }

  /** Copies the chunk in: the caller's buffer may be reused at once. */
  add(data: Buffer, sha: Buffer, id: Buffer, rawLength: number, zstd: boolean, path: Buffer): void {
    data.copy(this.memory, this.used);
    this.chunks.push({ sha, id, rawLength, zstd, path, offset: this.used, length: data.length });
    this.used += data.length;
  }

  /** The worker's request (BlobWorkerPool.hashBatch), with each chunk's place in a pack, if it has one. */
  request(places: readonly (BlobPlace | undefined)[]): HashBatchRequest {
    const items = new Uint32Array(batchItemWords * this.chunks.length);
    const arenas = new Map<SharedArrayBuffer, number>();
    const targets: HashBatchRequest['places'] = [];
    let i = 0;
    for (const [n, c] of this.chunks.entries()) {
      const place = places[n];
      let target = noPlace;
      if (place) {
        target = arenas.get(place.arena) ?? targets.length;
        if (target === targets.length) {
          arenas.set(place.arena, target);
          targets.push({ arena: place.arena, key: place.key });
        }
      }
      items[i++] = c.offset;
      items[i++] = c.length;
      items[i++] = c.zstd ? 1 : 0;
      items[i++] = c.rawLength;
      items[i++] = target;
      items[i++] = place?.at ?? 0;
      items[i++] = place?.counter ?? 0;
    }
    return { memory: this.memory, items, claims: Buffer.concat(this.chunks.map((c) => c.sha)), places: targets };
  }
}
