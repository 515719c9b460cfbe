// haul-probe --serve, backup session (docs/probe-protocol.md): this test plays the server over
// the probe's stdin/stdout, without SSH, and checks every frame against the file system.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, createHmac, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zstd from 'zstd-napi/binding.js';
import {
  BodyReader, BodyWriter, ChunkCompression, EntryFlag, EntryKind, FrameDecoder, encodeFrame, helloMagic, maxFrameLength,
  previousRecordsPerFrame, ProbeMessage, protocolVersion, ServerMessage, type Frame,
} from '../../shared/probe-protocol.js';
import { GearChunker, cutAll } from '../../daemon/chunker/gear-chunker.js';
import { defaultChunker } from '../../daemon/repository/config.js';
import { pseudoRandom, textLike } from '../helpers/fixtures.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
// HAUL_PROBE_BIN runs the suite against another build of the probe (a sanitizer build, say).
const probe = process.env.HAUL_PROBE_BIN ?? path.join(root, 'probe', 'dist', `haul-probe-${arch}`);
const sanitized = process.env.HAUL_PROBE_BIN !== undefined;

const KiB = 1024;
const MiB = 1024 * KiB;
const KEY = createHash('sha256').update('probe backup test key').digest();
const SIZES = { min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB };
/** A new repository's chunker (daemon/repository/config.ts). */
const DEFAULT_SIZES = { min: defaultChunker.minSize, avg: defaultChunker.avgSize, max: defaultChunker.maxSize, normalization: defaultChunker.normalization };
const ENOENT = 2;
const ELOOP = 40;

// ---- playing the server -------------------------------------------------------------------

interface Chunk { kind: 'new' | 'known' | 'repeat'; length: number; sha: Buffer; compression?: number; data?: Buffer }
interface Entry {
  kind: number; flags: number; path: Buffer; mode: number; uid: number; gid: number; size: bigint;
  mtimeNs: bigint; ctimeNs: bigint; inode: bigint; dev: bigint; nlink: number; rdev: bigint; target: Buffer;
  chunks: Chunk[]; end?: { bytes: bigint; status: number; errno: number };
}
interface Warn { path: Buffer; errno: number; message: string }
interface Hello { magic: string; version: number; probeVersion: string; arch: string; features: number }
interface Need { id: number; path: Buffer | string; offset: number; length: number; sha: Buffer }
type NeedReply = { id: number; gone: false; data: Buffer; sha: Buffer; compression: number } | { id: number; gone: true; errno: number };
/** For a directory, `size` is the number of entries in it. */
interface PrevRecord { kind: number; path: Buffer; size: bigint; mtimeNs: bigint; ctimeNs: bigint; inode: bigint }

/** The probe as a child process, its stdout cut into frames. */
class ProbeProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  /** Everything the probe wrote to stdout, in bytes. */
  bytesOut = 0;
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  onFrame: ((f: Frame) => void) | undefined;

  constructor() {
    this.child = spawn(probe, ['--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => undefined); // EPIPE once the probe has gone
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.child.stdout.on('data', (d: Buffer) => {
      this.bytesOut += d.length;
      for (const f of this.decoder.push(d)) {
        this.onFrame?.(f);
        this.frames.push(f);
      }
      this.wake?.();
    });
    this.child.stdout.on('end', () => { this.ended = true; this.wake?.(); });
    this.exit = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  async next(): Promise<Frame> {
    while (this.frames.length === 0) {
      if (this.ended) throw new Error(`probe stdout ended (stderr: ${this.stderr})`);
      await new Promise<void>((resolve) => { this.wake = resolve; });
      this.wake = undefined;
    }
    return this.frames.shift()!;
  }

  send(type: number, body: Buffer = Buffer.alloc(0)): void {
    this.child.stdin.write(encodeFrame(type, body));
  }

  /** Peak resident set (VmHWM) in KiB, while the process is alive. */
  peakRssKiB(): number {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  }
}

function parseHello(f: Frame): Hello {
  expect(f.type).toBe(ProbeMessage.hello);
  const r = new BodyReader(f.body);
  const hello = {
    magic: r.bytes(8).toString('latin1'), version: r.u16(), probeVersion: r.bytes16().toString(),
    arch: r.bytes16().toString(), features: r.u32(),
  };
  r.end();
  return hello;
}

function parseEntry(body: Buffer): Entry {
  const r = new BodyReader(body);
  const e: Entry = {
    kind: r.u8(), flags: r.u8(), path: Buffer.from(r.bytes16()), mode: r.u32(), uid: r.u32(), gid: r.u32(),
    size: r.u64(), mtimeNs: r.i64(), ctimeNs: r.i64(), inode: r.u64(), dev: r.u64(), nlink: r.u32(),
    rdev: r.u64(), target: Buffer.from(r.bytes16()), chunks: [],
  };
  r.end();
  return e;
}

function decompress(data: Buffer, rawLength: number): Buffer {
  // Exactly one frame that declares its size: what the server's bounded decompression accepts.
  expect(zstd.findFrameCompressedSize(data)).toBe(data.length);
  expect(zstd.getFrameContentSize(data)).toBe(rawLength);
  const out = Buffer.alloc(rawLength);
  expect(zstd.decompress(out, data)).toBe(rawLength);
  return out;
}

function parseChunkNew(body: Buffer): { need: number; compression: number; length: number; sha: Buffer; data: Buffer } {
  const r = new BodyReader(body);
  const need = r.u32();
  const compression = r.u8();
  const length = r.u32();
  const sha = Buffer.from(r.bytes(32));
  const payload = r.rest();
  expect([ChunkCompression.none, ChunkCompression.zstd]).toContain(compression);
  const data = compression === ChunkCompression.zstd ? decompress(payload, length) : Buffer.from(payload);
  if (compression === ChunkCompression.zstd) expect(payload.length).toBeLessThanOrEqual(length - (length >> 5));
  expect(data.length).toBe(length);
  return { need, compression, length, sha, data };
}

const pathHash = (p: Buffer): bigint => createHash('sha256').update(p).digest().readBigUInt64LE(0);
const fingerprint = (sha: Buffer): bigint => createHmac('sha256', KEY).update(sha).digest().readBigUInt64LE(0);
const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

interface BackupOptions {
  paths: (string | Buffer)[];
  excludes?: string[];
  oneFileSystem?: boolean;
  level?: number;
  /** Chunker sizes; normalization defaults to 2 (SIZES are cut with it). */
  sizes?: { min: number; avg: number; max: number; normalization?: number };
  previous?: PrevRecord[];
  known?: bigint[];
  needs?: Need[];
}

interface BackupResult {
  hello: Hello;
  entries: Entry[];
  warns: Warn[];
  walkDone: { entries: bigint; bytes: bigint };
  replies: NeedReply[];
  stderr: string;
  code: number | null;
  peakRssKiB: number;
  /** Bytes the probe wrote during the walk (HELLO to WALK_DONE). */
  walkBytes: number;
  /** The walk in order: "E <path>" for an ENTRY, "U <path>" for an UNCHANGED (the record's path). */
  order: string[];
}

function backupBody(o: BackupOptions): Buffer {
  const s: NonNullable<BackupOptions['sizes']> = o.sizes ?? SIZES;
  const w = new BodyWriter().u32(s.min).u32(s.avg).u32(s.max).u8(s.normalization ?? 2).bytes(KEY).i8(o.level ?? 3).u8(o.oneFileSystem ? 1 : 0);
  w.u16(o.paths.length);
  for (const p of o.paths) w.bytes16(p);
  w.u16(o.excludes?.length ?? 0);
  for (const x of o.excludes ?? []) w.bytes16(x);
  return w.done();
}

function sendSetup(p: ProbeProcess, o: BackupOptions): void {
  p.send(ServerMessage.backup, backupBody(o));
  const prev = o.previous ?? [];
  for (let i = 0; i < prev.length; i += previousRecordsPerFrame) {
    const w = new BodyWriter();
    for (const r of prev.slice(i, i + previousRecordsPerFrame)) {
      w.u64(pathHash(r.path)).u64(metadataDigest(r));
    }
    p.send(ServerMessage.previous, w.done());
  }
  p.send(ServerMessage.previousEnd, new BodyWriter().u64(prev.length).done());
  const known = [...(o.known ?? [])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (known.length > 0) {
    const w = new BodyWriter();
    for (const k of known) w.u64(k);
    p.send(ServerMessage.known, w.done());
  }
  p.send(ServerMessage.knownEnd, new BodyWriter().u64(known.length).done());
}

/** One whole session; checks the frame grammar on the way. */
async function backup(o: BackupOptions): Promise<BackupResult> {
  const p = new ProbeProcess();
  const hello = parseHello(await p.next());
  sendSetup(p, o);
  const entries: Entry[] = [];
  const warns: Warn[] = [];
  let open: Entry | undefined; // a file whose FILE_END has not come yet
  let walkDone: BackupResult['walkDone'] | undefined;
  const sent: Chunk[] = []; // this walk's CHUNK_NEW, by number: what a CHUNK_REPEAT names
  const order: string[] = [];
  while (!walkDone) {
    const f = await p.next();
    const r = new BodyReader(f.body);
    switch (f.type) {
      case ProbeMessage.entry: {
        expect(open, 'ENTRY before the previous file ended').toBeUndefined();
        const e = parseEntry(f.body);
        entries.push(e);
        if (e.kind === EntryKind.file) open = e;
        order.push(`E ${e.path.toString('latin1')}`);
        break;
      }
      case ProbeMessage.unchanged: {
        expect(open, 'UNCHANGED before the previous file ended').toBeUndefined();
        const index = r.u32();
        r.end();
        const record = o.previous?.[index];
        expect(record, `UNCHANGED of record ${index}`).toBeDefined();
        order.push(`U ${record!.path.toString('latin1')}`);
        break;
      }
      case ProbeMessage.chunkNew: {
        expect(open, 'CHUNK_NEW outside a file').toBeDefined();
        const c = parseChunkNew(f.body);
        expect(c.need).toBe(0);
        const chunk: Chunk = { kind: 'new', length: c.length, sha: c.sha, compression: c.compression, data: c.data };
        open!.chunks.push(chunk);
        sent.push(chunk);
        break;
      }
      case ProbeMessage.chunkRepeat: {
        expect(open, 'CHUNK_REPEAT outside a file').toBeDefined();
        const index = r.u32();
        const length = r.u32();
        const sha = Buffer.from(r.bytes(32));
        r.end();
        const earlier = sent[index];
        expect(earlier, `CHUNK_REPEAT of chunk ${index}, only ${sent.length} sent`).toBeDefined();
        // A false match of the probe's truncated fingerprints is possible but, at these sizes, never seen.
        expect(earlier!.sha).toEqual(sha);
        open!.chunks.push({ kind: 'repeat', length, sha, data: earlier!.data! });
        break;
      }
      case ProbeMessage.chunkKnown: {
        expect(open, 'CHUNK_KNOWN outside a file').toBeDefined();
        const length = r.u32();
        const sha = Buffer.from(r.bytes(32));
        r.end();
        open!.chunks.push({ kind: 'known', length, sha });
        break;
      }
      case ProbeMessage.fileEnd: {
        expect(open, 'FILE_END outside a file').toBeDefined();
        open!.end = { bytes: r.u64(), status: r.u8(), errno: r.i32() };
        r.end();
        open = undefined;
        break;
      }
      case ProbeMessage.warn: {
        warns.push({ path: Buffer.from(r.bytes16()), errno: r.i32(), message: r.bytes16().toString() });
        r.end();
        break;
      }
      case ProbeMessage.walkDone: {
        expect(open, 'WALK_DONE inside a file').toBeUndefined();
        walkDone = { entries: r.u64(), bytes: r.u64() };
        r.end();
        break;
      }
      default:
        throw new Error(`unexpected frame type 0x${f.type.toString(16)} during the walk`);
    }
  }
  // The walk is over and the probe waits for NEED/FINISH: its peak memory is final by now.
  const peakRssKiB = p.peakRssKiB();
  const walkBytes = p.bytesOut;
  for (const n of o.needs ?? []) {
    p.send(ServerMessage.need, new BodyWriter().u32(n.id).bytes16(n.path).u64(n.offset).u32(n.length).bytes(n.sha).done());
  }
  p.send(ServerMessage.finish);
  const replies: NeedReply[] = [];
  for (;;) {
    const f = await p.next();
    if (f.type === ProbeMessage.done) {
      expect(f.body.length).toBe(0);
      break;
    }
    if (f.type === ProbeMessage.chunkNew) {
      const c = parseChunkNew(f.body);
      replies.push({ id: c.need, gone: false, data: c.data, sha: c.sha, compression: c.compression });
    } else if (f.type === ProbeMessage.chunkGone) {
      const r = new BodyReader(f.body);
      replies.push({ id: r.u32(), gone: true, errno: r.i32() });
      r.end();
    } else {
      throw new Error(`unexpected frame type 0x${f.type.toString(16)} after WALK_DONE`);
    }
  }
  const { code } = await p.exit;
  return { hello, entries, warns, walkDone, replies, stderr: p.stderr, code, peakRssKiB, walkBytes, order };
}

// ---- the file system side -----------------------------------------------------------------

const join = (dir: Buffer, name: Buffer | string): Buffer => Buffer.concat([dir, Buffer.from('/'), Buffer.from(name)]);

/** The expected walk of one requested path: pre-order, names sorted by raw bytes, no symlink followed. */
function expectedWalk(p: Buffer, skip: (full: Buffer, name: Buffer) => boolean = () => false): Buffer[] {
  const out = [p];
  if (!fs.lstatSync(p).isDirectory()) return out;
  const names = (fs.readdirSync(p, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
  for (const name of names) {
    const full = join(p, name);
    if (skip(full, name)) continue;
    out.push(...expectedWalk(full, skip));
  }
  return out;
}

/** Ancestors of an absolute path, outermost first ("/" itself is never sent). */
function ancestors(p: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 1; i < p.length; i++) if (p[i] === 0x2f) out.push(p.subarray(0, i));
  return out;
}

function kindOf(st: fs.BigIntStats): number {
  if (st.isFile()) return EntryKind.file;
  if (st.isDirectory()) return EntryKind.dir;
  if (st.isSymbolicLink()) return EntryKind.symlink;
  if (st.isFIFO()) return EntryKind.fifo;
  if (st.isCharacterDevice()) return EntryKind.chardev;
  if (st.isBlockDevice()) return EntryKind.blockdev;
  return EntryKind.socket;
}

function expectMetadata(e: Entry, stable = false): void {
  const st = fs.lstatSync(e.path, { bigint: true });
  expect(e.kind).toBe(kindOf(st));
  expect(e.mode).toBe(Number(st.mode));
  expect(e.uid).toBe(Number(st.uid));
  expect(e.gid).toBe(Number(st.gid));
  expect(e.inode).toBe(st.ino);
  expect(e.dev).toBe(st.dev);
  expect(e.rdev).toBe(st.rdev);
  if (stable) return; // a directory others may write into meanwhile (the ancestors in /tmp)
  expect(e.size).toBe(st.size);
  expect(e.mtimeNs).toBe(st.mtimeNs);
  expect(e.ctimeNs).toBe(st.ctimeNs);
  expect(e.nlink).toBe(Number(st.nlink));
  expect(e.target).toEqual(st.isSymbolicLink() ? fs.readlinkSync(e.path, { encoding: 'buffer' }) : Buffer.alloc(0));
}

function referenceLengths(data: Buffer, sizes: NonNullable<BackupOptions['sizes']> = SIZES): number[] {
  return cutAll(new GearChunker(KEY, { algorithm: 'gear32-v1', minSize: sizes.min, avgSize: sizes.avg, maxSize: sizes.max, normalization: sizes.normalization ?? 2 }), data);
}

function chunksOf(data: Buffer, sizes: NonNullable<BackupOptions['sizes']> = SIZES): { offset: number; length: number; sha: Buffer }[] {
  let offset = 0;
  return referenceLengths(data, sizes).map((length) => {
    const c = { offset, length, sha: sha256(data.subarray(offset, offset + length)) };
    offset += length;
    return c;
  });
}

/** The server's digest of a PREVIOUS record (docs/probe-protocol.md, PREVIOUS). */
function metadataDigest(r: PrevRecord): bigint {
  const w = new BodyWriter().u8(r.kind).u64(r.size).i64(r.mtimeNs).i64(r.ctimeNs).u64(r.inode).done();
  return createHash('sha256').update(w).digest().readBigUInt64LE(0);
}

/** Records for the files of an earlier walk, and with `dirs` for its directories too (not ancestors). */
function previousFrom(entries: Entry[], options: { dirs?: boolean } = {}): PrevRecord[] {
  const parentOf = (p: Buffer) => p.subarray(0, p.lastIndexOf(0x2f)).toString('latin1');
  const counts = new Map<string, number>();
  for (const e of entries) if (!(e.flags & EntryFlag.ancestor)) counts.set(parentOf(e.path), (counts.get(parentOf(e.path)) ?? 0) + 1);
  return entries
    .filter((e) => e.kind === EntryKind.file || (options.dirs && e.kind === EntryKind.dir && !(e.flags & EntryFlag.ancestor)))
    .map((e) => ({
      kind: e.kind, path: e.path, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, inode: e.inode,
      size: e.kind === EntryKind.dir ? BigInt(counts.get(e.path.toString('latin1')) ?? 0) : e.size,
    }));
}

/** The expected walk of `p` against records of every file and directory: a directory that holds only files and directories collapses into one "U". */
function expectedOrder(p: Buffer): string[] {
  const onlyFilesAndDirs = (q: Buffer): boolean => {
    const st = fs.lstatSync(q);
    if (st.isFile()) return true;
    if (!st.isDirectory()) return false;
    return (fs.readdirSync(q, { encoding: 'buffer' }) as Buffer[]).every((n) => onlyFilesAndDirs(join(q, n)));
  };
  const st = fs.lstatSync(p);
  if (st.isFile() || (st.isDirectory() && onlyFilesAndDirs(p))) return [`U ${p.toString('latin1')}`];
  const out = [`E ${p.toString('latin1')}`];
  if (!st.isDirectory()) return out;
  for (const name of (fs.readdirSync(p, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) out.push(...expectedOrder(join(p, name)));
  return out;
}

const byPath = (entries: Entry[], p: Buffer | string): Entry | undefined => entries.find((e) => e.path.equals(Buffer.from(p)));

// ---- the tests ----------------------------------------------------------------------------

describe('haul-probe --serve: backup session', () => {
  let tmp: string;
  let data: Buffer; // the requested directory
  let files: Map<string, Buffer>; // path (latin1 key) -> content
  const big = pseudoRandom('probe backup 12 MiB', 12 * MiB);
  const text = textLike('probe backup text', 3 * MiB);
  const badName = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x80]);
  let first: BackupResult;

  beforeAll(() => {
    const r = spawnSync('bash', [path.join(root, 'probe', 'build.sh')], { cwd: root, timeout: 120_000 });
    if (r.status !== 0) throw new Error(`probe/build.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);

    tmp = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), 'haul-probe-backup-'));
    data = Buffer.from(path.join(tmp, 'data'));
    files = new Map();
    const put = (rel: Buffer | string, content: Buffer): void => {
      const full = join(data, rel);
      fs.writeFileSync(full, content);
      files.set(full.toString('latin1'), content);
    };
    fs.mkdirSync(path.join(tmp, 'data', 'dir', 'sub', 'deeper'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'data', 'dir-x'));
    fs.mkdirSync(path.join(tmp, 'data', 'cache', 'inner'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'data', 'dir', 'empty-dir'));
    put('big.bin', big);
    put('text.txt', text);
    put('empty', Buffer.alloc(0));
    put('small.txt', Buffer.from('hello\n'));
    put('B-upper', Buffer.from('sorted before lower case\n'));
    put('line\nbreak', Buffer.from('a newline in the name\n'));
    put(badName, Buffer.from('invalid UTF-8 in the name\n'));
    put('dir/a.txt', textLike('a', 100_000));
    put('dir/sub/deeper/deep.bin', pseudoRandom('deep', 300_000));
    put('dir/sub/skip.tmp', Buffer.from('excluded by name\n'));
    put('dir-x/x', Buffer.from('x\n'));
    put('cache/inner/c', Buffer.from('excluded with its directory\n'));
    put('top.tmp', Buffer.from('excluded by name\n'));
    fs.symlinkSync('small.txt', path.join(tmp, 'data', 'link'));
    fs.symlinkSync('/nonexistent/target', path.join(tmp, 'data', 'dir', 'dangling'));
    fs.symlinkSync('..', path.join(tmp, 'data', 'dir', 'up')); // never followed: no loop
    spawnSync('mkfifo', [path.join(tmp, 'data', 'fifo')]);
  }, 180_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('says HELLO with its version, architecture and features', async () => {
    const p = new ProbeProcess();
    const hello = parseHello(await p.next());
    expect(hello.magic).toBe(helloMagic);
    expect(hello.version).toBe(protocolVersion);
    const version = spawnSync(probe, ['--version']).stdout.toString();
    expect(version).toContain(`haul-probe ${hello.probeVersion} (${hello.arch}, `);
    if (!sanitized) expect(hello.arch).toBe(arch);
    expect(hello.features & 2 ? 'zstd' : 'no-zstd').toBe(version.includes(', zstd)') ? 'zstd' : 'no-zstd');
    expect(Boolean(hello.features & 1)).toBe(!version.includes(', portable, '));
    expect(hello.features & ~3).toBe(0);
    p.child.stdin.end();
    expect((await p.exit).code).toBe(3);
  });

  describe('a first backup of a generated tree', () => {
    beforeAll(async () => {
      first = await backup({ paths: [data] });
    }, 60_000);

    it('ends with WALK_DONE, DONE and exit 0, nothing on stderr, no warnings', () => {
      expect(first.code).toBe(0);
      expect(first.stderr).toBe('');
      expect(first.warns).toEqual([]);
      expect(first.walkDone.entries).toBe(BigInt(first.entries.length));
      const read = first.entries.reduce((n, e) => n + (e.end?.bytes ?? 0n), 0n);
      expect(first.walkDone.bytes).toBe(read);
    });

    it('sends the ancestors first, then the tree in pre-order with names sorted by raw bytes', () => {
      const anc = ancestors(data);
      expect(first.entries.map((e) => e.path.toString('latin1'))).toEqual(
        [...anc, ...expectedWalk(data)].map((p) => p.toString('latin1')));
      first.entries.forEach((e, i) => {
        expect(e.flags).toBe(i < anc.length ? EntryFlag.ancestor : 0);
        if (i < anc.length) expect(e.kind).toBe(EntryKind.dir);
      });
      // Names that are not text travel as raw bytes.
      expect(byPath(first.entries, join(data, badName))).toBeDefined();
      expect(byPath(first.entries, join(data, 'line\nbreak'))).toBeDefined();
      // A symlink to a directory is an entry, not a way in.
      expect(first.entries.some((e) => e.path.includes(Buffer.from('/up/')))).toBe(false);
    });

    it('reports metadata exactly as lstat sees it, for every kind of entry', () => {
      const anc = ancestors(data).length;
      first.entries.forEach((e, i) => expectMetadata(e, i < anc));
      expect(byPath(first.entries, join(data, 'link'))!.target.toString()).toBe('small.txt');
      expect(byPath(first.entries, join(data, 'fifo'))!.kind).toBe(EntryKind.fifo);
      expect(byPath(first.entries, join(data, 'dir/up'))!.kind).toBe(EntryKind.symlink);
    });

    it('sends every file as chunks that reproduce it byte for byte, cut where the server\'s chunker cuts', () => {
      const regular = first.entries.filter((e) => e.kind === EntryKind.file);
      expect(regular.length).toBe(files.size);
      for (const e of regular) {
        const want = files.get(e.path.toString('latin1'))!;
        expect(e.end).toEqual({ bytes: BigInt(want.length), status: 0, errno: 0 });
        expect(e.chunks.every((c) => c.kind !== 'known')).toBe(true);
        const got = Buffer.concat(e.chunks.map((c) => c.data!));
        expect(got.equals(want)).toBe(true);
        for (const c of e.chunks) expect(c.sha).toEqual(sha256(c.data!));
        expect(e.chunks.map((c) => c.length)).toEqual(referenceLengths(want));
      }
      const bigEntry = byPath(first.entries, join(data, 'big.bin'))!;
      expect(bigEntry.chunks.length).toBeGreaterThan(50);
      expect(byPath(first.entries, join(data, 'empty'))!.chunks).toEqual([]);
    });

    it('compresses chunks that shrink and sends random data raw', () => {
      const textChunks = byPath(first.entries, join(data, 'text.txt'))!.chunks;
      // A build without zstd (HELLO feature bit 1 clear) sends everything raw.
      const zstdOrNone = first.hello.features & 2 ? ChunkCompression.zstd : ChunkCompression.none;
      expect(textChunks.every((c) => c.compression === zstdOrNone)).toBe(true);
      const bigChunks = byPath(first.entries, join(data, 'big.bin'))!.chunks;
      expect(bigChunks.every((c) => c.compression === ChunkCompression.none)).toBe(true);
    });
  });

  it('without compression (level 0) sends every chunk raw', async () => {
    const r = await backup({ paths: [join(data, 'text.txt')], level: 0 });
    expect(r.code).toBe(0);
    const e = byPath(r.entries, join(data, 'text.txt'))!;
    expect(e.chunks.length).toBeGreaterThan(10);
    expect(e.chunks.every((c) => c.compression === ChunkCompression.none)).toBe(true);
    expect(Buffer.concat(e.chunks.map((c) => c.data!)).equals(text)).toBe(true);
  });

  it('names every file unchanged by its record, with no ENTRY and no chunk frames, given the previous run\'s records', async () => {
    const r = await backup({ paths: [data], previous: previousFrom(first.entries) });
    expect(r.code).toBe(0);
    expect(r.order).toEqual(first.entries.map((e) => `${e.kind === EntryKind.file ? 'U' : 'E'} ${e.path.toString('latin1')}`));
    expect(r.entries.filter((e) => e.kind === EntryKind.file)).toEqual([]);
    expect(r.order.filter((o) => o.startsWith('U')).length).toBe(files.size);
    expect(r.walkDone.bytes).toBe(0n);
  });

  it('names a whole directory unchanged when everything in it is, and sends only what holds something else', async () => {
    const previous = previousFrom(first.entries, { dirs: true });
    const r = await backup({ paths: [data], previous });
    expect(r.code).toBe(0);
    expect(r.order).toEqual([...ancestors(data).map((a) => `E ${a.toString('latin1')}`), ...expectedOrder(data)]);
    // dir/sub, dir/empty-dir, dir-x and cache collapsed; data and dir hold symlinks or a fifo.
    expect(r.order.filter((o) => o.startsWith('U') && fs.lstatSync(Buffer.from(o.slice(2), 'latin1')).isDirectory()).length).toBe(4);
    expect(r.walkBytes).toBeLessThan(2000);
    expect(r.walkDone.bytes).toBe(0n);
  });

  it('sends a directory in full again when an entry was added to it, or an exclude leaves one out', async () => {
    const top = path.join(tmp, 'collapsing');
    fs.mkdirSync(path.join(top, 'a', 'b'), { recursive: true });
    fs.mkdirSync(path.join(top, 'c'));
    for (const f of ['a/1', 'a/2.tmp', 'a/b/3', 'c/4']) fs.writeFileSync(path.join(top, f), f);
    const topB = Buffer.from(top);
    const before = await backup({ paths: [topB] });
    const previous = previousFrom(before.entries, { dirs: true });
    const same = await backup({ paths: [topB], previous });
    expect(same.order).toEqual([...ancestors(topB).map((a) => `E ${a.toString('latin1')}`), `U ${top}`]);
    // An exclude leaves a/2.tmp out: a's count differs, so a is sent in full; b is still unchanged.
    const excluded = await backup({ paths: [topB], previous, excludes: ['*.tmp'] });
    expect(excluded.order.slice(ancestors(topB).length)).toEqual([`E ${top}`, `E ${top}/a`, `U ${top}/a/1`, `U ${top}/a/b`, `U ${top}/c`]);
    fs.writeFileSync(path.join(top, 'c', '5'), 'new');
    const added = await backup({ paths: [topB], previous });
    expect(added.order.slice(ancestors(topB).length)).toEqual([`E ${top}`, `U ${top}/a`, `E ${top}/c`, `U ${top}/c/4`, `E ${top}/c/5`]);
    expect(Buffer.concat(byPath(added.entries, path.join(top, 'c', '5'))!.chunks.map((c) => c.data!)).toString()).toBe('new');
  });

  it('reads a file again when its metadata no longer matches the previous record', async () => {
    const dir = path.join(tmp, 'changing');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'same'), 'same\n');
    fs.writeFileSync(path.join(dir, 'grows'), 'grows\n');
    const before = await backup({ paths: [dir] });
    fs.appendFileSync(path.join(dir, 'grows'), 'more\n');
    const after = await backup({ paths: [dir], previous: previousFrom(before.entries) });
    expect(after.order).toContain(`U ${path.join(dir, 'same')}`);
    expect(byPath(after.entries, path.join(dir, 'same'))).toBeUndefined();
    const grows = byPath(after.entries, path.join(dir, 'grows'))!;
    expect(grows.flags).toBe(0);
    expect(Buffer.concat(grows.chunks.map((c) => c.data!)).toString()).toBe('grows\nmore\n');
  });

  it('holds back at most 65,536 unchanged references: a directory of 70,000 unchanged files is sent in full, in walk order', async () => {
    const top = path.join(tmp, 'many');
    fs.mkdirSync(path.join(top, 'files'), { recursive: true });
    const names = Array.from({ length: 70_000 }, (_, i) => `f${String(i).padStart(5, '0')}`);
    for (const n of names) fs.writeFileSync(path.join(top, 'files', n), '');
    const topB = Buffer.from(top);
    const before = await backup({ paths: [topB] });
    const r = await backup({ paths: [topB], previous: previousFrom(before.entries, { dirs: true }) });
    expect(r.code).toBe(0);
    expect(r.order.slice(ancestors(topB).length)).toEqual([`E ${top}`, `E ${top}/files`, ...names.map((n) => `U ${top}/files/${n}`)]);
  }, 120_000);

  it('sends CHUNK_KNOWN for chunks whose fingerprint the server listed', async () => {
    const chunks = chunksOf(big);
    const knownIdx = new Set(chunks.map((_, i) => i).filter((i) => i % 3 === 1));
    const known = [...knownIdx].map((i) => fingerprint(chunks[i]!.sha));
    // Fingerprints of data this client does not have change nothing.
    known.push(...[1n, 2n, 0xffff_ffff_ffff_ffffn]);
    const r = await backup({ paths: [join(data, 'big.bin')], known });
    expect(r.code).toBe(0);
    const e = byPath(r.entries, join(data, 'big.bin'))!;
    expect(e.chunks.map((c) => c.kind)).toEqual(chunks.map((_, i) => (knownIdx.has(i) ? 'known' : 'new')));
    expect(e.chunks.map((c) => c.sha)).toEqual(chunks.map((c) => c.sha));
    expect(e.chunks.map((c) => c.length)).toEqual(chunks.map((c) => c.length));
    expect(e.end!.bytes).toBe(BigInt(big.length));
  });

  it('sends each chunk once per run: 40 copies of a 1 MiB file and a file of it 8 times put about one copy on the wire', async () => {
    const dir = path.join(tmp, 'copies');
    fs.mkdirSync(dir);
    const block = pseudoRandom('one copy on the wire', MiB);
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(dir, `copy-${String(i).padStart(2, '0')}`), block);
    const repeated = Buffer.concat(Array.from({ length: 8 }, () => block));
    fs.writeFileSync(path.join(dir, 'repeated'), repeated);
    const r = await backup({ paths: [dir] });
    expect(r.code).toBe(0);
    const regular = r.entries.filter((e) => e.kind === EntryKind.file);
    expect(regular.length).toBe(41);
    for (const e of regular) {
      const want = e.path.toString().endsWith('repeated') ? repeated : block;
      expect(Buffer.concat(e.chunks.map((c) => c.data!)).equals(want)).toBe(true);
    }
    const chunks = regular.flatMap((e) => e.chunks);
    const newBytes = chunks.filter((c) => c.kind === 'new').reduce((n, c) => n + c.length, 0);
    // One copy of the block, plus the few chunks cut across the seams of the 8 copies (at most
    // two of at most 256 KiB per seam).
    expect(newBytes).toBeGreaterThanOrEqual(MiB);
    expect(newBytes).toBeLessThanOrEqual(MiB + 7 * 2 * SIZES.max);
    expect(chunks.filter((c) => c.kind === 'repeat').length).toBeGreaterThan(40 * 10);
    // 49 MiB of file data in: well under 5 MiB of stream out (it was over 49 MiB before repeats).
    expect(r.walkBytes).toBeLessThan(5 * MiB);
  });

  it('answers NEED with the bytes of the range, or CHUNK_GONE when they differ or cannot be read', async () => {
    const bigPath = join(data, 'big.bin');
    const chunk = chunksOf(big)[5]!;
    const needs: Need[] = [
      { id: 7, path: bigPath, offset: chunk.offset, length: chunk.length, sha: chunk.sha },
      { id: 8, path: bigPath, offset: 1000, length: 5000, sha: sha256(big.subarray(1000, 6000)) },
      { id: 9, path: bigPath, offset: 1000, length: 5000, sha: sha256(Buffer.from('something else')) },
      { id: 10, path: join(data, 'no-such-file'), offset: 0, length: 10, sha: sha256(Buffer.alloc(10)) },
      { id: 11, path: bigPath, offset: big.length - 10, length: 20, sha: sha256(big.subarray(big.length - 10)) },
      { id: 12, path: join(data, 'link'), offset: 0, length: 6, sha: sha256(Buffer.from('hello\n')) },
      { id: 13, path: join(data, 'text.txt'), offset: 0, length: SIZES.max, sha: sha256(text.subarray(0, SIZES.max)) },
    ];
    const r = await backup({ paths: [join(data, 'small.txt')], needs });
    expect(r.code).toBe(0);
    expect(r.replies.map((x) => x.id)).toEqual([7, 8, 9, 10, 11, 12, 13]);
    const [r7, r8, r9, r10, r11, r12, r13] = r.replies;
    expect(r7).toMatchObject({ gone: false, sha: chunk.sha });
    expect(r7!.gone === false && r7!.data.equals(big.subarray(chunk.offset, chunk.offset + chunk.length))).toBe(true);
    expect(r8!.gone === false && r8!.data.equals(big.subarray(1000, 6000))).toBe(true);
    expect(r9).toEqual({ id: 9, gone: true, errno: 0 });
    expect(r10).toEqual({ id: 10, gone: true, errno: ENOENT });
    expect(r11).toEqual({ id: 11, gone: true, errno: 0 }); // past the end: the bytes are not there
    expect(r12).toEqual({ id: 12, gone: true, errno: ELOOP }); // a symlink is never followed
    expect(r13).toMatchObject({ gone: false, compression: r.hello.features & 2 ? ChunkCompression.zstd : ChunkCompression.none });
    expect(r13!.gone === false && r13!.data.equals(text.subarray(0, SIZES.max))).toBe(true);
  });

  it('walks several requested paths in component order, each ancestor once, covered paths once', async () => {
    const rel = (p: string): Buffer => join(data, p);
    const missing = rel('no-such-dir/x');
    const r = await backup({ paths: [rel('small.txt'), rel('dir-x'), rel('dir/sub/deeper/deep.bin'), rel('dir/sub'), missing] });
    expect(r.code).toBe(0);
    const want = [
      ...ancestors(data), data, rel('dir'), ...expectedWalk(rel('dir/sub')), ...expectedWalk(rel('dir-x')), rel('small.txt'),
    ];
    expect(r.entries.map((e) => e.path.toString('latin1'))).toEqual(want.map((p) => p.toString('latin1')));
    const flags = new Map(r.entries.map((e) => [e.path.toString('latin1'), e.flags]));
    expect(flags.get(rel('dir').toString('latin1'))).toBe(EntryFlag.ancestor);
    expect(flags.get(data.toString('latin1'))).toBe(EntryFlag.ancestor);
    expect(flags.get(rel('dir/sub').toString('latin1'))).toBe(0);
    expect(r.warns).toEqual([{ path: missing, errno: ENOENT, message: expect.stringMatching(/not found|cannot open/) as unknown as string }]);
  });

  it('leaves out excluded entries: name patterns anywhere, path patterns on the whole path', async () => {
    const r = await backup({ paths: [data], excludes: ['*.tmp', `${data.toString()}/cache`, '*/dir-?'] });
    expect(r.code).toBe(0);
    const skip = (full: Buffer, name: Buffer): boolean =>
      name.toString().endsWith('.tmp') || full.equals(join(data, 'cache'));
    expect(r.entries.map((e) => e.path.toString('latin1'))).toEqual(
      [...ancestors(data), ...expectedWalk(data, skip)].map((p) => p.toString('latin1')));
    expect(r.entries.some((e) => e.path.toString().includes('cache'))).toBe(false);
    // '*/dir-?' does not start with '/': a name pattern, and no name contains '/'.
    expect(byPath(r.entries, join(data, 'dir-x'))).toBeDefined();
  });

  describe('one file system', () => {
    let fsRoot: string;
    let mountPoint: string;
    let mounted = false;

    beforeAll(() => {
      fsRoot = path.join(tmp, 'fs');
      mountPoint = path.join(fsRoot, 'mnt');
      fs.mkdirSync(mountPoint, { recursive: true });
      fs.writeFileSync(path.join(fsRoot, 'a.txt'), 'a\n');
      mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'haul-test', mountPoint]).status === 0;
      if (mounted) fs.writeFileSync(path.join(mountPoint, 'inner.txt'), 'on another file system\n');
      else {
        // Not allowed to mount: /dev and its usual mount points serve instead.
        fsRoot = '/dev';
        mountPoint = fs.existsSync('/dev/pts/ptmx') ? '/dev/pts' : '/dev/shm';
      }
    });

    afterAll(() => {
      if (mounted) spawnSync('umount', [mountPoint]);
    });

    it('sends a mount point\'s entry but not its contents when flagged', async () => {
      expect(fs.statSync(mountPoint).dev).not.toBe(fs.statSync(fsRoot).dev);
      const inside = (r: BackupResult): Entry[] => r.entries.filter((e) => e.path.toString().startsWith(`${mountPoint}/`));
      const all = await backup({ paths: [fsRoot], level: 0 });
      expect(all.code).toBe(0);
      expect(inside(all).length).toBeGreaterThan(0);
      const one = await backup({ paths: [fsRoot], level: 0, oneFileSystem: true });
      expect(one.code).toBe(0);
      expect(byPath(one.entries, mountPoint)).toBeDefined();
      expect(inside(one)).toEqual([]);
      if (mounted) expect(byPath(one.entries, path.join(fsRoot, 'a.txt'))).toBeDefined();
    });
  });

  describe('the channel', () => {
    it('exits 3 at once when stdin closes before BACKUP', async () => {
      const p = new ProbeProcess();
      await p.next();
      p.child.stdin.end();
      expect((await p.exit).code).toBe(3);
      expect(p.stderr).toMatch(/^haul-probe: stdin closed/m);
    });

    it('exits 4 on a frame longer than the limit, and on a malformed BACKUP', async () => {
      const p = new ProbeProcess();
      await p.next();
      const head = Buffer.alloc(5);
      head.writeUInt32LE(maxFrameLength + 1, 0);
      head[4] = ServerMessage.backup;
      p.child.stdin.write(head); // the body never comes: the length alone ends it
      expect((await p.exit).code).toBe(4);
      expect(p.stderr).toMatch(/frame of 16842753 bytes .*exceeds the limit/);

      for (const body of [
        Buffer.concat([backupBody({ paths: [data] }), Buffer.from([0])]), // trailing byte
        backupBody({ paths: ['relative/path'] }),
        backupBody({ paths: [`${data.toString()}/../etc`] }),
        backupBody({ paths: [data], sizes: { min: 1, avg: 1000, max: 4000 } }), // avg not a power of two
        backupBody({ paths: [data], sizes: { min: 1, avg: 32 * MiB, max: 64 * MiB } }), // chunks beyond a frame
        backupBody({ paths: [data], sizes: { ...SIZES, normalization: 4 } }), // no such normalisation
      ]) {
        const q = new ProbeProcess();
        await q.next();
        q.send(ServerMessage.backup, body);
        expect((await q.exit).code).toBe(4);
        expect(q.stderr).toMatch(/^haul-probe: protocol violation: BACKUP/m);
      }

      const q = new ProbeProcess();
      await q.next();
      q.send(ServerMessage.need, Buffer.alloc(10));
      expect((await q.exit).code).toBe(4);
      expect(q.stderr).toMatch(/expected BACKUP/);
    });

    it('exits 4 on any malformed or unexpected frame after BACKUP', async () => {
      const okBackup = backupBody({ paths: [join(data, 'small.txt')] });
      const u64 = (v: bigint | number): Buffer => new BodyWriter().u64(v).done();
      const need = (id: number, p: string | Buffer, offset: number, length: number, extra = Buffer.alloc(0)): Buffer =>
        Buffer.concat([new BodyWriter().u32(id).bytes16(p).u64(offset).u32(length).bytes(Buffer.alloc(32)).done(), extra]);
      const setup: [number, Buffer][] = [[ServerMessage.backup, okBackup], [ServerMessage.previousEnd, u64(0)], [ServerMessage.knownEnd, u64(0)]];
      const small = join(data, 'small.txt');
      const cases: { name: string; frames: [number, Buffer][]; afterWalk?: boolean; error: RegExp }[] = [
        { name: 'PREVIOUS of 15 bytes', frames: [[ServerMessage.backup, okBackup], [ServerMessage.previous, Buffer.alloc(15)]], error: /PREVIOUS body/ },
        { name: 'PREVIOUS_END total wrong', frames: [[ServerMessage.backup, okBackup], [ServerMessage.previous, Buffer.alloc(16)], [ServerMessage.previousEnd, u64(2)]], error: /PREVIOUS_END total/ },
        { name: 'PREVIOUS_END of 9 bytes', frames: [[ServerMessage.backup, okBackup], [ServerMessage.previousEnd, Buffer.alloc(9)]], error: /PREVIOUS_END body/ },
        { name: 'KNOWN before PREVIOUS_END', frames: [[ServerMessage.backup, okBackup], [ServerMessage.known, u64(1)]], error: /expected PREVIOUS/ },
        { name: 'KNOWN unsorted', frames: [...setup.slice(0, 2), [ServerMessage.known, Buffer.concat([u64(5), u64(4)])]], error: /not sorted/ },
        { name: 'KNOWN of 12 bytes', frames: [...setup.slice(0, 2), [ServerMessage.known, Buffer.alloc(12)]], error: /KNOWN body/ },
        { name: 'KNOWN_END total wrong', frames: [...setup.slice(0, 2), [ServerMessage.known, u64(1)], [ServerMessage.knownEnd, u64(0)]], error: /KNOWN_END total/ },
        { name: 'NEED id 0', frames: [[ServerMessage.need, need(0, small, 0, 1)]], afterWalk: true, error: /NEED id 0/ },
        { name: 'NEED of 0 bytes', frames: [[ServerMessage.need, need(1, small, 0, 0)]], afterWalk: true, error: /NEED range/ },
        { name: 'NEED beyond the chunk maximum', frames: [[ServerMessage.need, need(1, small, 0, SIZES.max + 1)]], afterWalk: true, error: /NEED range/ },
        { name: 'NEED at an offset beyond 2^63', frames: [[ServerMessage.need, new BodyWriter().u32(1).bytes16(small).u64(2n ** 64n - 1n).u32(1).bytes(Buffer.alloc(32)).done()]], afterWalk: true, error: /NEED range/ },
        { name: 'NEED with a relative path', frames: [[ServerMessage.need, need(1, 'etc/passwd', 0, 1)]], afterWalk: true, error: /NEED path/ },
        { name: 'NEED with a trailing byte', frames: [[ServerMessage.need, need(1, small, 0, 1, Buffer.from([0]))]], afterWalk: true, error: /NEED body/ },
        { name: 'NEED with a NUL in the path', frames: [[ServerMessage.need, need(1, Buffer.from('/etc\0/x'), 0, 1)]], afterWalk: true, error: /NEED path/ },
        { name: 'FINISH with a body', frames: [[ServerMessage.finish, Buffer.from([1])]], afterWalk: true, error: /FINISH body/ },
        { name: 'BACKUP again', frames: [[ServerMessage.backup, okBackup]], afterWalk: true, error: /expected NEED or FINISH/ },
        { name: 'a probe message type', frames: [[ProbeMessage.entry, Buffer.alloc(0)]], afterWalk: true, error: /expected NEED or FINISH/ },
      ];
      for (const c of cases) {
        const p = new ProbeProcess();
        await p.next();
        if (c.afterWalk) {
          for (const [t, b] of setup) p.send(t, b);
          while ((await p.next()).type !== ProbeMessage.walkDone);
        }
        for (const [t, b] of c.frames) p.send(t, b);
        expect((await p.exit).code, c.name).toBe(4);
        expect(p.stderr, c.name).toMatch(c.error);
        expect(p.stderr, c.name).toMatch(/^haul-probe: protocol violation: [^\n]+\n$/);
      }
    });

    it('exits 3 when its stdout is closed', async () => {
      const p = new ProbeProcess();
      await p.next();
      p.child.stdout.destroy();
      sendSetup(p, { paths: [data] });
      expect((await p.exit).code).toBe(3);
      expect(p.stderr).toMatch(/cannot write stdout/);
    });
  });

  describe('a 300 MiB file', () => {
    let hugePath: string;
    const size = 300 * MiB;

    beforeAll(() => {
      hugePath = path.join(tmp, 'huge', 'huge.bin');
      fs.mkdirSync(path.dirname(hugePath));
      const fd = fs.openSync(hugePath, 'w');
      const piece = Buffer.allocUnsafe(16 * MiB);
      for (let done = 0; done < size; done += piece.length) {
        randomFillSync(piece);
        fs.writeSync(fd, piece, 0, Math.min(piece.length, size - done));
      }
      fs.closeSync(fd);
    }, 60_000);

    it('is backed up with a peak RSS of at most 32 MiB (default chunk sizes, zstd level 3)', async () => {
      const r = await backup({ paths: [path.dirname(hugePath)], level: 3, sizes: DEFAULT_SIZES });
      expect(r.code).toBe(0);
      const e = byPath(r.entries, hugePath)!;
      expect(e.end).toEqual({ bytes: BigInt(size), status: 0, errno: 0 });
      expect(e.chunks.reduce((n, c) => n + c.length, 0)).toBe(size);
      expect(r.peakRssKiB).toBeGreaterThan(0);
      // (A sanitizer build's shadow memory says nothing about the probe's own.)
      if (!sanitized) expect(r.peakRssKiB).toBeLessThanOrEqual(32 * 1024);
    }, 60_000);

    it('stays within 32 MiB at zstd level 19 too (the match tables are capped)', async () => {
      const file = path.join(tmp, 'huge', 'text-4m.txt');
      fs.writeFileSync(file, text.subarray(0, 3 * MiB));
      fs.appendFileSync(file, text.subarray(0, MiB));
      const r = await backup({ paths: [file], level: 19, sizes: DEFAULT_SIZES });
      expect(r.code).toBe(0);
      expect(byPath(r.entries, file)!.end!.bytes).toBe(BigInt(4 * MiB));
      if (!sanitized) expect(r.peakRssKiB).toBeLessThanOrEqual(32 * 1024);
    }, 60_000);

    it('exits 3 promptly when stdin closes in the middle of the walk', async () => {
      const p = new ProbeProcess();
      await p.next();
      sendSetup(p, { paths: [path.dirname(hugePath)], level: 3, sizes: DEFAULT_SIZES });
      let chunks = 0;
      for (;;) {
        const f = await p.next();
        if (f.type === ProbeMessage.chunkNew && ++chunks === 3) break;
      }
      const closedAt = Date.now();
      p.child.stdin.end();
      const { code } = await p.exit;
      expect(code).toBe(3);
      expect(Date.now() - closedAt).toBeLessThan(2000);
      expect(p.stderr).toMatch(/^haul-probe: stdin closed before FINISH/m);
    });
  });
});
