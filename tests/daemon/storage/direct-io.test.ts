// Packs written with direct I/O (O_DIRECT), past the page cache: byte-exact objects, nothing left
// behind, and the cached path wherever direct I/O cannot be used. Whether a file's pages are in
// the page cache is read with fincore (util-linux): a pack written directly has none resident,
// the same bytes written through the cache have them all.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { BlobType } from '../../../daemon/repository/blob.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom, textLike } from '../../helpers/fixtures.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

/** Bytes of `file` resident in the page cache. */
function residentBytes(file: string): number {
  const out = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  return Number(out.stdout.trim());
}

function leftovers(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => path.basename(f).startsWith('.tmp-'));
}

const tmp = tempDir('direct-io');
// tmpfs keeps every file in the page cache, so residency says nothing there; the repositories
// of these tests live on the disk that holds the temporary directory.
const fsType = spawnSync('findmnt', ['--noheadings', '--output', 'FSTYPE', '--target', tmp.dir], { encoding: 'utf8' }).stdout.trim();
afterAll(() => tmp.cleanup());

describe.runIf(fsType !== 'tmpfs' && fsType !== 'ramfs')(`direct writes on a disk (${fsType})`, () => {
  const root = path.join(tmp.dir, 'disk');

  it('stores objects from allocateWriteBuffer byte for byte, without filling the page cache, at any length', async () => {
    const storage = new LocalStorage(root);
    await storage.create();
    const buffer = storage.allocateWriteBuffer(3 * 1024 * 1024 + 4096);
    expect(buffer.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(buffer.length).toBe(3 * 1024 * 1024 + 4096);
    for (const [i, length] of [1, 4095, 4096, 4097, 3 * 1024 * 1024 + 5].entries()) {
      const bytes = pseudoRandom(`direct ${i}`, length);
      bytes.copy(buffer);
      const name = `${i}`.repeat(64).slice(0, 64);
      await storage.write('packs', name, [buffer.subarray(0, length)]);
      const file = path.join(root, 'packs', name.slice(0, 2), name);
      expect(fs.statSync(file).size).toBe(length);
      expect(residentBytes(file)).toBe(0);
      expect((await storage.read('packs', name)).equals(bytes)).toBe(true);
    }
    expect(leftovers(root)).toEqual([]);
  });

  it('writes through the cache what direct I/O cannot take: other memory, a view not at an aligned start, several pieces', async () => {
    const storage = new LocalStorage(path.join(tmp.dir, 'cached'));
    await storage.create();
    const bytes = pseudoRandom('cached', 1024 * 1024);
    const aligned = storage.allocateWriteBuffer(2 * 1024 * 1024);
    bytes.copy(aligned, 1);
    const cases: [string, Buffer | Buffer[]][] = [
      ['a'.repeat(64), Buffer.from(bytes)],
      ['b'.repeat(64), aligned.subarray(1, 1 + bytes.length)],
      ['c'.repeat(64), [bytes.subarray(0, 1000), bytes.subarray(1000)]],
    ];
    for (const [name, data] of cases) {
      await storage.write('packs', name, data);
      const file = path.join(storage.location, 'packs', name.slice(0, 2), name);
      expect(residentBytes(file)).toBe(bytes.length);
      expect((await storage.read('packs', name)).equals(bytes)).toBe(true);
    }
    expect(leftovers(storage.location)).toEqual([]);
  });

  it('a repository writes its packs directly; every blob reads back and check --read-data passes', async () => {
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf });
    await repo.loadIndex();
    const blobs: { id: Buffer; data: Buffer }[] = [];
    // 40 MiB of incompressible 1 MiB chunks, then 3,000 small compressible ones: three packs.
    for (let i = 0; i < 40; i++) {
      const data = pseudoRandom(`large ${i}`, 1024 * 1024);
      blobs.push({ id: (await repo.saveBlob(BlobType.data, data)).id, data });
    }
    for (let i = 0; i < 3000; i++) {
      const data = textLike(`small ${i}`, 2000);
      blobs.push({ id: (await repo.saveBlob(BlobType.data, data)).id, data });
    }
    await repo.flush();
    const packDir = path.join(tmp.dir, 'repo', 'packs');
    const packs = fs.readdirSync(packDir).flatMap((d) => fs.readdirSync(path.join(packDir, d)).map((f) => path.join(packDir, d, f)));
    expect(packs.length).toBe(3);
    for (const pack of packs) expect(residentBytes(pack)).toBe(0);
    expect(leftovers(path.join(tmp.dir, 'repo'))).toEqual([]);

    const reader = await Repository.open(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw');
    await reader.loadIndex();
    for (const { id, data } of blobs) expect((await reader.loadBlob(id, BlobType.data)).equals(data)).toBe(true);
    expect((await checkRepository(reader, { readData: true })).problems).toEqual([]);
  });
});

// ramfs refuses O_DIRECT at open; mounting it needs root, as the full-disk test's tmpfs does.
const ramfs = path.join(tmp.dir, 'ramfs');
fs.mkdirSync(ramfs);
const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'ramfs', 'ramfs', ramfs]).status === 0;

describe.runIf(mounted)('a file system that refuses direct I/O (ramfs; needs root to mount)', () => {
  afterAll(() => {
    spawnSync('umount', [ramfs]);
  });

  it('gives shared memory all the same, stores through the cache, and leaves no scratch file', async () => {
    const storage = new LocalStorage(path.join(ramfs, 'repo'));
    await storage.create();
    const buffer = storage.allocateWriteBuffer(1024 * 1024);
    expect(buffer.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(buffer.byteOffset).toBe(0);
    const bytes = pseudoRandom('ramfs', 1024 * 1024);
    bytes.copy(buffer);
    await storage.write('packs', 'd'.repeat(64), [buffer]);
    expect((await storage.read('packs', 'd'.repeat(64))).equals(bytes)).toBe(true);
    expect(leftovers(storage.location)).toEqual([]);
  });
});
