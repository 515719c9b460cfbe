import { randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkIndex } from '../../../daemon/repository/chunk-index.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { Compression } from '../../../daemon/repository/compression.js';

const packName = (n: number) => n.toString(16).padStart(64, '0');

describe('ChunkIndex', () => {
  it('finds each of 300,000 entries at its exact location, misses unknown IDs, and stays under 48 bytes per chunk', () => {
    const n = 300_000;
    const ids = randomFillSync(Buffer.alloc(n * 32));
    const index = new ChunkIndex();
    for (let i = 0; i < n; i++) {
      const added = index.add(packName(Math.floor(i / 16)), { id: ids.subarray(i * 32, i * 32 + 32), type: i % 5 === 0 ? BlobType.tree : BlobType.data, compression: i % 3 === 0 ? Compression.zstd : Compression.none, offset: i * 7, length: 1000 + (i % 1000), rawLength: 0 });
      expect(added).toBe(true);
    }
    expect(index.size).toBe(n);
    for (let i = 0; i < n; i += 7) {
      expect(index.get(ids.subarray(i * 32, i * 32 + 32))).toEqual({ pack: packName(Math.floor(i / 16)), type: i % 5 === 0 ? 1 : 0, compression: i % 3 === 0 ? 1 : 0, offset: i * 7, length: 1000 + (i % 1000) });
    }
    const unknown = randomFillSync(Buffer.alloc(32));
    expect(index.get(unknown)).toBeUndefined();
    expect(index.has(unknown)).toBe(false);
    // 300,000 / 524,288 slots = load 0.57: 32-byte records, 7 bytes of slots, 2 bytes of pack name (16 chunks a pack).
    expect(index.byteSize / n).toBeLessThan(48);
  });

  it('keeps the first location of a duplicate blob', () => {
    const index = new ChunkIndex();
    const id = randomFillSync(Buffer.alloc(32));
    expect(index.add(packName(1), { id, type: 0, compression: 0, offset: 40, length: 100, rawLength: 84 })).toBe(true);
    expect(index.add(packName(2), { id, type: 0, compression: 0, offset: 40, length: 100, rawLength: 84 })).toBe(false);
    expect(index.get(id)!.pack).toBe(packName(1));
  });
});
