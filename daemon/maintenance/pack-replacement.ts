// The crash-safe way to retire packs, shared by prune and `repair packs`: the blobs worth keeping
// are first copied into new packs and indexed, then every index file naming a retiring pack is
// replaced by a filtered copy, and only then are the packs deleted. At each step the repository
// is consistent; a crash leaves unindexed packs or duplicate entries, both harmless.
import { BlobType, type PackEntry } from '../repository/blob.js';
import { Compression, decompressBounded } from '../repository/compression.js';
import { blobIdFromHash, objectName, sealObject, sha256 } from '../repository/crypto.js';
import { encodeIndexRecords, type EncodedPackRecord } from '../repository/index-file.js';
import type { SubkeyCipher } from '../repository/crypto.js';
import { PackWriter, decryptPackBlob } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';

export interface PackCopierOptions {
  /**
   * Also decompress and re-hash every blob against its ID (default true). AES-GCM already proves
   * that a payload is the one written at its place in its pack, and the authenticated pack header
   * ties that place to the ID, so prune, which copies blobs it found through their own pack's
   * header, leaves this off: it is a third of the cost of a repack. `repair packs` keeps it on,
   * because there the pack is known to be damaged and the index, not its header, names the blobs.
   */
  verifyContent?: boolean;
}

/** Collects kept blobs into new packs of the repository's target size. */
export class PackCopier {
  /** The packs written so far, their entries encoded: a million entries as objects cost 150 MB. */
  readonly written: EncodedPackRecord[] = [];
  bytesWritten = 0;
  private writer: PackWriter | undefined;
  private readonly verifyContent: boolean;

  constructor(private readonly repo: Repository, options: PackCopierOptions = {}) {
    this.verifyContent = options.verifyContent ?? true;
  }

  /**
   * Copies one blob's encrypted payload, after checking it decrypts (and with `verifyContent`,
   * decompresses within bounds and hashes to its ID). Returns false (and copies nothing) for a
   * damaged blob.
   */
  async copy(entry: PackEntry, cipher: SubkeyCipher, ciphertext: Uint8Array): Promise<boolean> {
    const payload = decryptPackBlob(cipher, entry.offset, ciphertext);
    if (!payload) return false;
    if (this.verifyContent && !this.hashesToId(entry, payload)) return false;
    this.writer ??= new PackWriter(this.repo.keys);
    this.writer.add(entry.id, entry.type, entry.compression, payload, entry.rawLength);
    if (this.writer.size >= this.repo.config.packTargetSize) await this.finishPack();
    return true;
  }

  private hashesToId(entry: PackEntry, payload: Buffer): boolean {
    const limit = entry.type === BlobType.tree ? this.repo.config.maxTreeSize : this.repo.config.chunker.maxSize;
    const plain = entry.compression === Compression.zstd ? decompressBounded(payload, limit) : payload;
    return !!plain && blobIdFromHash(this.repo.keys, sha256(plain)).equals(entry.id);
  }

  private async finishPack(): Promise<void> {
    if (!this.writer || this.writer.count === 0) return;
    const pack = this.writer.finish();
    this.writer = undefined;
    await this.repo.storage.write('packs', pack.name, pack.parts);
    this.written.push(pack.encoded);
    this.bytesWritten += pack.size;
  }

  /** Writes the last pack and one index file for everything copied. */
  async finish(): Promise<void> {
    await this.finishPack();
    if (this.written.length === 0) return;
    const sealed = sealObject(this.repo.keys, encodeIndexRecords(this.written));
    await this.repo.storage.write('index', objectName(this.repo.keys, [sealed]), sealed);
  }
}

/**
 * Replaces the index files that name a retiring pack (`indexFiles`: file -> packs it names),
 * then deletes the packs. Call only after the copies of whatever must survive are indexed.
 */
export async function retirePacks(repo: Repository, retiring: ReadonlySet<string>, indexFiles: ReadonlyMap<string, readonly string[]>, onProgress?: (phase: 'rewrite-index' | 'delete', done: number, total: number) => void): Promise<{ indexFilesRewritten: number }> {
  const replaced: string[] = [];
  let done = 0;
  for (const [file, packs] of indexFiles) {
    onProgress?.('rewrite-index', done++, indexFiles.size);
    if (!packs.some((p) => retiring.has(p))) continue;
    // The kept records are copied as they are encoded: no entry is decoded to rewrite a file.
    const kept = (await repo.readIndexRecords(file)).filter((p) => !retiring.has(p.name));
    if (kept.length > 0) {
      const sealed = sealObject(repo.keys, encodeIndexRecords(kept));
      await repo.storage.write('index', objectName(repo.keys, [sealed]), sealed);
    }
    replaced.push(file);
  }
  for (const file of replaced) await repo.storage.delete('index', file);
  done = 0;
  for (const name of retiring) {
    onProgress?.('delete', done++, retiring.size);
    await repo.storage.delete('packs', name);
  }
  return { indexFilesRewritten: replaced.length };
}
