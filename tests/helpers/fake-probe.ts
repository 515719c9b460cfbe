// A probe played by the test, frame by frame, over in-memory pipes: the way to send the server
// exactly the hostile input a case needs (a lying length, a wrong hash, a bomb) without a client.
import { createHash, createHmac } from 'node:crypto';
import { PassThrough } from 'node:stream';
import zstd from 'zstd-napi/binding.js';
import {
  BodyReader,
  BodyWriter,
  EntryKind,
  FrameDecoder,
  ProbeMessage,
  ServerMessage,
  encodeFrame,
  helloMagic,
  protocolVersion,
  type Frame,
} from '../../shared/probe-protocol.js';
import type { ProbeTransport } from '../../daemon/session/probe-session.js';

export interface StartMessages {
  min: number;
  avg: number;
  max: number;
  normalization: number;
  chunkerKey: Buffer;
  zstdLevel: number;
  paths: string[];
  excludes: string[];
  /** PREVIOUS records in the order sent: UNCHANGED names one by its position. */
  previous: { pathHash: bigint; digest: bigint }[];
  known: Set<bigint>;
}

export interface FakeEntry {
  kind?: number;
  flags?: number;
  path: string | Buffer;
  mode?: number;
  size?: number;
  mtime?: bigint;
  ctime?: bigint;
  inode?: bigint;
  target?: string;
}

export function sha(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function pathHash(path: string | Buffer): bigint {
  return sha(Buffer.from(path)).readBigUInt64LE(0);
}

export class FakeProbe {
  readonly toServer = new PassThrough();
  readonly fromServer = new PassThrough();
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiting: ((f: Frame | undefined) => void) | undefined;
  private ended = false;
  stopped = false;
  start: StartMessages | undefined;

  readonly transport: ProbeTransport = {
    input: this.fromServer,
    output: this.toServer,
    stop: () => {
      this.stopped = true;
      this.toServer.end();
    },
  };

  constructor() {
    this.fromServer.on('data', (d: Buffer) => {
      for (const f of this.decoder.push(d)) {
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = undefined;
          w(f);
        } else this.queue.push(f);
      }
    });
    this.fromServer.on('end', () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
  }

  /** Writes in pieces of at most this many bytes, as SSH delivers them (frames then span reads). */
  pieceSize = Infinity;

  raw(bytes: Buffer): void {
    for (let i = 0; i < bytes.length && !this.stopped; i += this.pieceSize) this.toServer.write(bytes.subarray(i, i + this.pieceSize));
  }

  send(type: number, body: Buffer = Buffer.alloc(0)): void {
    this.raw(encodeFrame(type, body));
  }

  next(): Promise<Frame | undefined> {
    const f = this.queue.shift();
    if (f || this.ended) return Promise.resolve(f);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  hello(version = protocolVersion, features = 0): void {
    this.send(ProbeMessage.hello, new BodyWriter().bytes(Buffer.from(helloMagic)).u16(version).bytes16('fake 1.0').bytes16('x86_64').u32(features).done());
  }

  /** Reads BACKUP, PREVIOUS* and KNOWN* as a probe would. */
  async readStart(): Promise<StartMessages> {
    const backup = await this.next();
    if (backup?.type !== ServerMessage.backup) throw new Error(`expected BACKUP, got ${backup?.type}`);
    const r = new BodyReader(backup.body);
    const start: StartMessages = { min: r.u32(), avg: r.u32(), max: r.u32(), normalization: r.u8(), chunkerKey: Buffer.from(r.bytes(32)), zstdLevel: r.i8(), paths: [], excludes: [], previous: [], known: new Set() };
    r.u8();
    for (let n = r.u16(); n > 0; n--) start.paths.push(r.bytes16().toString());
    for (let n = r.u16(); n > 0; n--) start.excludes.push(r.bytes16().toString());
    for (;;) {
      const f = (await this.next())!;
      if (f.type === ServerMessage.previousEnd) break;
      const pr = new BodyReader(f.body);
      for (let i = 0; i < f.body.length / 16; i++) start.previous.push({ pathHash: pr.u64(), digest: pr.u64() });
    }
    for (;;) {
      const f = (await this.next())!;
      if (f.type === ServerMessage.knownEnd) break;
      for (let i = 0; i < f.body.length; i += 8) start.known.add(f.body.readBigUInt64LE(i));
    }
    this.start = start;
    return start;
  }

  fingerprint(data: Buffer): bigint {
    return createHmac('sha256', this.start!.chunkerKey).update(sha(data)).digest().readBigUInt64LE(0);
  }

  entry(e: FakeEntry): void {
    const w = new BodyWriter()
      .u8(e.kind ?? EntryKind.file)
      .u8(e.flags ?? 0)
      .bytes16(Buffer.from(e.path))
      .u32(e.mode ?? ((e.kind ?? EntryKind.file) === EntryKind.dir ? 0o40755 : 0o100644))
      .u32(1000)
      .u32(1000)
      .u64(e.size ?? 0)
      .i64(e.mtime ?? 1_700_000_000_000_000_000n)
      .i64(e.ctime ?? 1_700_000_000_000_000_000n)
      .u64(e.inode ?? 1n)
      .u64(2049)
      .u32(1)
      .u64(0)
      .bytes16(Buffer.from(e.target ?? ''));
    this.send(ProbeMessage.entry, w.done());
  }

  /** The number of the PREVIOUS record of this path (the test knows there is one). */
  recordOf(path: string): number {
    const i = this.start!.previous.findIndex((r) => r.pathHash === pathHash(path));
    if (i < 0) throw new Error(`no PREVIOUS record for ${path}`);
    return i;
  }

  /** UNCHANGED: the file or directory of PREVIOUS record `index`. */
  unchanged(index: number): void {
    this.send(ProbeMessage.unchanged, new BodyWriter().u32(index).done());
  }

  chunkNew(data: Buffer, options: { needId?: number; compress?: boolean; claimSha?: Buffer; claimLength?: number } = {}): void {
    let payload = data;
    let compression = 0;
    if (options.compress) {
      payload = zstdFrame(data);
      compression = 1;
    }
    this.send(ProbeMessage.chunkNew, Buffer.concat([new BodyWriter().u32(options.needId ?? 0).u8(compression).u32(options.claimLength ?? data.length).bytes(options.claimSha ?? sha(data)).done(), payload]));
  }

  chunkKnown(data: Buffer): void {
    this.send(ProbeMessage.chunkKnown, new BodyWriter().u32(data.length).bytes(sha(data)).done());
  }

  /** "The same bytes as CHUNK_NEW number `index` of this walk" (numbered from 0). */
  chunkRepeat(index: number, data: Buffer): void {
    this.send(ProbeMessage.chunkRepeat, new BodyWriter().u32(index).u32(data.length).bytes(sha(data)).done());
  }

  fileEnd(bytes: number): void {
    this.send(ProbeMessage.fileEnd, new BodyWriter().u64(bytes).u8(0).i32(0).done());
  }

  walkDone(): void {
    this.send(ProbeMessage.walkDone, new BodyWriter().u64(0).u64(0).done());
  }

  /** Reads NEED frames until FINISH. */
  async readNeeds(): Promise<{ id: number; path: Buffer; offset: bigint; length: number; sha: Buffer }[]> {
    const needs = [];
    for (;;) {
      const f = (await this.next())!;
      if (f.type === ServerMessage.finish) return needs;
      const r = new BodyReader(f.body);
      needs.push({ id: r.u32(), path: Buffer.from(r.bytes16()), offset: r.u64(), length: r.u32(), sha: Buffer.from(r.bytes(32)) });
    }
  }

  chunkGone(needId: number): void {
    this.send(ProbeMessage.chunkGone, new BodyWriter().u32(needId).i32(0).done());
  }

  done(): void {
    this.send(ProbeMessage.done);
    this.toServer.end();
  }

  /** A whole honest file: entry, its chunks (given), FILE_END. */
  file(path: string, chunks: Buffer[], options: { known?: boolean[]; compress?: boolean; mtime?: bigint; inode?: bigint } = {}): void {
    const size = chunks.reduce((n, c) => n + c.length, 0);
    this.entry({ path, size, ...(options.mtime !== undefined ? { mtime: options.mtime } : {}), ...(options.inode !== undefined ? { inode: options.inode } : {}) });
    chunks.forEach((c, i) => (options.known?.[i] ? this.chunkKnown(c) : this.chunkNew(c, { compress: options.compress ?? false })));
    this.fileEnd(size);
  }
}

/** The zstd frame (level 3) a probe would send for `data`. */
export function zstdFrame(data: Buffer): Buffer {
  const out = Buffer.alloc(zstd.compressBound(data.length));
  return out.subarray(0, zstd.compress(out, data, 3));
}
