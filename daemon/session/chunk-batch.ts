// Small chunks a probe sent, gathered to be checked on a worker thread in one message. Checking a
// small file's chunk (bounded decompression, SHA-256) costs about what one message to a worker
// costs, so one message per chunk would gain nothing; on the event loop, the same work made the
// walk of many small files wait on the main thread while the other core idled.

/** What the session needs about a batched chunk once its check is back. */
export interface BatchedChunk {
  /** The probe's claim: the SHA-256 of the plaintext. */
  sha: Buffer;
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
  add(data: Buffer, sha: Buffer, rawLength: number, zstd: boolean, path: Buffer): void {
    data.copy(this.memory, this.used);
    this.chunks.push({ sha, rawLength, zstd, path, offset: this.used, length: data.length });
    this.used += data.length;
  }

  /** The worker's request: offset, length, zstd (1/0) and plaintext length of each chunk. */
  items(): Uint32Array {
    const items = new Uint32Array(4 * this.chunks.length);
    let i = 0;
    for (const c of this.chunks) {
      items[i++] = c.offset;
      items[i++] = c.length;
      items[i++] = c.zstd ? 1 : 0;
      items[i++] = c.rawLength;
    }
    return items;
  }
}
