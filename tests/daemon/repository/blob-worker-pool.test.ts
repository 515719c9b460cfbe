// The blob worker pool (daemon/repository/blob-worker-pool.ts) and the handles' life cycle: one
// pool per process shared by every Repository handle, a crashed worker fails only its own job,
// and closing a repository closes the pack files its storage holds open (a reopened handle
// leaves the shared storage alone).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCipheriv } from 'node:crypto';
import { BlobWorkerPool, noPlace } from '../../../daemon/repository/blob-worker-pool.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { compressBlob } from '../../../daemon/repository/compression.js';
import { generateMasterKeys, objectName, sha256 } from '../../../daemon/repository/crypto.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom, textLike } from '../../helpers/fixtures.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
/** crypto.ts's blob nonce: domain 0, then the counter as 64 bits big-endian. */
const nonceFor = (counter: number) => {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 4);
  n.writeUInt32BE(counter >>> 0, 8);
  return n;
};
const threads = () => fs.readdirSync('/proc/self/task').length;
const openFiles = (dir: string) => fs.readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
  } catch {
    return false;
  }
}).length;

describe('blob worker pool', () => {
  const tmp = tempDir('haul-blob-pool-');
  afterAll(() => tmp.cleanup());

  it('compresses by the repository\'s rule, hashes frames to their exact length, and opens nothing it cannot', async () => {
    const pool = new BlobWorkerPool(2);
    const text = Buffer.from(textLike('pool-text', 256 * 1024));
    const noise = pseudoRandom('pool-noise', 256 * 1024);
    const packed = await pool.compress(text, 3);
    expect(packed).toEqual({ data: new Uint8Array(compressBlob(text, 3).data), compression: 1 });
    expect(await pool.compress(noise, 3)).toEqual({ data: new Uint8Array(noise), compression: 0 });

    const frame = Buffer.from(packed.data);
    const hashed = await pool.hash({ data: Buffer.from(frame), exclusive: true, zstd: true, rawLength: text.length });
    expect(hashed).toEqual({ sha256: sha256(text), data: frame });
    expect(await pool.hash({ data: Buffer.from(frame), exclusive: false, zstd: true, rawLength: text.length - 1 })).toBe('decompression');
    expect(await pool.open({ key: Buffer.alloc(32, 7), counter: 40, ciphertext: Buffer.alloc(15), zstd: false, limit: 1 << 20 })).toBe('authentication');
    await pool.close();
    await expect(pool.compress(text, 3)).rejects.toThrow('the blob worker pool is closed');
  });

  it('one worker hashes frame after frame into the same scratch memory, each to its own SHA-256; names packs as objectName does', async () => {
    const pool = new BlobWorkerPool(1);
    const big = Buffer.from(textLike('pool-big', 900 * 1024));
    const small = Buffer.from(textLike('pool-small', 100 * 1024));
    for (const plain of [big, small, big]) {
      const frame = Buffer.from(compressBlob(plain, 3).data);
      expect(await pool.hash({ data: Buffer.from(frame), exclusive: true, zstd: true, rawLength: plain.length })).toEqual({ sha256: sha256(plain), data: frame });
    }
    const keys = generateMasterKeys();
    const shared = Buffer.from(new SharedArrayBuffer(4096)).fill(5);
    const parts = [Buffer.from('HAULPAK1'), shared.subarray(0, 3000), Buffer.from('trailer')];
    expect(await pool.objectName(keys, parts)).toBe(objectName(keys, parts));
    await pool.close();
  });

  it('hashes a batch of chunks in one message: each to its own SHA-256, a frame that does not decompress to its declared length marked failed', async () => {
    const pool = new BlobWorkerPool(1);
    const text = Buffer.from(textLike('batch-text', 20_000));
    const raw = pseudoRandom('batch-raw', 3_000);
    const zeros = Buffer.alloc(2 * 1024 * 1024);
    const frame = Buffer.from(compressBlob(text, 3).data);
    const zeroFrame = Buffer.from(compressBlob(zeros, 3).data);
    // text (zstd), raw bytes, a 2 MiB run of zeros in a few bytes, then a bomb: the text's frame claiming 1 byte less.
    const chunks = [{ data: frame, zstd: true, rawLength: text.length }, { data: raw, zstd: false, rawLength: raw.length }, { data: zeroFrame, zstd: true, rawLength: zeros.length }, { data: frame, zstd: true, rawLength: text.length - 1 }];
    const memory = Buffer.concat(chunks.map((c) => c.data));
    // Places in a shared arena: the text at 100 (its claim right), the raw bytes at 30,000 (its claim wrong: not written).
    const arena = new SharedArrayBuffer(64 * 1024);
    const key = pseudoRandom('batch-key', 32);
    const placeAt = [100, 30_000, -1, -1];
    const items: number[] = [];
    let offset = 0;
    for (const [i, c] of chunks.entries()) {
      items.push(offset, c.data.length, c.zstd ? 1 : 0, c.rawLength, placeAt[i]! < 0 ? noPlace : 0, Math.max(0, placeAt[i]!), 4242 + i);
      offset += c.data.length;
    }
    const claims = Buffer.concat([sha256(text), sha256(Buffer.from('not the raw bytes')), sha256(zeros), sha256(text)]);
    const hashed = await pool.hashBatch({ memory: Buffer.from(memory), items: Uint32Array.from(items), claims, places: [{ arena, key }] });
    expect([...hashed.failed]).toEqual([0, 0, 0, 1]);
    expect(hashed.shas.subarray(0, 96)).toEqual(Buffer.concat([sha256(text), sha256(raw), sha256(zeros)]));
    expect(hashed.memory).toEqual(memory);
    // The text's frame, encrypted as crypto.ts encrypts a blob at counter 4242; nothing at the raw bytes' place.
    const placed = Buffer.from(arena, 100, frame.length + 16);
    const cipher = { encrypt: (counter: number, plain: Buffer) => { const c = createCipheriv('aes-256-gcm', key, nonceFor(counter)); return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]); } };
    expect(placed).toEqual(cipher.encrypt(4242, frame));
    expect(Buffer.from(arena, 30_000, raw.length + 16)).toEqual(Buffer.alloc(raw.length + 16));
    await pool.close();
  });

  it('a worker that dies fails only its own job; a fresh worker takes the jobs waiting behind it', async () => {
    const pool = new BlobWorkerPool(1);
    const data = pseudoRandom('pool-after-crash', 64 * 1024);
    // No such kind of work: the worker throws and exits, as it would on a fatal error.
    const crash = (pool as unknown as { run: (m: object, t: ArrayBuffer[], r: () => void) => Promise<void> }).run({ kind: 'no-such-work' }, [], () => undefined);
    const behind = pool.hash({ data: Buffer.from(data), exclusive: false, zstd: false, rawLength: data.length });
    await expect(crash).rejects.toThrow(/not a function/);
    expect(await behind).toEqual({ sha256: sha256(data), data: Buffer.from(data) });
    await pool.close();
  });

  it('every repository handle of the process shares one pool: two jobs\' handles start no extra threads', async () => {
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'shared')), 'pw', { kdf });
    const data = pseudoRandom('pool-shared', 64 * 1024);
    const request = () => ({ data: Buffer.from(data), exclusive: false, zstd: false, rawLength: data.length });
    await repo.hashOnWorker(request());
    const before = threads();
    const jobs = [repo.reopen(), repo.reopen()];
    const results = await Promise.all(jobs.flatMap((j) => [j.hashOnWorker(request()), j.hashOnWorker(request())]));
    expect(results.map((r) => r !== 'decompression' && r.sha256.equals(sha256(data)))).toEqual([true, true, true, true]);
    expect(threads()).toBe(before);
    for (const j of jobs) await j.close();
    await repo.close();
  });

  it('closing the repository closes its cached pack files; closing a reopened handle leaves them to their owner', async () => {
    const dir = path.join(tmp.dir, 'handles');
    const repo = await Repository.init(new LocalStorage(dir), 'pw', { kdf });
    const blobs = [pseudoRandom('handles-a', 200 * 1024), pseudoRandom('handles-b', 300 * 1024)];
    const ids = [];
    for (const b of blobs) ids.push((await repo.saveBlob(BlobType.data, b)).id);
    await repo.flush();
    const reader = repo.reopen();
    expect((await reader.loadBlob(ids[0]!, BlobType.data)).equals(blobs[0]!)).toBe(true);
    expect(openFiles(path.join(dir, 'packs'))).toBe(1);
    await reader.close();
    expect(openFiles(path.join(dir, 'packs'))).toBe(1);
    await repo.close();
    expect(openFiles(path.join(dir, 'packs'))).toBe(0);
    // Still usable after close: the next read opens the pack again.
    expect((await repo.loadBlob(ids[1]!, BlobType.data)).equals(blobs[1]!)).toBe(true);
    await repo.close();
    expect(openFiles(path.join(dir, 'packs'))).toBe(0);
  });
});
