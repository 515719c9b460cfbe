// The repository: keys, content (packs + index) and snapshots over a Storage. It knows blobs,
// trees and snapshots, never files on disk or SSH.
import { randomBytes } from 'node:crypto';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { Storage } from '../storage/storage.js';
import { BlobType, type BlobLocation, type PackEntry } from './blob.js';
import { sharedBlobWorkers, type HashBatchRequest, type HashedBatch, type HashRequest, type HashedChunk } from './blob-worker-pool.js';
import { ChunkIndex } from './chunk-index.js';
import { Compression, compressBlob, decompressBounded, defaultZstdLevel } from './compression.js';
import { newConfig, parseConfig, type ChunkerParams, type RepositoryConfig } from './config.js';
import { blobIdFromHash, generateMasterKeys, openObject, sealObject, sha256, verifyObjectName, objectName, type MasterKeys, type SubkeyCipher } from './crypto.js';
import { decodeEntries, decodeIndexRecords, encodeIndex, type EncodedPackRecord, type IndexedPack } from './index-file.js';
import { parseKeyFile, unwrapMasterKeys, wrapMasterKeys, type KeyFile } from './keys.js';
import { PackWriter, decryptPackBlob, isPackPreamble, namedPack, packCipher, packPreambleLength, type FinishedPack } from './pack.js';
import { parseSnapshot, type Snapshot, type StoredSnapshot } from './snapshot.js';
import { decodeTree, encodeTree, type Tree } from './tree.js';

export interface KeyInfo {
  name: string;
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

/** A blob's verified plaintext, and the zstd frame it was stored as, if it was. */
export interface VerifiedBlob {
  plain: Buffer;
  zstdFrame?: Buffer;
}

/** Where a worker thread writes a blob that `reserveBlob` placed in the open pack. */
export interface BlobPlace {
  /** The pack's arena (shared memory) and the blob's offset in it. */
  arena: SharedArrayBuffer;
  at: number;
  /** The pack's AES-256-GCM key, and the blob's nonce counter (its offset in the pack). */
  key: Buffer;
  counter: number;
  /** To be called once the worker is done: `written` false when it did not write the blob (its check failed). */
  done(written: boolean): void;
}

/** A blob's stored form, already computed (see `saveBlob`). */
export interface EncodedBlob {
  compression: Compression;
  /** The zstd frame, or for `none` the plaintext itself. */
  data: Uint8Array;
}

export interface RepositoryStats {
  blobsNew: number;
  bytesNew: number;
  bytesStored: number;
  packsWritten: number;
}

/** At most this many packs are written concurrently; more only queues bytes in memory. */
const maxPacksInFlight = 2;
/** An arena's room beyond a full pack and one largest chunk: its header (22,000 entries) and trailer. */
const arenaHeaderRoom = 1024 * 1024;
/**
 * Pack arenas (PackWriter) kept for reuse; a new pack beyond them waits for one to be given back.
 * Besides the open pack and those being written, full packs wait for their places while the
 * session has up to 32 MiB of chunks being checked (two packs' worth): with four arenas a first
 * backup waited 0.5 s for one, with six 0.09 s. Each is a pack, a largest chunk and a header.
 */
export const maxPackArenas = maxPacksInFlight + 4;
/** An index file is written after this many packs, so an interrupted run keeps most of its work. */
const packsPerIndexFile = 8;
/** Blobs at least this large are compressed on the pool, with at most this much in flight. */
const poolThreshold = 4 * 1024;
const maxBytesCompressing = 16 * 1024 * 1024;
const maxBlobsCompressing = 256;

/**
 * Blobs at least this large (stored) are opened on the worker pool when read. Measured on a
 * restore of 12,000 files (433 MiB) on the loaded 2-core machine: from 16 KiB the messages for
 * mid-sized blobs cost about 1.4 CPU seconds more than they moved off the main thread; from
 * 128 KiB the CPU time is the inline restore's, and large files' chunks still use both cores
 * (docs/performance.md).
 */
const openPoolThreshold = 128 * 1024;

function blobWhat(id: Buffer, loc: Pick<BlobLocation, 'pack' | 'type'>): string {
  return `${loc.type === BlobType.tree ? 'tree' : 'chunk'} ${id.toString('hex').slice(0, 16)} in pack ${loc.pack}`;
}

function authenticationFailed(what: string): HaulError {
  return new HaulError('BlobCorrupt', `${what} failed authentication: the pack's bytes were changed on disk. Run \`haul check --read-data\` to list the affected snapshots and files.`);
}

function decompressionFailed(what: string): HaulError {
  return new HaulError('BlobCorrupt', `${what} does not decompress to a valid chunk.`);
}

export class Repository {
  readonly index = new ChunkIndex();
  private readonly ciphers = new Map<string, SubkeyCipher>();
  private indexLoaded = false;
  private writer: PackWriter | undefined;
  private readonly openPackIds = new Set<string>();
  /** Blobs placed in the open pack whose chunk's check is still to come (reserveBlob). */
  private readonly placedIds = new Set<string>();
  private readonly unindexed: IndexedPack[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly compressing = new Set<Promise<void>>();
  /** Packs being finished that no caller awaits (reserveBlob): flush waits for them. */
  private readonly flushing = new Set<Promise<void>>();
  private bytesCompressing = 0;
  private writeFailure: unknown;
  /** Memory each pack's blobs are gathered in, reused once the pack is written (see PackWriter). */
  private readonly freeArenas: Buffer[] = [];
  private readonly arenaWaiters: (() => void)[] = [];
  /** A new open pack waiting for its arena (openWriter). */
  private writerOpening?: Promise<void>;
  private arenasInUse = 0;
  readonly written: RepositoryStats = { blobsNew: 0, bytesNew: 0, bytesStored: 0, packsWritten: 0 };

  private constructor(
    readonly storage: Storage,
    readonly keys: MasterKeys,
    readonly config: RepositoryConfig,
    readonly keyName: string,
    /** False for a `reopen()` handle: the storage belongs to the handle it was reopened from. */
    private readonly ownsStorage = true,
  ) {}

  static async init(storage: Storage, passphrase: string, options: { chunker?: ChunkerParams; kdf?: { memoryKiB: number; iterations: number; parallelism: number } } = {}): Promise<Repository> {
    if (await storage.isInitialised()) {
      throw new HaulError('RepositoryExists', `a repository already exists at ${storage.location}. Use it, or choose another location.`);
    }
    const keyFile = await wrapMasterKeys(generateMasterKeys(), passphrase, options.kdf);
    await storage.create();
    const master = (await unwrapMasterKeys(keyFile, passphrase))!;
    const config = newConfig(options.chunker);
    const keyName = randomBytes(16).toString('hex');
    await storage.write('keys', keyName, Buffer.from(JSON.stringify(keyFile, null, 2) + '\n'));
    // The config goes last: its presence is what makes the directory a repository.
    await storage.write('config', 'config', sealObject(master, Buffer.from(JSON.stringify(config))));
    return new Repository(storage, master, config, keyName);
  }

  static async open(storage: Storage, passphrase: string): Promise<Repository> {
    if (!(await storage.isInitialised())) {
      throw new HaulError('RepositoryNotFound', `there is no Haul repository at ${storage.location}. Check --repo (or HAUL_REPOSITORY), or create one with \`haul init\`.`);
    }
    const keyNames: string[] = [];
    for await (const k of storage.list('keys')) keyNames.push(k.name);
    const unusable: string[] = [];
    for (const name of keyNames) {
      let keyFile: KeyFile;
      try {
        keyFile = parseKeyFile(await storage.read('keys', name), name);
      } catch (err) {
        // One damaged or planted key file must not lock out the others.
        if (!isHaulError(err)) throw err;
        unusable.push(err.message);
        continue;
      }
      const master = await unwrapMasterKeys(keyFile, passphrase);
      if (!master) continue;
      const config = parseConfig(openObject(master, await storage.read('config', 'config'), 'the repository config'));
      return new Repository(storage, master, config, name);
    }
    throw new HaulError('WrongPassphrase', `wrong passphrase: none of the ${keyNames.length} key(s) of the repository at ${storage.location} opens with it. Check HAUL_PASSWORD_FILE / HAUL_PASSWORD (a trailing newline in the file is ignored).${unusable.length ? ` (Also skipped: ${unusable.join(' ')})` : ''}`);
  }

  /**
   * Another handle on this repository with the same keys, but its own chunk index, pack writer
   * and counters: concurrent jobs in one daemon each take one, so one job's statistics and
   * write failure never leak into another's. Each loads the index itself; close it after use.
   */
  reopen(): Repository {
    return new Repository(this.storage, this.keys, this.config, this.keyName, false);
  }

  // ---- keys ----

  async listKeys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for await (const k of this.storage.list('keys')) {
      const f = parseKeyFile(await this.storage.read('keys', k.name), k.name);
      out.push({ name: k.name, created: f.created, hostname: f.hostname, username: f.username, current: k.name === this.keyName });
    }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  async addKey(passphrase: string): Promise<string> {
    const keyFile: KeyFile = await wrapMasterKeys(this.keys, passphrase);
    const name = randomBytes(16).toString('hex');
    await this.storage.write('keys', name, Buffer.from(JSON.stringify(keyFile, null, 2) + '\n'));
    return name;
  }

  /** `key passwd`: the new key is durable before the old one goes, so a crash leaves both working. */
  async replaceCurrentKey(passphrase: string): Promise<{ added: string; removed: string }> {
    const added = await this.addKey(passphrase);
    await this.storage.delete('keys', this.keyName);
    return { added, removed: this.keyName };
  }

  async removeKey(prefix: string): Promise<string> {
    const keys = await this.listKeys();
    const matches = keys.filter((k) => k.name.startsWith(prefix));
    if (matches.length !== 1) {
      throw new HaulError('KeyNotFound', matches.length === 0 ? `no key starts with ${prefix}. \`haul key list\` shows the keys.` : `${prefix} matches ${matches.length} keys; give more characters.`);
    }
    const key = matches[0]!;
    if (key.current) {
      throw new HaulError('LastKey', `key ${key.name} is the one this command was opened with; open the repository with another key to remove it (or use \`haul key passwd\`).`);
    }
    await this.storage.delete('keys', key.name);
    return key.name;
  }

  // ---- reading blobs ----

  /**
   * Loads every index file into memory. A damaged index file stops the load, unless the caller
   * handles damage itself (check and repair do: they report and carry on). `onPack` sees each
   * pack record as it is loaded, its entries still encoded.
   */
  async loadIndex(onDamaged?: (file: string, err: unknown) => void, onPack?: (file: string, record: EncodedPackRecord) => void): Promise<void> {
    if (this.indexLoaded && !onDamaged && !onPack) return;
    for await (const f of this.storage.list('index')) {
      let records: EncodedPackRecord[];
      try {
        records = await this.readIndexRecords(f.name);
      } catch (err) {
        if (!onDamaged) throw err;
        onDamaged(f.name, err);
        continue;
      }
      for (const record of records) {
        this.index.addEncoded(record);
        onPack?.(f.name, record);
      }
    }
    this.indexLoaded = true;
  }

  async readIndexFile(name: string): Promise<IndexedPack[]> {
    return (await this.readIndexRecords(name)).map((r) => ({ name: r.name, entries: decodeEntries(r) }));
  }

  /** An index file's pack records, entries still encoded: for loading and rewriting in bulk. */
  async readIndexRecords(name: string): Promise<EncodedPackRecord[]> {
    const what = `index file index/${name}`;
    return decodeIndexRecords(openObject(this.keys, await this.storage.read('index', name), what), what);
  }

  async cipherFor(pack: string): Promise<SubkeyCipher> {
    let c = this.ciphers.get(pack);
    if (!c) {
      const preamble = await this.storage.read('packs', pack, { offset: 0, length: packPreambleLength });
      if (!isPackPreamble(preamble)) throw new HaulError('BlobCorrupt', `pack ${pack} has a damaged header (bad magic). Run \`haul check --read-data\` to list the affected snapshots and files.`);
      c = packCipher(this.keys, preamble);
      this.ciphers.set(pack, c);
    }
    return c;
  }

  locate(id: Buffer): BlobLocation | undefined {
    return this.index.get(id);
  }

  /** Reads, decrypts, decompresses and re-hashes a blob; nothing unverified is ever returned. */
  async loadBlob(id: Buffer, type: BlobType): Promise<Buffer> {
    return (await this.loadBlobWithFrame(id, type)).plain;
  }

  /**
   * `loadBlob`, plus the zstd frame the blob is stored as (when it is stored compressed), once
   * verified: a restore onto a client sends it on as it is instead of compressing again.
   */
  async loadBlobWithFrame(id: Buffer, type: BlobType): Promise<VerifiedBlob> {
    await this.loadIndex();
    const loc = this.index.get(id);
    if (!loc) {
      throw new HaulError('BlobMissing', `${type === BlobType.tree ? 'tree' : 'chunk'} ${id.toString('hex')} is not in the index. Run \`haul repair index\`; if it stays missing, \`haul check\` lists the affected snapshots.`);
    }
    const ct = await this.storage.read('packs', loc.pack, { offset: loc.offset, length: loc.length });
    const cipher = await this.cipherFor(loc.pack);
    if (loc.length < openPoolThreshold) return this.openBlobWithFrame(id, loc, cipher, ct);
    const opened = await sharedBlobWorkers().open({ key: cipher.subkey, counter: loc.offset, ciphertext: ct, zstd: loc.compression === Compression.zstd, limit: this.plaintextLimit(loc.type) });
    const what = blobWhat(id, loc);
    if (opened === 'authentication') throw authenticationFailed(what);
    if (opened === 'decompression') throw decompressionFailed(what);
    this.checkBlobHash(id, opened.sha256, what);
    return opened.zstdFrame ? { plain: opened.plain, zstdFrame: opened.zstdFrame } : { plain: opened.plain };
  }

  /** Verifies one blob's ciphertext against its ID; shared by reads and `check --read-data`. */
  openBlob(id: Buffer, loc: Pick<BlobLocation, 'pack' | 'offset' | 'type' | 'compression'>, cipher: SubkeyCipher, ct: Uint8Array): Buffer {
    return this.openBlobWithFrame(id, loc, cipher, ct).plain;
  }

  private openBlobWithFrame(id: Buffer, loc: Pick<BlobLocation, 'pack' | 'offset' | 'type' | 'compression'>, cipher: SubkeyCipher, ct: Uint8Array): VerifiedBlob {
    const what = blobWhat(id, loc);
    const payload = decryptPackBlob(cipher, loc.offset, ct);
    if (!payload) throw authenticationFailed(what);
    let plain: Buffer | undefined = payload;
    if (loc.compression === Compression.zstd) {
      plain = decompressBounded(payload, this.plaintextLimit(loc.type));
      if (!plain) throw decompressionFailed(what);
    }
    this.checkBlobHash(id, sha256(plain), what);
    return loc.compression === Compression.zstd ? { plain, zstdFrame: payload } : { plain };
  }

  /** The largest plaintext a stored blob of `type` may decompress to. */
  private plaintextLimit(type: BlobType): number {
    return type === BlobType.tree ? this.config.maxTreeSize : this.config.chunker.maxSize;
  }

  private checkBlobHash(id: Buffer, plainSha256: Buffer, what: string): void {
    if (!blobIdFromHash(this.keys, plainSha256).equals(id)) throw new HaulError('BlobCorrupt', `${what} has the wrong content (hash mismatch).`);
  }

  async loadTree(id: string): Promise<Tree> {
    return decodeTree(await this.loadBlob(Buffer.from(id, 'hex'), BlobType.tree), `tree ${id.slice(0, 16)}`);
  }

  // ---- writing blobs ----

  blobId(plaintext: Uint8Array): Buffer {
    return blobIdFromHash(this.keys, sha256(plaintext));
  }

  hasBlob(id: Buffer): boolean {
    return this.index.has(id) || this.openPackIds.has(id.toString('hex'));
  }

  /**
   * Stores a blob unless the repository has it; returns its ID. Large blobs are compressed on
   * the worker pool and packed when that finishes; `flush` waits for all of them.
   */
  async saveBlob(type: BlobType, plaintext: Uint8Array, ownSha256?: Buffer): Promise<{ id: Buffer; added: boolean }> {
    // `ownSha256` is only ever a hash this process just computed over these very bytes (the pull
    // session verifies a probe's chunk that way): never a client's claim, so nothing is trusted
    // that the bytes did not prove, and the chunk is not hashed twice.
    await this.loadIndex();
    const id = blobIdFromHash(this.keys, ownSha256 ?? sha256(plaintext));
    if (this.hasBlob(id)) return { id, added: false };
    this.throwIfWriteFailed();
    this.openPackIds.add(id.toString('hex'));
    const rawLength = plaintext.length;
    if (rawLength < poolThreshold) {
      const { data, compression } = compressBlob(plaintext);
      await this.pack(id, type, compression, data, rawLength);
      return { id, added: true };
    }
    while (this.compressing.size >= maxBlobsCompressing || this.bytesCompressing > maxBytesCompressing) await Promise.race(this.compressing);
    this.bytesCompressing += rawLength;
    const job = sharedBlobWorkers()
      .compress(plaintext, defaultZstdLevel)
      .then(({ data, compression }) => this.pack(id, type, compression, data, rawLength))
      .catch((err: unknown) => {
        this.writeFailure ??= err;
      });
    const tracked = job.finally(() => {
      this.compressing.delete(tracked);
      this.bytesCompressing -= rawLength;
    });
    this.compressing.add(tracked);
    return { id, added: true };
  }

  /**
   * `saveBlob` for a blob whose stored form this process already holds, so it is not compressed
   * a second time: a zstd frame it has just decompressed (bounded) to exactly `rawLength` bytes
   * of plaintext whose SHA-256 it computed as `ownSha256`, or (`none`) plaintext a compressor
   * with this repository's rule has just found not worth compressing. Like `ownSha256`, never a
   * client's claim: only bytes this process checked.
   */
  async saveEncodedBlob(type: BlobType, ownSha256: Buffer, rawLength: number, encoded: EncodedBlob): Promise<{ id: Buffer; added: boolean }> {
    await this.loadIndex();
    const id = blobIdFromHash(this.keys, ownSha256);
    if (this.hasBlob(id)) return { id, added: false };
    this.throwIfWriteFailed();
    this.openPackIds.add(id.toString('hex'));
    await this.pack(id, type, encoded.compression, encoded.data, rawLength);
    return { id, added: true };
  }

  /**
   * `saveEncodedBlob` for a chunk whose check is still to come, on a worker thread that then
   * encrypts it into the place returned (`payloadLength` bytes as stored, plus the tag). The
   * pack is not written until every place in it is done. Until its check passed, the blob does
   * not count as stored (hasBlob): nothing can be deduplicated against an unchecked claim.
   * Call `readyToPlace` first: it opens the pack. 'present' when the blob is stored already;
   * undefined when it cannot be placed now (a place for it waits for its check, no open pack or
   * no room in its arena, the index not loaded yet, an earlier write failed): the caller then
   * stores the chunk with saveEncodedBlob once its check passed (a blob stored twice is
   * harmless: the index keeps the first).
   */
  reserveBlob(type: BlobType, id: Buffer, compression: Compression, payloadLength: number, rawLength: number): BlobPlace | 'present' | undefined {
    if (!this.indexLoaded || this.writeFailure) return undefined;
    if (this.hasBlob(id)) return 'present';
    const hex = id.toString('hex');
    if (this.placedIds.has(hex)) return undefined;
    const writer = this.writer;
    if (!writer) return undefined;
    const reserved = writer.reserve(id, type, compression, payloadLength, rawLength);
    if (!reserved) return undefined;
    this.placedIds.add(hex);
    this.countNew(reserved.entry);
    const done = (written: boolean) => {
      this.placedIds.delete(hex);
      if (written) this.openPackIds.add(hex);
      writer.placed(reserved.entry, reserved.at, written);
    };
    // The arena may be a view that starts inside its shared memory (aligned for direct writes).
    return { arena: writer.arena!.buffer as SharedArrayBuffer, at: writer.arena!.byteOffset + reserved.at, key: writer.subkey, counter: reserved.entry.offset, done };
  }

  /**
   * Readies the open pack for `reserveBlob`: a full one is sent to be written (not awaited: it
   * waits for its places, filled only once the caller's chunks are sent), and a new one gets an
   * arena, waiting for one to come free when every arena holds a pack still being checked or
   * written. Waiting is the right thing then: the disk or the checks are behind, and a pack
   * without an arena would have every blob encrypted on this thread instead of a worker.
   */
  async readyToPlace(): Promise<void> {
    if (!this.indexLoaded || this.writeFailure) return;
    if (this.writer && this.writer.size >= this.config.packTargetSize) {
      // A failure is kept in writeFailure, for the next save or flush to report.
      const tracked: Promise<void> = this.flushPack()
        .catch(() => undefined)
        .finally(() => this.flushing.delete(tracked));
      this.flushing.add(tracked);
    }
    await this.openWriter();
  }

  /** The open pack, started (with an arena, waiting for one if need be) when there is none. */
  private async openWriter(): Promise<PackWriter> {
    while (!this.writer) {
      // One caller takes the arena; the others wait for its writer rather than open a second.
      this.writerOpening ??= this.takeArena().then((arena) => {
        this.writerOpening = undefined;
        this.writer ??= new PackWriter(this.keys, arena);
      });
      await this.writerOpening;
    }
    return this.writer;
  }

  /** SHA-256 of a received chunk on the worker pool, after bounded decompression (see BlobWorkerPool.hash). */
  hashOnWorker(request: HashRequest): Promise<HashedChunk | 'decompression'> {
    return sharedBlobWorkers().hash(request);
  }

  /** hashOnWorker for a batch of small chunks (see BlobWorkerPool.hashBatch). */
  hashBatchOnWorker(request: HashBatchRequest): Promise<HashedBatch> {
    return sharedBlobWorkers().hashBatch(request);
  }

  private async pack(id: Buffer, type: BlobType, compression: Compression, data: Uint8Array, rawLength: number): Promise<void> {
    const writer = await this.openWriter();
    this.countNew(writer.add(id, type, compression, data, rawLength));
    if (writer.size >= this.config.packTargetSize) await this.flushPack();
  }

  private countNew(entry: PackEntry): void {
    this.written.blobsNew++;
    this.written.bytesNew += entry.rawLength;
    this.written.bytesStored += entry.length;
  }

  /** A free arena, a new one while there are fewer than maxPackArenas, or the first one given back. */
  private async takeArena(): Promise<Buffer> {
    while (this.freeArenas.length === 0 && this.arenasInUse >= maxPackArenas) await new Promise<void>((resolve) => this.arenaWaiters.push(resolve));
    this.arenasInUse++;
    // Room for a full pack plus the one blob that may push it past the target size.
    // Shared memory, so that a worker thread can read a finished pack in place (its name).
    // Plus room for the header, so that a pack is one piece of memory (see PackWriter.finishContents).
    const length = this.config.packTargetSize + this.config.chunker.maxSize + arenaHeaderRoom;
    return this.freeArenas.pop() ?? this.storage.allocateWriteBuffer?.(length) ?? Buffer.from(new SharedArrayBuffer(length));
  }

  private returnArena(arena: Buffer | undefined): void {
    if (!arena) return;
    this.arenasInUse--;
    this.freeArenas.push(arena);
    this.arenaWaiters.shift()?.();
  }

  /**
   * Releases what the storage holds open (a local repository's cached pack handles), when this
   * handle opened the storage; a `reopen()` handle shares it and leaves it open. The worker
   * threads are the process's (`sharedBlobWorkers`) and stay: idle, they never keep it alive.
   */
  async close(): Promise<void> {
    if (this.ownsStorage) await this.storage.close?.();
  }

  async saveTree(tree: Tree): Promise<string> {
    const data = encodeTree(tree);
    if (data.length > this.config.maxTreeSize) {
      throw new HaulError('InvalidArgument', `a directory listing is ${data.length} bytes, above the repository's limit of ${this.config.maxTreeSize}.`);
    }
    return (await this.saveBlob(BlobType.tree, data)).id.toString('hex');
  }

  private async flushPack(): Promise<void> {
    const writer = this.writer;
    if (!writer || writer.count === 0) return;
    this.writer = undefined;
    // The name, a keyed hash over the whole pack, is computed on a worker thread (the arena is
    // shared memory, read there in place); nothing writes to these parts until the pack is written.
    let pack: FinishedPack;
    try {
      // Its places filled first: a failed chunk's place changes its entry, which the header lists.
      await writer.allPlaced();
      const contents = writer.finishContents();
      pack = namedPack(contents, await sharedBlobWorkers().objectName(this.keys, contents.parts));
      while (this.inFlight.size >= maxPacksInFlight) await Promise.race(this.inFlight);
      this.throwIfWriteFailed();
    } catch (err) {
      // The pack's blobs are lost with it: fail every later save and flush, as a failed write does.
      this.writeFailure ??= err;
      this.returnArena(writer.arena);
      throw err;
    }
    const job = (async () => {
      try {
        try {
          await this.storage.write('packs', pack.name, pack.parts);
        } finally {
          this.returnArena(writer.arena);
        }
        for (const e of pack.entries) {
          this.index.add(pack.name, e);
          this.openPackIds.delete(e.id.toString('hex'));
        }
        this.unindexed.push({ name: pack.name, entries: pack.entries });
        this.written.packsWritten++;
        if (this.unindexed.length >= packsPerIndexFile) await this.writeIndexFile();
      } catch (err) {
        // Reported by the next saveBlob or flush; the job itself never rejects.
        this.writeFailure ??= err;
      }
    })();
    const tracked = job.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private throwIfWriteFailed(): void {
    if (this.writeFailure) throw this.writeFailure;
  }

  private async writeIndexFile(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed.splice(0);
    const sealed = sealObject(this.keys, encodeIndex(packs));
    await this.storage.write('index', objectName(this.keys, [sealed]), sealed);
  }

  /**
   * After a failed run: index the packs that did become durable, so the next run reuses them
   * instead of sending their chunks again. Best effort: with the disk full this may fail too,
   * and then those packs wait for `haul repair index` or pruning.
   */
  async indexWrittenPacks(): Promise<void> {
    while (this.compressing.size > 0) await Promise.race(this.compressing);
    while (this.flushing.size > 0) await Promise.race(this.flushing);
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    await this.writeIndexFile().catch(() => undefined);
  }

  /** Makes every blob saved so far durable and indexed; after this a snapshot may refer to them. */
  async flush(): Promise<void> {
    while (this.compressing.size > 0) await Promise.race(this.compressing);
    while (this.flushing.size > 0) await Promise.race(this.flushing);
    this.throwIfWriteFailed();
    await this.flushPack();
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    this.throwIfWriteFailed();
    await this.writeIndexFile();
  }

  // ---- snapshots ----

  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    await this.flush();
    const sealed = sealObject(this.keys, Buffer.from(JSON.stringify(snapshot)));
    const name = objectName(this.keys, [sealed]);
    await this.storage.write('snapshots', name, sealed);
    return name;
  }

  async readSnapshot(name: string): Promise<StoredSnapshot> {
    const data = await this.storage.read('snapshots', name);
    const what = `snapshot ${name.slice(0, 8)}`;
    if (!verifyObjectName(this.keys, name, [data])) {
      throw new HaulError('ObjectCorrupt', `${what} does not match its name: its bytes were changed on disk.`);
    }
    return { ...parseSnapshot(openObject(this.keys, data, what), what), id: name };
  }

  /** Snapshots that could not be read by the last listing; `check` reports them in full. */
  readonly unreadableSnapshots: { id: string; message: string }[] = [];

  /** Lists readable snapshots; a damaged one is skipped (and remembered) so the rest stay usable. */
  async listSnapshots(filter: { client?: string } = {}): Promise<StoredSnapshot[]> {
    const out: StoredSnapshot[] = [];
    this.unreadableSnapshots.length = 0;
    for await (const s of this.storage.list('snapshots')) {
      let snap: StoredSnapshot;
      try {
        snap = await this.readSnapshot(s.name);
      } catch (err) {
        if (!isHaulError(err)) throw err;
        this.unreadableSnapshots.push({ id: s.name, message: err.message });
        continue;
      }
      if (filter.client === undefined || snap.client === filter.client) out.push(snap);
    }
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  /** Resolves an ID prefix, or `latest` (optionally for one client). */
  async findSnapshot(ref: string, client?: string): Promise<StoredSnapshot> {
    const all = await this.listSnapshots(client === undefined ? {} : { client });
    if (ref === 'latest') {
      const last = all.at(-1);
      if (!last) throw new HaulError('SnapshotNotFound', `there is no snapshot${client ? ` for client ${client}` : ''} yet. Run a backup first.`);
      return last;
    }
    const matches = all.filter((s) => s.id.startsWith(ref.toLowerCase()));
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new HaulError('SnapshotNotFound', `no snapshot ID starts with ${JSON.stringify(ref)}. \`haul snapshots\` lists them.`);
    throw new HaulError('InvalidArgument', `${JSON.stringify(ref)} matches ${matches.length} snapshots; give more characters of the ID.`);
  }
}

export type { PackEntry };
