// Prune and check on a pack of 200,000 blobs, in-process on a real repository: the encoded index
// paths (loading, repacking from the pack header, rewriting index files) keep every blob a
// snapshot needs byte for byte, and check copes with a pack that large (a spread of its entries
// once overflowed the call stack).
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { ChunkIndex } from '../../../daemon/repository/chunk-index.js';
import { decodeIndex, decodeIndexRecords, encodeIndex, encodeIndexRecords } from '../../../daemon/repository/index-file.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { pruneRepository } from '../../../daemon/maintenance/prune.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';

const blobCount = 200_000;
const fastKdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
/** Blob i: 12 bytes no other blob has (stored uncompressed, being under 64 bytes). */
const blob = (i: number) => Buffer.from(`blob-${String(i).padStart(7, '0')}`);

describe('prune and check at 200,000 blobs in one pack', () => {
  const tmp = tempDir('prune-many');
  afterAll(() => tmp.cleanup());

  it('repacks the half a snapshot uses, byte for byte, and check --read-data passes', async () => {
    const dir = path.join(tmp.dir, 'repo');
    const repo = await Repository.init(new LocalStorage(dir), 'pw', { kdf: fastKdf });
    const ids: string[] = [];
    for (let i = 0; i < blobCount; i++) ids.push((await repo.saveBlob(BlobType.data, blob(i))).id.toString('hex'));
    // One file made of the even blobs: the odd ones are garbage for prune.
    const kept = ids.filter((_, i) => i % 2 === 0);
    const tree = await repo.saveTree({ nodes: [{ name: 'evens', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', ctime: '0', size: kept.length * 12, content: kept }] });
    await repo.saveSnapshot({ format: 'haul-snapshot-v1', client: 'c', time: new Date(0).toISOString(), hostname: 'h', paths: ['/evens'], tags: [], tree, source: 'local', stats: { files: 1, dirs: 0, bytes: kept.length * 12, bytesRead: 0, bytesNew: 0, bytesStored: 0, blobsNew: 0, errors: 0, durationMs: 0 } });
    await repo.close();

    const before = await Repository.open(new LocalStorage(dir), 'pw');
    const report = await pruneRepository(before);
    expect(report).toMatchObject({ blobsUsed: blobCount / 2 + 1, blobsUnused: blobCount / 2, packsBefore: 1, packsDeleted: 0, packsRepacked: 1, packsWritten: 1, indexFilesRewritten: 1 });
    // 100,000 blobs of 12 + 16 bytes went, less the new pack's own smaller header.
    expect(report.bytesFreed).toBe((blobCount / 2) * (28 + 46));

    const after = await Repository.open(new LocalStorage(dir), 'pw');
    const check = await checkRepository(after, { readData: true });
    expect(check.problems).toEqual([]);
    expect(check.blobs).toBe(blobCount / 2 + 1);
    for (let i = 0; i < blobCount; i += 2) {
      if (i % 20_000 === 0 || i === blobCount - 2) expect(await after.loadBlob(Buffer.from(ids[i]!, 'hex'), BlobType.data)).toEqual(blob(i));
    }
    expect(after.locate(Buffer.from(ids[1]!, 'hex'))).toBeUndefined();
  }, 300_000);

  it('encodes index records byte for byte as encodeIndex does, and the chunk index loads them as add would', () => {
    const entries = Array.from({ length: 1000 }, (_, i) => ({ id: createHash('sha256').update(`entry ${i}`).digest(), type: (i % 3 === 0 ? 1 : 0) as BlobType, compression: (i % 2) as 0 | 1, offset: 40 + i * 100, length: 100, rawLength: 90 + (i % 7) }));
    const packs = [{ name: 'ab'.repeat(32), entries: entries.slice(0, 600) }, { name: 'cd'.repeat(32), entries: entries.slice(600) }];
    const file = encodeIndex(packs);
    const records = decodeIndexRecords(file, 'test index');
    expect(records.map((r) => [r.name, r.count])).toEqual([['ab'.repeat(32), 600], ['cd'.repeat(32), 400]]);
    expect(encodeIndexRecords(records).equals(file)).toBe(true);
    expect(decodeIndex(file, 'test index')).toEqual(packs);
    const byAdd = new ChunkIndex();
    for (const p of packs) for (const e of p.entries) byAdd.add(p.name, e);
    const byRecord = new ChunkIndex();
    for (const r of records) byRecord.addEncoded(r);
    expect(byRecord.size).toBe(1000);
    for (const e of entries) expect(byRecord.get(e.id)).toEqual(byAdd.get(e.id));
  });

  it('refuses an index file with a byte too many or an unknown blob type', () => {
    const file = encodeIndex([{ name: 'ab'.repeat(32), entries: [{ id: Buffer.alloc(32, 7), type: 0, compression: 0, offset: 40, length: 20, rawLength: 4 }] }]);
    const message = 'test index is malformed. Run `haul repair index` to rebuild the index from the packs.';
    expect(() => decodeIndexRecords(Buffer.concat([file, Buffer.alloc(1)]), 'test index')).toThrow(message);
    const badType = Buffer.from(file);
    badType[5 + 36] = 2;
    expect(() => decodeIndexRecords(badType, 'test index')).toThrow(message);
  });
});
