// Pack files hold many encrypted blobs so a million chunks are not a million files.
//   magic "HAULPAK1" | salt(32) | blob_0 .. blob_n-1 | header ciphertext | header length (u32 LE)
// A blob at byte offset o is AES-256-GCM(subkey, nonce(blob, o)), so a reader needs only the
// salt and the blob's location, never its position in the header; the header, which lists every blob, is
// AES-256-GCM(subkey, nonce(packHeader, 0)). The subkey comes from the pack's own salt.
import { randomBytes } from 'node:crypto';
import { HaulError } from '../../shared/errors.js';
import { BlobType, blobIdLength, type PackEntry } from './blob.js';
import { Compression } from './compression.js';
import { decodeEntries, encodeEntries, indexEntryLength, type EncodedPackRecord } from './index-file.js';
import { NonceDomain, SubkeyCipher, blobIdFromHash, objectName, saltLength, sha256, tagLength, type MasterKeys } from './crypto.js';

export const packMagic = Buffer.from('HAULPAK1', 'latin1');
export const packInfo = 'haul-pack-v1';
export const packPreambleLength = packMagic.length + saltLength;
const headerEntryLength = indexEntryLength;
/** Packs are cut at this size; one blob may push a pack past it by at most one chunk. */
export const defaultPackTargetSize = 16 * 1024 * 1024;
/** No pack header may claim more entries than fit this; a hostile or damaged header is refused. */
const maxHeaderLength = 64 * 1024 * 1024;

export interface FinishedPack {
  name: string;
  parts: Buffer[];
  size: number;
  entries: PackEntry[];
  encoded: EncodedPackRecord;
}

/** A finished pack before it is named: its bytes in order, and its entries (also as encoded in its header). */
export interface PackContents {
  parts: Buffer[];
  size: number;
  entries: PackEntry[];
  headerEntries: Buffer;
}

/** A pack's name is the keyed hash of its bytes (`objectName` over `contents.parts`). */
export function namedPack(contents: PackContents, name: string): FinishedPack {
  const { parts, size, entries, headerEntries } = contents;
  return { name, parts, size, entries, encoded: { name, count: entries.length, entries: headerEntries } };
}

/**
 * Ciphertext of blobs up to `smallBlob` bytes is gathered in blocks of `blockSize` rather than
 * kept as one small buffer per blob; larger ones are kept as they are (copying them would gain
 * nothing, and could leave most of a block unused).
 */
const blockSize = 1024 * 1024;
const smallBlob = 64 * 1024;

export class PackWriter {
  private readonly cipher: SubkeyCipher;
  private readonly parts: Buffer[];
  private readonly entries: PackEntry[] = [];
  private offset: number;
  /**
   * The block being filled. Copying each blob's ciphertext here lets its own small buffers die
   * young: kept until the pack is finished, a million of them would each cost a few hundred
   * bytes and old-generation garbage collection.
   */
  private block: Buffer = Buffer.allocUnsafe(0);
  private blockUsed = 0;
  /** Blobs placed (`reserve`) whose bytes a worker thread has not written yet, and who waits for them. */
  private unwritten = 0;
  private readonly writtenWaiters: (() => void)[] = [];

  /**
   * `arena`: memory reused from pack to pack (the caller's), that every blob's ciphertext is
   * copied into while it fits. Ciphertext kept in buffers of its own until the pack is written
   * lives long enough to reach V8's old generation, and every 64 MiB of that starts a full
   * garbage collection of the process's heap; copied at once, it dies young. Without an arena,
   * or once it is full, small blobs go to fresh blocks and large ones stay as they are. The
   * repository's arenas are shared memory, so a worker thread computes the pack's name in place.
   */
  constructor(private readonly keys: MasterKeys, readonly arena?: Buffer) {
    const salt = randomBytes(saltLength);
    this.cipher = new SubkeyCipher(keys, salt, packInfo);
    this.offset = packPreambleLength;
    if (arena) {
      // The preamble goes in the arena too, so that a pack that fits is one piece of memory.
      this.parts = [];
      this.block = arena;
      this.blockUsed = packMagic.copy(arena, 0);
      this.blockUsed += salt.copy(arena, this.blockUsed);
    } else {
      this.parts = [packMagic, salt];
    }
  }

  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.entries.length;
  }

  add(id: Buffer, type: BlobType, compression: Compression, payload: Uint8Array, rawLength: number): PackEntry {
    const [body, tag] = this.cipher.encryptParts(NonceDomain.blob, this.offset, payload);
    const entry: PackEntry = { id, type, compression, offset: this.offset, length: body.length + tag.length, rawLength };
    if (this.block === this.arena && this.blockUsed + entry.length <= this.block.length) {
      this.blockUsed += body.copy(this.block, this.blockUsed);
      this.blockUsed += tag.copy(this.block, this.blockUsed);
    } else if (entry.length > smallBlob) {
      this.closeBlock();
      this.parts.push(body, tag);
    } else {
      if (this.blockUsed + entry.length > this.block.length) {
        this.closeBlock();
        this.block = Buffer.allocUnsafe(blockSize);
      }
      this.blockUsed += body.copy(this.block, this.blockUsed);
      this.blockUsed += tag.copy(this.block, this.blockUsed);
    }
    this.entries.push(entry);
    this.offset += entry.length;
    return entry;
  }

  /**
   * Room in the arena for a blob that a worker thread encrypts into it later (see `placed`): its
   * entry is recorded now, in pack order, `payloadLength` plus the tag long. Undefined when the
   * arena is full or there is none: the caller then stores the blob with `add`.
   */
  reserve(id: Buffer, type: BlobType, compression: Compression, payloadLength: number, rawLength: number): { entry: PackEntry; at: number } | undefined {
    const length = payloadLength + tagLength;
    if (!this.arena || this.block !== this.arena || this.blockUsed + length > this.block.length) return undefined;
    const entry: PackEntry = { id, type, compression, offset: this.offset, length, rawLength };
    const at = this.blockUsed;
    this.blockUsed += length;
    this.entries.push(entry);
    this.offset += length;
    this.unwritten++;
    return { entry, at };
  }

  /** The AES key of this pack's blobs, for the worker thread that encrypts reserved blobs. */
  get subkey(): Buffer {
    return this.cipher.subkey;
  }

  /**
   * A reserved blob is written (`entry` as reserved), or will never be (its chunk failed its
   * check): then a blob of zeros of the same stored length takes its place, under its own ID,
   * so the pack stays whole and holds nothing unchecked. It is referenced by no snapshot (unless
   * one holds those very zeros) and goes at the next prune.
   */
  placed(entry: PackEntry, at: number, written: boolean): void {
    if (!written) {
      const zeros = Buffer.alloc(entry.length - tagLength);
      entry.id = blobIdFromHash(this.keys, sha256(zeros));
      entry.type = BlobType.data;
      entry.compression = Compression.none;
      entry.rawLength = zeros.length;
      const [body, tag] = this.cipher.encryptParts(NonceDomain.blob, entry.offset, zeros);
      body.copy(this.arena!, at);
      tag.copy(this.arena!, at + body.length);
    }
    if (--this.unwritten === 0) for (const wake of this.writtenWaiters.splice(0)) wake();
  }

  /** Waits until every reserved blob is written (see `placed`). */
  async allPlaced(): Promise<void> {
    if (this.unwritten > 0) await new Promise<void>((resolve) => this.writtenWaiters.push(resolve));
  }

  private closeBlock(): void {
    if (this.blockUsed > 0) this.parts.push(this.block.subarray(0, this.blockUsed));
    this.block = Buffer.allocUnsafe(0);
    this.blockUsed = 0;
  }

  /** The finished pack, named (a keyed hash over all its bytes, on this thread). */
  finish(): FinishedPack {
    const contents = this.finishContents();
    return namedPack(contents, objectName(this.keys, contents.parts));
  }

  /** The finished pack's bytes and entries, for a caller that computes the name elsewhere (namedPack). */
  finishContents(): PackContents {
    this.closeBlock();
    // The header's entries are laid out as index file entries: the finished pack carries them
    // encoded too, so a writer of many packs can keep them compactly until it writes the index.
    const header = Buffer.concat([Buffer.alloc(4), encodeEntries(this.entries)]);
    header.writeUInt32LE(this.entries.length, 0);
    const headerCt = this.cipher.encrypt(NonceDomain.packHeader, 0, header);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(headerCt.length, 0);
    const size = this.offset + headerCt.length + 4;
    // A pack whose blobs all went to the arena (its first part is always the arena's, preamble
    // included), and whose header fits after them, is written from the arena in one piece: a
    // local disk stores that without the page cache (allocateWriteBuffer).
    const arena = this.arena;
    if (arena && this.parts.length === 1 && size <= arena.length) {
      headerCt.copy(arena, this.offset);
      trailer.copy(arena, this.offset + headerCt.length);
      return { parts: [arena.subarray(0, size)], size, entries: this.entries, headerEntries: header.subarray(4) };
    }
    return { parts: [...this.parts, headerCt, trailer], size, entries: this.entries, headerEntries: header.subarray(4) };
  }
}

/**
 * Reads and checks a pack's header from its tail (`tail` must hold at least the header and
 * trailer); returns its entries as encoded (46 bytes each, the layout index files use too).
 */
export function readPackHeaderEntries(keys: MasterKeys, packName: string, preamble: Buffer, tail: Buffer, packSize: number): EncodedPackRecord {
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
  const dataEnd = packSize - 4 - headerLength;
  let expectedOffset = packPreambleLength;
  for (let i = 0, p = 4; i < count; i++, p += headerEntryLength) {
    const type = header[p]!;
    const compression = header[p + 1]!;
    const offset = header.readUInt32LE(p + 2 + blobIdLength);
    const length = header.readUInt32LE(p + 6 + blobIdLength);
    if (type !== BlobType.data && type !== BlobType.tree) throw fail(`entry ${i} has unknown type ${type}`);
    if (compression !== Compression.none && compression !== Compression.zstd) throw fail(`entry ${i} has unknown compression ${compression}`);
    if (offset !== expectedOffset || length < tagLength || offset + length > dataEnd) throw fail(`entry ${i} lies outside the pack's data`);
    expectedOffset += length;
  }
  if (expectedOffset !== dataEnd) throw fail('blobs do not fill the data area');
  return { name: packName, count, entries: header.subarray(4) };
}

/** Reads a pack's header from its tail; `tail` must hold at least the header and trailer. */
export function parsePackHeader(keys: MasterKeys, packName: string, preamble: Buffer, tail: Buffer, packSize: number): PackEntry[] {
  return decodeEntries(readPackHeaderEntries(keys, packName, preamble, tail, packSize));
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
