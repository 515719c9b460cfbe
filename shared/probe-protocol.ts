// The probe protocol, version 4: message types, limits and frame encoding, defined once for the
// daemon (and for tests that play a probe). Normative text: docs/probe-protocol.md.

export const protocolVersion = 4;
export const helloMagic = 'HAULPRB1';

/** A frame's length field counts type + body; anything above this ends the session. */
export const maxFrameLength = 16 * 1024 * 1024 + 64 * 1024;
export const maxPathBytes = 4096;
export const previousRecordsPerFrame = 65536;
/** u64 path hash · u64 metadata digest. */
export const previousRecordLength = 16;

export const ProbeMessage = {
  hello: 0x01,
  entry: 0x20,
  chunkNew: 0x21,
  chunkKnown: 0x22,
  fileEnd: 0x23,
  chunkGone: 0x24,
  /** The same bytes as an earlier CHUNK_NEW of this walk, named by its number (from 0). */
  chunkRepeat: 0x25,
  /** A file or whole directory equal to a PREVIOUS record, named by its number (from 0). */
  unchanged: 0x26,
  warn: 0x30,
  walkDone: 0x31,
  done: 0x3f,
} as const;

export const ServerMessage = {
  backup: 0x10,
  previous: 0x11,
  previousEnd: 0x12,
  known: 0x13,
  knownEnd: 0x14,
  need: 0x15,
  finish: 0x16,
} as const;

export const EntryKind = { file: 1, dir: 2, symlink: 3, fifo: 4, chardev: 5, blockdev: 6, socket: 7 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** ENTRY flags. Bit 0 ("unchanged" in versions 1 and 2) is gone: UNCHANGED replaces it. */
export const EntryFlag = { ancestor: 2 } as const;

export const ChunkCompression = { none: 0, zstd: 1 } as const;

export interface Frame {
  type: number;
  body: Buffer;
  /**
   * The body's memory belongs to this frame alone (a frame joined from several reads), so it
   * may be handed to a worker thread without a copy; otherwise it is a view into a read.
   */
  exclusive?: boolean;
}

export function encodeFrame(type: number, body: Buffer | readonly Buffer[] = []): Buffer {
  const parts = Buffer.isBuffer(body) ? [body] : body;
  const bodyLength = parts.reduce((n, p) => n + p.length, 0);
  const head = Buffer.alloc(5);
  head.writeUInt32LE(bodyLength + 1, 0);
  head[4] = type;
  return Buffer.concat([head, ...parts]);
}

/** Writes little-endian fields into a growing buffer. */
export class BodyWriter {
  private buf = Buffer.alloc(256);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.pos++] = v;
    return this;
  }

  i8(v: number): this {
    this.room(1);
    this.buf.writeInt8(v, this.pos++);
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }

  i32(v: number): this {
    this.room(4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint | number): this {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }

  i64(v: bigint | number): this {
    this.room(8);
    this.buf.writeBigInt64LE(BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  bytes16(b: Uint8Array | string): this {
    const bytes = typeof b === 'string' ? Buffer.from(b) : b;
    if (bytes.length > 0xffff) throw new RangeError('bytes16 field longer than 65535 bytes');
    return this.u16(bytes.length).bytes(bytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Thrown for any body that does not parse exactly; the session reports it as a violation. */
export class MalformedBody extends Error {}

/** Reads little-endian fields and refuses to read past the body's end. */
export class BodyReader {
  private pos = 0;

  constructor(private readonly body: Buffer) {}

  private need(n: number): number {
    if (this.pos + n > this.body.length) throw new MalformedBody(`body ends after ${this.body.length} bytes, wanted ${this.pos + n}`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.body[this.need(1)]!;
  }

  i8(): number {
    return this.body.readInt8(this.need(1));
  }

  u16(): number {
    return this.body.readUInt16LE(this.need(2));
  }

  u32(): number {
    return this.body.readUInt32LE(this.need(4));
  }

  i32(): number {
    return this.body.readInt32LE(this.need(4));
  }

  u64(): bigint {
    return this.body.readBigUInt64LE(this.need(8));
  }

  i64(): bigint {
    return this.body.readBigInt64LE(this.need(8));
  }

  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.body.subarray(at, at + n);
  }

  bytes16(): Buffer {
    return this.bytes(this.u16());
  }

  rest(): Buffer {
    return this.bytes(this.body.length - this.pos);
  }

  end(): void {
    if (this.pos !== this.body.length) throw new MalformedBody(`${this.body.length - this.pos} unexpected trailing bytes`);
  }
}

/**
 * Cuts a byte stream into frames. Never buffers more than one frame of at most
 * `maxFrameLength` bytes: a longer length field is refused before any of it is read.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** `allocate`: memory for a frame joined from several reads (n bytes, owned by the frame alone). */
  constructor(
    private readonly limit = maxFrameLength,
    private readonly allocate: (n: number) => Buffer = (n) => Buffer.allocUnsafeSlow(n),
  ) {}

  /** Returns the complete frames now available; throws MalformedBody on a bad length. */
  push(data: Buffer): Frame[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    while (this.buffered >= 5) {
      const head = this.peek(5);
      const length = head.readUInt32LE(0);
      if (length < 1 || length > this.limit) throw new MalformedBody(`frame of ${length} bytes exceeds the limit of ${this.limit}`);
      if (this.buffered < 4 + length) break;
      const { frame, exclusive } = this.take(4 + length);
      frames.push({ type: frame[4]!, body: frame.subarray(5), exclusive });
    }
    return frames;
  }

  /** Bytes received but not yet a whole frame (for "the stream ended inside a frame"). */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const head = Buffer.alloc(n);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.length, n - filled));
      if (filled === n) break;
    }
    return head;
  }

  /**
   * The next `n` bytes: a view when one read holds them, else copied once into a buffer of
   * exactly `n` bytes (never the bytes after them: they stay views of their reads).
   */
  private take(n: number): { frame: Buffer; exclusive: boolean } {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return { frame: first.subarray(0, n), exclusive: false };
    }
    const frame = this.allocate(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = c.copy(frame, filled, 0, Math.min(c.length, n - filled));
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return { frame, exclusive: true };
  }
}

// ---- the restore session (docs/probe-protocol.md, "Session: restore") ----
// The probe runs as `haul-probe --restore`, greets with HELLO and answers with WARN (ProbeMessage)
// and RESTORE_DONE; the server streams everything else without waiting.

export const RestoreServerMessage = {
  restore: 0x40,
  entry: 0x41,
  data: 0x42,
  fileEnd: 0x43,
  end: 0x44,
} as const;

export const RestoreProbeMessage = {
  done: 0x50,
} as const;

export const RestoreKind = { file: 1, dir: 2, symlink: 3, fifo: 4, chardev: 5, blockdev: 6, hardlink: 8 } as const;
export type RestoreKind = (typeof RestoreKind)[keyof typeof RestoreKind];

/** RESTORE flags. */
export const RestoreFlag = { overwrite: 1 } as const;
/** RESTORE_ENTRY flags: an ancestor directory is created if missing, never changed if present. */
export const RestoreEntryFlag = { ancestor: 1 } as const;
export const RestoreFileStatus = { complete: 0, abandoned: 1 } as const;

/** Largest raw length of one RESTORE_DATA (it must fit a frame). */
export const maxRestoreData = 16 * 1024 * 1024;
/** Longest name (path component) the probe restores, as on Linux file systems. */
export const maxRestoreNameBytes = 255;
/** The probe's exit status when the target directory cannot be opened or created. */
export const restoreTargetExitStatus = 5;

export interface RestoreEntry {
  kind: RestoreKind;
  flags?: number;
  /** Relative to the target, '/'-separated raw bytes. */
  path: Buffer;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  size?: number;
  rdev?: number;
  linkId?: number;
  target?: Buffer;
}

export function encodeRestoreStart(options: { overwrite: boolean; maxData: number; target: Buffer }): Buffer {
  const w = new BodyWriter().u8(options.overwrite ? RestoreFlag.overwrite : 0).u32(options.maxData).bytes16(options.target);
  return encodeFrame(RestoreServerMessage.restore, w.done());
}

export function encodeRestoreEntry(e: RestoreEntry): Buffer {
  const w = new BodyWriter()
    .u8(e.kind)
    .u8(e.flags ?? 0)
    .bytes16(e.path)
    .u32(e.mode)
    .u32(e.uid)
    .u32(e.gid)
    .i64(e.mtimeNs)
    .u64(e.size ?? 0)
    .u64(e.rdev ?? 0)
    .u32(e.linkId ?? 0)
    .bytes16(e.target ?? Buffer.alloc(0));
  return encodeFrame(RestoreServerMessage.entry, w.done());
}

/** The 10-byte head of a RESTORE_DATA frame; the data follows it unchanged. */
export function restoreDataHead(compression: number, rawLength: number, dataLength: number): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt32LE(1 + 5 + dataLength, 0);
  head[4] = RestoreServerMessage.data;
  head[5] = compression;
  head.writeUInt32LE(rawLength, 6);
  return head;
}

export function encodeRestoreFileEnd(status: number): Buffer {
  return encodeFrame(RestoreServerMessage.fileEnd, Buffer.from([status]));
}

export interface RestoreDone {
  entries: bigint;
  files: bigint;
  dirs: bigint;
  symlinks: bigint;
  hardlinks: bigint;
  specials: bigint;
  leftOut: bigint;
  bytes: bigint;
  euid: number;
  ownersNotSet: bigint;
  ownerErrno: number;
  setIdDropped: bigint;
}

/** Throws MalformedBody unless the body is exactly a RESTORE_DONE. */
export function decodeRestoreDone(body: Buffer): RestoreDone {
  const r = new BodyReader(body);
  const done: RestoreDone = {
    entries: r.u64(), files: r.u64(), dirs: r.u64(), symlinks: r.u64(), hardlinks: r.u64(), specials: r.u64(),
    leftOut: r.u64(), bytes: r.u64(), euid: r.u32(), ownersNotSet: r.u64(), ownerErrno: r.i32(), setIdDropped: r.u64(),
  };
  r.end();
  return done;
}

export interface Hello {
  magic: string;
  version: number;
  probeVersion: string;
  arch: string;
  features: number;
}

/** HELLO feature bits. */
export const HelloFeature = { shaExtensions: 1, zstd: 2 } as const;

/** Throws MalformedBody unless the body is exactly a HELLO. */
export function decodeHello(body: Buffer): Hello {
  const r = new BodyReader(body);
  const hello = { magic: r.bytes(8).toString('latin1'), version: r.u16(), probeVersion: r.bytes16().toString('utf8'), arch: r.bytes16().toString('utf8'), features: r.u32() };
  r.end();
  return hello;
}

/** A path relative to a restore target as the probe accepts it: 1..4096 bytes, components of 1..255 bytes, no '.', '..' or NUL, no '/' at either end. */
export function isSafeRestorePath(path: Buffer): boolean {
  if (path.length < 1 || path.length > maxPathBytes || path.includes(0)) return false;
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      const len = i - start;
      if (len === 0 || len > maxRestoreNameBytes) return false;
      if (len === 1 && path[start] === 0x2e) return false;
      if (len === 2 && path[start] === 0x2e && path[start + 1] === 0x2e) return false;
      start = i + 1;
    }
  }
  return true;
}
