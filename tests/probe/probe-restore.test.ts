// haul-probe --restore (docs/probe-protocol.md, "Session: restore"): this test plays the server
// over the probe's stdin/stdout, without SSH, and checks what lands on disk: bytes, modes, owners,
// times, links; and that a hostile stream is refused without a byte written outside the target.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zstd from 'zstd-napi/binding.js';
import {
  BodyReader, BodyWriter, FrameDecoder, ProbeMessage, RestoreEntryFlag, RestoreFileStatus, RestoreKind, RestoreServerMessage,
  decodeHello, decodeRestoreDone, encodeFrame, encodeRestoreEntry, encodeRestoreFileEnd, encodeRestoreStart, maxFrameLength, protocolVersion,
  restoreDataHead, type Frame, type RestoreDone, type RestoreEntry,
} from '../../shared/probe-protocol.js';
import { oddNames, pseudoRandom, textLike } from '../helpers/fixtures.js';
import { ensureUser, sshdSkipReason, type UnixUser } from '../helpers/sshd.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const probe = process.env.HAUL_PROBE_BIN ?? path.join(root, 'probe', 'dist', `haul-probe-${arch}`);
const sanitized = process.env.HAUL_PROBE_BIN !== undefined;

const KiB = 1024;
const MiB = 1024 * KiB;
const EEXIST = os.constants.errno.EEXIST;
const EPERM = os.constants.errno.EPERM;
const MSG_EXISTS = 'already exists; not replaced (the restore does not overwrite)';
const MSG_DIR_IN_THE_WAY = 'exists and is not a directory; not replaced (the restore does not overwrite), so it and everything in it are not restored';
const MSG_ANCESTOR_IN_THE_WAY = 'exists and is not a directory; a directory above the restored path is never replaced, so nothing below it is restored';
const isRoot = process.getuid?.() === 0;

// ---- playing the server ---------------------------------------------------------------------

/** One entry of a stream; a file's data is sent in pieces of `piece` bytes, zstd-compressed when `zstd`. */
interface Item extends Omit<RestoreEntry, 'path' | 'mode' | 'uid' | 'gid' | 'mtimeNs' | 'target'> {
  path: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  target?: string | Buffer;
  data?: Buffer;
  piece?: number;
  zstd?: boolean;
  abandon?: boolean;
}

interface Warn { path: string; errno: number; message: string }

const T0 = 1_600_000_000_123_456_789n; // an mtime with nanoseconds
const bytes = (p: string | Buffer): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p));

function compress(data: Buffer): Buffer {
  const out = Buffer.alloc(zstd.compressBound(data.length));
  return out.subarray(0, zstd.compress(out, data, 3));
}

function itemFrames(item: Item): Buffer[] {
  const { data: content, piece: _piece, zstd: _zstd, abandon: _abandon, target, ...fields } = item;
  const data = content ?? Buffer.alloc(0);
  const entry = encodeRestoreEntry({
    ...fields,
    path: bytes(item.path),
    mode: item.mode ?? (item.kind === RestoreKind.dir ? 0o755 : item.kind === RestoreKind.symlink ? 0o777 : 0o644),
    uid: item.uid ?? process.getuid!(),
    gid: item.gid ?? process.getgid!(),
    mtimeNs: item.mtimeNs ?? T0,
    ...(item.kind === RestoreKind.file ? { size: item.size ?? data.length } : {}),
    ...(target !== undefined ? { target: bytes(target) } : {}),
  });
  if (item.kind !== RestoreKind.file) return [entry];
  const out = [entry];
  const piece = item.piece ?? 64 * KiB;
  for (let at = 0; at < data.length; at += piece) {
    const raw = data.subarray(at, at + piece);
    const z = item.zstd ? compress(raw) : undefined;
    const payload = z && z.length <= raw.length ? z : raw;
    out.push(restoreDataHead(payload === raw ? 0 : 1, raw.length, payload.length), payload);
  }
  out.push(encodeRestoreFileEnd(item.abandon ? RestoreFileStatus.abandoned : RestoreFileStatus.complete));
  return out;
}

const END = encodeFrame(RestoreServerMessage.end);

/** The probe in restore mode as a child process, its stdout cut into frames. */
class RestoreProbe {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  readonly frames: Frame[] = [];
  private readonly decoder = new FrameDecoder();

  constructor(user?: UnixUser) {
    this.child = spawn(probe, ['--restore'], { stdio: ['pipe', 'pipe', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}) });
    this.child.stdin.on('error', () => undefined); // EPIPE once the probe has gone
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.child.stdout.on('data', (d: Buffer) => this.frames.push(...this.decoder.push(d)));
    this.exit = new Promise((resolve) => this.child.on('close', (code, signal) => {
      this.closed = true;
      resolve({ code, signal });
    }));
  }

  private closed = false;

  async write(...parts: Buffer[]): Promise<void> {
    for (const p of parts) {
      // A probe that refused the start has gone: nothing will drain, and 'close' has been.
      if (this.closed || this.child.stdin.write(p)) continue;
      await new Promise<void>((resolve) => {
        const go = () => {
          this.child.stdin.off('drain', go);
          this.child.off('close', go);
          resolve();
        };
        this.child.stdin.on('drain', go);
        this.child.on('close', go);
      });
    }
  }

  get warns(): Warn[] {
    return this.frames.filter((f) => f.type === ProbeMessage.warn).map((f) => {
      const r = new BodyReader(f.body);
      const w = { path: r.bytes16().toString('latin1'), errno: r.i32(), message: r.bytes16().toString() };
      r.end();
      return w;
    });
  }

  get done(): RestoreDone | undefined {
    const f = this.frames.find((x) => x.type === 0x50);
    return f ? decodeRestoreDone(f.body) : undefined;
  }

  peakRssKiB(): number {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  }
}

interface RunResult { code: number | null; stderr: string; warns: Warn[]; done: RestoreDone | undefined; hello: Frame | undefined }

async function run(target: string, items: Item[], options: { overwrite?: boolean; maxData?: number; user?: UnixUser; raw?: Buffer[] } = {}): Promise<RunResult> {
  const p = new RestoreProbe(options.user);
  await p.write(encodeRestoreStart({ overwrite: Boolean(options.overwrite), maxData: options.maxData ?? 4 * MiB, target: Buffer.from(target) }));
  for (const item of items) await p.write(...itemFrames(item));
  await p.write(...(options.raw ?? [END]));
  p.child.stdin.end();
  const { code } = await p.exit;
  return { code, stderr: p.stderr, warns: p.warns, done: p.done, hello: p.frames[0] };
}

/** RESTORE_DONE with every count given, the rest 0 (and owners as running as root). */
function doneWith(counts: Partial<Record<'entries' | 'files' | 'dirs' | 'symlinks' | 'hardlinks' | 'specials' | 'leftOut' | 'bytes' | 'ownersNotSet' | 'setIdDropped', number>>, euid = 0, ownerErrno = 0): RestoreDone {
  const n = (k: keyof typeof counts) => BigInt(counts[k] ?? 0);
  return {
    entries: n('entries'), files: n('files'), dirs: n('dirs'), symlinks: n('symlinks'), hardlinks: n('hardlinks'), specials: n('specials'),
    leftOut: n('leftOut'), bytes: n('bytes'), euid, ownersNotSet: n('ownersNotSet'), ownerErrno, setIdDropped: n('setIdDropped'),
  };
}

/** Every entry below dir (raw relative names as latin1), for "nothing else was written". */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: Buffer, rel: string) => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' }).sort(Buffer.compare)) {
      const full = Buffer.concat([d, Buffer.from('/'), name]);
      const key = rel + name.toString('latin1');
      const st = fs.lstatSync(full);
      out.push(st.isFile() ? `${key} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex').slice(0, 16)}` : key);
      if (st.isDirectory()) walk(full, key + '/');
    }
  };
  walk(Buffer.from(dir), '');
  return out;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const mtimeNs = (p: string | Buffer): bigint => fs.lstatSync(p, { bigint: true }).mtimeNs;

describe('haul-probe --restore', () => {
  let tmp: string;
  let n = 0;
  /** A fresh target directory, and an "outside" directory next to it with one file. */
  const sandbox = (): { target: string; outside: string; outsideBefore: string[] } => {
    const dir = path.join(tmp, `box-${++n}`);
    const target = path.join(dir, 'target');
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(target, { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret'), 'do not touch\n');
    return { target, outside, outsideBefore: listing(outside) };
  };

  beforeAll(() => {
    execFileSync('bash', [path.join(root, 'probe', 'build.sh')], { stdio: 'pipe' });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-probe-restore-'));
    fs.chmodSync(tmp, 0o755);
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('says HELLO first, like the backup session', async () => {
    const { target } = sandbox();
    const r = await run(target, []);
    expect(r.code).toBe(0);
    const hello = decodeHello(r.hello!.body);
    expect(hello).toMatchObject({ magic: 'HAULPRB1', version: protocolVersion, arch });
    expect(r.done).toEqual(doneWith({}, process.getuid!()));
  });

  it('restores every kind byte for byte: modes, owners, mtimes to the nanosecond, symlinks, hard links, fifos, odd names', async () => {
    const { target, outside, outsideBefore } = sandbox();
    const readme = textLike('restore-readme', 300 * KiB);
    const random = pseudoRandom('restore-random', 3 * MiB + 17);
    const sparse = Buffer.concat([pseudoRandom('sparse-head', 100 * KiB), Buffer.alloc(8 * MiB), Buffer.from('tail')]);
    const items: Item[] = [
      { kind: RestoreKind.dir, path: 'docs', mode: 0o750, mtimeNs: T0 + 1n },
      { kind: RestoreKind.file, path: 'docs/readme.txt', mode: 0o640, data: readme, zstd: true, mtimeNs: T0 + 2n },
      { kind: RestoreKind.dir, path: 'docs/deep', mode: 0o700, mtimeNs: T0 + 3n },
      { kind: RestoreKind.file, path: 'docs/deep/random.bin', data: random, piece: MiB, zstd: true, mtimeNs: T0 + 4n },
      { kind: RestoreKind.file, path: 'docs/hard-a', data: Buffer.from('linked\n'), linkId: 1, mtimeNs: T0 + 5n },
      { kind: RestoreKind.dir, path: 'readonly', mode: 0o555, mtimeNs: T0 + 6n },
      { kind: RestoreKind.file, path: 'readonly/inside.txt', data: Buffer.from('in a read-only directory\n'), mode: 0o444 },
      { kind: RestoreKind.hardlink, path: 'hard-b', linkId: 1 },
      { kind: RestoreKind.file, path: 'empty', data: Buffer.alloc(0), mtimeNs: -1_000_000_001n }, // before 1970
      { kind: RestoreKind.file, path: 'sparse.img', data: sparse, piece: 4 * MiB },
      { kind: RestoreKind.symlink, path: 'link-to-readme', target: 'docs/readme.txt', mtimeNs: T0 + 7n },
      { kind: RestoreKind.symlink, path: 'absolute-link', target: outside }, // stored, never followed
      { kind: RestoreKind.fifo, path: 'a-fifo', mode: 0o640, mtimeNs: T0 + 8n },
      { kind: RestoreKind.file, path: oddNames.newline, data: Buffer.from('newline name\n') },
      { kind: RestoreKind.file, path: oddNames.invalidUtf8, data: Buffer.from('invalid utf8 name\n') },
      { kind: RestoreKind.file, path: oddNames.utf8, data: Buffer.from('utf8 name\n') },
      { kind: RestoreKind.file, path: 'setuid-prog', mode: 0o4755, data: Buffer.from('#!/bin/sh\n'), uid: 12345, gid: 23456 },
      { kind: RestoreKind.dir, path: 'owned', mode: 0o2775, uid: 12345, gid: 23456 },
      { kind: RestoreKind.symlink, path: 'owned/link', target: 'x', uid: 12345, gid: 23456 },
    ];
    const r = await run(target, items);
    expect({ code: r.code, stderr: r.stderr, warns: r.warns }).toEqual({ code: 0, stderr: '', warns: [] });
    const t = (p: string | Buffer) => Buffer.concat([Buffer.from(target + '/'), bytes(p)]);
    for (const item of items.filter((i) => i.kind === RestoreKind.file)) expect(sha(fs.readFileSync(t(item.path))), String(item.path)).toBe(sha(item.data!));
    expect(fs.statSync(t('docs/readme.txt')).mode & 0o7777).toBe(0o640);
    expect(fs.statSync(t('docs')).mode & 0o7777).toBe(0o750);
    expect(fs.statSync(t('readonly')).mode & 0o7777).toBe(0o555);
    expect(fs.statSync(t('readonly/inside.txt')).mode & 0o7777).toBe(0o444);
    expect(fs.statSync(t('a-fifo')).isFIFO()).toBe(true);
    expect(fs.statSync(t('a-fifo')).mode & 0o7777).toBe(0o640);
    // mtimes to the nanosecond, directories' after their contents were written
    expect(mtimeNs(t('docs'))).toBe(T0 + 1n);
    expect(mtimeNs(t('docs/readme.txt'))).toBe(T0 + 2n);
    expect(mtimeNs(t('docs/deep'))).toBe(T0 + 3n);
    expect(mtimeNs(t('readonly'))).toBe(T0 + 6n);
    expect(mtimeNs(t('link-to-readme'))).toBe(T0 + 7n);
    expect(mtimeNs(t('a-fifo'))).toBe(T0 + 8n);
    expect(mtimeNs(t('empty'))).toBe(-1_000_000_001n);
    expect(fs.readlinkSync(t('link-to-readme')).toString()).toBe('docs/readme.txt');
    expect(fs.readlinkSync(t('absolute-link')).toString()).toBe(outside);
    expect(fs.statSync(t('hard-b')).ino).toBe(fs.statSync(t('docs/hard-a')).ino);
    expect(fs.statSync(t('hard-b')).nlink).toBe(2);
    // Zero blocks are holes: 8 MiB of zeros take (almost) no space.
    expect(fs.statSync(t('sparse.img')).blocks * 512).toBeLessThan(1 * MiB);
    if (isRoot) {
      expect(fs.statSync(t('setuid-prog')).mode & 0o7777).toBe(0o4755);
      expect([fs.statSync(t('setuid-prog')).uid, fs.statSync(t('setuid-prog')).gid]).toEqual([12345, 23456]);
      expect([fs.lstatSync(t('owned/link')).uid, fs.lstatSync(t('owned')).gid]).toEqual([12345, 23456]);
      expect(fs.statSync(t('owned')).mode & 0o7777).toBe(0o2775);
    }
    const bytesIn = items.reduce((s, i) => s + (i.data?.length ?? 0), 0);
    expect(r.done).toEqual(doneWith({ entries: items.length, files: 10, dirs: 4, symlinks: 3, hardlinks: 1, specials: 1, bytes: bytesIn }, 0));
    expect(listing(target).some((e) => e.includes('.haul-restore-'))).toBe(false);
    expect(listing(outside)).toEqual(outsideBefore);
  });

  it('does not replace an existing entry without overwrite, and says so; with overwrite replaces it atomically', async () => {
    const { target } = sandbox();
    fs.writeFileSync(path.join(target, 'existing.txt'), 'old\n');
    fs.mkdirSync(path.join(target, 'kept-dir'));
    fs.writeFileSync(path.join(target, 'kept-dir', 'mine.txt'), 'not in the snapshot\n');
    fs.writeFileSync(path.join(target, 'file-in-the-way'), 'a file where the snapshot has a directory\n');
    fs.symlinkSync('somewhere', path.join(target, 'old-link'));
    const items: Item[] = [
      { kind: RestoreKind.file, path: 'existing.txt', data: Buffer.from('new\n'), mode: 0o600 },
      { kind: RestoreKind.dir, path: 'kept-dir', mode: 0o700, mtimeNs: T0 },
      { kind: RestoreKind.file, path: 'kept-dir/new.txt', data: Buffer.from('added\n') },
      { kind: RestoreKind.dir, path: 'file-in-the-way' },
      { kind: RestoreKind.file, path: 'file-in-the-way/child.txt', data: Buffer.from('child\n') },
      { kind: RestoreKind.symlink, path: 'old-link', target: 'elsewhere' },
    ];
    const keptDirMtime = mtimeNs(path.join(target, 'kept-dir'));
    const before = await run(target, items);
    expect(before.code).toBe(0);
    expect(before.warns).toEqual([
      { path: 'existing.txt', errno: EEXIST, message: MSG_EXISTS },
      { path: 'file-in-the-way', errno: EEXIST, message: MSG_DIR_IN_THE_WAY },
      { path: 'old-link', errno: EEXIST, message: MSG_EXISTS },
    ]);
    expect(fs.readFileSync(path.join(target, 'existing.txt'), 'utf8')).toBe('old\n');
    expect(fs.readFileSync(path.join(target, 'file-in-the-way'), 'utf8')).toBe('a file where the snapshot has a directory\n');
    expect(fs.readlinkSync(path.join(target, 'old-link')).toString()).toBe('somewhere');
    // An existing directory is entered; without overwrite its metadata stays as it was.
    expect(fs.readFileSync(path.join(target, 'kept-dir', 'new.txt'), 'utf8')).toBe('added\n');
    expect(fs.readFileSync(path.join(target, 'kept-dir', 'mine.txt'), 'utf8')).toBe('not in the snapshot\n');
    expect(fs.statSync(path.join(target, 'kept-dir')).mode & 0o777).toBe(0o755);
    expect(mtimeNs(path.join(target, 'kept-dir'))).not.toBe(T0);
    expect(keptDirMtime).not.toBe(T0);
    expect(before.done).toEqual(doneWith({ entries: 6, files: 1, dirs: 1, leftOut: 4, bytes: 6 }, 0));

    const oldIno = fs.statSync(path.join(target, 'existing.txt')).ino;
    const after = await run(target, items, { overwrite: true });
    expect({ code: after.code, warns: after.warns }).toEqual({ code: 0, warns: [] });
    expect(fs.readFileSync(path.join(target, 'existing.txt'), 'utf8')).toBe('new\n');
    expect(fs.statSync(path.join(target, 'existing.txt')).mode & 0o777).toBe(0o600);
    // Replaced by a rename: a new inode, never the old file truncated and rewritten.
    expect(fs.statSync(path.join(target, 'existing.txt')).ino).not.toBe(oldIno);
    expect(fs.statSync(path.join(target, 'file-in-the-way')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(target, 'file-in-the-way', 'child.txt'), 'utf8')).toBe('child\n');
    expect(fs.readlinkSync(path.join(target, 'old-link')).toString()).toBe('elsewhere');
    // With overwrite the directory that existed gets the snapshot's metadata; its other files stay.
    expect(fs.statSync(path.join(target, 'kept-dir')).mode & 0o777).toBe(0o700);
    expect(mtimeNs(path.join(target, 'kept-dir'))).toBe(T0);
    expect(fs.readFileSync(path.join(target, 'kept-dir', 'mine.txt'), 'utf8')).toBe('not in the snapshot\n');
    expect(after.done).toEqual(doneWith({ entries: 6, files: 3, dirs: 2, symlinks: 1, bytes: 16 }, 0));
    expect(listing(target).some((e) => e.includes('.haul-restore-'))).toBe(false);
  });

  it('ancestors: created when missing, an existing one never changed, a non-directory in the way never replaced', async () => {
    const { target } = sandbox();
    fs.mkdirSync(path.join(target, 'srv'), { mode: 0o711 });
    fs.writeFileSync(path.join(target, 'opt'), 'not a directory\n');
    const items: Item[] = [
      { kind: RestoreKind.dir, path: 'srv', flags: RestoreEntryFlag.ancestor, mode: 0o700, mtimeNs: T0 },
      { kind: RestoreKind.dir, path: 'srv/www', flags: RestoreEntryFlag.ancestor, mode: 0o750, mtimeNs: T0 + 1n },
      { kind: RestoreKind.file, path: 'srv/www/index.html', data: Buffer.from('<h1>hi</h1>\n') },
      { kind: RestoreKind.dir, path: 'opt', flags: RestoreEntryFlag.ancestor },
      { kind: RestoreKind.file, path: 'opt/app', data: Buffer.from('app\n') },
    ];
    const r = await run(target, items, { overwrite: true });
    expect(r.code).toBe(0);
    expect(r.warns).toEqual([{ path: 'opt', errno: EEXIST, message: MSG_ANCESTOR_IN_THE_WAY }]);
    expect(fs.statSync(path.join(target, 'srv')).mode & 0o777).toBe(0o711);
    expect(mtimeNs(path.join(target, 'srv'))).not.toBe(T0);
    expect(fs.statSync(path.join(target, 'srv/www')).mode & 0o777).toBe(0o750);
    expect(mtimeNs(path.join(target, 'srv/www'))).toBe(T0 + 1n);
    expect(fs.readFileSync(path.join(target, 'opt'), 'utf8')).toBe('not a directory\n');
    expect(r.done).toEqual(doneWith({ entries: 5, files: 1, dirs: 2, leftOut: 2, bytes: 12 }, 0));
  });

  it('never writes through a symlink that is already inside the target', async () => {
    const { target, outside, outsideBefore } = sandbox();
    fs.symlinkSync(outside, path.join(target, 'etc'));
    fs.symlinkSync(path.join(outside, 'secret'), path.join(target, 'file-link'));
    const items: Item[] = [
      { kind: RestoreKind.dir, path: 'etc' },
      { kind: RestoreKind.file, path: 'etc/secret', data: Buffer.from('overwritten!\n') },
      { kind: RestoreKind.file, path: 'etc/planted', data: Buffer.from('planted\n') },
      { kind: RestoreKind.file, path: 'file-link', data: Buffer.from('through the link?\n') },
    ];
    const without = await run(target, items);
    expect(without.code).toBe(0);
    expect(without.warns).toEqual([
      { path: 'etc', errno: EEXIST, message: MSG_DIR_IN_THE_WAY },
      { path: 'file-link', errno: EEXIST, message: MSG_EXISTS },
    ]);
    expect(listing(outside)).toEqual(outsideBefore);
    // With overwrite the symlinks themselves are replaced; what they pointed at is untouched.
    const over = await run(target, items, { overwrite: true });
    expect({ code: over.code, warns: over.warns }).toEqual({ code: 0, warns: [] });
    expect(listing(outside)).toEqual(outsideBefore);
    expect(fs.lstatSync(path.join(target, 'etc')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(target, 'etc', 'secret'), 'utf8')).toBe('overwritten!\n');
    expect(fs.lstatSync(path.join(target, 'file-link')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('do not touch\n');
  });

  it('links only to a file this restore created, and only while it is still that file', async () => {
    const { target, outside, outsideBefore } = sandbox();
    const p = new RestoreProbe();
    await p.write(encodeRestoreStart({ overwrite: true, maxData: MiB, target: Buffer.from(target) }));
    await p.write(...itemFrames({ kind: RestoreKind.file, path: 'a', data: Buffer.from('mine\n'), linkId: 1 }));
    await p.write(...itemFrames({ kind: RestoreKind.file, path: 'marker', data: Buffer.from('x') }));
    const a = path.join(target, 'a');
    while (!fs.existsSync(path.join(target, 'marker'))) await new Promise((r) => setTimeout(r, 5));
    // Someone swaps the restored file for a link to a file outside the target.
    fs.rmSync(a);
    fs.linkSync(path.join(outside, 'secret'), a);
    await p.write(...itemFrames({ kind: RestoreKind.hardlink, path: 'b', linkId: 1 }), END);
    p.child.stdin.end();
    expect((await p.exit).code).toBe(0);
    expect(p.warns).toEqual([{ path: 'b', errno: 0, message: 'hard link not created: the file it links to is no longer the one this restore created' }]);
    expect(fs.existsSync(path.join(target, 'b'))).toBe(false);
    expect(fs.statSync(path.join(outside, 'secret')).nlink).toBe(2); // only the swap's own link
    expect(listing(outside)).toEqual(outsideBefore);

    // A link to a file that was not restored (it existed, no overwrite) is not made either.
    const second = sandbox();
    fs.writeFileSync(path.join(second.target, 'a'), 'already here\n');
    const r = await run(second.target, [
      { kind: RestoreKind.file, path: 'a', data: Buffer.from('mine\n'), linkId: 1 },
      { kind: RestoreKind.hardlink, path: 'b', linkId: 1 },
    ]);
    expect(r.warns).toEqual([
      { path: 'a', errno: EEXIST, message: MSG_EXISTS },
      { path: 'b', errno: 0, message: 'hard link not created: the file it links to was not restored' },
    ]);
    expect(fs.existsSync(path.join(second.target, 'b'))).toBe(false);
  });

  it('removes an abandoned file, and creates device nodes only as root', async () => {
    const { target } = sandbox();
    const r = await run(target, [
      { kind: RestoreKind.file, path: 'damaged', data: pseudoRandom('damaged', 200 * KiB), size: 300 * KiB, abandon: true },
      { kind: RestoreKind.chardev, path: 'null', mode: 0o666, rdev: (1 << 8) | 3 },
    ]);
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(target, 'damaged'))).toBe(false);
    expect(listing(target).filter((e) => e !== 'null')).toEqual([]);
    if (isRoot) {
      expect(r.warns).toEqual([]);
      expect(fs.statSync(path.join(target, 'null')).isCharacterDevice()).toBe(true);
      expect(fs.statSync(path.join(target, 'null')).rdev).toBe((1 << 8) | 3);
      expect(r.done).toEqual(doneWith({ entries: 2, specials: 1, leftOut: 1 }, 0));
    }
  });

  describe('the target', () => {
    it('creates missing directories of the target (mode 0700) and never changes the target itself', async () => {
      const { target } = sandbox();
      const deep = path.join(target, 'new', 'deeper');
      const r = await run(deep, [{ kind: RestoreKind.file, path: 'f', data: Buffer.from('f\n') }]);
      expect(r.code).toBe(0);
      expect(fs.statSync(path.join(target, 'new')).mode & 0o777).toBe(0o700);
      expect(fs.statSync(deep).mode & 0o777).toBe(0o700);
      expect(fs.readFileSync(path.join(deep, 'f'), 'utf8')).toBe('f\n');
    });

    it('exits 5 when a component of the target is a symlink or not a directory', async () => {
      const { target, outside, outsideBefore } = sandbox();
      fs.symlinkSync(outside, path.join(target, 'link'));
      const viaLink = await run(path.join(target, 'link', 'sub'), [{ kind: RestoreKind.file, path: 'f', data: Buffer.from('f\n') }]);
      expect(viaLink.code).toBe(5);
      expect(viaLink.stderr).toBe(`haul-probe: cannot restore into ${target}/link/sub: ${target}/link is a symlink, and the probe never follows one: give the real path\n`);
      expect(listing(outside)).toEqual(outsideBefore);
      fs.writeFileSync(path.join(target, 'plain'), 'x');
      const viaFile = await run(path.join(target, 'plain'), []);
      expect(viaFile.code).toBe(5);
      expect(viaFile.stderr).toBe(`haul-probe: cannot restore into ${target}/plain: ${target}/plain is not a directory\n`);
    });
  });

  describe('a hostile stream', () => {
    const file = (p: string | Buffer, data = Buffer.from('x')): Item => ({ kind: RestoreKind.file, path: p, data });
    const entryBody = (e: Omit<Partial<RestoreEntry>, 'path' | 'target'> & { path: Buffer | string; target?: Buffer }): Buffer => encodeRestoreEntry({ kind: RestoreKind.file, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, ...e, path: bytes(e.path) }).subarray(5);
    const frame = (type: number, body: Buffer) => encodeFrame(type, body);
    const dataFrame = (compression: number, raw: number, payload: Buffer) => [restoreDataHead(compression, raw, payload.length), payload];
    const unsafe = /RESTORE_ENTRY path "[^"]*" is not a safe relative path \(components of 1 to 255 bytes without NUL, not \. or \.\., no \/ at either end, at most 4096 bytes\)/;

    const cases: { name: string; items?: Item[]; raw: Buffer[]; error: RegExp; maxData?: number }[] = [
      { name: 'a name with ..', raw: [frame(RestoreServerMessage.entry, entryBody({ path: '../escape', size: 0 }))], error: unsafe },
      { name: '.. deeper in', items: [{ kind: RestoreKind.dir, path: 'a' }], raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'a/../../escape' }))], error: unsafe },
      { name: 'an absolute path', raw: [frame(RestoreServerMessage.entry, entryBody({ path: `/${'x'}` }))], error: unsafe },
      { name: 'a NUL in a name', raw: [frame(RestoreServerMessage.entry, entryBody({ path: Buffer.from('a\0b') }))], error: unsafe },
      { name: 'an empty path', raw: [frame(RestoreServerMessage.entry, entryBody({ path: '' }))], error: unsafe },
      { name: 'a . component', raw: [frame(RestoreServerMessage.entry, entryBody({ path: './x' }))], error: unsafe },
      { name: 'an empty component', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'x//y' }))], error: unsafe },
      { name: 'a trailing /', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'x/' }))], error: unsafe },
      { name: 'a name of 256 bytes', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'n'.repeat(256) }))], error: unsafe },
      { name: 'a path over 4096 bytes', raw: [frame(RestoreServerMessage.entry, entryBody({ path: `${'d/'.repeat(2048)}x` }))], error: /RESTORE_ENTRY with a path or link target of more than 4096 bytes/ },
      { name: 'an entry in a directory never sent', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'nodir/file' }))], error: /RESTORE_ENTRY "nodir\/file" is not inside a directory being restored/ },
      {
        name: 'an entry below a symlink the stream created',
        items: [{ kind: RestoreKind.symlink, path: 's', target: '/' }],
        raw: [frame(RestoreServerMessage.entry, entryBody({ path: 's/etc-passwd' }))],
        error: /RESTORE_ENTRY "s\/etc-passwd" is not inside a directory being restored/,
      },
      { name: 'a hard link to a link id no file had', items: [file('a')], raw: [frame(RestoreServerMessage.entry, entryBody({ kind: RestoreKind.hardlink, path: 'b', linkId: 1 }))], error: /RESTORE_ENTRY "b" is a hard link to link id 1, which no earlier file of this restore has/ },
      { name: 'link ids out of order', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'a', linkId: 2 }))], error: /RESTORE_ENTRY "a": link id 2, expected 0 or the next one, 1/ },
      { name: 'a socket', raw: [frame(RestoreServerMessage.entry, entryBody({ kind: 7 as never, path: 'sock' }))], error: /RESTORE_ENTRY "sock": kind 7 is not one the probe restores/ },
      { name: 'file-type bits in the mode', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', mode: 0o100644 }))], error: /RESTORE_ENTRY "f": mode 0100644 has bits beyond 07777/ },
      { name: 'a symlink target with NUL', raw: [frame(RestoreServerMessage.entry, entryBody({ kind: RestoreKind.symlink, path: 'l', target: Buffer.from('/etc\0') }))], error: /a symlink target must be 1 to 4096 bytes without NUL/ },
      { name: 'a bytes16 length beyond the body', raw: [frame(RestoreServerMessage.entry, Buffer.from([1, 0, 0xff, 0x0f, 0x41]))], error: /RESTORE_ENTRY body does not parse exactly/ },
      { name: 'data beyond the file size', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 10 })), ...dataFrame(0, 11, Buffer.alloc(11, 1))], error: /RESTORE_DATA for "f" goes beyond its size of 10 bytes/ },
      { name: 'FILE_END before all the bytes', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 10 })), ...dataFrame(0, 4, Buffer.alloc(4, 1)), encodeRestoreFileEnd(0)], error: /RESTORE_FILE_END of "f" after 4 bytes, but its entry says 10/ },
      { name: 'a raw length that lies', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 100 })), ...dataFrame(0, 100, Buffer.alloc(50, 1))], error: /RESTORE_DATA for "f": 50 data bytes, but a raw length of 100/ },
      { name: 'a zstd frame of another size', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 100 })), ...dataFrame(1, 100, compress(Buffer.alloc(99)))], error: /RESTORE_DATA for "f" is not one zstd frame of exactly 100 bytes/ },
      { name: 'a zstd bomb', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 4096 })), ...dataFrame(1, 4096, compress(Buffer.alloc(64 * MiB)))], error: /RESTORE_DATA for "f" is not one zstd frame of exactly 4096 bytes/ },
      { name: 'data above the max data', maxData: 1024, raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 2048 })), ...dataFrame(0, 2048, Buffer.alloc(2048))], error: /RESTORE_DATA of 2048 bytes exceeds the max data of 1024 bytes/ },
      { name: 'data outside a file', raw: [...dataFrame(0, 1, Buffer.alloc(1))], error: /RESTORE_DATA outside of a file/ },
      { name: 'an entry inside a file', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 1 })), frame(RestoreServerMessage.entry, entryBody({ path: 'g' }))], error: /RESTORE_ENTRY before RESTORE_FILE_END of "f"/ },
      { name: 'RESTORE_END inside a file', raw: [frame(RestoreServerMessage.entry, entryBody({ path: 'f', size: 1 })), END], error: /RESTORE_END before RESTORE_FILE_END of "f"/ },
      { name: 'a backup frame', raw: [frame(0x15, Buffer.alloc(4))], error: /frame type 0x15 is not part of a restore session/ },
      { name: 'an oversized frame', raw: [Buffer.from([...new BodyWriter().u32(maxFrameLength + 1).done(), RestoreServerMessage.data])], error: /frame of 16842753 bytes from the server exceeds the limit/ },
    ];

    for (const c of cases) {
      it(`refuses ${c.name}, writing nothing outside the target`, async () => {
        const { target, outside, outsideBefore } = sandbox();
        const r = await run(target, c.items ?? [], { raw: c.raw, ...(c.maxData ? { maxData: c.maxData } : {}) });
        expect(r.code).toBe(4);
        expect(r.stderr).toMatch(/^haul-probe: protocol violation: [^\n]+\n$/);
        expect(r.stderr).toMatch(c.error);
        expect(listing(outside)).toEqual(outsideBefore);
        expect(listing(path.dirname(target))).toEqual(['outside', `outside/${outsideBefore[0]}`, 'target', ...listing(target).map((e) => `target/${e}`)]);
        expect(listing(target).filter((e) => e.includes('.haul-restore-'))).toEqual([]);
        expect(listing(target).some((e) => e.includes('escape') || e.includes('passwd'))).toBe(false);
      });
    }

    it('refuses a bad RESTORE: another frame first, a relative target, unknown flags, max data of 0', async () => {
      const starts: [Buffer, RegExp][] = [
        [frame(RestoreServerMessage.entry, entryBody({ path: 'f' })), /expected RESTORE \(0x40\), got frame type 0x41/],
        [encodeRestoreStart({ overwrite: false, maxData: MiB, target: Buffer.from('relative/dir') }), /RESTORE target is not an absolute, normalised path/],
        [encodeRestoreStart({ overwrite: false, maxData: MiB, target: Buffer.from('/tmp/../etc') }), /RESTORE target is not an absolute, normalised path/],
        [frame(RestoreServerMessage.restore, new BodyWriter().u8(2).u32(MiB).bytes16('/tmp').done()), /RESTORE flags 0x02 has unknown bits/],
        [frame(RestoreServerMessage.restore, new BodyWriter().u8(0).u32(0).bytes16('/tmp').done()), /RESTORE max data 0 is not in 1..16777216/],
        [frame(RestoreServerMessage.restore, new BodyWriter().u8(0).u32(MiB).bytes16('/tmp').u8(0).done()), /RESTORE body does not parse exactly/],
      ];
      for (const [start, error] of starts) {
        const p = new RestoreProbe();
        await p.write(start);
        p.child.stdin.end();
        expect((await p.exit).code).toBe(4);
        expect(p.stderr).toMatch(error);
      }
    });

    it('exits 3 when stdin closes inside a file, and leaves no temporary file', async () => {
      const { target } = sandbox();
      const p = new RestoreProbe();
      await p.write(encodeRestoreStart({ overwrite: false, maxData: MiB, target: Buffer.from(target) }));
      await p.write(frame(RestoreServerMessage.entry, entryBody({ path: 'half', size: 2 * MiB })), ...dataFrame(0, MiB, pseudoRandom('half', MiB)));
      await p.write(restoreDataHead(0, MiB, MiB), Buffer.alloc(1000)); // a frame cut short
      while (!listing(target).some((e) => e.startsWith('.haul-restore-'))) await new Promise((r) => setTimeout(r, 5));
      p.child.stdin.end();
      expect((await p.exit).code).toBe(3);
      expect(p.stderr).toBe('haul-probe: stdin closed before RESTORE_END: the server ended the session; ending\n');
      expect(listing(target)).toEqual([]);
    });
  });

  describe.skipIf(!isRoot || sshdSkipReason() !== undefined)('as a user that is not root', () => {
    let user: UnixUser;
    beforeAll(() => {
      user = ensureUser('haul-t-rst-probe');
    });

    it('keeps the restoring user as owner of what it cannot give away, counts it, drops those set-id bits, and refuses device nodes', async () => {
      const { target } = sandbox();
      fs.chownSync(target, user.uid, user.gid);
      const items: Item[] = [
        { kind: RestoreKind.dir, path: 'd', uid: 0, gid: 0 },
        { kind: RestoreKind.file, path: 'd/setuid-prog', mode: 0o4755, uid: 0, gid: 0, data: Buffer.from('#!/bin/sh\n') },
        { kind: RestoreKind.file, path: 'd/plain', mode: 0o640, uid: 0, gid: 0, data: Buffer.from('plain\n') },
        { kind: RestoreKind.symlink, path: 'd/link', target: 'plain', uid: 0, gid: 0 },
        { kind: RestoreKind.chardev, path: 'd/null', mode: 0o666, rdev: (1 << 8) | 3 },
        // The user's own entries keep their owner, so their set-id bits too.
        { kind: RestoreKind.file, path: 'd/own-setuid', mode: 0o4750, uid: user.uid, gid: user.gid, data: Buffer.from('own\n') },
      ];
      const r = await run(target, items, { user });
      expect(r.code).toBe(0);
      expect(r.warns).toEqual([{ path: 'd/null', errno: EPERM, message: 'device node not restored: creating device nodes needs root' }]);
      for (const p of ['d', 'd/setuid-prog', 'd/plain']) expect(fs.statSync(path.join(target, p)).uid, p).toBe(user.uid);
      expect(fs.lstatSync(path.join(target, 'd/link')).uid).toBe(user.uid);
      expect(fs.statSync(path.join(target, 'd/setuid-prog')).mode & 0o7777).toBe(0o755);
      expect(fs.statSync(path.join(target, 'd/plain')).mode & 0o7777).toBe(0o640);
      expect(fs.statSync(path.join(target, 'd/own-setuid')).mode & 0o7777).toBe(0o4750);
      expect(r.done).toEqual(doneWith({ entries: 6, files: 3, dirs: 1, symlinks: 1, leftOut: 1, bytes: 20, ownersNotSet: 4, setIdDropped: 1 }, user.uid));
    });
  });

  it(`restores a 128 MiB file with a peak RSS of at most 16 MiB (4 MiB pieces, raw and zstd)`, async () => {
    const { target } = sandbox();
    const p = new RestoreProbe();
    await p.write(encodeRestoreStart({ overwrite: false, maxData: 4 * MiB, target: Buffer.from(target) }));
    const size = 128 * MiB;
    await p.write(encodeRestoreEntry({ kind: RestoreKind.file, path: Buffer.from('big.bin'), mode: 0o644, uid: 0, gid: 0, mtimeNs: T0, size }));
    const hash = createHash('sha256');
    const text = textLike('big', 4 * MiB);
    for (let at = 0, i = 0; at < size; at += 4 * MiB, i++) {
      const piece = i % 2 ? text : pseudoRandom(`big-${i}`, 4 * MiB);
      hash.update(piece);
      const z = i % 2 ? compress(piece) : undefined;
      await p.write(restoreDataHead(z ? 1 : 0, piece.length, (z ?? piece).length), z ?? piece);
    }
    await p.write(encodeRestoreFileEnd(0));
    while (!fs.existsSync(path.join(target, 'big.bin'))) await new Promise((r) => setTimeout(r, 10));
    const rss = p.peakRssKiB();
    await p.write(END);
    p.child.stdin.end();
    expect((await p.exit).code).toBe(0);
    expect(sha(fs.readFileSync(path.join(target, 'big.bin')))).toBe(hash.digest('hex'));
    console.log(`probe --restore: peak RSS ${(rss / 1024).toFixed(1)} MiB for a 128 MiB file in 4 MiB pieces`);
    if (!sanitized) expect(rss).toBeLessThanOrEqual(16 * 1024);
  }, 60_000);
});
