// The server side of a pull backup: talk to a probe (over SSH, or any pipe in tests), check
// every claim it makes against this client's own records, verify and store every chunk, build
// the trees and write the snapshot. Everything the probe sends is hostile input
// (docs/probe-protocol.md, "What the server checks"): a violation fails this job only, and the
// repository keeps nothing unverified.
import type { Readable, Writable } from 'node:stream';
import { displayBytes, formatBytes, formatCount } from '../../shared/display.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import {
  BodyReader,
  BodyWriter,
  ChunkCompression,
  EntryFlag,
  EntryKind,
  FrameDecoder,
  MalformedBody,
  ProbeMessage,
  ServerMessage,
  encodeFrame,
  HelloFeature,
  helloMagic,
  maxPathBytes,
  previousRecordLength,
  previousRecordsPerFrame,
  protocolVersion,
  type Frame,
} from '../../shared/probe-protocol.js';
import { BlobType } from '../repository/blob.js';
import { Compression } from '../repository/compression.js';
import { chunkerNormalization } from '../repository/config.js';
import { blobIdFromHash, chunkerKeyFor } from '../repository/crypto.js';
import { Hmac32 } from '../repository/hmac32.js';
import type { Repository } from '../repository/repository.js';
import { type Snapshot, type SnapshotStats, type StoredSnapshot } from '../repository/snapshot.js';
import { encodeBytes, type NodeType, type TreeNode } from '../repository/tree.js';
import { ChunkBatch } from './chunk-batch.js';
import { copyProbeDiagnostics } from './probe-diagnostics.js';
import { savePreviousCache } from './previous-cache.js';
import { buildDigest, PreviousDigest } from './previous-records.js';
import { loadPreviousSnapshot, type PreviousSnapshot } from './previous-snapshot.js';
import { FrameBuffers } from './frame-buffers.js';
import { SentChunks } from './sent-chunks.js';

export interface ProbeTransport {
  /** The probe's stdin. */
  input: Writable;
  /** The probe's stdout. */
  output: Readable;
  /** The probe's stderr: diagnostics, copied to the job log. */
  diagnostics?: Readable;
  /** Ends the probe (closes the channel or kills the process). */
  stop(): void;
}

export interface SessionLimits {
  maxEntries: number;
  maxNeeds: number;
  /** WARN frames (unreadable entries) before the job is failed: they all go to the log. */
  maxWarnings: number;
  /** No byte from the probe for this long fails the job. */
  stallMs: number;
}

export const defaultLimits: SessionLimits = { maxEntries: 20_000_000, maxNeeds: 1_000_000, maxWarnings: 100_000, stallMs: 5 * 60_000 };

export interface PullProgress {
  files: number;
  dirs: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  currentPath: string;
  expectedBytes?: number;
}

export interface PullBackupOptions {
  client: string;
  hostname: string;
  paths: string[];
  excludes?: string[];
  oneFileSystem?: boolean;
  tags?: string[];
  /** zstd level the probe compresses new chunks with; 0 sends them raw. */
  zstdLevel?: number;
  limits?: Partial<SessionLimits>;
  onProgress?: (p: PullProgress) => void;
  /** One line of the job log (probe diagnostics and warnings, names escaped). */
  onLog?: (line: string) => void;
  /** The probe has sent everything (DONE); what follows is saving trees and the snapshot. */
  onFinalizing?: () => void;
  /**
   * The server's directory for cached digests of each client's latest snapshot
   * (previous-cache.ts); without it every backup reads the previous snapshot's trees.
   */
  previousCacheDir?: string;
  /** The previous snapshot, already loaded (loadPreviousSnapshot) while the job connected; else the session loads it. */
  previous?: PreviousSnapshot;
  /**
   * Leave building and writing the new snapshot's digest (~5 MB sealed for 60,000 files, about
   * 0.6 s) to the caller, as result.writeDigest: the daemon does it after the job has ended.
   * Another backup of the same client in this process, once writeDigest has been called, waits
   * for the write before it reads the cache.
   */
  writeDigestLater?: boolean;
}

/** Writes the digest for the next backup; never rejects (a failure goes to onWarning, as a log line). */
export type DigestWriter = (onWarning: (line: string) => void) => Promise<void>;

export interface PullBackupResult {
  id: string;
  snapshot: Snapshot;
  bytesOnWire: number;
  /** With writeDigestLater (and a cache directory): the write still to be done. */
  writeDigest?: DigestWriter;
}

interface OpenDir {
  path: Buffer;
  node: TreeNode | undefined;
  children: TreeNode[];
  lastName: Buffer | undefined;
  /** Holds a file still waiting for chunks (NEED), directly or below. */
  pending: boolean;
  parent: OpenDir | undefined;
}

interface OpenFile {
  node: TreeNode;
  path: Buffer;
  dir: OpenDir;
  offset: number;
  content: string[];
  fingerprints: Buffer[];
  pendingNeeds: number;
  failed: boolean;
}

interface Need {
  id: number;
  file: OpenFile;
  slot: number;
  offset: number;
  length: number;
  sha: Buffer;
}

const kindToType: Record<number, NodeType> = {
  [EntryKind.file]: 'file',
  [EntryKind.dir]: 'dir',
  [EntryKind.symlink]: 'symlink',
  [EntryKind.fifo]: 'fifo',
  [EntryKind.chardev]: 'chardev',
  [EntryKind.blockdev]: 'blockdev',
  [EntryKind.socket]: 'socket',
};

/**
 * Chunks from this size (as received) are checked on a worker thread one message each; smaller
 * ones are gathered into batches (chunk-batch.ts) of at most `batchBytes` and `batchChunks`.
 */
const verifyAloneFrom = 64 * 1024;
const batchBytes = 512 * 1024;
const batchChunks = 256;
/** A batch that does not fill is sent after this long: a probe that stops sending still has its chunks checked. */
const batchWaitMs = 10;
/**
 * The probe's zstd level for new chunks. Level 1 against 3 on the benchmark's data (2,182 MiB):
 * the probe alone 6.75 s against 8.2 s of one core, 1,199 against 1,189 MiB sent (docs/performance.md).
 */
const defaultProbeZstdLevel = 1;
/** At most this many bytes of chunks wait for their check at once. */
const maxBytesVerifying = 32 * 1024 * 1024;

function notDecompressing(path: Buffer, rawLength: number): HaulError {
  return violation(`a chunk of ${displayBytes(path)} does not decompress to its declared ${rawLength} bytes`);
}

function notMatching(path: Buffer): HaulError {
  return violation(`a chunk of ${displayBytes(path)} does not match its SHA-256 (data and claim differ)`);
}

function violation(message: string): HaulError {
  return new HaulError('ProtocolViolation', `the probe broke the protocol: ${message}. The job failed; the repository keeps only verified data. If the client runs an unmodified probe, report this as a bug.`);
}

/** Absolute, no empty/./.. components, no NUL, no trailing slash, not "/" itself. */
export function isSafeProbePath(path: Buffer): boolean {
  if (path.length < 2 || path.length > maxPathBytes || path[0] !== 0x2f || path[path.length - 1] === 0x2f || path.includes(0)) return false;
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      const len = i - start;
      if (len === 0) return false;
      if (len === 1 && path[start] === 0x2e) return false;
      if (len === 2 && path[start] === 0x2e && path[start + 1] === 0x2e) return false;
      start = i + 1;
    }
  }
  return true;
}

function dirname(path: Buffer): Buffer {
  const i = path.lastIndexOf(0x2f);
  return i <= 0 ? Buffer.from('/') : path.subarray(0, i);
}

function basename(path: Buffer): Buffer {
  return path.subarray(path.lastIndexOf(0x2f) + 1);
}

export class PullBackupSession {
  private readonly limits: SessionLimits;
  private readonly chunkerKey: Buffer;
  /** HMAC under the chunker key: a chunk's fingerprint, for the next backup's KNOWN set. */
  private readonly fingerprints: Hmac32;
  /** Memory for large frames, given back once their chunk is stored (frame-buffers.ts). */
  private readonly frameBuffers = new FrameBuffers();
  private readonly decoder = new FrameDecoder(undefined, (n) => this.frameBuffers.take(n));
  private readonly stats: SnapshotStats = { files: 0, dirs: 0, bytes: 0, bytesRead: 0, bytesNew: 0, bytesStored: 0, blobsNew: 0, errors: 0, durationMs: 0 };
  private state: 'hello' | 'walk' | 'needs' | 'done' = 'hello';
  private frames = 0;
  private entries = 0;
  private bytesOnWire = 0;
  /** Bytes of the probe's stream by message type, and of PREVIOUS and KNOWN: where the wire goes. */
  private readonly streamBytes = new Map<number, { frames: number; bytes: number }>();
  private startBytes = { previous: 0, known: 0 };
  private readonly root: OpenDir = { path: Buffer.from('/'), node: undefined, children: [], lastName: undefined, pending: false, parent: undefined };
  private top: OpenDir = this.root;
  private file: OpenFile | undefined;
  private readonly deferred: OpenDir[] = [];
  private readonly needs = new Map<number, Need>();
  private needsAnswered = 0;
  private needIds = 0;
  private warnings = 0;
  /** The probe compresses chunks itself (HELLO features, BACKUP level): raw ones are incompressible. */
  private probeCompresses = false;
  /** Chunks being checked on a worker thread, and their bytes; the first failure among them. */
  private readonly verifying = new Set<Promise<void>>();
  private verifyingBytes = 0;
  /** Small chunks waiting to be sent to a worker thread for their check, and the timer that sends them. */
  private batch: ChunkBatch | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  private verifyFailure: unknown;
  /** This client's previous snapshot as told to the probe: what UNCHANGED and CHUNK_KNOWN may name. */
  private previous = PreviousDigest.empty();
  /** Directories of this walk (their entries), and those reused whole by UNCHANGED (their record): the next digest is built from them. */
  private readonly walkedDirs = new Map<TreeNode, OpenDir>();
  private readonly reusedDirs = new Map<TreeNode, number>();
  private readonly uploadedIds = new Set<string>();
  /** CHUNK_NEW frames of this walk, by number: what a CHUNK_REPEAT may name. */
  private readonly sentChunks = new SentChunks();
  private parent: StoredSnapshot | undefined;
  private lastProgress = 0;
  private readonly requested: Buffer[];

  constructor(private readonly repo: Repository, private readonly transport: ProbeTransport, private readonly options: PullBackupOptions) {
    this.limits = { ...defaultLimits, ...options.limits };
    this.chunkerKey = chunkerKeyFor(repo.keys, options.client);
    this.fingerprints = new Hmac32(this.chunkerKey);
    this.requested = options.paths.map((p) => Buffer.from(p));
  }

  async run(): Promise<PullBackupResult> {
    const started = Date.now();
    this.copyDiagnostics();
    try {
      const previous = this.options.previous ?? (await loadPreviousSnapshot(this.repo, this.options.client, this.options.previousCacheDir, (line) => this.log(line)));
      this.parent = previous.parent;
      this.previous = previous.digest;
      await this.receive();
      await this.settleVerifications();
      this.options.onFinalizing?.();
      await this.finishTrees();
      const treeId = await this.repo.saveTree({ nodes: this.root.children });
      // Done here, the next backup's digest is built while the last packs, the index and the
      // snapshot are written: CPU during what is otherwise a wait for the disk.
      const digest = this.options.writeDigestLater ? undefined : this.startDigest(treeId);
      // Blobs still being compressed on the worker pool are counted only once packed: wait for them.
      await this.repo.flush();
      this.logStream();
      Object.assign(this.stats, { bytesNew: this.repo.written.bytesNew, bytesStored: this.repo.written.bytesStored, blobsNew: this.repo.written.blobsNew, durationMs: Date.now() - started });
      const snapshot: Snapshot = {
        format: 'haul-snapshot-v1',
        client: this.options.client,
        time: new Date(started).toISOString(),
        hostname: this.options.hostname,
        paths: this.options.paths,
        tags: this.options.tags ?? [],
        tree: treeId,
        ...(this.parent ? { parent: this.parent.id } : {}),
        source: 'ssh',
        stats: this.stats,
      };
      const id = await this.repo.saveSnapshot(snapshot);
      const writeDigest = await this.savePrevious(id, treeId, digest);
      return { id, snapshot, bytesOnWire: this.bytesOnWire, ...(writeDigest ? { writeDigest } : {}) };
    } catch (err) {
      this.transport.stop();
      this.dropBatch();
      // Chunks already verified and packed stay useful: index them for the next run.
      await Promise.allSettled([...this.verifying]);
      await this.repo.indexWrittenPacks();
      // A chunk that failed its check is the cause, whatever the stream did after it.
      throw this.verifyFailure ?? err;
    }
  }

  /**
   * The new snapshot's digest, for the next backup: built from this walk's directories and the
   * previous digest's records of the directories reused whole, so no tree is read again. A
   * failure here costs the next backup a walk of the trees, not this backup. Done here, or, with
   * writeDigestLater, by the function returned (it needs only this session and the repository).
   */
  private async savePrevious(snapshotId: string, treeId: string, started?: Promise<PreviousDigest>): Promise<DigestWriter | undefined> {
    const dir = this.options.previousCacheDir;
    if (!dir) return undefined;
    // savePreviousCache is called at once, so a backup of this client that starts meanwhile waits for the write.
    const write: DigestWriter = (onWarning) =>
      savePreviousCache(this.repo.keys, dir, this.options.client, snapshotId, () => started ?? this.buildNextDigest(treeId)).catch((err: unknown) =>
        onWarning(`warning: the digest of this snapshot could not be cached (${(err as Error).message}); the next backup reads its trees instead`),
      );
    if (this.options.writeDigestLater) return write;
    await write((line) => this.log(line));
    return undefined;
  }

  /** buildNextDigest begun now, when there is a cache to write it to; its failure is savePrevious's to report. */
  private startDigest(treeId: string): Promise<PreviousDigest> | undefined {
    if (!this.options.previousCacheDir) return undefined;
    const digest = this.buildNextDigest(treeId, { yieldEvery: 32 });
    digest.catch(() => undefined);
    return digest;
  }

  /**
   * The digest of the snapshot this session saved (root tree `treeId`). `yieldEvery` directories
   * it lets other work run (such as the disk writes it overlaps), on a later turn of the event loop.
   */
  private async buildNextDigest(treeId: string, options: { yieldEvery?: number } = {}): Promise<PreviousDigest> {
    let dirs = 0;
    return buildDigest({ treeId, nodes: this.root.children }, {
      listing: async (node) => {
        if (options.yieldEvery && ++dirs % options.yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
        const walked = this.walkedDirs.get(node);
        if (walked) return { treeId: node.subtree!, nodes: walked.children };
        return node.subtree ? { treeId: node.subtree, nodes: (await this.repo.loadTree(node.subtree)).nodes } : undefined;
      },
      reused: (node) => this.reusedDirs.get(node),
      from: this.previous,
      present: (id) => this.repo.hasBlob(id),
    });
  }

  /** One job-log line: what the probe's stream and the server's PREVIOUS and KNOWN consisted of. */
  private logStream(): void {
    const names = new Map<number, string>(Object.entries(ProbeMessage).map(([name, type]) => [type, name]));
    const parts = [...this.streamBytes].sort((a, b) => b[1].bytes - a[1].bytes).map(([type, t]) => `${names.get(type) ?? `0x${type.toString(16)}`} ${formatBytes(t.bytes)} (${formatCount(t.frames)})`);
    this.log(`probe stream ${formatBytes(this.bytesOnWire)}: ${parts.join(', ')}; to the probe: PREVIOUS ${formatBytes(this.startBytes.previous)}, KNOWN ${formatBytes(this.startBytes.known)}`);
  }

  private log(line: string): void {
    this.options.onLog?.(line);
  }

  private copyDiagnostics(): void {
    copyProbeDiagnostics(this.transport.diagnostics, (line) => this.log(line));
  }

  // ---- the frame loop ----

  private async send(frame: Buffer): Promise<void> {
    const input = this.transport.input;
    if (input.write(frame)) return;
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error) => {
        input.off('drain', onDrain);
        input.off('error', settle);
        input.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => settle();
      // An SSH channel that closes under a waiting write (the job stopped, the connection gone)
      // emits neither 'drain' nor 'error', only 'close': waiting on, the session would hang.
      const onClose = () => settle(new Error('the channel to the probe closed while the server was writing to it'));
      input.once('drain', onDrain);
      input.once('error', settle);
      input.once('close', onClose);
    });
  }

  private async receive(): Promise<void> {
    const output = this.transport.output;
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        this.transport.stop();
        output.destroy();
      }, this.limits.stallMs);
    };
    arm();
    let greeted = false;
    const chunks = readChunks(output);
    try {
      for (let data = await chunks.next(); data; data = await chunks.next()) {
        arm();
        this.bytesOnWire += data.length;
        let frames: Frame[];
        try {
          frames = this.decoder.push(data);
        } catch (err) {
          throw violation((err as Error).message);
        }
        for (const frame of frames) {
          this.frames++;
          const tally = this.streamBytes.get(frame.type) ?? { frames: 0, bytes: 0 };
          tally.frames++;
          tally.bytes += 5 + frame.body.length;
          this.streamBytes.set(frame.type, tally);
          await this.handle(frame);
          if (!greeted && this.state === 'walk') {
            greeted = true;
            await this.sendStart();
          }
          if (this.state === 'done') return;
        }
      }
    } catch (err) {
      if (stalled) throw new HaulError('ProbeStalled', `the probe sent nothing for ${this.limits.stallMs / 1000} s; the job was stopped. Check the client's load and network, then run the backup again.`);
      if (isHaulError(err)) throw err;
      throw new HaulError('ProbeFailed', `the connection to the probe failed: ${(err as Error).message}. Run the backup again; what arrived is kept.`, { cause: err });
    } finally {
      clearTimeout(timer);
      chunks.release();
    }
    if (stalled) throw new HaulError('ProbeStalled', `the probe sent nothing for ${this.limits.stallMs / 1000} s; the job was stopped. Check the client's load and network, then run the backup again.`);
    throw new HaulError('ProbeFailed', `the probe's output ended before the backup was complete (state ${this.state}, ${this.entries} entries received${this.decoder.pending ? `, stream cut inside a frame` : ''}). Run the backup again; what arrived is kept.`);
  }

  /** BACKUP, then this client's own previous snapshot (PREVIOUS, KNOWN), nothing else. */
  private async sendStart(): Promise<void> {
    const { records, known } = this.previous;
    const { chunker } = this.repo.config;
    const w = new BodyWriter().u32(chunker.minSize).u32(chunker.avgSize).u32(chunker.maxSize).u8(chunkerNormalization(chunker)).bytes(this.chunkerKey).i8(this.options.zstdLevel ?? defaultProbeZstdLevel).u8(this.options.oneFileSystem ? 1 : 0);
    w.u16(this.options.paths.length);
    for (const p of this.options.paths) w.bytes16(Buffer.from(p));
    const excludes = this.options.excludes ?? [];
    w.u16(excludes.length);
    for (const e of excludes) w.bytes16(Buffer.from(e));
    await this.send(encodeFrame(ServerMessage.backup, w.done()));
    const perFrame = previousRecordsPerFrame * previousRecordLength;
    for (let i = 0; i < records.length; i += perFrame) {
      await this.send(encodeFrame(ServerMessage.previous, records.subarray(i, i + perFrame)));
    }
    await this.send(encodeFrame(ServerMessage.previousEnd, new BodyWriter().u64(records.length / previousRecordLength).done()));
    const knownPerFrame = 1 << 20;
    for (let i = 0; i < known.length; i += knownPerFrame) {
      const part = known.subarray(i, i + knownPerFrame);
      await this.send(encodeFrame(ServerMessage.known, Buffer.from(part.buffer, part.byteOffset, part.byteLength)));
    }
    await this.send(encodeFrame(ServerMessage.knownEnd, new BodyWriter().u64(known.length).done()));
    this.startBytes = { previous: records.length, known: known.length * 8 };
  }

  private async handle(frame: Frame): Promise<void> {
    const r = new BodyReader(frame.body);
    try {
      switch (this.state) {
        case 'hello':
          if (frame.type !== ProbeMessage.hello) throw violation(`expected HELLO, got message type 0x${frame.type.toString(16)}`);
          this.onHello(r);
          this.state = 'walk';
          return;
        case 'walk':
          switch (frame.type) {
            case ProbeMessage.entry: return await this.onEntry(r);
            case ProbeMessage.unchanged: return await this.onUnchanged(r);
            case ProbeMessage.chunkNew: return await this.onChunkNew(r, frame.exclusive ?? false);
            case ProbeMessage.chunkKnown: return this.onChunkKnown(r);
            case ProbeMessage.chunkRepeat: return this.onChunkRepeat(r);
            case ProbeMessage.fileEnd: return this.onFileEnd(r);
            case ProbeMessage.warn: return this.onWarn(r);
            case ProbeMessage.walkDone: return await this.onWalkDone(r);
          }
          break;
        case 'needs':
          switch (frame.type) {
            case ProbeMessage.chunkNew: return await this.onChunkNew(r, frame.exclusive ?? false);
            case ProbeMessage.chunkGone: return this.onChunkGone(r);
            case ProbeMessage.warn: return this.onWarn(r);
            case ProbeMessage.done: return this.onDone(r);
          }
          break;
      }
      throw violation(`message type 0x${frame.type.toString(16)} is not allowed ${this.state === 'needs' ? 'after WALK_DONE' : 'during the walk'} (frame ${this.frames})`);
    } catch (err) {
      if (err instanceof MalformedBody) throw violation(`frame ${this.frames} (type 0x${frame.type.toString(16)}): ${err.message}`);
      throw err;
    }
  }

  private onHello(r: BodyReader): void {
    const magic = r.bytes(8).toString('latin1');
    const version = r.u16();
    const probeVersion = r.bytes16().toString('utf8');
    const arch = r.bytes16().toString('utf8');
    const features = r.u32();
    r.end();
    // A probe with zstd compresses every new chunk it can by the repository's own rule (at least
    // 64 bytes, at least 1/32 saved): what it sends raw, the server would not compress either.
    this.probeCompresses = (features & HelloFeature.zstd) !== 0 && (this.options.zstdLevel ?? defaultProbeZstdLevel) > 0;
    if (magic !== helloMagic) throw violation('HELLO does not start with HAULPRB1');
    if (version !== protocolVersion) {
      throw new HaulError('ProbeFailed', `the probe speaks protocol version ${version}, this server speaks ${protocolVersion}. Reinstall the probe (it is replaced automatically when its hash differs).`);
    }
    this.log(`probe ${JSON.stringify(probeVersion.slice(0, 100)).slice(1, -1)} on ${JSON.stringify(arch.slice(0, 32)).slice(1, -1)}`);
  }

  private async onEntry(r: BodyReader): Promise<void> {
    if (this.file) throw violation(`a new entry began before FILE_END of ${displayBytes(this.file.path)}`);
    if (++this.entries > this.limits.maxEntries) throw violation(`more than ${this.limits.maxEntries} entries`);
    const kind = r.u8();
    const flags = r.u8();
    const path = Buffer.from(r.bytes16());
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const size = r.u64();
    const mtime = r.i64();
    const ctime = r.i64();
    const inode = r.u64();
    const device = r.u64();
    const nlink = r.u32();
    const rdev = r.u64();
    const target = Buffer.from(r.bytes16());
    r.end();
    const type = kindToType[kind];
    if (!type) throw violation(`unknown entry kind ${kind} for ${displayBytes(path)}`);
    if (!isSafeProbePath(path)) throw violation(`unsafe path ${displayBytes(path)} (must be absolute and normalised, without NUL, at most ${maxPathBytes} bytes)`);
    if (!this.isRequested(path)) throw violation(`${displayBytes(path)} is neither one of the paths asked for, nor above or below one`);
    if (flags & ~EntryFlag.ancestor) throw violation(`unknown entry flags 0x${flags.toString(16)}`);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw violation(`size of ${displayBytes(path)} is out of range`);
    const dir = await this.placeEntry(path);
    const { text, raw } = encodeBytes(basename(path));
    const node: TreeNode = {
      name: text,
      ...(raw !== undefined ? { nameRaw: raw } : {}),
      type,
      mode: mode & 0o7777,
      uid,
      gid,
      mtime: mtime.toString(),
      ctime: ctime.toString(),
    };
    // A directory's inode lets the next run match it as a whole (PREVIOUS, docs/probe-protocol.md).
    if (type === 'file' || type === 'dir') node.inode = inode.toString();
    if (type !== 'dir' && nlink > 1) {
      node.inode = inode.toString();
      node.device = device.toString();
      node.links = nlink;
    }
    if (type === 'chardev' || type === 'blockdev') node.rdev = Number(rdev & 0xffff_ffffn);
    if (type === 'symlink') {
      if (target.length === 0 || target.includes(0)) throw violation(`symlink ${displayBytes(path)} has an empty or NUL-containing target`);
      const t = encodeBytes(target);
      node.target = t.text;
      if (t.raw !== undefined) node.targetRaw = t.raw;
    } else if (target.length > 0) {
      throw violation(`${displayBytes(path)} is not a symlink but has a link target`);
    }
    if ((flags & EntryFlag.ancestor) && type !== 'dir') throw violation(`ancestor ${displayBytes(path)} is not a directory`);
    if (type === 'dir') {
      this.stats.dirs++;
      this.top = { path, node, children: [], lastName: undefined, pending: false, parent: dir };
      this.walkedDirs.set(node, this.top);
      return;
    }
    if (type !== 'file') {
      dir.children.push(node);
      return;
    }
    node.size = Number(size);
    this.stats.files++;
    this.stats.bytes += node.size;
    this.file = { node, path, dir, offset: 0, content: [], fingerprints: [], pendingNeeds: 0, failed: false };
  }

  /** UNCHANGED: the file or whole directory of PREVIOUS record `index`, taken from the previous snapshot as it is. */
  private async onUnchanged(r: BodyReader): Promise<void> {
    const index = r.u32();
    r.end();
    if (this.file) throw violation(`an unchanged entry came before FILE_END of ${displayBytes(this.file.path)}`);
    if (++this.entries > this.limits.maxEntries) throw violation(`more than ${this.limits.maxEntries} entries`);
    const previous = await this.previous.entry(index, this.repo);
    if (!previous) throw violation(`UNCHANGED names PREVIOUS record ${index}, but the server sent ${this.previous.count} record(s)`);
    const { path, node, totals } = previous;
    // Not above a path asked for either: an ancestor's saved tree may hold paths no longer asked for.
    if (!this.isRequested(path, { below: true })) throw violation(`unchanged ${displayBytes(path)} is neither one of the paths asked for nor below one`);
    const dir = await this.placeEntry(path);
    // The saved tree of an unchanged directory is reused as it is: not decoded, not saved again.
    dir.children.push(node);
    if (totals) {
      this.reusedDirs.set(node, index);
      this.stats.files += totals.files;
      this.stats.dirs += totals.dirs;
      this.stats.bytes += totals.bytes;
    } else {
      this.stats.files++;
      this.stats.bytes += node.size ?? 0;
    }
    this.progress(path);
  }

  /** The directory an entry goes into, once its place in the walk order is checked. */
  private async placeEntry(path: Buffer): Promise<OpenDir> {
    const dir = await this.enterParent(path);
    const name = basename(path);
    if (dir.lastName && Buffer.compare(name, dir.lastName) <= 0) throw violation(`${displayBytes(path)} is a duplicate or out of order (entries of a directory come sorted by name)`);
    dir.lastName = name;
    return dir;
  }

  /** A configured path, a directory above one, or anything below one: nothing else is stored. */
  private isRequested(path: Buffer, only: { below?: boolean } = {}): boolean {
    const slash = Buffer.from('/');
    return this.requested.some((p) => {
      if (p.length === 1) return true;
      if (path.equals(p)) return true;
      if (only.below && path.length < p.length) return false;
      const [shorter, longer] = path.length < p.length ? [path, p] : [p, path];
      return longer.subarray(0, shorter.length).equals(shorter) && longer.subarray(shorter.length, shorter.length + 1).equals(slash);
    });
  }

  /** Closes finished directories until the entry's parent is on top. */
  private async enterParent(path: Buffer): Promise<OpenDir> {
    const parent = dirname(path);
    while (!this.top.path.equals(parent)) {
      if (this.top === this.root) throw violation(`${displayBytes(path)} is outside the directory being walked`);
      await this.closeDir(this.top);
    }
    return this.top;
  }

  private async closeDir(dir: OpenDir): Promise<void> {
    const parent = dir.parent!;
    this.top = parent;
    parent.children.push(dir.node!);
    if (dir.pending) {
      // Saved after the NEED exchange, when its files are complete.
      this.deferred.push(dir);
      parent.pending = true;
      return;
    }
    dir.node!.subtree = await this.repo.saveTree({ nodes: dir.children });
  }

  private currentFile(what: string): OpenFile {
    if (!this.file) throw violation(`${what} outside of a file`);
    return this.file;
  }

  private checkRawLength(rawLength: number): void {
    if (rawLength < 1 || rawLength > this.repo.config.chunker.maxSize) throw violation(`chunk of ${rawLength} bytes (allowed: 1 to ${this.repo.config.chunker.maxSize})`);
  }

  private fingerprint(sha: Buffer): Buffer {
    return this.fingerprints.mac(sha).subarray(0, 8);
  }

  /**
   * Decompresses within the claimed size, re-hashes, and stores; returns the blob ID. The check
   * runs on a worker thread while the next frames are read (a small chunk in a batch with
   * others): the ID comes from the claimed SHA-256 at once, and the snapshot waits until every
   * check has passed (a failed one fails the job), so nothing unverified is ever stored or
   * referenced by a snapshot.
   */
  private async verifyAndStore(compression: number, rawLength: number, sha: Buffer, data: Buffer, exclusive: boolean, path: Buffer): Promise<Buffer> {
    this.throwIfVerifyFailed();
    if (compression !== ChunkCompression.zstd && compression !== ChunkCompression.none) throw violation(`unknown chunk compression ${compression}`);
    const zstd = compression === ChunkCompression.zstd;
    if (!zstd && data.length !== rawLength) throw violation(`a chunk of ${displayBytes(path)} has ${data.length} bytes, declared ${rawLength}`);
    const id = blobIdFromHash(this.repo.keys, sha);
    this.uploadedIds.add(id.toString('hex'));
    if (data.length < verifyAloneFrom) {
      if (this.batch && !this.batch.fits(data.length)) await this.sendBatch();
      if (!this.batch) {
        this.batch = new ChunkBatch(this.frameBuffers.take(batchBytes), batchChunks);
        this.batchTimer = setTimeout(() => void this.sendBatch().catch(() => undefined), batchWaitMs).unref();
      }
      this.batch.add(data, sha, id, rawLength, zstd, path);
      // An exclusive frame's memory is the frame buffers'; copied into the batch, it is free.
      if (exclusive) this.frameBuffers.give(data);
      return id;
    }
    await this.roomToVerify();
    if (this.storedAsReceived(zstd)) await this.repo.readyToPlace();
    // `data` moves to the worker (its buffer is detached here): keep its length.
    const length = data.length;
    // As for a batch: a place in the open pack, encrypted into by the worker once the check passes.
    const reserved = this.placeFor(id, zstd, length, rawLength);
    const place = typeof reserved === 'object' ? reserved : undefined;
    this.track(length, this.repo.hashOnWorker({ data, exclusive, zstd, rawLength, ...(place ? { place: { ...place, claim: sha } } : {}) }).then(
      async (hashed) => {
        const passed = hashed !== 'decompression' && hashed.sha256.equals(sha);
        place?.done(passed);
        if (hashed === 'decompression') throw notDecompressing(path, rawLength);
        if (!passed) throw notMatching(path);
        if (reserved === undefined) await this.storeChecked(hashed.sha256, rawLength, zstd, hashed.data);
        if (exclusive) this.frameBuffers.give(hashed.data);
      },
      (err: unknown) => {
        place?.done(false);
        throw err;
      },
    ));
    return id;
  }

  /**
   * Sends the batch being gathered to a worker thread. Each chunk stored as it came gets a place
   * in the open pack first, which the worker fills once the chunk passes its check; a chunk
   * without one (a full arena, a chunk the server compresses itself) is stored here afterwards.
   */
  private async sendBatch(): Promise<void> {
    const batch = this.batch;
    if (!batch) return;
    this.batch = undefined;
    clearTimeout(this.batchTimer);
    await this.roomToVerify();
    await this.repo.readyToPlace();
    // From here to the request nothing waits: a pack waits for its places, filled only once the batch is sent.
    const places = batch.chunks.map((c) => this.placeFor(c.id, c.zstd, c.length, c.rawLength));
    const request = batch.request(places.map((p) => (typeof p === 'object' ? p : undefined)));
    this.track(batch.bytes, this.repo.hashBatchOnWorker(request).then(
      async (hashed) => {
        const passed = batch.chunks.map((c, i) => !hashed.failed[i] && hashed.shas.subarray(32 * i, 32 * i + 32).equals(c.sha));
        // The worker wrote into a place only a chunk that passed its check.
        for (const [i, p] of places.entries()) if (typeof p === 'object') p.done(passed[i]!);
        const bad = passed.indexOf(false);
        if (bad >= 0) {
          const c = batch.chunks[bad]!;
          throw hashed.failed[bad] ? notDecompressing(c.path, c.rawLength) : notMatching(c.path);
        }
        for (const [i, c] of batch.chunks.entries()) {
          if (places[i] === undefined) await this.storeChecked(c.sha, c.rawLength, c.zstd, hashed.memory.subarray(c.offset, c.offset + c.length));
        }
        this.frameBuffers.give(hashed.memory);
      },
      (err: unknown) => {
        // The worker failed (it died): what it was to write, it did not.
        for (const p of places) if (typeof p === 'object') p.done(false);
        throw err;
      },
    ));
  }

  /**
   * A place in the open pack for a chunk stored as it comes (Repository.reserveBlob); undefined
   * for one the server compresses itself, or when there is no place now (see storeChecked).
   */
  private placeFor(id: Buffer, zstd: boolean, length: number, rawLength: number): ReturnType<Repository['reserveBlob']> {
    if (!this.storedAsReceived(zstd)) return undefined;
    return this.repo.reserveBlob(BlobType.data, id, zstd ? Compression.zstd : Compression.none, length, rawLength);
  }

  /** A zstd frame, or a raw chunk from a probe that compresses (so found not worth it), is stored as it came. */
  private storedAsReceived(zstd: boolean): boolean {
    return zstd || this.probeCompresses;
  }

  private dropBatch(): void {
    clearTimeout(this.batchTimer);
    this.batch = undefined;
  }

  /** Waits while too many bytes are being checked; throws a check's failure. */
  private async roomToVerify(): Promise<void> {
    while (this.verifyingBytes > maxBytesVerifying && this.verifying.size > 0) await Promise.race(this.verifying);
    this.throwIfVerifyFailed();
  }

  private track(bytes: number, check: Promise<void>): void {
    this.verifyingBytes += bytes;
    const tracked: Promise<void> = check
      .catch((err: unknown) => {
        this.verifyFailure ??= err;
        // Fail now, not at the next chunk: the probe may never send one.
        this.transport.stop();
      })
      .finally(() => {
        this.verifying.delete(tracked);
        this.verifyingBytes -= bytes;
      });
    this.verifying.add(tracked);
  }

  /**
   * Stores a chunk whose check passed (`sha` computed here over its `rawLength` bytes of
   * plaintext), as it came, so the server spends no second compression (a third of its CPU per
   * chunk before): a zstd frame has just decompressed to exactly the hashed bytes; a raw chunk of
   * a probe that compresses is one it found not worth compressing. Only a raw chunk of a probe
   * without zstd is compressed here.
   */
  private async storeChecked(sha: Buffer, rawLength: number, zstd: boolean, received: Buffer): Promise<Buffer> {
    if (!this.storedAsReceived(zstd)) return (await this.repo.saveBlob(BlobType.data, received, sha)).id;
    const stored = { compression: zstd ? Compression.zstd : Compression.none, data: received };
    return (await this.repo.saveEncodedBlob(BlobType.data, sha, rawLength, stored)).id;
  }

  private throwIfVerifyFailed(): void {
    if (this.verifyFailure) throw this.verifyFailure;
  }

  /** Waits for every chunk still being checked; throws the first failure. */
  private async settleVerifications(): Promise<void> {
    await this.sendBatch();
    while (this.verifying.size > 0) await Promise.race(this.verifying);
    this.throwIfVerifyFailed();
  }

  private async onChunkNew(r: BodyReader, exclusive: boolean): Promise<void> {
    const needId = r.u32();
    const compression = r.u8();
    const rawLength = r.u32();
    const sha = Buffer.from(r.bytes(32));
    const data = r.rest();
    this.checkRawLength(rawLength);
    if (needId !== 0) {
      if (this.state !== 'needs') throw violation('a chunk answered a NEED during the walk');
      const need = this.needs.get(needId);
      if (!need) throw violation(`answer to unknown or already answered NEED ${needId}`);
      this.needs.delete(needId);
      this.needsAnswered++;
      if (!sha.equals(need.sha) || rawLength !== need.length) throw violation(`the answer to NEED ${needId} is not the chunk asked for`);
      const id = await this.verifyAndStore(compression, rawLength, sha, data, exclusive, need.file.path);
      need.file.content[need.slot] = id.toString('hex');
      need.file.pendingNeeds--;
      return;
    }
    if (this.state !== 'walk') throw violation('a chunk without a NEED after WALK_DONE');
    const file = this.currentFile('a chunk');
    if (file.offset + rawLength > Number.MAX_SAFE_INTEGER) throw violation(`${displayBytes(file.path)} is larger than 2^53 bytes`);
    const id = await this.verifyAndStore(compression, rawLength, sha, data, exclusive, file.path);
    this.sentChunks.add(id, rawLength);
    file.content.push(id.toString('hex'));
    file.fingerprints.push(this.fingerprint(sha));
    file.offset += rawLength;
    this.stats.bytesRead += rawLength;
    this.progress(file.path);
  }

  private onChunkKnown(r: BodyReader): void {
    const rawLength = r.u32();
    const sha = Buffer.from(r.bytes(32));
    r.end();
    this.checkRawLength(rawLength);
    const file = this.currentFile('a known-chunk claim');
    const id = blobIdFromHash(this.repo.keys, sha);
    const hex = id.toString('hex');
    // Only this client's own chunks count, and only if the repository still has them; the
    // global index is never consulted on a client's word.
    const own = this.previous.ownsBlob(hex) || this.uploadedIds.has(hex);
    if (own && this.repo.hasBlob(id)) file.content.push(hex);
    else this.askAgain(file, rawLength, sha);
    this.advance(file, rawLength, sha);
  }

  /** "The same bytes as chunk number N of this walk": accepted only for a chunk this session verified. */
  private onChunkRepeat(r: BodyReader): void {
    const index = r.u32();
    const rawLength = r.u32();
    const sha = Buffer.from(r.bytes(32));
    r.end();
    this.checkRawLength(rawLength);
    const file = this.currentFile('a repeated-chunk claim');
    const earlier = this.sentChunks.get(index);
    if (!earlier) {
      throw violation(`a chunk of ${displayBytes(file.path)} was claimed to repeat chunk ${index} of this run, but the probe has sent only ${this.sentChunks.size} chunk(s) so far`);
    }
    const id = blobIdFromHash(this.repo.keys, sha);
    if (id.equals(earlier.id)) {
      if (rawLength !== earlier.rawLength) throw violation(`a chunk of ${displayBytes(file.path)} repeats chunk ${index} but claims ${rawLength} bytes, that chunk has ${earlier.rawLength}`);
      file.content.push(id.toString('hex'));
    } else {
      // The probe's table of sent chunks keeps truncated fingerprints: a rare false match
      // names the wrong chunk. Not an error: the bytes are asked for, as for an unconfirmed KNOWN.
      this.askAgain(file, rawLength, sha);
    }
    this.advance(file, rawLength, sha);
  }

  private askAgain(file: OpenFile, rawLength: number, sha: Buffer): void {
    if (this.needs.size >= this.limits.maxNeeds) throw violation(`more than ${this.limits.maxNeeds} chunks claimed known that the server cannot confirm`);
    const need: Need = { id: ++this.needIds, file, slot: file.content.length, offset: file.offset, length: rawLength, sha };
    this.needs.set(need.id, need);
    file.content.push('');
    file.pendingNeeds++;
  }

  private advance(file: OpenFile, rawLength: number, sha: Buffer): void {
    file.fingerprints.push(this.fingerprint(sha));
    file.offset += rawLength;
    this.stats.bytesRead += rawLength;
  }

  private onFileEnd(r: BodyReader): void {
    const bytesRead = r.u64();
    const status = r.u8();
    const errno = r.i32();
    r.end();
    const file = this.currentFile('FILE_END');
    this.file = undefined;
    if (status !== 0) {
      this.stats.errors++;
      this.stats.files--;
      this.stats.bytes -= file.node.size!;
      this.dropPending(file);
      this.log(`warning: ${displayBytes(file.path)} left out: the probe could not read it (errno ${errno})`);
      return;
    }
    if (bytesRead !== BigInt(file.offset)) throw violation(`FILE_END of ${displayBytes(file.path)} says ${bytesRead} bytes, its chunks add up to ${file.offset}`);
    // The file may have changed size while it was read: the snapshot records what was read.
    this.stats.bytes += file.offset - file.node.size!;
    file.node.size = file.offset;
    file.node.content = file.content;
    file.node.fingerprints = Buffer.concat(file.fingerprints).toString('base64');
    file.dir.children.push(file.node);
    if (file.pendingNeeds > 0) file.dir.pending = true;
  }

  private dropPending(file: OpenFile): void {
    file.failed = true;
    for (const [id, need] of this.needs) if (need.file === file) this.needs.delete(id);
  }

  private onWarn(r: BodyReader): void {
    const path = r.bytes16();
    const errno = r.i32();
    const message = r.bytes16();
    r.end();
    if (++this.warnings > this.limits.maxWarnings) throw violation(`more than ${this.limits.maxWarnings} warnings`);
    this.stats.errors++;
    this.log(`warning: ${displayBytes(path)}: ${displayBytes(message.subarray(0, 1024))} (errno ${errno})`);
  }

  private async onWalkDone(r: BodyReader): Promise<void> {
    r.u64();
    r.u64();
    r.end();
    if (this.file) throw violation(`WALK_DONE before FILE_END of ${displayBytes(this.file.path)}`);
    while (this.top !== this.root) await this.closeDir(this.top);
    for (const need of this.needs.values()) {
      const w = new BodyWriter().u32(need.id).bytes16(need.file.path).u64(need.offset).u32(need.length).bytes(need.sha);
      await this.send(encodeFrame(ServerMessage.need, w.done()));
    }
    if (this.needs.size > 0) this.log(`asked the probe again for ${this.needs.size} chunk(s) it claimed the server had`);
    await this.send(encodeFrame(ServerMessage.finish));
    this.state = 'needs';
  }

  private onChunkGone(r: BodyReader): void {
    const needId = r.u32();
    const errno = r.i32();
    r.end();
    const need = this.needs.get(needId);
    if (!need) throw violation(`CHUNK_GONE for unknown or already answered NEED ${needId}`);
    this.needs.delete(needId);
    this.needsAnswered++;
    if (!need.file.failed) {
      this.stats.errors++;
      this.stats.files--;
      this.stats.bytes -= need.file.node.size!;
      this.log(`warning: ${displayBytes(need.file.path)} left out: it changed while it was backed up${errno ? ` (errno ${errno})` : ''}`);
      this.dropPending(need.file);
    }
  }

  private onDone(r: BodyReader): void {
    r.end();
    if (this.needs.size > 0) throw violation(`DONE with ${this.needs.size} NEED(s) unanswered`);
    this.state = 'done';
  }

  /** After the NEED exchange: remove failed files, then save the directories that waited. */
  private async finishTrees(): Promise<void> {
    const complete = (n: TreeNode) => !(n.type === 'file' && n.content?.includes(''));
    for (const dir of this.deferred) {
      dir.children = dir.children.filter(complete);
      dir.node!.subtree = await this.repo.saveTree({ nodes: dir.children });
    }
    this.root.children = this.root.children.filter(complete);
  }

  private progress(path: Buffer): void {
    const now = Date.now();
    if (!this.options.onProgress || now - this.lastProgress < 200) return;
    this.lastProgress = now;
    this.options.onProgress({
      files: this.stats.files,
      dirs: this.stats.dirs,
      bytesScanned: this.stats.bytesRead,
      bytesNew: this.repo.written.bytesNew,
      bytesOnWire: this.bytesOnWire,
      currentPath: displayBytes(path),
      ...(this.parent ? { expectedBytes: this.parent.stats.bytes } : {}),
    });
  }
}

/**
 * Reads a stream chunk by chunk with backpressure. Unlike `for await`, stopping early does not
 * destroy the stream: over SSH that would tear down the channel before the probe has exited.
 */
function readChunks(stream: Readable): { next(): Promise<Buffer | undefined>; release(): void } {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const onData = (d: Buffer) => {
    queue.push(d);
    stream.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  const onError = (err: Error) => {
    failure = err;
    wake?.();
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', onEnd);
  stream.on('error', onError);
  // A stream that ended or was destroyed before these listeners came emits nothing more.
  if (stream.destroyed || stream.readableEnded) {
    ended = true;
    failure = stream.errored ?? undefined;
  }
  return {
    async next() {
      for (;;) {
        const d = queue.shift();
        if (d) return d;
        if (failure) throw failure;
        if (ended) return undefined;
        const woken = new Promise<void>((resolve) => (wake = resolve));
        stream.resume();
        await woken;
        wake = undefined;
      }
    },
    release() {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      // Whatever the probe still writes (nothing, after DONE) is drained, not left to block it.
      stream.resume();
    },
  };
}

export function runPullBackup(repo: Repository, transport: ProbeTransport, options: PullBackupOptions): Promise<PullBackupResult> {
  return new PullBackupSession(repo, transport, options).run();
}
