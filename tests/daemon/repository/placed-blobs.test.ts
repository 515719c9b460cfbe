// Places reserved in the open pack (Repository.reserveBlob), which a worker thread fills once a
// chunk passes its check: a place counts as stored only when filled, a place whose chunk failed
// holds a blob of zeros under the zeros' own ID, and a pack with places is written whole.
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { sharedBlobWorkers } from '../../../daemon/repository/blob-worker-pool.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { Compression, compressBlob } from '../../../daemon/repository/compression.js';
import { blobIdFromHash, sha256 } from '../../../daemon/repository/crypto.js';
import { Repository, maxPackArenas, type BlobPlace } from '../../../daemon/repository/repository.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom, textLike } from '../../helpers/fixtures.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

/**
 * Has the process's worker pool check a chunk as received (a zstd frame, or raw bytes) against
 * `claim` and fill `place` when it matches, as the pull session does; whether it passed.
 */
async function fillOnWorker(place: BlobPlace, data: Buffer, zstd: boolean, rawLength: number, claim: Buffer): Promise<boolean> {
  const items = Uint32Array.from([0, data.length, zstd ? 1 : 0, rawLength, 0, place.at, place.counter]);
  const hashed = await sharedBlobWorkers().hashBatch({ memory: Buffer.from(data), items, claims: claim, places: [{ arena: place.arena, key: place.key }] });
  return hashed.failed[0] === 0 && hashed.shas.subarray(0, 32).equals(claim);
}

describe('places in the open pack', () => {
  const tmp = tempDir('haul-placed-');
  afterAll(() => tmp.cleanup());

  it('a filled place is stored; a failed one becomes zeros under their own ID; the pack reads back whole', async () => {
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf });
    await repo.loadIndex();
    const good = Buffer.from(textLike('placed good', 20_000));
    const bad = Buffer.from(textLike('placed bad', 12_000));
    const goodFrame = Buffer.from(compressBlob(good, 3).data);
    const badFrame = Buffer.from(compressBlob(bad, 3).data);
    const goodId = blobIdFromHash(repo.keys, sha256(good));
    const lie = sha256(Buffer.from('what the bad chunk claims'));
    const lieId = blobIdFromHash(repo.keys, lie);

    await repo.readyToPlace();
    const goodPlace = repo.reserveBlob(BlobType.data, goodId, Compression.zstd, goodFrame.length, good.length);
    const badPlace = repo.reserveBlob(BlobType.data, lieId, Compression.zstd, badFrame.length, bad.length);
    if (typeof goodPlace !== 'object' || typeof badPlace !== 'object') throw new Error('expected two places in the open pack');
    // Unchecked: not stored, and a second claim of the same ID gets no second place.
    expect(repo.hasBlob(goodId)).toBe(false);
    expect(repo.reserveBlob(BlobType.data, goodId, Compression.zstd, goodFrame.length, good.length)).toBeUndefined();

    const goodWritten = await fillOnWorker(goodPlace, goodFrame, true, good.length, sha256(good));
    const badWritten = await fillOnWorker(badPlace, badFrame, true, bad.length, lie);
    expect([goodWritten, badWritten]).toEqual([true, false]);
    goodPlace.done(goodWritten);
    badPlace.done(badWritten);
    expect(repo.hasBlob(goodId)).toBe(true);
    expect(repo.reserveBlob(BlobType.data, goodId, Compression.zstd, goodFrame.length, good.length)).toBe('present');
    await repo.flush();

    const zerosId = blobIdFromHash(repo.keys, sha256(Buffer.alloc(badFrame.length)));
    expect(repo.hasBlob(lieId)).toBe(false);
    expect(repo.hasBlob(zerosId)).toBe(true);
    const reader = repo.reopen();
    expect((await reader.loadBlob(goodId, BlobType.data)).equals(good)).toBe(true);
    expect((await reader.loadBlob(zerosId, BlobType.data)).equals(Buffer.alloc(badFrame.length))).toBe(true);
    const report = await checkRepository(reader, { readData: true });
    expect(report.problems).toEqual([]);
    await repo.close();
  });

  it('a place that fails while its pack already waits to be written: the pack\'s header and the index name the zeros, never the claim', async () => {
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'late-failure')), 'pw', { kdf });
    (repo.config as { packTargetSize: number }).packTargetSize = 200 * 1024;
    await repo.loadIndex();
    const chunks = [0, 1, 2, 3].map((i) => pseudoRandom(`late ${i}`, 100_000));
    const claims = chunks.map((c, i) => (i === 1 ? sha256(Buffer.from('a claim chunk 1 does not keep')) : sha256(c)));
    // Readying the fourth place finds the first pack full: that pack's flush starts and waits for places 1-3.
    const places: BlobPlace[] = [];
    for (const [i, c] of chunks.entries()) {
      await repo.readyToPlace();
      places.push(repo.reserveBlob(BlobType.data, blobIdFromHash(repo.keys, claims[i]!), Compression.none, c.length, c.length) as BlobPlace);
    }
    expect(places.every((p) => typeof p === 'object')).toBe(true);
    for (const [i, c] of chunks.entries()) places[i]!.done(await fillOnWorker(places[i]!, c, false, c.length, claims[i]!));
    await repo.flush();
    // Read back from storage alone: index files, pack headers, blobs.
    const fresh = await Repository.open(new LocalStorage(path.join(tmp.dir, 'late-failure')), 'pw');
    await fresh.loadIndex();
    expect(fresh.hasBlob(blobIdFromHash(repo.keys, claims[1]!))).toBe(false);
    expect(fresh.hasBlob(blobIdFromHash(repo.keys, sha256(Buffer.alloc(chunks[1]!.length))))).toBe(true);
    for (const i of [0, 2, 3]) expect((await fresh.loadBlob(blobIdFromHash(repo.keys, claims[i]!), BlobType.data)).equals(chunks[i]!)).toBe(true);
    expect((await checkRepository(fresh, { readData: true })).problems).toEqual([]);
    await fresh.close();
    await repo.close();
  });

  it('a pack is written only once its places are filled, and places in a full pack start the next one', async () => {
    // 200 KiB packs: each place of ~100 KiB of incompressible data fills half of one.
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'rotate')), 'pw', { kdf });
    (repo.config as { packTargetSize: number }).packTargetSize = 200 * 1024;
    await repo.loadIndex();
    const chunks = [0, 1, 2, 3, 4].map((i) => pseudoRandom(`rotate ${i}`, 100_000));
    const places: ReturnType<Repository['reserveBlob']>[] = [];
    for (const c of chunks) {
      await repo.readyToPlace();
      places.push(repo.reserveBlob(BlobType.data, blobIdFromHash(repo.keys, sha256(c)), Compression.none, c.length, c.length));
    }
    expect(places.every((p) => typeof p === 'object')).toBe(true);
    // Nothing is written while the places wait (the first pack is full, its flush waits for them).
    await new Promise((r) => setTimeout(r, 50));
    expect(repo.written.packsWritten).toBe(0);
    for (const [i, c] of chunks.entries()) {
      const place = places[i] as BlobPlace;
      place.done(await fillOnWorker(place, c, false, c.length, sha256(c)));
    }
    await repo.flush();
    expect(repo.written.packsWritten).toBe(2);
    const reader = repo.reopen();
    for (const c of chunks) expect((await reader.loadBlob(blobIdFromHash(repo.keys, sha256(c)), BlobType.data)).equals(c)).toBe(true);
    expect((await checkRepository(reader, { readData: true })).problems).toEqual([]);
    await repo.close();
  });

  it('a new pack waits for an arena while every one holds a pack still being checked, then gets places as before', async () => {
    // 200 KiB packs, two chunks of 110,000 bytes fill one: that many packs use every arena.
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'arena-wait')), 'pw', { kdf });
    (repo.config as { packTargetSize: number }).packTargetSize = 200 * 1024;
    await repo.loadIndex();
    const filling = 2 * maxPackArenas;
    const chunks = Array.from({ length: filling + 1 }, (_, i) => pseudoRandom(`arena wait ${i}`, 110_000));
    const places: BlobPlace[] = [];
    const reserve = (c: Buffer) => repo.reserveBlob(BlobType.data, blobIdFromHash(repo.keys, sha256(c)), Compression.none, c.length, c.length) as BlobPlace;
    const fill = async (i: number) => places[i]!.done(await fillOnWorker(places[i]!, chunks[i]!, false, chunks[i]!.length, sha256(chunks[i]!)));
    for (const c of chunks.slice(0, filling)) {
      await repo.readyToPlace();
      places.push(reserve(c));
    }
    expect(places.every((p) => typeof p === 'object')).toBe(true);
    // The next pack has no arena until the first pack, once its places are filled, is written.
    let ready = false;
    const readied = repo.readyToPlace().then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(ready).toBe(false);
    expect(repo.written.packsWritten).toBe(0);
    await fill(0);
    await fill(1);
    await readied;
    expect(repo.written.packsWritten).toBe(1);
    places.push(reserve(chunks[filling]!));
    expect(typeof places[filling]).toBe('object');
    for (let i = 2; i <= filling; i++) await fill(i);
    await repo.flush();
    expect(repo.written.packsWritten).toBe(maxPackArenas + 1);
    const reader = repo.reopen();
    for (const c of chunks) expect((await reader.loadBlob(blobIdFromHash(repo.keys, sha256(c)), BlobType.data)).equals(c)).toBe(true);
    expect((await checkRepository(reader, { readData: true })).problems).toEqual([]);
    await repo.close();
  });
});
