// The chunks a probe sent (CHUNK_NEW during the walk) in this session, numbered in the order they
// arrived, so that a CHUNK_REPEAT can name one by number. Only chunks the server verified and
// stored in this session are here: the repository's global index is never consulted on a
// client's word (docs/security.md, no cross-client leakage).

/** Blob IDs (32 bytes each) and raw lengths, in arrival order; about 36 bytes per chunk. */
export class SentChunks {
  private ids = Buffer.alloc(32 * 1024);
  private lengths = new Uint32Array(1024);
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(id: Buffer, rawLength: number): void {
    if (this.count === this.lengths.length) {
      const ids = Buffer.alloc(this.ids.length * 2);
      this.ids.copy(ids);
      this.ids = ids;
      const lengths = new Uint32Array(this.lengths.length * 2);
      lengths.set(this.lengths);
      this.lengths = lengths;
    }
    id.copy(this.ids, this.count * 32);
    this.lengths[this.count++] = rawLength;
  }

  /** The chunk with this number; undefined if no such chunk was sent. */
  get(index: number): { id: Buffer; rawLength: number } | undefined {
    if (index >= this.count) return undefined;
    return { id: this.ids.subarray(index * 32, index * 32 + 32), rawLength: this.lengths[index]! };
  }
}
