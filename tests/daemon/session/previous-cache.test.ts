// The cached digest of a client's latest snapshot (daemon/session/previous-cache.ts): a re-run
// sends PREVIOUS and KNOWN without reading a tree, and a cache that is damaged, forged, of another
// snapshot or naming a chunk prune removed is ignored with a log line, never trusted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EntryKind } from '../../../shared/probe-protocol.js';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { forgetSnapshots } from '../../../daemon/maintenance/forget.js';
import { pruneRepository } from '../../../daemon/maintenance/prune.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { S3Storage, parseS3Location, s3OptionsFromEnv } from '../../../daemon/storage/s3.js';
import { generateMasterKeys } from '../../../daemon/repository/crypto.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { Restorer } from '../../../daemon/restorer/restorer.js';
import { decodePreviousCache, encodePreviousCache, previousCachePath, removeOrphanedPreviousCaches } from '../../../daemon/session/previous-cache.js';
import { runPullBackup } from '../../../daemon/session/probe-session.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { FakeProbe } from '../../helpers/fake-probe.js';
import { s3Credentials, startS3Server } from '../../helpers/s3.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

describe('the cached digest of the previous snapshot', () => {
  const tmp = tempDir('prevcache');
  const cacheDir = path.join(tmp.dir, 'cache');
  let base: Repository;
  afterAll(() => tmp.cleanup());
  beforeAll(async () => {
    base = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf });
  });

  const big = pseudoRandom('big', 300_000);
  const contents: Record<string, Buffer> = { '/data/d1/f1': Buffer.from('f1'), '/data/d1/f2': big, '/data/d2/g1': Buffer.from('g1'), '/data/top': Buffer.from('top') };

  /** One session on a fresh handle (its own index), with the cache; counts the trees it loads. */
  async function session(client: string, script: (p: FakeProbe) => Promise<void>, options: { cache?: boolean; on?: Repository } = {}) {
    const repo = (options.on ?? base).reopen();
    const loadTree = vi.spyOn(repo, 'loadTree');
    const probe = new FakeProbe();
    const log: string[] = [];
    const run = runPullBackup(repo, probe.transport, { client, hostname: 'h', paths: ['/data'], onLog: (l) => log.push(l), ...(options.cache === false ? {} : { previousCacheDir: cacheDir }) });
    const played = script(probe).catch((err: unknown) => err);
    const result = await run;
    expect(await played).toBeUndefined();
    return { result, log, probe, treesLoaded: loadTree.mock.calls.length };
  }

  /** The whole first tree, honestly. */
  async function firstWalk(p: FakeProbe) {
    p.hello();
    await p.readStart();
    p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n });
    p.entry({ kind: EntryKind.dir, path: '/data/d1', inode: 20n });
    p.file('/data/d1/f1', [contents['/data/d1/f1']!], { inode: 21n });
    p.file('/data/d1/f2', [big.subarray(0, 200_000), big.subarray(200_000)], { inode: 22n });
    p.entry({ kind: EntryKind.dir, path: '/data/d2', inode: 23n });
    p.file('/data/d2/g1', [contents['/data/d2/g1']!], { inode: 24n });
    p.file('/data/top', [contents['/data/top']!], { inode: 25n });
    p.walkDone();
    expect(await p.readNeeds()).toEqual([]);
    p.done();
  }

  /** Nothing changed: one UNCHANGED for /data. */
  async function unchangedWalk(p: FakeProbe) {
    p.hello();
    const start = await p.readStart();
    expect(start.previous.length).toBe(7);
    p.unchanged(p.recordOf('/data'));
    p.walkDone();
    expect(await p.readNeeds()).toEqual([]);
    p.done();
  }

  async function expectRestores(client: string, files: Record<string, Buffer>, on = base) {
    const repo = on.reopen();
    const snap = await repo.findSnapshot('latest', client);
    const target = fs.mkdtempSync(path.join(tmp.dir, `restore-${client}-`));
    const restored = await new Restorer(repo).restore(snap, '/data', target);
    expect(restored.problems).toEqual([]);
    for (const [file, data] of Object.entries(files)) expect({ file, equal: fs.readFileSync(path.join(target, file.slice('/data/'.length))).equals(data) }).toEqual({ file, equal: true });
    const listed = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listed(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    expect(listed(target).map((f) => `/data/${path.relative(target, f)}`).sort()).toEqual(Object.keys(files).sort());
    const report = await checkRepository(repo, { readData: true });
    expect(report.problems.filter((p) => p.severity === 'error')).toEqual([]);
  }

  const cacheFile = (client: string) => previousCachePath(cacheDir, base.keys, client);

  it('a re-run with nothing changed loads no tree, and restores byte for byte', async () => {
    const first = await session('alpha', firstWalk);
    expect(first.log.some((l) => l.includes('from its'))).toBe(false);
    expect(fs.existsSync(cacheFile('alpha'))).toBe(true);
    const again = await session('alpha', unchangedWalk);
    expect(again.treesLoaded).toBe(0);
    expect(again.log).toContain(`previous snapshot ${first.result.id.slice(0, 8)}: 7 record(s) and 5 known chunk(s), from the cached digest`);
    expect(again.result.snapshot.stats).toMatchObject({ files: 4, dirs: 3, bytes: 300_007, bytesRead: 0 });
    // The cache now describes the re-run's snapshot, and a third run uses it as well.
    const third = await session('alpha', unchangedWalk);
    expect(third.treesLoaded).toBe(0);
    expect(third.log.some((l) => l.includes(`previous snapshot ${again.result.id.slice(0, 8)}:`) && l.endsWith('from the cached digest'))).toBe(true);
    await expectRestores('alpha', contents);
  });

  it('a digest built while the last packs and the snapshot are written, yielding between directories, has every entry', async () => {
    // 100 directories: more than the build handles between two turns of the event loop (32).
    const names = Array.from({ length: 100 }, (_, i) => `d${String(i).padStart(3, '0')}`);
    const files = Object.fromEntries(names.map((n) => [`/data/${n}/f`, Buffer.from(`wide ${n}`)]));
    const first = await session('wide', async (p) => {
      p.hello();
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n });
      for (const [i, n] of names.entries()) {
        p.entry({ kind: EntryKind.dir, path: `/data/${n}`, inode: BigInt(100 + 2 * i) });
        p.file(`/data/${n}/f`, [files[`/data/${n}/f`]!], { inode: BigInt(101 + 2 * i) });
      }
      p.walkDone();
      expect(await p.readNeeds()).toEqual([]);
      p.done();
    });
    const again = await session('wide', async (p) => {
      p.hello();
      const start = await p.readStart();
      expect(start.previous.length).toBe(201);
      p.unchanged(p.recordOf('/data'));
      p.walkDone();
      expect(await p.readNeeds()).toEqual([]);
      p.done();
    });
    expect(again.treesLoaded).toBe(0);
    expect(again.log).toContain(`previous snapshot ${first.result.id.slice(0, 8)}: 201 record(s) and 100 known chunk(s), from the cached digest`);
    await expectRestores('wide', files);
  });

  it('after a change, the next digest combines reused directories and walked ones', async () => {
    await session('beta', firstWalk);
    const newer = Buffer.from('new file');
    const changed = await session('beta', async (p) => {
      p.hello();
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n, mtime: 2n });
      p.unchanged(p.recordOf('/data/d1'));
      p.entry({ kind: EntryKind.dir, path: '/data/d2', inode: 23n, mtime: 2n });
      p.unchanged(p.recordOf('/data/d2/g1'));
      p.file('/data/d2/g2', [newer], { inode: 26n });
      p.unchanged(p.recordOf('/data/top'));
      p.walkDone();
      expect(await p.readNeeds()).toEqual([]);
      p.done();
    });
    // Only /data/d2/g1's and /data/top's trees are read: the file records name them.
    expect(changed.treesLoaded).toBe(2);
    const after = { ...contents, '/data/d2/g2': newer };
    const next = await session('beta', async (p) => {
      p.hello();
      const start = await p.readStart();
      expect(start.previous.length).toBe(8);
      expect(start.known.size).toBe(6);
      p.unchanged(p.recordOf('/data'));
      p.walkDone();
      await p.readNeeds();
      p.done();
    });
    expect(next.treesLoaded).toBe(0);
    expect(next.result.snapshot.stats).toMatchObject({ files: 5, dirs: 3, bytesRead: 0 });
    // The records of /data/d1 were carried over whole twice; its files still resolve by name.
    const files = await session('beta', async (p) => {
      p.hello();
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n, mtime: 5n });
      p.entry({ kind: EntryKind.dir, path: '/data/d1', inode: 20n, mtime: 5n });
      p.unchanged(p.recordOf('/data/d1/f1'));
      p.unchanged(p.recordOf('/data/d1/f2'));
      p.unchanged(p.recordOf('/data/d2'));
      p.unchanged(p.recordOf('/data/top'));
      p.walkDone();
      expect(await p.readNeeds()).toEqual([]);
      p.done();
    });
    expect(files.treesLoaded).toBe(2);
    expect(files.result.snapshot.stats).toMatchObject({ files: 5, dirs: 3, bytesRead: 0 });
    await expectRestores('beta', after);
  });

  it('two equal directories in two places (hard-linked copies, one tree ID) resolve to their own paths', async () => {
    const x = Buffer.from('linked');
    const walk = (unchanged: boolean) => async (p: FakeProbe) => {
      p.hello();
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n });
      for (const dir of ['/data/a', '/data/b']) {
        p.entry({ kind: EntryKind.dir, path: dir, inode: dir.endsWith('a') ? 31n : 32n, mtime: unchanged ? 4n : 3n });
        if (unchanged) p.unchanged(p.recordOf(`${dir}/x`));
        else p.file(`${dir}/x`, [x], { inode: 30n });
      }
      p.walkDone();
      await p.readNeeds();
      p.done();
    };
    await session('lambda', walk(false));
    const again = await session('lambda', walk(true));
    expect(again.log.some((l) => l.endsWith('from the cached digest'))).toBe(true);
    expect(again.result.snapshot.stats).toMatchObject({ files: 2, bytesRead: 0 });
    await expectRestores('lambda', { '/data/a/x': x, '/data/b/x': x });
  });

  const damages: [string, (file: string) => void, string][] = [
    ['a changed byte', (file) => {
      const data = fs.readFileSync(file);
      data[data.length >> 1]! ^= 1;
      fs.writeFileSync(file, data);
    }, "it does not open with the repository's keys (changed, truncated, or written for another repository)"],
    ['a truncated file', (file) => fs.truncateSync(file, fs.statSync(file).size - 100), "it does not open with the repository's keys (changed, truncated, or written for another repository)"],
    ['a file cut to a few bytes', (file) => fs.truncateSync(file, 10), 'it is not a digest file (truncated or of another format)'],
    ['another sealed object of the repository (a snapshot) in its place', (file) => {
      const snapshots = path.join(tmp.dir, 'repo', 'snapshots');
      fs.copyFileSync(path.join(snapshots, fs.readdirSync(snapshots)[0]!), file);
    }, 'it is not a digest file (truncated or of another format)'],
  ];
  for (const [what, damage, why] of damages) {
    it(`a cache with ${what} is ignored with a log line; the trees are read and the backup is right`, async () => {
      const client = `gamma-${what.replace(/\W+/g, '-')}`;
      await session(client, firstWalk);
      damage(cacheFile(client));
      const again = await session(client, unchangedWalk);
      expect(again.log).toContain(`the cached digest of the previous snapshot is not used: ${why}; reading the snapshot's trees instead`);
      expect(again.treesLoaded).toBe(4);
      // The walk wrote a good cache again.
      expect((await session(client, unchangedWalk)).treesLoaded).toBe(0);
      await expectRestores(client, contents);
    });
  }

  it('a cache of another snapshot of the client is ignored', async () => {
    const first = await session('delta', firstWalk);
    const old = fs.readFileSync(cacheFile('delta'));
    const second = await session('delta', unchangedWalk);
    fs.writeFileSync(cacheFile('delta'), old);
    const third = await session('delta', unchangedWalk);
    expect(third.log).toContain(`the cached digest of the previous snapshot is not used: it describes snapshot ${first.result.id.slice(0, 8)}, not the latest one (${second.result.id.slice(0, 8)}); reading the snapshot's trees instead`);
    expect(third.treesLoaded).toBe(4);
    await expectRestores('delta', contents);
  });

  it('a cache of another client, even under this client\'s name, is ignored', async () => {
    await session('epsilon', firstWalk);
    await session('zeta', firstWalk);
    fs.copyFileSync(cacheFile('epsilon'), cacheFile('zeta'));
    const again = await session('zeta', unchangedWalk);
    expect(again.log).toContain('the cached digest of the previous snapshot is not used: it describes client "epsilon"; reading the snapshot\'s trees instead');
    expect(again.treesLoaded).toBe(4);
  });

  it('after prune removed a chunk the cache names, the cache is not used and the chunk is not offered', async () => {
    const first = await session('eta', firstWalk);
    const gone = pseudoRandom('pruned', 5000);
    const second = await session('eta', async (p) => {
      p.hello();
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data', inode: 10n, mtime: 3n });
      p.unchanged(p.recordOf('/data/d1'));
      p.unchanged(p.recordOf('/data/d2'));
      p.file('/data/extra', [gone], { inode: 27n });
      p.unchanged(p.recordOf('/data/top'));
      p.walkDone();
      await p.readNeeds();
      p.done();
    });
    // The cache of the second snapshot names the chunk of /data/extra (and its two new trees); rebound (with the
    // repository's own key, as only the server could) to the first snapshot, which stays the
    // latest once the second is forgotten and its chunk pruned.
    const cached = decodePreviousCache(base.keys, fs.readFileSync(cacheFile('eta')), 'eta', second.result.id);
    await forgetSnapshots(base.reopen(), { ids: [second.result.id] });
    await pruneRepository(base.reopen(), { repackThreshold: 0 });
    const pruned = base.reopen();
    await pruned.loadIndex();
    expect(pruned.hasBlob(pruned.blobId(gone))).toBe(false);
    fs.writeFileSync(cacheFile('eta'), encodePreviousCache(base.keys, 'eta', first.result.id, cached));
    let knownGone: boolean | undefined;
    const third = await session('eta', async (p) => {
      p.hello();
      const start = await p.readStart();
      knownGone = start.known.has(p.fingerprint(gone));
      expect(start.previous.length).toBe(7);
      p.unchanged(p.recordOf('/data'));
      p.walkDone();
      await p.readNeeds();
      p.done();
    });
    expect(knownGone).toBe(false);
    expect(third.log).toContain('the cached digest of the previous snapshot is not used: 1 chunk(s) and 2 tree(s) it names are no longer in the repository (pruned or lost); reading the snapshot\'s trees instead');
    expect(third.treesLoaded).toBe(4);
    await expectRestores('eta', contents);
  });

  const hostile: [string, (p: FakeProbe) => void, string][] = [
    ['UNCHANGED naming a record that does not exist', (p) => p.unchanged(7), 'UNCHANGED names PREVIOUS record 7, but the server sent 7 record(s)'],
    ['an unchanged file of another directory', (p) => {
      p.entry({ kind: EntryKind.dir, path: '/data/d2', inode: 23n });
      p.unchanged(p.recordOf('/data/d1/f1'));
    }, '/data/d1/f1 is outside the directory being walked'],
    ['the same unchanged directory twice', (p) => {
      p.unchanged(p.recordOf('/data/d1'));
      p.unchanged(p.recordOf('/data/d1'));
    }, '/data/d1 is a duplicate or out of order'],
  ];
  for (const [what, claim, message] of hostile) {
    it(`claims are checked against a cached digest as against the trees: ${what} fails the job`, async () => {
      const client = `iota-${what.replace(/\W+/g, '-')}`;
      await session(client, firstWalk);
      const repo = base.reopen();
      const probe = new FakeProbe();
      const log: string[] = [];
      const run = runPullBackup(repo, probe.transport, { client, hostname: 'h', paths: ['/data'], onLog: (l) => log.push(l), previousCacheDir: cacheDir });
      const played = (async () => {
        probe.hello();
        await probe.readStart();
        probe.entry({ kind: EntryKind.dir, path: '/data', inode: 10n });
        claim(probe);
      })().catch(() => undefined);
      await expect(run).rejects.toThrow(message);
      await played;
      expect(log.some((l) => l.endsWith('from the cached digest'))).toBe(true);
      expect(probe.stopped).toBe(true);
      await expectRestores(client, contents);
    });
  }

  it('works the same with the repository on S3: the cache is the server\'s, not the bucket\'s', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, s3Credentials, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    const server = await startS3Server(path.join(tmp.dir, 's3rver'), ['prevcache']);
    try {
      const s3 = await Repository.init(new S3Storage(parseS3Location(`s3:${server.endpoint}/prevcache/repo`), s3OptionsFromEnv({ HAUL_S3_PATH_STYLE: '1' })), 'pw', { kdf });
      const first = await session('kappa', firstWalk, { on: s3 });
      const again = await session('kappa', unchangedWalk, { on: s3 });
      expect(again.treesLoaded).toBe(0);
      expect(again.log).toContain(`previous snapshot ${first.result.id.slice(0, 8)}: 7 record(s) and 5 known chunk(s), from the cached digest`);
      await expectRestores('kappa', contents, s3);
    } finally {
      process.env = saved;
      await server.stop();
    }
  }, 120_000);

  it('without a cache directory nothing is written and the trees are read each time', async () => {
    await session('theta', firstWalk, { cache: false });
    expect(fs.existsSync(cacheFile('theta'))).toBe(false);
    expect((await session('theta', unchangedWalk, { cache: false })).treesLoaded).toBe(4);
  });
});

describe('cached digests of removed clients', () => {
  it('are deleted once old; the files of registered clients, young files and anything else stay', async () => {
    const { dir, cleanup } = tempDir('haul-digest-orphans-');
    const keys = generateMasterKeys();
    const now = Date.now();
    const put = (name: string, ageMs: number, bytes = 100) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, Buffer.alloc(bytes));
      fs.utimesSync(file, new Date(now - ageMs), new Date(now - ageMs));
      return file;
    };
    const day = 86_400_000;
    const kept = put(path.basename(previousCachePath(dir, keys, 'alpha')), 30 * day);
    const removedClient = put(path.basename(previousCachePath(dir, keys, 'gone')), 2 * day, 300);
    const justWritten = put(path.basename(previousCachePath(dir, keys, 'added-a-moment-ago')), 1000);
    const crashLeftover = put(`${path.basename(previousCachePath(dir, keys, 'alpha'))}.0123456789abcdef.tmp`, 2 * day, 50);
    const otherKeys = put(path.basename(previousCachePath(dir, generateMasterKeys(), 'alpha')), 2 * day, 7);
    const unrelated = put('notes.txt', 30 * day);

    const removed = await removeOrphanedPreviousCaches(dir, keys, ['alpha'], new Date(now - 3_600_000));

    // A digest sealed under another repository's keys is as useless here as a removed client's.
    expect(removed).toEqual({ files: 3, bytes: 300 + 50 + 7 });
    expect([kept, justWritten, unrelated].every((f) => fs.existsSync(f))).toBe(true);
    expect([removedClient, crashLeftover, otherKeys].some((f) => fs.existsSync(f))).toBe(false);
    expect(await removeOrphanedPreviousCaches(path.join(dir, 'missing'), keys, [], new Date(now))).toEqual({ files: 0, bytes: 0 });
    cleanup();
  });
});
