// The server side of a restore onto a client (ClientRestoreSession), without SSH: against the real
// probe run as a local process, and against a scripted probe that breaks the protocol.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchiver } from '../../../daemon/archiver/local-archiver.js';
import { resolveRestoreSelection, runClientRestore, type ClientRestoreOptions } from '../../../daemon/restorer/client-restore.js';
import { Repository } from '../../../daemon/repository/repository.js';
import type { StoredSnapshot } from '../../../daemon/repository/snapshot.js';
import type { ProbeTransport } from '../../../daemon/session/probe-session.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { isHaulError } from '../../../shared/errors.js';
import { BodyWriter, ProbeMessage, RestoreServerMessage, maxFrameLength } from '../../../shared/probe-protocol.js';
import { projectRoot, tempDir } from '../../helpers/cli.js';
import { FakeProbe } from '../../helpers/fake-probe.js';
import { describeTree, makeEveryKindTree, textLike } from '../../helpers/fixtures.js';
import { flipBit, packPath } from '../../helpers/repo.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const probeBin = path.join(projectRoot, 'probe', 'dist', `haul-probe-${arch}`);

/** The real probe in restore mode as a local process: the transport a job gets over SSH. */
function localProbe(): { transport: ProbeTransport; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(probeBin, ['--restore'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    transport: { input: child.stdin, output: child.stdout, stop: () => child.kill() },
    exit: new Promise((resolve) => child.on('close', (code) => resolve(code))),
    stderr: () => stderr,
  };
}

describe('restore onto a client: the server side', () => {
  const tmp = tempDir('client-restore');
  const data = path.join(tmp.dir, 'data');
  let repo: Repository;
  let snap: StoredSnapshot;
  let n = 0;
  const freshTarget = () => path.join(tmp.dir, `target-${++n}`);

  async function restore(subpath: string, options: ClientRestoreOptions, r: Repository = repo) {
    const probe = localProbe();
    const selection = await resolveRestoreSelection(r, snap, subpath);
    const log: string[] = [];
    const result = await runClientRestore(r, probe.transport, selection, { ...options, onLog: (l) => log.push(l) });
    probe.transport.input.end();
    expect(await probe.exit).toBe(0);
    return { result, log };
  }

  beforeAll(async () => {
    fs.mkdirSync(data);
    makeEveryKindTree(data);
    fs.writeFileSync(path.join(data, 'docs', 'text.txt'), textLike('client-restore-text', 2 * 1024 * 1024));
    fs.chownSync(path.join(data, 'docs', 'text.txt'), 12345, 23456);
    repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw', { kdf });
    const backup = await new LocalArchiver(repo, { client: 'alpha', paths: [data] }).run();
    snap = (await repo.listSnapshots()).find((s) => s.id === backup.id)!;
  });
  afterAll(async () => {
    await repo.close();
    tmp.cleanup();
  });

  it('restores a directory byte for byte through the real probe, mtimes to the nanosecond, hard links as links, owners as root', async () => {
    const target = freshTarget();
    const { result, log } = await restore(data, { target });
    const before = describeTree(data);
    const after = describeTree(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) {
      const a = after.get(key)!;
      expect({ key, type: a.type, mode: a.mode, size: a.size, sha256: a.sha256, target: a.target, mtimeNs: a.mtimeNs }).toEqual({ key, type: b.type, mode: b.mode, size: b.size, sha256: b.sha256, target: b.target, mtimeNs: b.mtimeNs });
    }
    expect(fs.statSync(path.join(target, 'docs', 'hard-b')).ino).toBe(fs.statSync(path.join(target, 'hard-a')).ino);
    expect([fs.statSync(path.join(target, 'docs', 'text.txt')).uid, fs.statSync(path.join(target, 'docs', 'text.txt')).gid]).toEqual([12345, 23456]);
    const files = [...before.values()].filter((f) => f.type === 'file');
    const size = files.reduce((s, f) => s + f.size, 0);
    expect(result).toMatchObject({
      files: files.length - 1, // one of the two hard-linked paths is a link
      hardlinks: 1,
      dirs: [...before.values()].filter((f) => f.type === 'dir').length,
      symlinks: 2,
      specials: 2,
      leftOut: 0,
      bytes: size - 50_000,
      problems: [],
      problemCount: 0,
    });
    expect(result.ownerNote).toBeUndefined();
    // Stored zstd frames go out as they are: the text and the sparse file's zeros travel compressed.
    expect(result.bytesOnWire).toBeLessThan(size / 2);
    expect(log[0]).toMatch(/^probe 0\.1\.0 on x86_64|^probe \S+ on aarch64/);
  });

  it('puts a file under its own name, and with original paths writes back only what is missing', async () => {
    const target = freshTarget();
    const one = await restore(`${data}/docs/readme.txt`, { target });
    expect(fs.readdirSync(target)).toEqual(['readme.txt']);
    expect(fs.readFileSync(path.join(target, 'readme.txt')).equals(fs.readFileSync(path.join(data, 'docs', 'readme.txt')))).toBe(true);
    expect(one.result.files).toBe(1);

    const original = fs.readFileSync(path.join(data, 'docs', 'readme.txt'));
    fs.rmSync(path.join(data, 'docs', 'readme.txt'));
    const dataMtime = fs.statSync(data, { bigint: true }).mtimeNs;
    const back = await restore(`${data}/docs`, { target: '/', originalPaths: true });
    expect(fs.readFileSync(path.join(data, 'docs', 'readme.txt')).equals(original)).toBe(true);
    // The rest was there: each refused by name, nothing replaced; the directories above untouched.
    expect(back.result.problems.map((p) => p.path).sort()).toEqual(['deep/deeper/random.bin', 'hard-b', 'text.txt'].map((n) => `${data}/docs/${n}`).sort());
    expect(back.result.problems.every((p) => p.exists && p.message === 'already exists; not replaced (the restore does not overwrite)')).toBe(true);
    expect(fs.statSync(data, { bigint: true }).mtimeNs).toBe(dataMtime);
  });

  it('restores the whole snapshot below the target under its full paths, with the directories above', async () => {
    const target = freshTarget();
    const { result } = await restore('/', { target });
    expect(result.problems).toEqual([]);
    expect(fs.readFileSync(path.join(target, data, 'docs', 'readme.txt')).equals(fs.readFileSync(path.join(data, 'docs', 'readme.txt')))).toBe(true);
    // The directories above the backed-up path come from the snapshot too (/tmp is 1777).
    expect(fs.statSync(path.join(target, path.dirname(tmp.dir))).mode & 0o7777).toBe(fs.statSync(path.dirname(tmp.dir)).mode & 0o7777);
  });

  it('leaves out a file with a damaged chunk and names it; everything else is restored', async () => {
    const copy = path.join(tmp.dir, 'repo-damaged');
    fs.cpSync(path.join(tmp.dir, 'repo'), copy, { recursive: true });
    const damaged = await Repository.open(new LocalStorage(copy), 'pw');
    await damaged.loadIndex();
    const textNode = (await resolveRestoreSelection(damaged, snap, `${data}/docs/text.txt`)).chain.at(-1)!;
    const loc = damaged.locate(Buffer.from(textNode.content![0]!, 'hex'))!;
    flipBit(packPath(copy, loc.pack), loc.offset + 100);

    const target = freshTarget();
    const { result } = await restore(data, { target }, damaged);
    expect(result.problems).toEqual([{ path: `${target}/docs/text.txt`, message: expect.stringMatching(new RegExp(`^not restored: chunk ${textNode.content![0]!.slice(0, 16)} in pack ${loc.pack} failed authentication`)) as unknown as string }]);
    expect(fs.existsSync(path.join(target, 'docs', 'text.txt'))).toBe(false);
    expect(fs.readdirSync(path.join(target, 'docs')).filter((f) => f.startsWith('.haul-restore'))).toEqual([]);
    expect(fs.readFileSync(path.join(target, 'docs', 'readme.txt')).equals(fs.readFileSync(path.join(data, 'docs', 'readme.txt')))).toBe(true);
    expect(result.leftOut).toBe(1);
    await damaged.close();
  });

  it('lists at most maxProblemsListed problems and counts all of them', async () => {
    const target = freshTarget();
    await restore(`${data}/docs`, { target });
    const again = await restore(`${data}/docs`, { target, limits: { maxProblemsListed: 2 } });
    expect(again.result.problems).toHaveLength(2);
    // readme.txt, deep/deeper/random.bin, hard-b, text.txt (existing directories are entered).
    expect(again.result.problemCount).toBe(4);
  });

  describe('a probe that breaks the protocol fails only its job, with a clear error', () => {
    async function hostile(script: (p: FakeProbe) => Promise<void>, options: Partial<ClientRestoreOptions> = {}) {
      const probe = new FakeProbe();
      const selection = await resolveRestoreSelection(repo, snap, `${data}/docs`);
      const run = runClientRestore(repo, probe.transport, selection, { target: '/nowhere', ...options });
      const played = script(probe).catch(() => undefined);
      try {
        await run;
        throw new Error('expected the restore to fail');
      } catch (err) {
        await played;
        if (!isHaulError(err)) throw err;
        expect(probe.stopped).toBe(true);
        return err;
      }
    }
    const warn = (p: FakeProbe, pathLen: number, message = 'x') => p.send(ProbeMessage.warn, new BodyWriter().bytes16(Buffer.alloc(pathLen, 0x61)).i32(0).bytes16(message).done());
    const untilEnd = async (p: FakeProbe) => {
      for (let f = await p.next(); f && f.type !== RestoreServerMessage.end; f = await p.next());
    };

    it('a WARN with a path over 4096 bytes', async () => {
      const err = await hostile(async (p) => {
        p.hello();
        warn(p, 5000);
      });
      expect(err.code).toBe('ProtocolViolation');
      expect(err.message).toBe('the probe broke the restore protocol: a WARN with a path of 5000 or a message of 1 bytes (at most 4096 and 1024). The restore was stopped; what it wrote so far stays on the client. If the client runs an unmodified probe, report this as a bug.');
    });

    it('more WARNs than allowed', async () => {
      const err = await hostile(async (p) => {
        p.hello();
        for (let i = 0; i < 4; i++) warn(p, 10);
      }, { limits: { maxWarnings: 3 } });
      expect(err.message).toMatch(/^the probe broke the restore protocol: more than 3 warnings\./);
    });

    it('RESTORE_DONE before RESTORE_END, and one that miscounts', async () => {
      const early = await hostile(async (p) => {
        p.hello();
        p.send(0x50, Buffer.alloc(88));
      });
      expect(early.message).toMatch(/^the probe broke the restore protocol: RESTORE_DONE before RESTORE_END\./);
      const wrong = await hostile(async (p) => {
        p.hello();
        await untilEnd(p);
        p.send(0x50, new BodyWriter().u64(999).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u32(0).u64(0).i32(0).u64(0).done());
      });
      expect(wrong.message).toMatch(/^the probe broke the restore protocol: RESTORE_DONE counts 999 entries, the server sent \d+\./);
    });

    it('a message of a backup, a frame above the limit, a body that does not parse', async () => {
      const backupMessage = await hostile(async (p) => {
        p.hello();
        p.send(ProbeMessage.chunkNew, Buffer.alloc(41));
      });
      expect(backupMessage.message).toMatch(/message type 0x21 is not part of a restore\./);
      const huge = await hostile(async (p) => {
        p.hello();
        p.raw(Buffer.from([...new BodyWriter().u32(maxFrameLength + 1).done(), ProbeMessage.warn]));
      });
      expect(huge.message).toMatch(/frame of 16842753 bytes exceeds the limit of 16842752/);
      const short = await hostile(async (p) => {
        p.hello();
        p.send(ProbeMessage.warn, Buffer.alloc(3));
      });
      expect(short.message).toMatch(/message type 0x30: body ends after 3 bytes/);
    });

    it('a probe that says nothing: ProbeStalled', async () => {
      const err = await hostile(async () => undefined, { limits: { stallMs: 300 } });
      expect(err.code).toBe('ProbeStalled');
      expect(err.message).toBe("the probe took nothing and said nothing for 0.3 s; the restore was stopped. Check the client's load, disk and network, then run the restore again.");
    });

    it('a probe that goes away in the middle: ProbeFailed', async () => {
      const err = await hostile(async (p) => {
        p.hello();
        await p.next();
        p.raw(Buffer.from([9, 0, 0]));
        p.toServer.end();
      });
      expect(err.code).toBe('ProbeFailed');
      expect(err.message).toMatch(/^the probe stopped before the restore was complete \(\d+ entries sent, its output cut inside a frame\); what it restored so far stays on the client\./);
    });
  });

  it('refuses a target that is not an absolute, normalised path', async () => {
    const selection = await resolveRestoreSelection(repo, snap, data);
    for (const target of ['relative', '/tmp/../etc', '/tmp/', '', '/tmp//x']) {
      const err = await runClientRestore(repo, new FakeProbe().transport, selection, { target }).catch((e: unknown) => e);
      expect(isHaulError(err, 'InvalidArgument') && err.message, target).toBe(`the restore target ${JSON.stringify(target)} is not an absolute, normalised path (like /srv/restore).`);
    }
  });
});
