// `haul repair index`: rebuild the whole index from pack headers alone. Old index files are
// deleted only after the new ones are durable, and only those listed before the rebuild began,
// so a backup that writes its own index meanwhile loses nothing.
import type { PackEntry } from './blob.js';
import { encodeIndex, type IndexedPack } from './index-file.js';
import { objectName, sealObject } from './crypto.js';
import { packPreambleLength, packTailGuess, parsePackHeader } from './pack.js';
import type { Repository } from './repository.js';

export interface IndexRepairResult {
  packs: number;
  blobs: number;
  unreadablePacks: { pack: string; message: string }[];
  indexFilesWritten: number;
  indexFilesRemoved: number;
}

const packsPerFile = 1024;

export async function readPackHeader(repo: Repository, pack: string, size: number): Promise<PackEntry[]> {
  const preamble = await repo.storage.read('packs', pack, { offset: 0, length: Math.min(size, packPreambleLength) });
  const tailLength = Math.min(size, packTailGuess);
  let tail = await repo.storage.read('packs', pack, { offset: size - tailLength, length: tailLength });
  const headerLength = tail.length >= 4 ? tail.readUInt32LE(tail.length - 4) : 0;
  if (headerLength + 4 > tail.length && headerLength + 4 <= size) {
    tail = await repo.storage.read('packs', pack, { offset: size - headerLength - 4, length: headerLength + 4 });
  }
  return parsePackHeader(repo.keys, pack, preamble, tail, size);
}

export async function rebuildIndex(repo: Repository, onProgress?: (done: number, total: number) => void): Promise<IndexRepairResult> {
  const oldFiles: string[] = [];
  for await (const f of repo.storage.list('index')) oldFiles.push(f.name);
  const packs: { name: string; size: number }[] = [];
  for await (const p of repo.storage.list('packs')) packs.push(p);
  const result: IndexRepairResult = { packs: 0, blobs: 0, unreadablePacks: [], indexFilesWritten: 0, indexFilesRemoved: 0 };
  let batch: IndexedPack[] = [];
  const writeBatch = async () => {
    if (batch.length === 0) return;
    const sealed = sealObject(repo.keys, encodeIndex(batch));
    await repo.storage.write('index', objectName(repo.keys, [sealed]), sealed);
    result.indexFilesWritten++;
    batch = [];
  };
  for (let i = 0; i < packs.length; i++) {
    onProgress?.(i, packs.length);
    const { name, size } = packs[i]!;
    try {
      const entries = await readPackHeader(repo, name, size);
      batch.push({ name, entries });
      result.packs++;
      result.blobs += entries.length;
    } catch (err) {
      result.unreadablePacks.push({ pack: name, message: (err as Error).message });
    }
    if (batch.length >= packsPerFile) await writeBatch();
  }
  await writeBatch();
  for (const f of oldFiles) {
    await repo.storage.delete('index', f);
    result.indexFilesRemoved++;
  }
  onProgress?.(packs.length, packs.length);
  return result;
}
