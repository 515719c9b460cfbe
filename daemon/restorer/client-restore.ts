// Restores a snapshot, or a path in it, onto a client through the probe's restore session
// (docs/probe-protocol.md, "Session: restore"). The server walks the snapshot and streams the
// entries and their verified data without waiting; the probe writes them below the target and
// answers only with a WARN for each entry it could not restore and a summary at the end. The
// probe checks every name itself; what it sends back is hostile input like a backup's stream:
// bounded, parsed exactly, and only ever shown escaped.
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { displayBytes } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';
import {
  BodyReader,
  FrameDecoder,
  HelloFeature,
  MalformedBody,
  ProbeMessage,
  RestoreEntryFlag,
  RestoreFileStatus,
  RestoreKind,
  RestoreProbeMessage,
  RestoreServerMessage,
  decodeHello,
  decodeRestoreDone,
  encodeFrame,
  encodeRestoreEntry,
  encodeRestoreFileEnd,
  encodeRestoreStart,
  helloMagic,
  isSafeRestorePath,
  maxPathBytes,
  maxRestoreData,
  protocolVersion,
  restoreDataHead,
  type Frame,
  type RestoreDone,
  type RestoreEntry,
} from '../../shared/probe-protocol.js';
import { BlobType } from '../repository/blob.js';
import type { Repository, VerifiedBlob } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { nameBytes, targetBytes, type Tree, type TreeNode } from '../repository/tree.js';
import type { ProbeTransport } from '../session/probe-session.js';

export interface ClientRestoreLimits {
  /** Waiting this long on the probe (to take data, or to finish) fails the job. */
  stallMs: number;
  /** WARN frames accepted before the job is failed. */
  maxWarnings: number;
  /** Problems kept with their path and message; the rest are only counted. */
  maxProblemsListed: number;
}

export const defaultClientRestoreLimits: ClientRestoreLimits = { stallMs: 5 * 60_000, maxWarnings: 1_000_000, maxProblemsListed: 1000 };

export interface ClientRestoreProgress {
  files: number;
  bytes: number;
  totalBytes?: number;
  currentPath: string;
}

export interface ClientRestoreOptions {
  /** Absolute path on the client. */
  target: string;
  /**
   * Put everything back at the paths the snapshot recorded: the target must be `/`, and the
   * directories above the restored path are created if missing, never changed if present.
   * Otherwise a directory's contents land in the target, a file under its own name.
   */
  originalPaths?: boolean;
  overwrite?: boolean;
  limits?: Partial<ClientRestoreLimits>;
  onProgress?: (p: ClientRestoreProgress) => void;
  onLog?: (line: string) => void;
}

export interface ClientRestoreProblem {
  /** The path on the client, escaped for display. */
  path: string;
  message: string;
  /** The entry exists and the restore did not overwrite it. */
  exists?: boolean;
}

export interface ClientRestoreResult {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  specials: number;
  /** Entries the probe did not restore (those below a directory it could not restore included). */
  leftOut: number;
  /** File data written on the client. */
  bytes: number;
  problems: ClientRestoreProblem[];
  /** All problems, also those beyond the listed ones. */
  problemCount: number;
  /** Said once when owners (and with them set-id bits) could not be restored. */
  ownerNote?: string;
  bytesOnWire: number;
}

/** What a restore selects in a snapshot: the path's chain of nodes from the root. */
export interface RestoreSelection {
  snapshot: StoredSnapshot;
  subpath: string;
  /** Nodes from the root down to the selected one; empty for the whole snapshot. */
  chain: TreeNode[];
  /** The directory whose nodes are restored (the whole snapshot, or a selected directory). */
  tree?: Tree;
}

/** Resolves `subpath` in the snapshot before anything connects, so a wrong path fails at once. */
export async function resolveRestoreSelection(repo: Repository, snapshot: StoredSnapshot, subpath: string): Promise<RestoreSelection> {
  const parts = subpath.split('/').filter(Boolean);
  let tree = await repo.loadTree(snapshot.tree);
  const chain: TreeNode[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = Buffer.from(parts[i]!);
    const node = tree.nodes.find((n) => nameBytes(n).equals(part));
    if (!node) throw new HaulError('PathNotFound', `${subpath} is not in snapshot ${snapshot.id.slice(0, 8)}. \`haul ls ${snapshot.id.slice(0, 8)}\` lists what it holds.`);
    chain.push(node);
    if (i < parts.length - 1 && node.type !== 'dir') throw new HaulError('PathNotFound', `${parts.slice(0, i + 1).join('/')} in snapshot ${snapshot.id.slice(0, 8)} is not a directory.`);
    if (node.type === 'dir') tree = await repo.loadTree(node.subtree!);
  }
  const last = chain.at(-1);
  return { snapshot, subpath, chain, ...(!last || last.type === 'dir' ? { tree } : {}) };
}

/** An absolute, normalised path (`/` allowed): what the probe accepts as a target. */
export function isRestoreTarget(target: string): boolean {
  const b = Buffer.from(target);
  return target === '/' || (target.startsWith('/') && !target.endsWith('/') && b.length <= maxPathBytes && isSafeRestorePath(b.subarray(1)));
}

// ---- the send pipeline: steps in walk order, chunk loads started a few ahead ----

interface Slot {
  id: Buffer;
  load?: Promise<VerifiedBlob>;
  /** Its file was abandoned: never load it. */
  skip?: boolean;
}

type Step =
  | { kind: 'entry'; frame: Buffer }
  | { kind: 'file'; frame: Buffer; path: Buffer; size: number; slots: Slot[] };

/** Chunk loads running or loaded but not yet sent: the memory bound of a restore (x max chunk size). */
const chunksAhead = 4;
/** Steps the walk may be ahead of the sender. */
const stepsAhead = 1024;
const progressEveryMs = 200;
const EEXIST = osConstants.errno.EEXIST;

class StepQueue {
  private readonly steps: Step[] = [];
  private readonly unstarted: Slot[] = [];
  private loading = 0;
  private ended = false;
  private aborted: Error | undefined;
  private wakeSender: (() => void) | undefined;
  private wakeWalker: (() => void) | undefined;

  constructor(private readonly repo: Repository) {}

  /** From the walk; waits while the sender is far behind. */
  async push(step: Step): Promise<void> {
    while (this.steps.length >= stepsAhead && !this.aborted) await new Promise<void>((resolve) => (this.wakeWalker = resolve));
    if (this.aborted) throw this.aborted;
    this.steps.push(step);
    if (step.kind === 'file') this.unstarted.push(...step.slots);
    this.startLoads();
    this.wakeSender?.();
  }

  end(): void {
    this.ended = true;
    this.wakeSender?.();
  }

  abort(err: Error): void {
    this.aborted = err;
    this.wakeWalker?.();
    this.wakeSender?.();
  }

  /** The next step, or undefined after the last. */
  async next(): Promise<Step | undefined> {
    for (;;) {
      if (this.aborted) throw this.aborted;
      const step = this.steps.shift();
      if (step) {
        this.wakeWalker?.();
        return step;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wakeSender = resolve));
    }
  }

  /** The chunk of a slot, verified; each slot is taken once (or dropped). */
  async take(slot: Slot): Promise<VerifiedBlob> {
    if (!slot.load) {
      this.unstarted.splice(this.unstarted.indexOf(slot), 1);
      this.begin(slot);
    }
    try {
      return await slot.load!;
    } finally {
      this.loading--;
      this.startLoads();
    }
  }

  /** A slot of an abandoned file: not loaded, or its load waited for and thrown away. */
  async drop(slot: Slot): Promise<void> {
    slot.skip = true;
    if (slot.load) await this.take(slot).catch(() => undefined);
  }

  private begin(slot: Slot): void {
    this.loading++;
    slot.load = this.repo.loadBlobWithFrame(slot.id, BlobType.data);
    slot.load.catch(() => undefined); // observed by take(); never an unhandled rejection
  }

  private startLoads(): void {
    while (this.loading < chunksAhead && this.unstarted.length > 0) {
      const slot = this.unstarted.shift()!;
      if (!slot.skip) this.begin(slot);
    }
  }
}

function violation(message: string): HaulError {
  return new HaulError('ProtocolViolation', `the probe broke the restore protocol: ${message}. The restore was stopped; what it wrote so far stays on the client. If the client runs an unmodified probe, report this as a bug.`);
}

function errnoName(n: number): string {
  const name = Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0];
  return name ?? `errno ${n}`;
}

function joinRel(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 0 ? Buffer.from(name) : Buffer.concat([dir, Buffer.from('/'), name]);
}

const kindOf: Record<Exclude<TreeNode['type'], 'socket'>, RestoreKind> = {
  file: RestoreKind.file,
  dir: RestoreKind.dir,
  symlink: RestoreKind.symlink,
  fifo: RestoreKind.fifo,
  chardev: RestoreKind.chardev,
  blockdev: RestoreKind.blockdev,
};

export class ClientRestoreSession {
  private readonly limits: ClientRestoreLimits;
  private readonly target: Buffer;
  private readonly decoder = new FrameDecoder();
  private readonly queue: StepQueue;
  private readonly problems: ClientRestoreProblem[] = [];
  private problemCount = 0;
  private state: 'hello' | 'streaming' | 'ending' | 'done' = 'hello';
  private zstd = false;
  private entriesSent = 0;
  private warnings = 0;
  private filesSent = 0;
  private bytesSent = 0;
  private bytesOnWire = 0;
  private summary: RestoreDone | undefined;
  private readonly linkIds = new Map<string, number>();
  private lastProgress = 0;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private fail!: (err: Error) => void;
  private helloSeen!: () => void;
  private readonly hello: Promise<void>;
  private doneSeen!: () => void;
  private readonly done: Promise<void>;
  private waitingOnProbe = 0;
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repo: Repository,
    private readonly transport: ProbeTransport,
    private readonly selection: RestoreSelection,
    private readonly options: ClientRestoreOptions,
  ) {
    this.limits = { ...defaultClientRestoreLimits, ...options.limits };
    if (!isRestoreTarget(options.target)) throw new HaulError('InvalidArgument', `the restore target ${JSON.stringify(options.target)} is not an absolute, normalised path (like /srv/restore).`);
    if (options.originalPaths && options.target !== '/') throw new HaulError('InvalidArgument', 'a restore to the original paths has the target /.');
    const maxChunk = repo.config.chunker.maxSize;
    if (maxChunk > maxRestoreData) throw new HaulError('UnsupportedFormat', `this repository's chunks may be up to ${maxChunk} bytes, more than a restore onto a client carries (${maxRestoreData}); restore on the server (--target without --to-client) and copy the files.`);
    this.target = Buffer.from(options.target);
    this.queue = new StepQueue(repo);
    this.failed = new Promise<never>((_, reject) => {
      this.fail = (err) => {
        if (this.failure) return;
        this.failure = err;
        clearTimeout(this.stallTimer);
        this.queue.abort(err);
        reject(err);
      };
    });
    this.failed.catch(() => undefined);
    this.hello = new Promise((resolve) => (this.helloSeen = resolve));
    this.done = new Promise((resolve) => (this.doneSeen = resolve));
  }

  async run(): Promise<ClientRestoreResult> {
    this.listen(this.transport.output);
    try {
      await this.onProbe(this.hello);
      await this.write(encodeRestoreStart({ overwrite: Boolean(this.options.overwrite), maxData: this.repo.config.chunker.maxSize, target: this.target }));
      const walking = this.walk().then(
        () => this.queue.end(),
        (err: Error) => this.fail(err),
      );
      await this.send();
      await walking;
      this.state = 'ending';
      await this.write(encodeFrame(RestoreServerMessage.end));
      await this.onProbe(this.done);
    } catch (err) {
      this.fail(err as Error);
      this.transport.stop();
      throw this.failure;
    } finally {
      clearTimeout(this.stallTimer);
    }
    return this.result();
  }

  // ---- what the server sends ----

  private async walk(): Promise<void> {
    const { chain, tree } = this.selection;
    const last = chain.at(-1);
    if (this.options.originalPaths) {
      let rel: Buffer = Buffer.alloc(0);
      for (const node of chain.slice(0, -1)) {
        rel = joinRel(rel, nameBytes(node));
        await this.queue.push({ kind: 'entry', frame: this.entryFrame(node, rel, RestoreEntryFlag.ancestor) });
      }
      if (last) return this.walkNode(last, joinRel(rel, nameBytes(last)));
      for (const node of tree!.nodes) await this.walkNode(node, nameBytes(node));
      return;
    }
    if (last && last.type !== 'dir') return this.walkNode(last, nameBytes(last));
    for (const node of tree!.nodes) await this.walkNode(node, nameBytes(node));
  }

  private async walkNode(node: TreeNode, rel: Buffer): Promise<void> {
    if (node.type === 'socket') return; // only meaningful to the process that bound it
    if (!isSafeRestorePath(rel)) {
      this.problem(rel, 'not restored: its path on the client would be longer than 4096 bytes, or a name longer than 255 bytes');
      return;
    }
    if (node.type === 'dir') {
      await this.queue.push({ kind: 'entry', frame: this.entryFrame(node, rel) });
      let tree: Tree;
      try {
        tree = await this.repo.loadTree(node.subtree!);
      } catch (err) {
        this.problem(rel, `directory contents not restored: ${(err as Error).message}`);
        return;
      }
      for (const child of tree.nodes) await this.walkNode(child, joinRel(rel, nameBytes(child)));
      return;
    }
    if (node.type !== 'file') {
      await this.queue.push({ kind: 'entry', frame: this.entryFrame(node, rel) });
      return;
    }
    // Hard links: the first path of an inode is sent as a file with a link id, the others link to it.
    const linkKey = node.links && node.links > 1 && node.inode ? `${node.device}:${node.inode}` : undefined;
    const linkId = linkKey ? this.linkIds.get(linkKey) : undefined;
    if (linkId !== undefined) {
      await this.queue.push({ kind: 'entry', frame: encodeRestoreEntry({ ...this.entryFields(node, rel), kind: RestoreKind.hardlink, linkId }) });
      return;
    }
    let newId = 0;
    if (linkKey) this.linkIds.set(linkKey, (newId = this.linkIds.size + 1));
    const frame = encodeRestoreEntry({ ...this.entryFields(node, rel), size: node.size!, linkId: newId });
    await this.queue.push({ kind: 'file', frame, path: rel, size: node.size!, slots: (node.content ?? []).map((c) => ({ id: Buffer.from(c, 'hex') })) });
  }

  private entryFields(node: TreeNode, rel: Buffer): RestoreEntry {
    return { kind: kindOf[node.type as Exclude<TreeNode['type'], 'socket'>], path: rel, mode: node.mode & 0o7777, uid: node.uid, gid: node.gid, mtimeNs: BigInt(node.mtime) };
  }

  private entryFrame(node: TreeNode, rel: Buffer, flags = 0): Buffer {
    const e = this.entryFields(node, rel);
    if (node.type === 'symlink') e.target = targetBytes(node);
    if (node.type === 'chardev' || node.type === 'blockdev') e.rdev = node.rdev ?? 0;
    return encodeRestoreEntry({ ...e, flags });
  }

  private async send(): Promise<void> {
    for (let step = await this.queue.next(); step; step = await this.queue.next()) {
      await this.write(step.frame);
      this.entriesSent++;
      if (step.kind === 'file') await this.sendFile(step);
    }
  }

  private async sendFile(step: Extract<Step, { kind: 'file' }>): Promise<void> {
    let written = 0;
    let why: string | undefined;
    for (const slot of step.slots) {
      if (why !== undefined) {
        await this.queue.drop(slot);
        continue;
      }
      let blob: VerifiedBlob;
      try {
        blob = await this.queue.take(slot);
      } catch (err) {
        why = (err as Error).message;
        continue;
      }
      const raw = blob.plain.length;
      if (raw === 0 || raw > this.repo.config.chunker.maxSize || written + raw > step.size) {
        why = `its chunks add up to more than the ${step.size} bytes the snapshot says`;
        continue;
      }
      const frame = this.zstd && blob.zstdFrame && blob.zstdFrame.length <= raw ? blob.zstdFrame : undefined;
      const data = frame ?? blob.plain;
      await this.write(restoreDataHead(frame ? 1 : 0, raw, data.length), data);
      written += raw;
      this.bytesSent += raw;
      this.progress(step.path);
    }
    if (why === undefined && written !== step.size) why = `its chunks add up to ${written} bytes, the snapshot says ${step.size}`;
    await this.write(encodeRestoreFileEnd(why === undefined ? RestoreFileStatus.complete : RestoreFileStatus.abandoned));
    if (why !== undefined) this.problem(step.path, `not restored: ${why}`);
    else this.filesSent++;
  }

  /** Writes to the probe's stdin and, when its buffer is full, waits for the probe to take it. */
  private async write(...parts: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    const input = this.transport.input;
    let room = true;
    for (const p of parts) {
      room = input.write(p);
      this.bytesOnWire += p.length;
    }
    if (!room) await this.onProbe(new Promise<void>((resolve) => input.once('drain', resolve)));
  }

  // ---- what the probe sends ----

  private listen(output: Readable): void {
    output.on('data', (data: Buffer) => {
      if (this.failure) return;
      if (this.waitingOnProbe > 0) this.armStall();
      try {
        for (const frame of this.decoder.push(data)) this.handle(frame);
      } catch (err) {
        this.fail(err instanceof MalformedBody ? violation(err.message) : (err as Error));
      }
    });
    const ended = () => {
      if (this.state === 'done') return;
      this.fail(
        new HaulError(
          'ProbeFailed',
          `the probe stopped before the restore was complete (${this.entriesSent} entries sent${this.decoder.pending ? ', its output cut inside a frame' : ''}); what it restored so far stays on the client. ` +
            `The job log has what the probe said. Run the restore again (with overwrite to replace what is there now).`,
        ),
      );
    };
    output.on('end', ended);
    output.on('close', ended);
    output.on('error', ended);
    // Paused by the probe's quick start, which read the line before the probe's output.
    output.resume();
    // Over SSH stdin and stdout are one channel; a local process has a separate stdin that fails with EPIPE.
    if ((this.transport.input as unknown) !== output) this.transport.input.on('error', ended);
  }

  private handle(frame: Frame): void {
    try {
      if (this.state === 'hello') {
        if (frame.type !== ProbeMessage.hello) throw violation(`expected HELLO, got message type 0x${frame.type.toString(16)}`);
        this.onHello(frame.body);
        return;
      }
      if (this.state === 'done') throw violation(`message type 0x${frame.type.toString(16)} after RESTORE_DONE`);
      if (frame.type === ProbeMessage.warn) return this.onWarn(frame.body);
      if (frame.type === RestoreProbeMessage.done) {
        if (this.state !== 'ending') throw violation('RESTORE_DONE before RESTORE_END');
        return this.onDone(frame.body);
      }
      throw violation(`message type 0x${frame.type.toString(16)} is not part of a restore`);
    } catch (err) {
      if (err instanceof MalformedBody) throw violation(`message type 0x${frame.type.toString(16)}: ${err.message}`);
      throw err;
    }
  }

  private onHello(body: Buffer): void {
    const hello = decodeHello(body);
    if (hello.magic !== helloMagic) throw violation('HELLO does not start with HAULPRB1');
    if (hello.version !== protocolVersion) {
      throw new HaulError('ProbeFailed', `the probe speaks protocol version ${hello.version}, this server speaks ${protocolVersion}. Reinstall the probe (it is replaced automatically when its hash differs).`);
    }
    this.zstd = (hello.features & HelloFeature.zstd) !== 0;
    this.log(`probe ${JSON.stringify(hello.probeVersion.slice(0, 100)).slice(1, -1)} on ${JSON.stringify(hello.arch.slice(0, 32)).slice(1, -1)}`);
    this.state = 'streaming';
    this.helloSeen();
  }

  private onWarn(body: Buffer): void {
    const r = new BodyReader(body);
    const path = r.bytes16();
    const errno = r.i32();
    const message = r.bytes16();
    r.end();
    if (path.length > maxPathBytes || message.length > 1024) throw violation(`a WARN with a path of ${path.length} or a message of ${message.length} bytes (at most 4096 and 1024)`);
    if (++this.warnings > this.limits.maxWarnings) throw violation(`more than ${this.limits.maxWarnings} warnings`);
    // EEXIST needs no name: the probe's message says the entry exists.
    const why = errno !== 0 && errno !== EEXIST ? ` (${errnoName(errno)})` : '';
    this.problem(path, `${displayBytes(message)}${why}`, errno === EEXIST);
  }

  private onDone(body: Buffer): void {
    const done = decodeRestoreDone(body);
    if (done.entries !== BigInt(this.entriesSent)) throw violation(`RESTORE_DONE counts ${done.entries} entries, the server sent ${this.entriesSent}`);
    const restored = done.files + done.dirs + done.symlinks + done.hardlinks + done.specials;
    if (restored + done.leftOut > done.entries) throw violation(`RESTORE_DONE counts more entries restored and left out (${restored + done.leftOut}) than it received (${done.entries})`);
    if (done.bytes > BigInt(this.bytesSent)) throw violation(`RESTORE_DONE counts ${done.bytes} bytes written, the server sent ${this.bytesSent}`);
    this.summary = done;
    this.state = 'done';
    this.doneSeen();
  }

  // ---- bookkeeping ----

  /** Waits on something only the probe can bring about; a probe silent for stallMs fails the job. */
  private async onProbe<T>(p: Promise<T>): Promise<T> {
    this.waitingOnProbe++;
    this.armStall();
    try {
      return await Promise.race([p, this.failed]);
    } finally {
      if (--this.waitingOnProbe === 0) clearTimeout(this.stallTimer);
    }
  }

  private armStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.fail(new HaulError('ProbeStalled', `the probe took nothing and said nothing for ${this.limits.stallMs / 1000} s; the restore was stopped. Check the client's load, disk and network, then run the restore again.`));
    }, this.limits.stallMs);
  }

  private clientPath(rel: Buffer): Buffer {
    if (rel.length === 0) return this.target;
    return this.target.length === 1 ? Buffer.concat([this.target, rel]) : Buffer.concat([this.target, Buffer.from('/'), rel]);
  }

  private problem(rel: Buffer, message: string, exists = false): void {
    this.problemCount++;
    if (this.problems.length < this.limits.maxProblemsListed) this.problems.push({ path: displayBytes(this.clientPath(rel)), message, ...(exists ? { exists } : {}) });
  }

  private log(line: string): void {
    this.options.onLog?.(line);
  }

  private progress(rel: Buffer): void {
    const now = Date.now();
    if (!this.options.onProgress || now - this.lastProgress < progressEveryMs) return;
    this.lastProgress = now;
    const whole = this.selection.chain.length === 0;
    this.options.onProgress({ files: this.filesSent, bytes: this.bytesSent, ...(whole ? { totalBytes: this.selection.snapshot.stats.bytes } : {}), currentPath: displayBytes(this.clientPath(rel)) });
  }

  private result(): ClientRestoreResult {
    const d = this.summary!;
    let ownerNote: string | undefined;
    const setId = d.setIdDropped > 0n ? `; set-uid and set-gid bits were dropped from ${d.setIdDropped} of them` : '';
    const entries = `${d.ownersNotSet} ${d.ownersNotSet === 1n ? 'entry' : 'entries'}`;
    if (d.ownersNotSet > 0n && d.euid !== 0) {
      ownerNote = `the owner of ${entries} could not be restored: the probe ran as uid ${d.euid}, not root, so they belong to that user${setId}`;
    } else if (d.ownersNotSet > 0n) {
      ownerNote = `the owner of ${entries} could not be restored (${errnoName(d.ownerErrno)})${setId}`;
    }
    return {
      entries: Number(d.entries),
      files: Number(d.files),
      dirs: Number(d.dirs),
      symlinks: Number(d.symlinks),
      hardlinks: Number(d.hardlinks),
      specials: Number(d.specials),
      leftOut: Number(d.leftOut),
      bytes: Number(d.bytes),
      problems: this.problems,
      problemCount: this.problemCount,
      ...(ownerNote ? { ownerNote } : {}),
      bytesOnWire: this.bytesOnWire,
    };
  }
}

export async function runClientRestore(repo: Repository, transport: ProbeTransport, selection: RestoreSelection, options: ClientRestoreOptions): Promise<ClientRestoreResult> {
  return new ClientRestoreSession(repo, transport, selection, options).run();
}
