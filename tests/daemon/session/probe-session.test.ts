import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyWriter, EntryFlag, EntryKind, HelloFeature, ProbeMessage, maxFrameLength } from '../../../shared/probe-protocol.js';
import { Compression } from '../../../daemon/repository/compression.js';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { blobIdFromHash } from '../../../daemon/repository/crypto.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { Restorer } from '../../../daemon/restorer/restorer.js';
import { runPullBackup, type PullBackupOptions } from '../../../daemon/session/probe-session.js';
import { tempDir } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { FakeProbe, pathHash, sha, zstdFrame } from '../../helpers/fake-probe.js';
import { isHaulError } from '../../../shared/errors.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

describe('pull backup session against a scripted (and often hostile) probe', () => {
  const tmp = tempDir('session');
  let repo: Repository;
  afterAll(() => tmp.cleanup());
  beforeAll(async () => {
    repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf });
  });

  const options = (client: string, extra: Partial<PullBackupOptions> = {}): PullBackupOptions => ({ client, hostname: `${client}.example`, paths: ['/data'], ...extra });

  /** Runs a session while `script` plays the probe; returns the session's outcome. */
  async function session(client: string, script: (p: FakeProbe) => Promise<void>, extra: Partial<PullBackupOptions> = {}, pieceSize = Infinity) {
    const probe = new FakeProbe();
    probe.pieceSize = pieceSize;
    const log: string[] = [];
    const result = runPullBackup(repo, probe.transport, { ...options(client, extra), onLog: (l) => log.push(l) });
    const played = script(probe).catch(() => undefined);
    try {
      const r = await result;
      await played;
      return { ok: true as const, result: r, log, probe };
    } catch (err) {
      await played;
      return { ok: false as const, error: err, log, probe };
    }
  }

  async function expectConsistent() {
    const report = await checkRepository(repo, { readData: true });
    expect(report.problems.filter((p) => p.severity === 'error')).toEqual([]);
  }

  const a1 = pseudoRandom('a1', 300_000);
  const a2 = pseudoRandom('a2', 200_000);

  /** The honest start of a walk of /data. */
  async function begin(p: FakeProbe) {
    p.hello();
    await p.readStart();
    p.entry({ kind: EntryKind.dir, path: '/data' });
  }

  it('stores an honest backup that restores byte for byte', async () => {
    const s = await session('alpha', async (p) => {
      await begin(p);
      p.file('/data/a.bin', [a1, a2], { compress: true, inode: 11n });
      p.entry({ kind: EntryKind.symlink, path: '/data/link', target: 'a.bin' });
      p.entry({ kind: EntryKind.dir, path: '/data/sub' });
      p.file('/data/sub/b.txt', [Buffer.from('hello\n')], { inode: 12n });
      p.walkDone();
      expect(await p.readNeeds()).toEqual([]);
      p.done();
    });
    expect(s.ok ? '' : String(s.error)).toBe('');
    const snap = await repo.findSnapshot('latest', 'alpha');
    expect(snap.source).toBe('ssh');
    const target = path.join(tmp.dir, 'restore-alpha');
    const restored = await new Restorer(repo).restore(snap, '/data', target);
    expect(restored.problems).toEqual([]);
    expect(fs.readFileSync(path.join(target, 'a.bin')).equals(Buffer.concat([a1, a2]))).toBe(true);
    expect(fs.readFileSync(path.join(target, 'sub', 'b.txt'), 'utf8')).toBe('hello\n');
    expect(fs.readlinkSync(path.join(target, 'link'))).toBe('a.bin');
    await expectConsistent();
  });

  it('tells the probe only this client\'s previous files and chunks, and accepts a true "unchanged"', async () => {
    const s = await session('alpha', async (p) => {
      p.hello();
      const start = await p.readStart();
      // Files with their chunks, and /data/sub, whose subtree is only such files; not /data,
      // which holds a symlink.
      expect(start.previous.map((r) => r.pathHash).sort()).toEqual([pathHash('/data/a.bin'), pathHash('/data/sub/b.txt'), pathHash('/data/sub')].sort());
      expect(start.known).toEqual(new Set([p.fingerprint(a1), p.fingerprint(a2), p.fingerprint(Buffer.from('hello\n'))]));
      p.entry({ kind: EntryKind.dir, path: '/data' });
      p.unchanged(p.recordOf('/data/a.bin'));
      p.unchanged(p.recordOf('/data/sub'));
      p.walkDone();
      await p.readNeeds();
      p.done();
    });
    expect(s.ok ? '' : String(s.error)).toBe('');
    expect(s.result!.snapshot.stats).toMatchObject({ files: 2, dirs: 2, bytes: a1.length + a2.length + 6, bytesRead: 0 });
    const [before, after] = (await repo.listSnapshots({ client: 'alpha' })).slice(-2);
    const subOf = async (tree: string) => (await repo.loadTree((await repo.loadTree(tree)).nodes[0]!.subtree!)).nodes.find((n) => n.name === 'sub')!.subtree;
    // The unchanged directory's saved tree is reused, not written again.
    expect(await subOf(after!.tree)).toBe(await subOf(before!.tree));
    const target = path.join(tmp.dir, 'restore-alpha-2');
    await new Restorer(repo).restore(after!, '/data', target);
    expect(fs.readFileSync(path.join(target, 'a.bin')).equals(Buffer.concat([a1, a2]))).toBe(true);
    expect(fs.readFileSync(path.join(target, 'sub', 'b.txt'), 'utf8')).toBe('hello\n');
    // A new client learns nothing of alpha's data.
    const other = await session('beta', async (p) => {
      p.hello();
      const start = await p.readStart();
      expect(start.previous).toEqual([]);
      expect(start.known.size).toBe(0);
      p.entry({ kind: EntryKind.dir, path: '/data' });
      p.walkDone();
      await p.readNeeds();
      p.done();
    });
    expect(other.ok).toBe(true);
  });

  it('never lets a client reference another client\'s chunk: a claim of it is answered with NEED', async () => {
    let needs: Awaited<ReturnType<FakeProbe['readNeeds']>> = [];
    const s = await session('mallory', async (p) => {
      await begin(p);
      p.entry({ path: '/data/stolen', size: a1.length });
      p.chunkKnown(a1);
      p.fileEnd(a1.length);
      p.walkDone();
      needs = await p.readNeeds();
      p.chunkGone(needs[0]!.id);
      p.done();
    });
    expect(s.ok ? '' : String(s.error)).toBe('');
    expect(needs.map((n) => ({ path: n.path.toString(), offset: n.offset, length: n.length, sha: n.sha.toString('hex') }))).toEqual([{ path: '/data/stolen', offset: 0n, length: a1.length, sha: sha(a1).toString('hex') }]);
    expect(s.log).toContain('warning: /data/stolen left out: it changed while it was backed up');
    const snap = await repo.findSnapshot('latest', 'mallory');
    const tree = await repo.loadTree(snap.tree);
    const data = await repo.loadTree(tree.nodes[0]!.subtree!);
    expect(data.nodes).toEqual([]);
  });

  it('stores a chunk the probe wrongly thought known once it answers the NEED with the data', async () => {
    const fresh = pseudoRandom('fresh', 50_000);
    const s = await session('gamma', async (p) => {
      await begin(p);
      p.entry({ path: '/data/f', size: fresh.length });
      p.chunkKnown(fresh);
      p.fileEnd(fresh.length);
      p.walkDone();
      const [need] = await p.readNeeds();
      p.chunkNew(fresh, { needId: need!.id });
      p.done();
    });
    expect(s.ok ? '' : String(s.error)).toBe('');
    const snap = await repo.findSnapshot('latest', 'gamma');
    const target = path.join(tmp.dir, 'restore-gamma');
    await new Restorer(repo).restore(snap, '/data', target);
    expect(fs.readFileSync(path.join(target, 'f')).equals(fresh)).toBe(true);
  });

  it('takes a repeat of a chunk verified earlier in this run as that chunk, and asks for the bytes when the repeat names the wrong one', async () => {
    const shared = pseudoRandom('repeated in one run', 400_000);
    const other = pseudoRandom('not repeated', 100_000);
    let needs: Awaited<ReturnType<FakeProbe['readNeeds']>> = [];
    const s = await session('delta', async (p) => {
      await begin(p);
      p.file('/data/one', [shared, other]);
      p.entry({ path: '/data/two', size: shared.length * 2 });
      p.chunkRepeat(0, shared);
      p.chunkRepeat(0, shared);
      p.fileEnd(shared.length * 2);
      // Chunk 1 is `other`: a probe whose truncated fingerprint matched by accident.
      p.entry({ path: '/data/w-three', size: 5 });
      p.chunkRepeat(1, Buffer.from('three'));
      p.fileEnd(5);
      p.walkDone();
      needs = await p.readNeeds();
      p.chunkNew(Buffer.from('three'), { needId: needs[0]!.id });
      p.done();
    });
    expect(s.ok ? '' : String(s.error)).toBe('');
    expect(needs.map((n) => `${n.path.toString()} ${n.offset} ${n.length}`)).toEqual(['/data/w-three 0 5']);
    const top = await repo.loadTree((await repo.findSnapshot('latest', 'delta')).tree);
    const files = (await repo.loadTree(top.nodes[0]!.subtree!)).nodes;
    const sharedId = repo.blobId(shared).toString('hex');
    expect(files.map((n) => [n.name, n.content])).toEqual([
      ['one', [sharedId, repo.blobId(other).toString('hex')]],
      ['two', [sharedId, sharedId]],
      ['w-three', [repo.blobId(Buffer.from('three')).toString('hex')]],
    ]);
    const target = path.join(tmp.dir, 'restore-delta');
    await new Restorer(repo).restore(await repo.findSnapshot('latest', 'delta'), '/data', target);
    expect(fs.readFileSync(path.join(target, 'one')).equals(Buffer.concat([shared, other]))).toBe(true);
    expect(fs.readFileSync(path.join(target, 'two')).equals(Buffer.concat([shared, shared]))).toBe(true);
    expect(fs.readFileSync(path.join(target, 'w-three'), 'utf8')).toBe('three');
    await expectConsistent();
  });

  it('stores a zstd chunk as the very frame the probe sent, and a zstd probe\'s raw chunk uncompressed, without compressing again, from a stream in SSH-sized pieces', async () => {
    const text = Buffer.from('a line of text that compresses well\n'.repeat(4000));
    const random = pseudoRandom('incompressible from a zstd probe', 150_000);
    const frame = zstdFrame(text);
    const s = await session('eta', async (p) => {
      p.hello(undefined, HelloFeature.zstd);
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data' });
      p.file('/data/random', [random]);
      p.file('/data/text', [text], { compress: true });
      p.walkDone();
      await p.readNeeds();
      p.done();
      // In 32 KiB pieces like SSH packets: large frames are joined, and move to the worker uncopied.
    }, {}, 32 * 1024);
    expect(s.ok ? '' : String(s.error)).toBe('');
    // Ciphertext is the payload plus the 16-byte GCM tag: the stored payload is the probe's frame.
    expect(repo.locate(repo.blobId(text))).toMatchObject({ compression: Compression.zstd, length: frame.length + 16 });
    expect(repo.locate(repo.blobId(random))).toMatchObject({ compression: Compression.none, length: random.length + 16 });
    const target = path.join(tmp.dir, 'restore-eta');
    await new Restorer(repo).restore(await repo.findSnapshot('latest', 'eta'), '/data', target);
    expect(fs.readFileSync(path.join(target, 'text')).equals(text)).toBe(true);
    expect(fs.readFileSync(path.join(target, 'random')).equals(random)).toBe(true);
    await expectConsistent();
  });

  it('streams more chunks than may wait for their check at once (48 MiB through 32 MiB of room) in SSH-sized pieces', async () => {
    const chunks = Array.from({ length: 48 }, (_, i) => pseudoRandom(`room ${i}`, 1024 * 1024));
    // The repository handle is shared by this file's tests: its counters run on.
    const blobsBefore = repo.written.blobsNew;
    const s = await session('iota', async (p) => {
      p.hello(undefined, HelloFeature.zstd);
      await p.readStart();
      p.entry({ kind: EntryKind.dir, path: '/data' });
      p.file('/data/big', chunks);
      p.walkDone();
      await p.readNeeds();
      p.done();
    }, {}, 32 * 1024);
    expect(s.ok ? '' : String(s.error)).toBe('');
    expect(s.result!.snapshot.stats).toMatchObject({ files: 1, bytes: 48 * 1024 * 1024 });
    // 48 chunks and 2 trees (/data and the root).
    expect(repo.written.blobsNew - blobsBefore).toBe(48 + 2);
    const target = path.join(tmp.dir, 'restore-iota');
    await new Restorer(repo).restore(await repo.findSnapshot('latest', 'iota'), '/data', target);
    expect(fs.readFileSync(path.join(target, 'big')).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('compresses a raw chunk from a probe without zstd itself', async () => {
    const text = Buffer.from('another compressible line, sent raw\n'.repeat(3000));
    const s = await session('theta', async (p) => {
      await begin(p);
      p.file('/data/text', [text]);
      p.walkDone();
      await p.readNeeds();
      p.done();
    }, {}, 32 * 1024);
    expect(s.ok ? '' : String(s.error)).toBe('');
    const loc = repo.locate(repo.blobId(text))!;
    expect(loc.compression).toBe(Compression.zstd);
    expect(loc.length).toBeLessThan(text.length / 4);
    await expectConsistent();
  });

  const hostile: [string, (p: FakeProbe) => Promise<void>, string | RegExp, Partial<PullBackupOptions>?][] = [
    ['an oversized frame', async (p) => { await begin(p); const h = Buffer.alloc(5); h.writeUInt32LE(maxFrameLength + 1, 0); h[4] = ProbeMessage.entry; p.raw(h); }, `frame of ${maxFrameLength + 1} bytes exceeds the limit of ${maxFrameLength}`],
    ['a length that lies (body too short for an ENTRY)', async (p) => { await begin(p); p.send(ProbeMessage.entry, Buffer.from([1, 0, 5, 0])); }, /frame \d+ \(type 0x20\): body ends after 4 bytes/],
    ['a large chunk whose hash differs from its claim (checked on a worker thread; the probe then stalls)', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 100_000 }); p.chunkNew(pseudoRandom('sent', 100_000), { claimSha: sha(pseudoRandom('claimed', 100_000)) }); }, 'a chunk of /data/x does not match its SHA-256 (data and claim differ)'],
    ['a large decompression bomb (checked on a worker thread)', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 50_000 }); p.chunkNew(Buffer.concat([pseudoRandom('bomb head', 50_000), Buffer.alloc(3 * 1024 * 1024)]), { compress: true, claimLength: 50_000 }); }, 'a chunk of /data/x does not decompress to its declared 50000 bytes'],
    ['a large frame that decompresses to less than declared', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 90_000 }); p.chunkNew(pseudoRandom('short', 60_000), { compress: true, claimLength: 90_000 }); }, 'a chunk of /data/x does not decompress to its declared 90000 bytes'],
    ['a large raw chunk shorter than declared', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 90_000 }); p.chunkNew(pseudoRandom('short raw', 60_000), { claimLength: 90_000 }); }, 'a chunk of /data/x has 60000 bytes, declared 90000'],
    ['chunk data whose hash differs from its claim', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 100 }); p.chunkNew(Buffer.alloc(100, 1), { claimSha: sha(Buffer.alloc(100, 2)) }); }, 'a chunk of /data/x does not match its SHA-256 (data and claim differ)'],
    ['a decompression bomb (frame larger than its declared size)', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 1000 }); p.chunkNew(Buffer.alloc(4 * 1024 * 1024), { compress: true, claimLength: 1000 }); }, 'a chunk of /data/x does not decompress to its declared 1000 bytes'],
    ['a chunk above the maximum size', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 1 }); p.chunkNew(Buffer.alloc(10), { claimLength: 64 * 1024 * 1024 }); }, `chunk of ${64 * 1024 * 1024} bytes (allowed: 1 to ${4 * 1024 * 1024})`],
    ['a path with ..', async (p) => { await begin(p); p.entry({ path: '/data/../etc/passwd' }); }, 'unsafe path /data/../etc/passwd'],
    ['a relative path', async (p) => { await begin(p); p.entry({ path: 'data/x' }); }, 'unsafe path data/x'],
    ['a path with NUL', async (p) => { await begin(p); p.entry({ path: Buffer.from('/data/a\0b') }); }, 'unsafe path /data/a\\u0000b'],
    ['an overlong path', async (p) => { await begin(p); p.entry({ path: '/data/' + 'x'.repeat(5000) }); }, /unsafe path \/data\/x+ \(must be absolute/],
    ['an entry outside the paths asked for', async (p) => { await begin(p); p.entry({ path: '/etc/shadow' }); }, '/etc/shadow is neither one of the paths asked for, nor above or below one'],
    ['an entry whose directory was never sent', async (p) => { await begin(p); p.entry({ path: '/data/nodir/x' }); }, '/data/nodir/x is outside the directory being walked'],
    ['duplicate paths', async (p) => { await begin(p); p.entry({ path: '/data/a', kind: EntryKind.fifo }); p.entry({ path: '/data/a', kind: EntryKind.fifo }); }, '/data/a is a duplicate or out of order'],
    ['the ENTRY flag "unchanged" of protocol 2', async (p) => { await begin(p); p.entry({ path: '/data/new', size: 10, flags: 1 }); }, 'unknown entry flags 0x1'],
    ['UNCHANGED without a previous snapshot', async (p) => { await begin(p); p.unchanged(0); }, 'UNCHANGED names PREVIOUS record 0, but the server sent 0 record(s)'],
    ['a repeat of a chunk it never sent in this run', async (p) => { await begin(p); p.entry({ path: '/data/x', size: a1.length }); p.chunkRepeat(0, a1); }, 'a chunk of /data/x was claimed to repeat chunk 0 of this run, but the probe has sent only 0 chunk(s) so far'],
    ['a repeat naming a chunk number beyond those sent', async (p) => { await begin(p); p.file('/data/a', [Buffer.from('first')]); p.entry({ path: '/data/b', size: 5 }); p.chunkRepeat(1, Buffer.from('first')); }, 'a chunk of /data/b was claimed to repeat chunk 1 of this run, but the probe has sent only 1 chunk(s) so far'],
    ['a repeat with the right hash and a wrong length', async (p) => { await begin(p); p.file('/data/a', [Buffer.from('first')]); p.entry({ path: '/data/b', size: 9 }); p.send(ProbeMessage.chunkRepeat, new BodyWriter().u32(0).u32(9).bytes(sha(Buffer.from('first'))).done()); }, 'a chunk of /data/b repeats chunk 0 but claims 9 bytes, that chunk has 5'],
    ['millions of tiny entries (limit lowered to 1000 here)', async (p) => { await begin(p); for (let i = 0; i < 1001; i++) p.entry({ path: `/data/f${String(i).padStart(5, '0')}`, kind: EntryKind.fifo }); }, 'more than 1000 entries', { limits: { maxEntries: 1000 } }],
    ['endless warnings (limit lowered to 10 here)', async (p) => { await begin(p); for (let i = 0; i < 11; i++) p.send(ProbeMessage.warn, new BodyWriter().bytes16('/data/x').i32(13).bytes16('Permission denied').done()); }, 'more than 10 warnings', { limits: { maxWarnings: 10 } }],
    ['a chunk after the walk without a NEED', async (p) => { await begin(p); p.walkDone(); await p.readNeeds(); p.chunkNew(Buffer.from('x')); }, 'a chunk without a NEED after WALK_DONE'],
    ['an unknown message type', async (p) => { await begin(p); p.send(0x77); }, 'message type 0x77 is not allowed during the walk'],
  ];

  // A client with a previous snapshot of /data/d1/{f1,f2}, /data/d2/g1 and /data/top: records for
  // each file and each directory (7), for the hostile claims of UNCHANGED below.
  let epsilonBase: Promise<void> | undefined;
  const epsilon = async (script: (p: FakeProbe) => Promise<void>, extra: Partial<PullBackupOptions> = {}, openData = !extra.paths) => {
    epsilonBase ??= session('epsilon', async (p) => {
      await begin(p);
      p.entry({ kind: EntryKind.dir, path: '/data/d1', inode: 20n });
      p.file('/data/d1/f1', [Buffer.from('f1')], { inode: 21n });
      p.file('/data/d1/f2', [Buffer.from('f2')], { inode: 22n });
      p.entry({ kind: EntryKind.dir, path: '/data/d2', inode: 23n });
      p.file('/data/d2/g1', [Buffer.from('g1')], { inode: 24n });
      p.file('/data/top', [Buffer.from('top')], { inode: 25n });
      p.walkDone();
      await p.readNeeds();
      p.done();
    }).then((s) => expect(s.ok ? '' : String(s.error)).toBe(''));
    await epsilonBase;
    return session('epsilon', async (p) => {
      p.hello();
      const start = await p.readStart();
      expect(start.previous.length).toBe(7);
      if (openData) p.entry({ kind: EntryKind.dir, path: '/data' });
      await script(p);
    }, extra);
  };

  const hostileUnchanged: [string, (p: FakeProbe) => Promise<void>, string, Partial<PullBackupOptions>?][] = [
    ['UNCHANGED naming a record that does not exist', async (p) => { p.unchanged(7); }, 'UNCHANGED names PREVIOUS record 7, but the server sent 7 record(s)'],
    ['an unchanged file of another directory', async (p) => { p.entry({ kind: EntryKind.dir, path: '/data/d2' }); p.unchanged(p.recordOf('/data/d1/f1')); }, '/data/d1/f1 is outside the directory being walked'],
    ['a directory claimed unchanged that then changes', async (p) => { p.unchanged(p.recordOf('/data/d1')); p.entry({ path: '/data/d1/new', kind: EntryKind.fifo }); }, '/data/d1/new is outside the directory being walked'],
    ['the same unchanged directory twice', async (p) => { p.unchanged(p.recordOf('/data/d1')); p.unchanged(p.recordOf('/data/d1')); }, '/data/d1 is a duplicate or out of order'],
    ['an unchanged directory outside the paths asked for now', async (p) => { p.entry({ kind: EntryKind.dir, path: '/data', flags: EntryFlag.ancestor }); p.entry({ kind: EntryKind.dir, path: '/data/d1' }); p.unchanged(p.recordOf('/data/d2')); }, 'unchanged /data/d2 is neither one of the paths asked for', { paths: ['/data/d1'] }],
    ['an unchanged directory above the paths asked for now (its tree holds more)', async (p) => { p.unchanged(p.recordOf('/data')); }, 'unchanged /data is neither one of the paths asked for nor below one', { paths: ['/data/d1'] }],
    ['an unchanged entry inside a file', async (p) => { p.entry({ path: '/data/a', size: 1 }); p.unchanged(p.recordOf('/data/top')); }, 'an unchanged entry came before FILE_END of /data/a'],
  ];

  for (const [name, script, message, extra] of hostileUnchanged) {
    it(`fails only its own job on ${name}, and the repository stays consistent`, async () => {
      const s = await epsilon(script, extra ?? {});
      expect(s.ok).toBe(false);
      const err = s.ok ? undefined : s.error;
      expect(isHaulError(err, 'ProtocolViolation')).toBe(true);
      expect((err as Error).message).toContain(message);
      expect(s.probe.stopped).toBe(true);
      await expectConsistent();
    });
  }

  it('takes a whole unchanged tree from one UNCHANGED, counting its files and bytes', async () => {
    const s = await epsilon(async (p) => {
      p.unchanged(p.recordOf('/data'));
      p.walkDone();
      await p.readNeeds();
      p.done();
    }, {}, false);
    expect(s.ok ? '' : String(s.error)).toBe('');
    expect(s.result!.snapshot.stats).toMatchObject({ files: 4, dirs: 3, bytes: 9, bytesRead: 0 });
    const [before, after] = (await repo.listSnapshots({ client: 'epsilon' })).slice(-2);
    const dataOf = async (tree: string) => (await repo.loadTree(tree)).nodes[0]!.subtree;
    expect(await dataOf(after!.tree)).toBe(await dataOf(before!.tree));
    const target = path.join(tmp.dir, 'restore-epsilon');
    await new Restorer(repo).restore(after!, '/data', target);
    expect(['d1/f1', 'd1/f2', 'd2/g1', 'top'].map((f) => fs.readFileSync(path.join(target, f), 'utf8'))).toEqual(['f1', 'f2', 'g1', 'top']);
    await expectConsistent();
  });

  for (const [name, script, message, extra] of hostile) {
    it(`fails only its own job on ${name}, and the repository stays consistent`, async () => {
      const s = await session('hostile', script, extra ?? {});
      expect(s.ok).toBe(false);
      const err = s.ok ? undefined : s.error;
      expect(isHaulError(err, 'ProtocolViolation')).toBe(true);
      if (typeof message === 'string') expect((err as Error).message).toContain(message);
      else expect((err as Error).message).toMatch(message);
      expect(s.probe.stopped).toBe(true);
      await expectConsistent();
    });
  }

  it('a stalled probe fails with ProbeStalled after the stall timeout', async () => {
    const s = await session('slow', async (p) => { await begin(p); }, { limits: { stallMs: 300 } });
    expect(s.ok).toBe(false);
    expect((s.ok ? undefined : (s.error as Error))?.message).toBe('the probe sent nothing for 0.3 s; the job was stopped. Check the client\'s load and network, then run the backup again.');
  });

  it('an abrupt disconnect inside a frame fails with ProbeFailed and keeps what arrived', async () => {
    const big = pseudoRandom('big-before-cut', 3_000_000);
    const s = await session('cut', async (p) => {
      await begin(p);
      p.file('/data/first', [big]);
      p.raw(Buffer.from([200, 0, 0, 0, ProbeMessage.entry, 1, 2]));
      p.toServer.end();
    });
    expect(s.ok).toBe(false);
    expect((s.ok ? undefined : (s.error as Error))?.message).toMatch(/^the probe's output ended before the backup was complete \(state walk, 2 entries received, stream cut inside a frame\)/);
    // The chunk that arrived was verified, packed and indexed: the next run would not send it.
    expect(repo.hasBlob(repo.blobId(big))).toBe(true);
    await expectConsistent();
  });

  it('a small chunk whose place in the open pack was reserved, then fails its check: zeros take its place, the handle stays usable, nothing unchecked is stored', async () => {
    // A zstd frame under 64 KiB goes to a worker in a batch, with a place reserved for it in the open pack.
    const sent = pseudoRandom('placed hostile', 5000);
    const claimed = sha(Buffer.alloc(5000, 7));
    const hostile = await session('placed-hostile', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 5000 }); p.chunkNew(sent, { compress: true, claimSha: claimed }); });
    expect(hostile.ok ? '' : String(hostile.error)).toBe('ProtocolViolation: the probe broke the protocol: a chunk of /data/x does not match its SHA-256 (data and claim differ). The job failed; the repository keeps only verified data. If the client runs an unmodified probe, report this as a bug.');
    // The same handle backs up honestly next; its flush writes the pack that held the place.
    const data = pseudoRandom('after the placed hostile chunk', 3000);
    const honest = await session('placed-honest', async (p) => { await begin(p); p.file('/data/ok', [data], { compress: true }); p.walkDone(); await p.readNeeds(); p.done(); });
    expect(honest.ok ? '' : String(honest.error)).toBe('');
    const target = path.join(tmp.dir, 'restore-placed-honest');
    await new Restorer(repo).restore(await repo.findSnapshot('latest', 'placed-honest'), '/data', target);
    expect(fs.readFileSync(path.join(target, 'ok')).equals(data)).toBe(true);
    // The place holds a blob of zeros as long as the hostile frame, under the zeros' own ID; the claim is nowhere.
    expect(repo.hasBlob(blobIdFromHash(repo.keys, claimed))).toBe(false);
    expect(repo.hasBlob(blobIdFromHash(repo.keys, sha(Buffer.alloc(zstdFrame(sent).length))))).toBe(true);
    await expectConsistent();
  });

  it('a hostile job does not disturb an honest one running at the same time', async () => {
    const honestData = pseudoRandom('concurrent-honest', 400_000);
    const [hostileRun, honestRun] = await Promise.all([
      session('hostile2', async (p) => { await begin(p); p.entry({ path: '/data/x', size: 100 }); p.chunkNew(Buffer.alloc(100, 1), { claimSha: sha(Buffer.alloc(100, 2)) }); }),
      session('honest2', async (p) => { await begin(p); p.file('/data/ok', [honestData]); p.walkDone(); await p.readNeeds(); p.done(); }),
    ]);
    expect(hostileRun.ok).toBe(false);
    expect(honestRun.ok ? '' : String(honestRun.error)).toBe('');
    const snap = await repo.findSnapshot('latest', 'honest2');
    const target = path.join(tmp.dir, 'restore-honest2');
    await new Restorer(repo).restore(snap, '/data', target);
    expect(fs.readFileSync(path.join(target, 'ok')).equals(honestData)).toBe(true);
    await expectConsistent();
  });
});
