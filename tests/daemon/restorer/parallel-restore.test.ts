// Restores whose chunks are opened on the blob-opening worker pool (chunks of 128 KiB or more
// stored), read ahead while the previous chunk is written: the result must be byte for byte,
// with every piece of metadata, and every check of the inline path must still hold there.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchiver } from '../../../daemon/archiver/local-archiver.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { Compression } from '../../../daemon/repository/compression.js';
import { sha256 } from '../../../daemon/repository/crypto.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { Restorer, resolvePath } from '../../../daemon/restorer/restorer.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { zstdFrame } from '../../helpers/fake-probe.js';
import { flipBit, packPath } from '../../helpers/repo.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
// Small chunks, so a few MiB make files of many chunks (each opened on the pool and read ahead).
const chunker = { algorithm: 'gear32-v1' as const, minSize: 192 * 1024, avgSize: 256 * 1024, maxSize: 1024 * 1024 };

describe('restore through the blob-opening worker pool', () => {
  const tmp = tempDir('parallel-restore');
  const data = path.join(tmp.dir, 'data');
  let repo: Repository;
  const random = pseudoRandom('parallel restore, random', 3 * 1024 * 1024 + 12345);
  const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i} of a log that compresses\n`).join(''));
  const sparse = Buffer.concat([pseudoRandom('sparse head', 100_000), Buffer.alloc(1024 * 1024), pseudoRandom('sparse tail', 50_000)]);
  const mtime = new Date('2021-03-04T05:06:07.123Z');

  beforeAll(async () => {
    fs.mkdirSync(path.join(data, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(data, 'random.bin'), random);
    fs.writeFileSync(path.join(data, 'sub', 'log.txt'), text);
    fs.writeFileSync(path.join(data, 'sparse.img'), sparse);
    fs.linkSync(path.join(data, 'sub', 'log.txt'), path.join(data, 'log-link.txt'));
    fs.symlinkSync('sub/log.txt', path.join(data, 'symlink'));
    fs.chmodSync(path.join(data, 'random.bin'), 0o640);
    fs.utimesSync(path.join(data, 'random.bin'), mtime, mtime);
    fs.utimesSync(path.join(data, 'sub'), mtime, mtime);
    repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf, chunker });
    await new LocalArchiver(repo, { client: 'pool', paths: [data] }).run();
  });
  afterAll(async () => {
    await repo.close();
    tmp.cleanup();
  });

  it('restores files of many chunks byte for byte, with modes, mtimes, hard links and symlinks', async () => {
    const target = path.join(tmp.dir, 'restored');
    const result = await new Restorer(repo).restore(await repo.findSnapshot('latest'), data, target);
    expect(result.problems).toEqual([]);
    expect(result.files).toBe(4);
    expect(fs.readFileSync(path.join(target, 'random.bin')).equals(random)).toBe(true);
    expect(fs.readFileSync(path.join(target, 'sub', 'log.txt')).equals(text)).toBe(true);
    expect(fs.readFileSync(path.join(target, 'sparse.img')).equals(sparse)).toBe(true);
    const log = fs.statSync(path.join(target, 'sub', 'log.txt'));
    expect(fs.statSync(path.join(target, 'log-link.txt')).ino).toBe(log.ino);
    expect(log.nlink).toBe(2);
    expect(fs.readlinkSync(path.join(target, 'symlink'))).toBe('sub/log.txt');
    const st = fs.statSync(path.join(target, 'random.bin'));
    expect(st.mode & 0o7777).toBe(0o640);
    expect(st.mtime.getTime()).toBe(mtime.getTime());
    expect(fs.statSync(path.join(target, 'sub')).mtime.getTime()).toBe(mtime.getTime());
    // The megabyte of zeros stays a hole.
    expect(fs.statSync(path.join(target, 'sparse.img')).blocks * 512).toBeLessThan(sparse.length - 512 * 1024);
  });

  it('refuses a file whose large chunk was changed on disk, and restores the rest', async () => {
    const { tree } = await resolvePath(repo, await repo.findSnapshot('latest'), data);
    const file = tree!.nodes.find((n) => n.name === 'random.bin')!;
    const id = file.content![3]!;
    const loc = repo.locate(Buffer.from(id, 'hex'))!;
    expect(loc.length).toBeGreaterThanOrEqual(128 * 1024);
    const copy = path.join(tmp.dir, 'damaged-repo');
    fs.cpSync(path.join(tmp.dir, 'repo'), copy, { recursive: true });
    flipBit(packPath(copy, loc.pack), loc.offset + 1000);
    const damaged = await Repository.open(new LocalStorage(copy), 'pw');
    try {
      const target = path.join(tmp.dir, 'restored-damaged');
      const result = await new Restorer(damaged).restore(await damaged.findSnapshot('latest'), data, target);
      expect(result.problems).toEqual([
        { path: `${target}/random.bin`, message: `not restored: chunk ${id.slice(0, 16)} in pack ${loc.pack} failed authentication: the pack's bytes were changed on disk. Run \`haul check --read-data\` to list the affected snapshots and files.` },
      ]);
      expect(fs.existsSync(path.join(target, 'random.bin'))).toBe(false);
      expect(fs.readFileSync(path.join(target, 'sub', 'log.txt')).equals(text)).toBe(true);
    } finally {
      await damaged.close();
    }
  });

  it('refuses a stored frame that decompresses beyond the chunk limit, or to other bytes, when opened on the pool', async () => {
    const claimed = pseudoRandom('what the ID says', 160 * 1024);
    // A bomb: a frame of 160 KiB (so it is opened on the pool, from 128 KiB) that declares 2.2 MiB, above the 1 MiB maximum chunk.
    const bombFrame = zstdFrame(Buffer.concat([claimed, Buffer.alloc(2 * 1024 * 1024)]));
    expect(bombFrame.length).toBeGreaterThan(128 * 1024);
    const bomb = await repo.saveEncodedBlob(BlobType.data, sha256(claimed), claimed.length, { compression: Compression.zstd, data: bombFrame });
    const other = pseudoRandom('other bytes', 200 * 1024);
    const liar = await repo.saveEncodedBlob(BlobType.data, sha256(other), other.length, { compression: Compression.zstd, data: zstdFrame(pseudoRandom('not the same', 200 * 1024)) });
    await repo.flush();
    const what = (id: Buffer) => `chunk ${id.toString('hex').slice(0, 16)} in pack ${repo.locate(id)!.pack}`;
    await expect(repo.loadBlob(bomb.id, BlobType.data)).rejects.toThrow(`${what(bomb.id)} does not decompress to a valid chunk.`);
    await expect(repo.loadBlob(liar.id, BlobType.data)).rejects.toThrow(`${what(liar.id)} has the wrong content (hash mismatch).`);
  });
});
