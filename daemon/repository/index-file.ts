// Index files list, for a set of packs, every blob each pack holds. They are sealed objects; the
// plaintext is binary (a few million entries must load in seconds):
//   version u8 (=1) | pack count u32 LE | per pack: name (32 raw bytes) | entry count u32 LE |
//   per entry: type u8 | compression u8 | id (32) | offset u32 | length u32 | rawLength u32
// Index files may overlap (the same blob in two files, or in two packs); the first location wins.
import { HaulError } from '../../shared/errors.js';
import { BlobType, blobIdLength, type PackEntry } from './blob.js';
import { Compression } from './compression.js';

const entryLength = 2 + blobIdLength + 12;

export interface IndexedPack {
  name: string;
  entries: PackEntry[];
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  let size = 5;
  for (const p of packs) size += 36 + p.entries.length * entryLength;
  const out = Buffer.alloc(size);
  out[0] = 1;
  out.writeUInt32LE(packs.length, 1);
  let o = 5;
  for (const p of packs) {
    out.write(p.name, o, 'hex');
    out.writeUInt32LE(p.entries.length, o + 32);
    o += 36;
    for (const e of p.entries) {
      out[o] = e.type;
      out[o + 1] = e.compression;
      e.id.copy(out, o + 2);
      out.writeUInt32LE(e.offset, o + 2 + blobIdLength);
      out.writeUInt32LE(e.length, o + 6 + blobIdLength);
      out.writeUInt32LE(e.rawLength, o + 10 + blobIdLength);
      o += entryLength;
    }
  }
  return out;
}

export function decodeIndex(data: Buffer, what: string): IndexedPack[] {
  const fail = () => new HaulError('ObjectCorrupt', `${what} is malformed. Run \`haul repair index\` to rebuild the index from the packs.`);
  if (data.length < 5 || data[0] !== 1) throw fail();
  const packCount = data.readUInt32LE(1);
  const packs: IndexedPack[] = [];
  let o = 5;
  for (let i = 0; i < packCount; i++) {
    if (o + 36 > data.length) throw fail();
    const name = data.toString('hex', o, o + 32);
    const n = data.readUInt32LE(o + 32);
    o += 36;
    if (o + n * entryLength > data.length) throw fail();
    const entries: PackEntry[] = new Array(n);
    for (let k = 0; k < n; k++, o += entryLength) {
      const type = data[o]!;
      const compression = data[o + 1]!;
      if ((type !== BlobType.data && type !== BlobType.tree) || (compression !== Compression.none && compression !== Compression.zstd)) throw fail();
      entries[k] = {
        type: type as BlobType,
        compression: compression as Compression,
        id: data.subarray(o + 2, o + 2 + blobIdLength),
        offset: data.readUInt32LE(o + 2 + blobIdLength),
        length: data.readUInt32LE(o + 6 + blobIdLength),
        rawLength: data.readUInt32LE(o + 10 + blobIdLength),
      };
    }
    packs.push({ name, entries });
  }
  if (o !== data.length) throw fail();
  return packs;
}
