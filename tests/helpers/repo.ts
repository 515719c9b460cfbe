// Opens a test repository in-process, to find where a blob lives and damage exactly that byte.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalStorage } from '../../daemon/storage/local.js';
import { Repository } from '../../daemon/repository/repository.js';
import type { IndexedPack } from '../../daemon/repository/index-file.js';

export const testPassphrase = 'correct horse battery staple';

export async function openTestRepository(dir: string): Promise<Repository> {
  const repo = await Repository.open(new LocalStorage(dir), testPassphrase);
  await repo.loadIndex();
  return repo;
}

export function packPath(repoDir: string, pack: string): string {
  return path.join(repoDir, 'packs', pack.slice(0, 2), pack);
}

export function flipBit(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0x10;
  fs.writeSync(fd, b, 0, 1, offset);
  fs.closeSync(fd);
}

/** Every (pack, blob) pair the index files list, sorted: for comparing two indexes. */
export async function indexEntries(repo: Repository): Promise<string[]> {
  const out: string[] = [];
  for await (const f of repo.storage.list('index')) {
    const packs: IndexedPack[] = await repo.readIndexFile(f.name);
    for (const p of packs) for (const e of p.entries) out.push(`${p.name} ${e.id.toString('hex')} ${e.type} ${e.compression} ${e.offset} ${e.length} ${e.rawLength}`);
  }
  return out.sort();
}
