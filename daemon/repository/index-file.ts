// Index files list, for a set of packs, every blob each pack holds. They are sealed objects; the
// plaintext is binary (a few million entries must load in seconds):
//   version u8 (=1) | pack count u32 LE | per pack: name (32 raw bytes) | entry count u32 LE |
//   per entry: type u8 | compression u8 | id (32) | offset u32 | length u32 | rawLength u32
// Index files may overlap (the same blob in two files, or in two packs); the first location wins.
//
// Loading and rewriting work on pack records with their entries still encoded: a million
// entries as objects would cost some 250 MB and seconds of garbage collection, and the encoded
// form is already what the chunk index and a rewritten index file need.
import { HaulError } from '../../shared/errors.js';
import { BlobType, blobIdLength, type PackEntry } from './blob.js';
import { Compression } from './compression.js';

export const indexEntryLength = 2 + blobIdLength + 12;
const recordHeaderLength = 36;

export interface IndexedPack {
  name: string;
  entries: PackEntry[];
}

/** One pack record of an index file; `entries` holds `count` entries of `indexEntryLength` bytes. */
export interface EncodedPackRecord {
  name: string;
  count: number;
  entries: Buffer;
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  return encodeIndexRecords(packs.map((p) => ({ name: p.name, count: p.entries.length, entries: encodeEntries(p.entries) })));
}

/** Entries in the layout of index files and pack headers. */
export function encodeEntries(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.alloc(entries.length * indexEntryLength);
  let o = 0;
  for (const e of entries) {
    out[o] = e.type;
    out[o + 1] = e.compression;
    e.id.copy(out, o + 2);
    out.writeUInt32LE(e.offset, o + 2 + blobIdLength);
    out.writeUInt32LE(e.length, o + 6 + blobIdLength);
    out.writeUInt32LE(e.rawLength, o + 10 + blobIdLength);
    o += indexEntryLength;
  }
  return out;
}

/** An index file of the given records, their entries copied byte for byte. */
export function encodeIndexRecords(records: readonly EncodedPackRecord[]): Buffer {
  let size = 5;
  for (const r of records) size += recordHeaderLength + r.entries.length;
  const out = Buffer.alloc(size);
  out[0] = 1;
  out.writeUInt32LE(records.length, 1);
  let o = 5;
  for (const r of records) {
    out.write(r.name, o, 'hex');
    out.writeUInt32LE(r.count, o + 32);
    o += recordHeaderLength;
    o += r.entries.copy(out, o);
  }
  return out;
}

/** Splits an index file into its pack records, checking every entry's type and compression. */
export function decodeIndexRecords(data: Buffer, what: string): EncodedPackRecord[] {
  const fail = () => new HaulError('ObjectCorrupt', `${what} is malformed. Run \`haul repair index\` to rebuild the index from the packs.`);
  if (data.length < 5 || data[0] !== 1) throw fail();
  const packCount = data.readUInt32LE(1);
  const records: EncodedPackRecord[] = [];
  let o = 5;
  for (let i = 0; i < packCount; i++) {
    if (o + recordHeaderLength > data.length) throw fail();
    const name = data.toString('hex', o, o + 32);
    const count = data.readUInt32LE(o + 32);
    o += recordHeaderLength;
    const end = o + count * indexEntryLength;
    if (end > data.length) throw fail();
    for (let p = o; p < end; p += indexEntryLength) {
      const type = data[p]!;
      const compression = data[p + 1]!;
      if ((type !== BlobType.data && type !== BlobType.tree) || (compression !== Compression.none && compression !== Compression.zstd)) throw fail();
    }
    records.push({ name, count, entries: data.subarray(o, end) });
    o = end;
  }
  if (o !== data.length) throw fail();
  return records;
}

export function decodeEntry(entries: Buffer, i: number): PackEntry {
  const o = i * indexEntryLength;
  return {
    type: entries[o] as BlobType,
    compression: entries[o + 1] as Compression,
    id: entries.subarray(o + 2, o + 2 + blobIdLength),
    offset: entries.readUInt32LE(o + 2 + blobIdLength),
    length: entries.readUInt32LE(o + 6 + blobIdLength),
    rawLength: entries.readUInt32LE(o + 10 + blobIdLength),
  };
}

export function decodeEntries(record: EncodedPackRecord): PackEntry[] {
  const out: PackEntry[] = new Array(record.count);
  for (let i = 0; i < record.count; i++) out[i] = decodeEntry(record.entries, i);
  return out;
}

/** The stored (encrypted) bytes of all blobs a record lists. */
export function recordStoredBytes(record: EncodedPackRecord): number {
  let bytes = 0;
  for (let o = 6 + blobIdLength; o < record.entries.length; o += indexEntryLength) bytes += record.entries.readUInt32LE(o);
  return bytes;
}

export function decodeIndex(data: Buffer, what: string): IndexedPack[] {
  return decodeIndexRecords(data, what).map((r) => ({ name: r.name, entries: decodeEntries(r) }));
}
