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

/** Reads each pack's header and writes index files listing them; unreadable packs are reported. */
async function indexPacks(repo: Repository, packs: { name: string; size: number }[], onProgress?: (done: number, total: number) => void): Promise<IndexRepairResult> {
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
  onProgress?.(packs.length, packs.length);
  return result;
}

async function listPacks(repo: Repository): Promise<{ name: string; size: number }[]> {
  const packs: { name: string; size: number }[] = [];
  for await (const p of repo.storage.list('packs')) packs.push(p);
  return packs;
}

export async function rebuildIndex(repo: Repository, onProgress?: (done: number, total: number) => void): Promise<IndexRepairResult> {
  const oldFiles: string[] = [];
  for await (const f of repo.storage.list('index')) oldFiles.push(f.name);
  const result = await indexPacks(repo, await listPacks(repo), onProgress);
  for (const f of oldFiles) {
    await repo.storage.delete('index', f);
    result.indexFilesRemoved++;
  }
  return result;
}

/**
 * Indexes the packs no index file lists: those a killed backup wrote but never indexed. Their
 * chunks are then found by the next backup instead of being stored again. A pack listed in a
 * damaged index file counts as unlisted; indexing it twice is harmless (the first entry wins).
 */
export async function indexUnindexedPacks(repo: Repository): Promise<IndexRepairResult> {
  const listed = new Set<string>();
  for await (const f of repo.storage.list('index')) {
    try {
      for (const p of await repo.readIndexFile(f.name)) listed.add(p.name);
    } catch {
      // `haul check` reports a damaged index file; here its packs are simply indexed again.
    }
  }
  return indexPacks(repo, (await listPacks(repo)).filter((p) => !listed.has(p.name)));
}
