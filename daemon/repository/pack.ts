// Pack files hold many encrypted blobs so a million chunks are not a million files.
//   magic "HAULPAK1" | salt(32) | blob_0 .. blob_n-1 | header ciphertext | header length (u32 LE)
// A blob at byte offset o is AES-256-GCM(subkey, nonce(blob, o)), so a reader needs only the
// salt and the blob's location, never its position in the header; the header, which lists every blob, is
// AES-256-GCM(subkey, nonce(packHeader, 0)). The subkey comes from the pack's own salt.
import { randomBytes } from 'node:crypto';
import { HaulError } from '../../shared/errors.js';
import { BlobType, blobIdLength, type PackEntry } from './blob.js';
import { Compression } from './compression.js';
import { NonceDomain, SubkeyCipher, objectName, saltLength, tagLength, type MasterKeys } from './crypto.js';

export const packMagic = Buffer.from('HAULPAK1', 'latin1');
export const packInfo = 'haul-pack-v1';
export const packPreambleLength = packMagic.length + saltLength;
const headerEntryLength = 2 + blobIdLength + 12;
/** Packs are cut at this size; one blob may push a pack past it by at most one chunk. */
export const defaultPackTargetSize = 16 * 1024 * 1024;
/** No pack header may claim more entries than fit this; a hostile or damaged header is refused. */
const maxHeaderLength = 64 * 1024 * 1024;

export interface FinishedPack {
  name: string;
  parts: Buffer[];
  size: number;
  entries: PackEntry[];
}

export class PackWriter {
  private readonly cipher: SubkeyCipher;
  private readonly parts: Buffer[];
  private readonly entries: PackEntry[] = [];
  private offset: number;

  constructor(private readonly keys: MasterKeys) {
    const salt = randomBytes(saltLength);
    this.cipher = new SubkeyCipher(keys, salt, packInfo);
    this.parts = [packMagic, salt];
    this.offset = packPreambleLength;
  }

  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.entries.length;
  }

  add(id: Buffer, type: BlobType, compression: Compression, payload: Uint8Array, rawLength: number): PackEntry {
    const ct = this.cipher.encrypt(NonceDomain.blob, this.offset, payload);
    const entry: PackEntry = { id, type, compression, offset: this.offset, length: ct.length, rawLength };
    this.parts.push(ct);
    this.entries.push(entry);
    this.offset += ct.length;
    return entry;
  }

  finish(): FinishedPack {
    const header = Buffer.alloc(4 + this.entries.length * headerEntryLength);
    header.writeUInt32LE(this.entries.length, 0);
    let p = 4;
    for (const e of this.entries) {
      header[p] = e.type;
      header[p + 1] = e.compression;
      e.id.copy(header, p + 2);
      header.writeUInt32LE(e.offset, p + 2 + blobIdLength);
      header.writeUInt32LE(e.length, p + 6 + blobIdLength);
      header.writeUInt32LE(e.rawLength, p + 10 + blobIdLength);
      p += headerEntryLength;
    }
    const headerCt = this.cipher.encrypt(NonceDomain.packHeader, 0, header);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(headerCt.length, 0);
    const parts = [...this.parts, headerCt, trailer];
    const size = this.offset + headerCt.length + 4;
    return { name: objectName(this.keys, parts), parts, size, entries: this.entries };
  }
}

/** Reads a pack's header from its tail; `tail` must hold at least the header and trailer. */
export function parsePackHeader(keys: MasterKeys, packName: string, preamble: Buffer, tail: Buffer, packSize: number): PackEntry[] {
  const fail = (why: string) => new HaulError('ObjectCorrupt', `pack ${packName}: ${why}. Run \`haul check --read-data\` to list the affected snapshots and files.`);
  if (preamble.length < packPreambleLength || !preamble.subarray(0, packMagic.length).equals(packMagic)) throw fail('bad magic');
  if (tail.length < 4) throw fail('truncated');
  const headerLength = tail.readUInt32LE(tail.length - 4);
  if (headerLength > maxHeaderLength || headerLength + 4 > tail.length || headerLength + 4 + packPreambleLength > packSize) throw fail(`header length ${headerLength} does not fit the pack`);
  const cipher = packCipher(keys, preamble);
  const header = cipher.decrypt(NonceDomain.packHeader, 0, tail.subarray(tail.length - 4 - headerLength, tail.length - 4));
  if (!header) throw fail('header failed authentication');
  const count = header.readUInt32LE(0);
  if (header.length !== 4 + count * headerEntryLength) throw fail('header length does not match its entry count');
  const entries: PackEntry[] = [];
  const dataEnd = packSize - 4 - headerLength;
  let expectedOffset = packPreambleLength;
  for (let i = 0, p = 4; i < count; i++, p += headerEntryLength) {
    const type = header[p]!;
    const compression = header[p + 1]!;
    const entry: PackEntry = {
      type: type as BlobType,
      compression: compression as Compression,
      id: Buffer.from(header.subarray(p + 2, p + 2 + blobIdLength)),
      offset: header.readUInt32LE(p + 2 + blobIdLength),
      length: header.readUInt32LE(p + 6 + blobIdLength),
      rawLength: header.readUInt32LE(p + 10 + blobIdLength),
    };
    if (type !== BlobType.data && type !== BlobType.tree) throw fail(`entry ${i} has unknown type ${type}`);
    if (compression !== Compression.none && compression !== Compression.zstd) throw fail(`entry ${i} has unknown compression ${compression}`);
    if (entry.offset !== expectedOffset || entry.length < tagLength || entry.offset + entry.length > dataEnd) throw fail(`entry ${i} lies outside the pack's data`);
    expectedOffset += entry.length;
    entries.push(entry);
  }
  if (expectedOffset !== dataEnd) throw fail('blobs do not fill the data area');
  return entries;
}

/** How many bytes at the end of a pack to read to find its header in one request, usually. */
export const packTailGuess = 64 * 1024;

/** Decrypts the blob stored at `offset` of a pack; undefined when authentication fails. */
export function packCipher(keys: MasterKeys, preamble: Buffer): SubkeyCipher {
  return new SubkeyCipher(keys, Buffer.from(preamble.subarray(packMagic.length, packPreambleLength)), packInfo);
}

export function decryptPackBlob(cipher: SubkeyCipher, offset: number, ciphertext: Uint8Array): Buffer | undefined {
  return cipher.decrypt(NonceDomain.blob, offset, ciphertext);
}

export function isPackPreamble(preamble: Buffer): boolean {
  return preamble.length >= packPreambleLength && preamble.subarray(0, packMagic.length).equals(packMagic);
}
