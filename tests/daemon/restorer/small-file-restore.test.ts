// Restores of many files of at most one chunk, which go through the small-file writer (chunks
// read as pack ranges, verified and written on worker threads): every byte and every piece of
// metadata must come back, every check of the one-file-at-a-time path must still hold, and a
// failure must name the file and leave nothing half-written.
import { execFileSync } from 'node:child_process';
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
import { zstdFrame } from '../../helpers/fake-probe.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { flipBit, packPath } from '../../helpers/repo.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const isRoot = process.getuid?.() === 0;

interface Source {
  rel: string;
  data: Buffer;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds with microseconds, as set on the source. */
  mtime: number;
}

/** 700 files in one directory (more than one batch of 512) and 60 in each of two more. */
function sourceFiles(): Source[] {
  const out: Source[] = [];
  const dirs: [string, number][] = [['many', 700], ['a/b', 60], ['c', 60]];
  let n = 0;
  for (const [dir, count] of dirs) {
    for (let i = 0; i < count; i++, n++) {
      const kind = n % 5;
      const data =
        kind === 0 ? pseudoRandom(`small ${n}`, 1 + ((n * 7919) % 30_000)) :
        kind === 1 ? Buffer.from(`text file ${n}\n`.repeat(1 + (n % 400))) :
        kind === 2 ? Buffer.alloc(0) :
        kind === 3 ? Buffer.from('the same content in many files\n') :
        Buffer.concat([pseudoRandom(`head ${n}`, 2 * 4096), Buffer.alloc(3 * 4096), pseudoRandom(`tail ${n}`, 3000)]);
      out.push({
        rel: `${dir}/file-${String(i).padStart(4, '0')}${kind === 0 ? '.bin' : '.txt'}`,
        data,
        mode: [0o644, 0o600, 0o755, 0o4755, 0o640][n % 5]!,
        uid: isRoot ? 1000 + (n % 7) : process.getuid!(),
        gid: isRoot ? 2000 + (n % 3) : process.getgid!(),
        mtime: 1_600_000_000 + n * 3601 + ((n * 104_729) % 1_000_000) / 1e6,
      });
    }
  }
  return out;
}

function writeSource(root: string, files: Source[]): void {
  for (const f of files) {
    const p = path.join(root, f.rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, f.data);
    if (isRoot) fs.chownSync(p, f.uid, f.gid);
    fs.chmodSync(p, f.mode);
    fs.utimesSync(p, f.mtime, f.mtime);
  }
}

describe('restore of many small files through the writer threads', () => {
  const tmp = tempDir('small-restore');
  const data = path.join(tmp.dir, 'data');
  const repoDir = path.join(tmp.dir, 'repo');
  const files = sourceFiles();
  const totalBytes = files.reduce((sum, f) => sum + f.data.length, 0);
  let repo: Repository;

  beforeAll(async () => {
    writeSource(data, files);
    repo = await Repository.init(new LocalStorage(repoDir), 'pw', { kdf });
    await new LocalArchiver(repo, { client: 'small', paths: [data] }).run();
  });
  afterAll(async () => {
    await repo.close();
    tmp.cleanup();
  });

  it('restores 820 files byte for byte, with exact modes, owners and microsecond mtimes', async () => {
    const target = path.join(tmp.dir, 'restored');
    const result = await new Restorer(repo).restore(await repo.findSnapshot('latest'), data, target);
    expect(result.problems).toEqual([]);
    expect(result.files).toBe(820);
    expect(result.bytes).toBe(totalBytes);
    for (const f of files) {
      const p = path.join(target, f.rel);
      expect(fs.readFileSync(p).equals(f.data), f.rel).toBe(true);
      const st = fs.statSync(p, { bigint: true });
      const src = fs.statSync(path.join(data, f.rel), { bigint: true });
      expect(Number(st.mode & 0o7777n), f.rel).toBe(f.mode);
      expect([Number(st.uid), Number(st.gid)], f.rel).toEqual([f.uid, f.gid]);
      expect(st.mtimeNs / 1000n, f.rel).toBe(src.mtimeNs / 1000n);
    }
    // The three zero blocks in the middle of the fifth kind of file stay a hole: 3 of its 6
    // blocks are allocated.
    expect(fs.statSync(path.join(target, 'many/file-0004.txt')).blocks * 512).toBe(3 * 4096);
  });

  it('refuses a small file whose chunk was changed on disk with the exact error, and restores its neighbours', async () => {
    const { tree } = await resolvePath(repo, await repo.findSnapshot('latest'), `${data}/many`);
    const victim = tree!.nodes.find((n) => n.name === 'file-0100.bin')!;
    const id = victim.content![0]!;
    const loc = repo.locate(Buffer.from(id, 'hex'))!;
    const copy = path.join(tmp.dir, 'damaged-repo');
    fs.cpSync(repoDir, copy, { recursive: true });
    flipBit(packPath(copy, loc.pack), loc.offset + 5);
    const damaged = await Repository.open(new LocalStorage(copy), 'pw');
    const target = path.join(tmp.dir, 'restored-damaged');
    try {
      const result = await new Restorer(damaged).restore(await damaged.findSnapshot('latest'), data, target);
      expect(result.problems).toEqual([{
        path: path.join(target, 'many', 'file-0100.bin'),
        message: `not restored: chunk ${id.slice(0, 16)} in pack ${loc.pack} failed authentication: the pack's bytes were changed on disk. Run \`haul check --read-data\` to list the affected snapshots and files.`,
      }]);
      expect(result.files).toBe(819);
      expect(fs.existsSync(path.join(target, 'many', 'file-0100.bin'))).toBe(false);
      for (const f of files.filter((x) => x.rel !== 'many/file-0100.bin')) {
        expect(fs.readFileSync(path.join(target, f.rel)).equals(f.data), f.rel).toBe(true);
      }
    } finally {
      await damaged.close();
    }
  });

  it('refuses a chunk that decompresses beyond the limit, one that opens to other bytes, and a size that does not add up', async () => {
    const claimed = pseudoRandom('what the ID says', 20_000);
    // A bomb: a small frame that declares one byte more than the largest chunk.
    const bomb = await repo.saveEncodedBlob(BlobType.data, sha256(claimed), claimed.length, { compression: Compression.zstd, data: zstdFrame(Buffer.alloc(repo.config.chunker.maxSize + 1)) });
    // A liar: a valid, authentic frame of other bytes than the ID names.
    const liar = await repo.saveEncodedBlob(BlobType.data, sha256(claimed.subarray(1)), claimed.length - 1, { compression: Compression.zstd, data: zstdFrame(pseudoRandom('not the same', 19_999)) });
    await repo.flush();
    const snapshot = await repo.findSnapshot('latest');
    const { tree } = await resolvePath(repo, snapshot, `${data}/c`);
    const [first, second, third, ...rest] = tree!.nodes;
    const crafted = [
      { ...first!, content: [bomb.id.toString('hex')], size: claimed.length },
      { ...second!, content: [liar.id.toString('hex')], size: claimed.length - 1 },
      { ...third!, size: third!.size! + 1 },
      ...rest,
    ];
    const root = await repo.saveTree({ nodes: crafted });
    await repo.flush();
    const target = path.join(tmp.dir, 'restored-crafted');
    const result = await new Restorer(repo).restore({ ...snapshot, tree: root }, '/', target);
    const what = (id: Buffer) => `chunk ${id.toString('hex').slice(0, 16)} in pack ${repo.locate(id)!.pack}`;
    expect([...result.problems].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: `${target}/${first!.name}`, message: `not restored: ${what(bomb.id)} does not decompress to a valid chunk.` },
      { path: `${target}/${second!.name}`, message: `not restored: ${what(liar.id)} has the wrong content (hash mismatch).` },
      { path: `${target}/${third!.name}`, message: `not restored: content adds up to ${third!.size} bytes, the snapshot says ${third!.size! + 1}` },
    ]);
    expect(result.files).toBe(57);
    expect(fs.readdirSync(target).length).toBe(57);
  });

  it('refuses existing entries unless asked, and replaces a planted symlink without writing through it', async () => {
    const target = path.join(tmp.dir, 'restored-existing');
    const outside = path.join(tmp.dir, 'outside.txt');
    fs.writeFileSync(outside, 'not to be touched');
    fs.mkdirSync(path.join(target, 'c'), { recursive: true });
    fs.writeFileSync(path.join(target, 'c', 'file-0001.txt'), 'older');
    fs.symlinkSync(outside, path.join(target, 'c', 'file-0002.txt'));
    const snapshot = await repo.findSnapshot('latest');

    const refused = await new Restorer(repo).restore(snapshot, `${data}/c`, path.join(target, 'c'));
    expect([...refused.problems].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: path.join(target, 'c', 'file-0001.txt'), message: 'already exists; use --overwrite to replace it' },
      { path: path.join(target, 'c', 'file-0002.txt'), message: 'already exists; use --overwrite to replace it' },
    ]);
    expect(refused.files).toBe(58);
    expect(fs.readFileSync(path.join(target, 'c', 'file-0001.txt'), 'utf8')).toBe('older');
    expect(fs.readlinkSync(path.join(target, 'c', 'file-0002.txt'))).toBe(outside);

    const replaced = await new Restorer(repo, { overwrite: true }).restore(snapshot, `${data}/c`, path.join(target, 'c'));
    expect(replaced.problems).toEqual([]);
    expect(replaced.files).toBe(60);
    for (const rel of ['c/file-0001.txt', 'c/file-0002.txt']) {
      expect(fs.lstatSync(path.join(target, rel)).isFile()).toBe(true);
      expect(fs.readFileSync(path.join(target, rel)).equals(files.find((f) => f.rel === rel)!.data)).toBe(true);
    }
    expect(fs.readFileSync(outside, 'utf8')).toBe('not to be touched');
  });

  it.skipIf(!isRoot)('on a full disk names each file it could not write and leaves none half-written', async () => {
    // A real full disk: a 256 KiB tmpfs (mounting needs root), far less than the 10 MiB restored.
    const mount = path.join(tmp.dir, 'small-disk');
    fs.mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
    try {
      const result = await new Restorer(repo).restore(await repo.findSnapshot('latest'), `${data}/many`, mount);
      expect(result.problems.length).toBeGreaterThan(0);
      expect(result.files + result.problems.length).toBe(700);
      for (const p of result.problems) {
        expect(p.path.startsWith(`${mount}/file-`), p.path).toBe(true);
        expect(p.message).toMatch(/^ENOSPC: no space left on device/);
        expect(fs.existsSync(p.path), p.path).toBe(false);
      }
      const restored = fs.readdirSync(mount);
      expect(restored.length).toBe(result.files);
      for (const name of restored) {
        expect(fs.readFileSync(path.join(mount, name)).equals(files.find((f) => f.rel === `many/${name}`)!.data), name).toBe(true);
      }
    } finally {
      execFileSync('umount', [mount]);
    }
  });
});
