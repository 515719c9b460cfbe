// `haul repair packs`: retire damaged packs. Every blob of a damaged pack that still verifies is
// copied into a new pack; the rest are dropped from the index. Dropping them is what lets a
// repository heal: the next backup of a client that still has those chunks finds them missing
// and uploads them again under the same IDs, which makes every older snapshot that used them
// whole again.
import type { PackEntry } from '../repository/blob.js';
import { verifyObjectName } from '../repository/crypto.js';
import { decodeEntries } from '../repository/index-file.js';
import { lockRepository } from '../repository/lock.js';
import { packCipher, packPreambleLength } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';
import { PackCopier, retirePacks } from './pack-replacement.js';

export interface RepairPacksReport {
  packsChecked: number;
  packsRepaired: string[];
  blobsSalvaged: number;
  /** Blob IDs (hex) that were damaged and are no longer in the index. */
  blobsLost: string[];
}

export async function repairPacks(repo: Repository, only?: readonly string[], onProgress?: (done: number, total: number) => void): Promise<RepairPacksReport> {
  const lock = await lockRepository(repo, 'exclusive', { purpose: 'repair packs' });
  try {
    const wanted = only ? new Set(only) : undefined;
    const entries = new Map<string, PackEntry[]>();
    const indexFiles = new Map<string, string[]>();
    await repo.loadIndex(undefined, (file, pack) => {
      indexFiles.set(file, [...(indexFiles.get(file) ?? []), pack.name]);
      if (wanted && !wanted.has(pack.name)) return;
      // The index, not the pack's own header, says where blobs are: the header may be the damage.
      if (!entries.has(pack.name)) entries.set(pack.name, decodeEntries(pack).map((e) => ({ ...e, id: Buffer.from(e.id) })));
    });
    const report: RepairPacksReport = { packsChecked: 0, packsRepaired: [], blobsSalvaged: 0, blobsLost: [] };
    const copier = new PackCopier(repo);
    let done = 0;
    for (const [name, list] of entries) {
      onProgress?.(done++, entries.size);
      report.packsChecked++;
      let whole: Buffer;
      try {
        whole = await repo.storage.read('packs', name);
      } catch {
        whole = Buffer.alloc(0); // missing or unreadable: every blob in it is lost
      }
      if (whole.length > 0 && verifyObjectName(repo.keys, name, [whole])) continue;
      const cipher = whole.length >= packPreambleLength ? packCipher(repo.keys, whole.subarray(0, packPreambleLength)) : undefined;
      for (const e of list) {
        const inside = e.offset + e.length <= whole.length;
        if (cipher && inside && (await copier.copy(e, cipher, whole.subarray(e.offset, e.offset + e.length)))) report.blobsSalvaged++;
        else report.blobsLost.push(e.id.toString('hex'));
      }
      report.packsRepaired.push(name);
    }
    await copier.finish();
    if (report.packsRepaired.length > 0) await retirePacks(repo, new Set(report.packsRepaired), indexFiles);
    return report;
  } finally {
    await lock.release();
  }
}
