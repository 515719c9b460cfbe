// The in-memory chunk index: ID -> (pack, offset, length), compact enough for tens of millions
// of chunks. Records are 32 bytes in fixed-size segments (no copy when growing); a power-of-two
// open-addressing table of 32-bit record numbers finds them, and pack names are 32 raw bytes per
// pack. At slot load 0.375..0.75 and 16 chunks a pack that is 39..45 bytes per chunk.
//
// A record keeps the first 20 bytes (160 bits) of the 32-byte blob ID. IDs are HMACs under a key
// no client knows, so nobody can aim for a collision, and the chance of an accidental one among
// 2^32 chunks is 2^-97. Even then nothing wrong is restored: every read re-hashes the blob against
// the full ID. Index files and pack headers keep full IDs; `check` compares all 32 bytes.
import { blobIdLength, type BlobLocation, type BlobType, type PackEntry } from './blob.js';
import type { Compression } from './compression.js';
import { indexEntryLength, type EncodedPackRecord } from './index-file.js';

const idPrefix = 20;
const recordSize = idPrefix + 12;
const segmentRecords = 1 << 16;
const treeFlag = 0x8000_0000;
const zstdFlag = 0x4000_0000;
const packMask = 0x3fff_ffff;

export class ChunkIndex {
  /** Pack names as 32 raw bytes each: a JS string and a map entry per pack would cost ~8 bytes per chunk. */
  private packNames = Buffer.alloc(32 * 1024);
  private packCountValue = 0;
  /** Entries arrive pack by pack, so remembering the last pack replaces a name -> number map. */
  private lastPack = '';
  private lastPackNumber = -1;
  private readonly segments: Buffer[] = [];
  private count = 0;
  private slots = new Uint32Array(1 << 12);
  private slotMask = (1 << 12) - 1;

  get size(): number {
    return this.count;
  }

  get packCount(): number {
    return this.packCountValue;
  }

  /** Bytes held by the index's arrays (the figure the benchmark reports per chunk). */
  get byteSize(): number {
    return this.segments.length * segmentRecords * recordSize + this.slots.byteLength + this.packNames.length;
  }

  /** A pack seen again later gets a second number: harmless, both name the same pack. */
  private packNumber(pack: string): number {
    if (pack === this.lastPack) return this.lastPackNumber;
    const n = this.packCountValue;
    if (n > packMask) throw new Error('chunk index: more than 2^30 packs');
    if ((n + 1) * 32 > this.packNames.length) {
      const grown = Buffer.alloc(Math.ceil((this.packNames.length * 1.5) / 32) * 32);
      this.packNames.copy(grown);
      this.packNames = grown;
    }
    if (this.packNames.write(pack, n * 32, 32, 'hex') !== 32) throw new Error(`chunk index: pack name ${pack} is not 64 hex digits`);
    this.packCountValue = n + 1;
    this.lastPack = pack;
    this.lastPackNumber = n;
    return n;
  }

  private record(i: number): { seg: Buffer; off: number } {
    return { seg: this.segments[i >>> 16]!, off: (i & (segmentRecords - 1)) * recordSize };
  }

  /** The slot of the ID at `id[at .. at + 32]`: its record's, or the empty one it would take. */
  private findSlot(id: Uint8Array, at = 0): number {
    const h = (id[at]! | (id[at + 1]! << 8) | (id[at + 2]! << 16) | (id[at + 3]! << 24)) >>> 0;
    let slot = h & this.slotMask;
    while (true) {
      const v = this.slots[slot]!;
      if (v === 0) return slot;
      const seg = this.segments[(v - 1) >>> 16]!;
      const off = ((v - 1) & (segmentRecords - 1)) * recordSize;
      let same = true;
      for (let k = 0; k < idPrefix; k++) {
        if (seg[off + k] !== id[at + k]) {
          same = false;
          break;
        }
      }
      if (same) return slot;
      slot = (slot + 1) & this.slotMask;
    }
  }

  has(id: Uint8Array): boolean {
    return this.slots[this.findSlot(id)] !== 0;
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const v = this.slots[this.findSlot(id)]!;
    if (v === 0) return undefined;
    const { seg, off } = this.record(v - 1);
    const packWord = seg.readUInt32LE(off + idPrefix);
    return {
      pack: this.packNames.toString('hex', (packWord & packMask) * 32, (packWord & packMask) * 32 + 32),
      type: (packWord & treeFlag ? 1 : 0) as BlobType,
      compression: (packWord & zstdFlag ? 1 : 0) as Compression,
      offset: seg.readUInt32LE(off + idPrefix + 4),
      length: seg.readUInt32LE(off + idPrefix + 8),
    };
  }

  /**
   * The record number of the ID at `id[at .. at + 32]` (0 .. size-1), or -1: prune keeps its
   * marks in a bitmap of its own.
   */
  recordNumber(id: Uint8Array, at = 0): number {
    return this.slots[this.findSlot(id, at)]! - 1;
  }

  /** A record's pack, as a number (see `packName`; one pack may have several numbers). */
  recordPackNumber(n: number): number {
    const { seg, off } = this.record(n);
    return seg.readUInt32LE(off + idPrefix) & packMask;
  }

  recordOffset(n: number): number {
    const { seg, off } = this.record(n);
    return seg.readUInt32LE(off + idPrefix + 4);
  }

  /** A record's stored (encrypted) length. */
  recordLength(n: number): number {
    const { seg, off } = this.record(n);
    return seg.readUInt32LE(off + idPrefix + 8);
  }

  packName(packNumber: number): string {
    return this.packNames.toString('hex', packNumber * 32, packNumber * 32 + 32);
  }

  /** Adds a location; the first location recorded for an ID wins (duplicates are harmless). */
  add(pack: string, entry: PackEntry): boolean {
    if (entry.id.length !== blobIdLength) throw new Error('chunk index: blob IDs are 32 bytes');
    return this.insert(this.packNumber(pack), entry.id, 0, entry.type, entry.compression, entry.offset, entry.length);
  }

  /** Adds the entries of an index file's pack record as they are encoded (see index-file.ts). */
  addEncoded(record: EncodedPackRecord): void {
    const pack = this.packNumber(record.name);
    const e = record.entries;
    for (let o = 0; o < record.count * indexEntryLength; o += indexEntryLength) {
      this.insert(pack, e, o + 2, e[o]!, e[o + 1]!, e.readUInt32LE(o + 2 + blobIdLength), e.readUInt32LE(o + 6 + blobIdLength));
    }
  }

  private insert(pack: number, id: Uint8Array, at: number, type: number, compression: number, offset: number, length: number): boolean {
    const slot = this.findSlot(id, at);
    if (this.slots[slot] !== 0) return false;
    const n = this.count;
    if ((n & (segmentRecords - 1)) === 0) this.segments.push(Buffer.alloc(segmentRecords * recordSize));
    const { seg, off } = this.record(n);
    for (let k = 0; k < idPrefix; k++) seg[off + k] = id[at + k]!;
    const packWord = pack | (type === 1 ? treeFlag : 0) | (compression === 1 ? zstdFlag : 0);
    seg.writeUInt32LE(packWord >>> 0, off + idPrefix);
    seg.writeUInt32LE(offset, off + idPrefix + 4);
    seg.writeUInt32LE(length, off + idPrefix + 8);
    this.slots[slot] = n + 1;
    this.count = n + 1;
    if (this.count > this.slots.length * 0.75) this.grow();
    return true;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.slotMask = this.slots.length - 1;
    for (let i = 0; i < this.count; i++) {
      const { seg, off } = this.record(i);
      let slot = seg.readUInt32LE(off) & this.slotMask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.slotMask;
      this.slots[slot] = i + 1;
    }
  }
}
