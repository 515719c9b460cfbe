// The client side of the daemon's bus, for the CLI and the web server: requests with timeouts,
// streamed replies with credit-based flow control, and event subscriptions. Everything the
// daemon sends is validated against shared/bus/messages.ts before a caller sees it.
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import * as zmq from 'zeromq';
import { HaulError, type ErrorCode } from '../errors.js';
import type { CurveClientKeys } from './curve-keys.js';
import { checkEndpoint, eventsEndpointFor, ipcPath } from './endpoints.js';
import {
  BUS_PROTOCOL_VERSION, BusEvent, BusLimits, commands, DaemonMessage, daemonTopic, describeIssues, eventTopic, streamCommands,
  type CommandName, type CommandParams, type CommandResult, type DaemonStatus, type StreamCommandName, type StreamMeta, type StreamParams,
} from './messages.js';
import { decodeJsonFrame, encodeJsonFrame, SendQueue } from './wire.js';

export interface BusClientOptions {
  /** The daemon's commands endpoint: ipc:///…/run/commands.sock or tcp://host:port. */
  endpoint: string;
  /** Required over TCP: this client's key pair and the daemon's public key. */
  curve?: CurveClientKeys;
  /** How long a request waits for its reply (default 5 s). */
  timeoutMs?: number;
}

export interface StreamOptions {
  /** How many chunks the daemon may send ahead of this reader (default 8, at most 64). */
  credit?: number;
  /** How long to wait for the stream to start (default: the client's request timeout). */
  timeoutMs?: number;
  /** A stream that delivers nothing for this long while the reader waits fails (default 60 s). */
  idleTimeoutMs?: number;
}

export interface SubscribeOptions {
  /** Topic prefixes: `job/12/` for one job, `job/` for all jobs, `daemon/`, or '' for everything. */
  topics: string[];
  /** How long to wait for the daemon's first status event, which proves the subscription is live (default 5 s). */
  readyTimeoutMs?: number;
}

type DaemonReply = Extract<DaemonMessage, { type: 'reply' | 'error' | 'stream-start' }>;

interface PendingRequest {
  command: string;
  resolve: (message: DaemonReply) => void;
  reject: (err: HaulError) => void;
  timer: NodeJS.Timeout;
}

/** Wire errors become HaulErrors with the daemon's code; a code this build does not know still exits 1. */
function fromWire(error: { code: string; message: string }): HaulError {
  return new HaulError(error.code as ErrorCode, error.message);
}

function notRunning(endpoint: string, detail = ''): HaulError {
  const check = ipcPath(endpoint) !== undefined ? '--bus and --home' : "--bus, the firewall, and that the --bus-key file holds this daemon's server key";
  return new HaulError('DaemonNotRunning', `no Haul daemon answers at ${endpoint}${detail}; start it with \`haul daemon\` (or check ${check}).`);
}

/** Before ZeroMQ silently waits on an ipc:// endpoint, find out whether anyone listens there. */
function probeUnixSocket(endpoint: string, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = net.connect({ path: socketPath });
    conn.once('connect', () => {
      conn.destroy();
      resolve();
    });
    conn.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EACCES' || err.code === 'EPERM') {
        reject(new HaulError('BusPermissionDenied', `permission denied connecting to the Haul daemon at ${endpoint}. Run this as the daemon's user, or as a member of its group if the daemon shares its bus with its group (docs/bus.md).`));
      } else {
        reject(notRunning(endpoint, err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? '' : ` (${err.message})`));
      }
    });
  });
}

function curveOptions(keys: CurveClientKeys | undefined): { curveServerKey?: string; curvePublicKey?: string; curveSecretKey?: string } {
  return keys ? { curveServerKey: keys.serverPublicKey, curvePublicKey: keys.publicKey, curveSecretKey: keys.secretKey } : {};
}

export class BusClient {
  readonly endpoint: string;
  private readonly socket: zmq.Dealer;
  private readonly sender: SendQueue;
  private readonly timeoutMs: number;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly streams = new Map<string, BusStream<unknown>>();
  private readonly subscriptions = new Set<EventSubscription>();
  private heardFromDaemon = false;
  private authRefused = false;
  private closed = false;
  /** Messages from the daemon this client could not read or place (a test and debugging aid). */
  droppedMessages = 0;

  /** Connects; over ipc:// it fails at once with a clear error when no daemon listens. */
  static async connect(options: BusClientOptions): Promise<BusClient> {
    checkEndpoint(options.endpoint);
    const socketPath = ipcPath(options.endpoint);
    if (socketPath !== undefined) await probeUnixSocket(options.endpoint, socketPath);
    else if (!options.curve) {
      throw new HaulError('InvalidArgument', `the bus over TCP (${options.endpoint}) is CURVE-encrypted: give a client key file with --bus-key (or HAUL_BUS_KEY); \`haul bus-key add\` on the daemon's machine makes one.`);
    }
    return new BusClient(options);
  }

  private constructor(private readonly options: BusClientOptions) {
    this.endpoint = options.endpoint;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.socket = new zmq.Dealer({ linger: 0, ...curveOptions(options.curve) });
    this.sender = new SendQueue(this.socket);
    this.socket.events.on('handshake:error:auth', () => {
      this.authRefused = true;
      for (const id of [...this.pending.keys()]) this.fail(id, this.authError());
      for (const stream of this.streams.values()) stream.fail(this.authError());
    });
    this.socket.connect(options.endpoint);
    void this.receiveLoop();
  }

  /** Sends a command and waits for its reply, validated against the command's result schema. */
  async request<C extends CommandName>(command: C, params: CommandParams<C>, options: { timeoutMs?: number } = {}): Promise<CommandResult<C>> {
    const definition = commands[command];
    const checked = definition.params.safeParse(params);
    if (!checked.success) throw new HaulError('InvalidRequest', `invalid parameters for "${command}": ${describeIssues(checked.error, 'params')}.`);
    const reply = await this.exchange(command, checked.data, undefined, options.timeoutMs ?? this.timeoutMs);
    if (reply.type !== 'reply') throw new HaulError('BusProtocol', `the daemon answered "${command}" with a ${reply.type} message; are the daemon and this client the same Haul version?`);
    const result = definition.result.safeParse(reply.result);
    if (!result.success) {
      throw new HaulError('BusProtocol', `the daemon's answer to "${command}" does not match bus protocol ${BUS_PROTOCOL_VERSION} (${describeIssues(result.error, 'result')}); are the daemon and this client the same Haul version?`);
    }
    return result.data as CommandResult<C>;
  }

  /** Starts a streamed command; resolves when the daemon accepted it, with its metadata. */
  async stream<C extends StreamCommandName>(command: C, params: StreamParams<C>, options: StreamOptions = {}): Promise<BusStream<StreamMeta<C>>> {
    const definition = streamCommands[command];
    const checked = definition.params.safeParse(params);
    if (!checked.success) throw new HaulError('InvalidRequest', `invalid parameters for "${command}": ${describeIssues(checked.error, 'params')}.`);
    const credit = options.credit ?? BusLimits.defaultStreamCredit;
    if (!Number.isInteger(credit) || credit < 1 || credit > BusLimits.maxStreamCredit) {
      throw new HaulError('InvalidArgument', `stream credit must be 1 to ${BusLimits.maxStreamCredit} chunks, not ${credit}.`);
    }
    const id = randomUUID();
    const stream = new BusStream<StreamMeta<C>>(this, id, command, credit, options.idleTimeoutMs ?? 60_000);
    // Registered before the request goes out: chunks may follow the start message at once.
    this.streams.set(id, stream as BusStream<unknown>);
    let start: DaemonReply;
    try {
      start = await this.exchange(command, checked.data, credit, options.timeoutMs ?? this.timeoutMs, id);
    } catch (err) {
      this.streams.delete(id);
      throw err;
    }
    if (start.type !== 'stream-start') {
      this.streams.delete(id);
      throw new HaulError('BusProtocol', `the daemon answered the stream "${command}" with a ${start.type} message; are the daemon and this client the same Haul version?`);
    }
    const meta = definition.meta.safeParse(start.meta);
    if (!meta.success) {
      void stream.cancel();
      throw new HaulError('BusProtocol', `the daemon's stream "${command}" starts with metadata this client cannot read (${describeIssues(meta.error, 'meta')}).`);
    }
    stream.meta = meta.data as StreamMeta<C>;
    return stream;
  }

  /**
   * Subscribes to events. Resolves once the subscription is live: the daemon answers every new
   * subscription with a daemon-status event, and ZeroMQ would otherwise drop what is published
   * before the subscription reaches the daemon.
   */
  async subscribe(options: SubscribeOptions): Promise<EventSubscription> {
    const status = await this.request('status', {});
    const endpoint = eventsEndpointFor(this.endpoint, status.events);
    const socket = new zmq.Subscriber({ linger: 0, ...curveOptions(this.options.curve) });
    socket.subscribe(daemonTopic);
    for (const topic of options.topics) socket.subscribe(topic);
    socket.connect(endpoint);
    const subscription = new EventSubscription(socket, endpoint, options.topics, () => this.subscriptions.delete(subscription));
    this.subscriptions.add(subscription);
    try {
      await subscription.waitUntilLive(options.readyTimeoutMs ?? 5000);
    } catch (err) {
      subscription.close();
      throw err;
    }
    return subscription;
  }

  /** The status, for callers that only want to know whether the daemon is up. */
  status(options: { timeoutMs?: number } = {}): Promise<DaemonStatus> {
    return this.request('status', {}, options);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.fail(id, new HaulError('StreamAborted', 'the bus client was closed before the daemon answered.'));
    for (const stream of this.streams.values()) stream.fail(new HaulError('StreamAborted', 'the bus client was closed during the stream.'));
    for (const subscription of [...this.subscriptions]) subscription.close();
    this.socket.close();
  }

  // ---- internals, used by BusStream ------------------------------------------------------------

  /** @internal */
  sendControl(message: object): void {
    if (this.closed) return;
    this.sender.send([encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, ...message })]).catch(() => undefined);
  }

  /** @internal */
  forgetStream(id: string): void {
    this.streams.delete(id);
  }

  private authError(): HaulError {
    return new HaulError('BusAuthRefused', `the Haul daemon at ${this.endpoint} refused this client's CURVE key (public key ${this.options.curve?.publicKey ?? '?'}); add that key to the daemon's bus/authorized-clients file, or make a key file with \`haul bus-key add\` (docs/bus.md).`);
  }

  private exchange(command: string, params: unknown, credit: number | undefined, timeoutMs: number, id = randomUUID()): Promise<DaemonReply> {
    if (this.closed) return Promise.reject(new HaulError('InvalidArgument', 'this bus client is closed; connect again.'));
    if (this.authRefused) {
      // libzmq does not retry a connection the daemon refused. Connect afresh, so a key the
      // operator has authorized since gets in (a long-lived client such as the web server
      // recovers); a key still unknown is refused again within milliseconds.
      this.authRefused = false;
      this.socket.disconnect(this.endpoint);
      this.socket.connect(this.endpoint);
    }
    const frame = encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, id, type: 'request', command, params, ...(credit ? { credit } : {}) });
    if (frame.byteLength > BusLimits.maxRequestBytes) {
      return Promise.reject(new HaulError('InvalidRequest', `the "${command}" request is ${frame.byteLength} bytes, more than the bus allows (${BusLimits.maxRequestBytes}).`));
    }
    return new Promise<DaemonReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        const seconds = `${Math.round(timeoutMs / 100) / 10} s`;
        this.fail(id, this.heardFromDaemon
          ? new HaulError('BusTimeout', `the Haul daemon at ${this.endpoint} did not answer "${command}" within ${seconds}; it may be overloaded or stopping. Try again, or read the daemon's log.`)
          : notRunning(this.endpoint, ` (no answer within ${seconds})`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.sender.send([frame]).catch((err: Error) => this.fail(id, new HaulError('BusProtocol', `could not send "${command}" to the daemon at ${this.endpoint}: ${err.message}.`)));
    });
  }

  private fail(id: string, err: HaulError): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onMessage(frames);
    } catch (err) {
      if (this.closed) return;
      for (const id of [...this.pending.keys()]) this.fail(id, new HaulError('BusProtocol', `the bus connection to ${this.endpoint} failed: ${(err as Error).message}.`));
    }
  }

  private onMessage(frames: Buffer[]): void {
    this.heardFromDaemon = true;
    const [head, data] = frames;
    const decoded = head ? decodeJsonFrame(head, BusLimits.maxWireMessageBytes) : undefined;
    const parsed = decoded?.ok ? DaemonMessage.safeParse(decoded.value) : undefined;
    if (!parsed?.success || frames.length > 2) {
      this.droppedMessages++;
      // A reply that names a waiting request but does not parse is that request's error.
      const id = decoded?.ok ? (decoded.value as { id?: unknown } | null)?.id : undefined;
      if (typeof id === 'string' && this.pending.has(id)) {
        this.fail(id, new HaulError('BusProtocol', `the daemon's answer to "${this.pending.get(id)!.command}" does not match bus protocol ${BUS_PROTOCOL_VERSION}${parsed && !parsed.success ? ` (${describeIssues(parsed.error)})` : ''}; are the daemon and this client the same Haul version?`));
      }
      return;
    }
    const message = parsed.data;
    const stream = this.streams.get(message.id);
    if (message.type === 'stream-chunk' || message.type === 'stream-end' || (stream && !this.pending.has(message.id))) {
      if (!stream) {
        this.droppedMessages++;
        return;
      }
      if (message.type === 'stream-chunk') stream.onChunk(message.seq, data);
      else if (message.type === 'stream-end') stream.onEnd(message.chunks, message.bytes);
      else if (message.type === 'error') stream.fail(fromWire(message.error));
      else this.droppedMessages++;
      return;
    }
    const pending = this.pending.get(message.id);
    if (!pending) {
      this.droppedMessages++; // a late answer to a request that timed out
      return;
    }
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.type === 'error') pending.reject(fromWire(message.error));
    else pending.resolve(message);
  }
}

/**
 * A streamed reply: an async iterable of chunks. The daemon sends only as many chunks as this
 * reader allowed (credit); reading a chunk returns credit, in batches of half the window, so a
 * slow reader holds the daemon back instead of making it buffer a whole snapshot.
 */
export class BusStream<Meta> implements AsyncIterable<Buffer> {
  meta!: Meta;
  private readonly queue: Buffer[] = [];
  private waiter: { resolve: () => void } | undefined;
  private nextSeq = 0;
  /** Chunks the daemon may have sent so far: the initial credit plus every credit returned. */
  private granted: number;
  private consumedSinceCredit = 0;
  private done = false;
  private error: HaulError | undefined;
  /** Totals as the daemon reported them at the end. */
  totals: { chunks: number; bytes: number } | undefined;
  bytesReceived = 0;

  constructor(
    private readonly client: BusClient,
    readonly id: string,
    readonly command: string,
    readonly credit: number,
    private readonly idleTimeoutMs: number,
  ) {
    this.granted = credit;
  }

  /** @internal */
  onChunk(seq: number, data: Buffer | undefined): void {
    if (this.done) return;
    if (data === undefined || seq !== this.nextSeq || data.byteLength > BusLimits.maxStreamChunkBytes || seq >= this.granted) {
      const why = data === undefined ? 'a chunk without data' : seq !== this.nextSeq ? `chunk ${seq} where ${this.nextSeq} was due` : seq >= this.granted ? `chunk ${seq} beyond the ${this.granted} this reader allowed` : `a ${data.byteLength}-byte chunk`;
      this.fail(new HaulError('BusProtocol', `the daemon's stream "${this.command}" broke the bus protocol (${why}).`));
      this.client.sendControl({ id: this.id, type: 'cancel-stream' });
      return;
    }
    this.nextSeq++;
    this.bytesReceived += data.byteLength;
    this.queue.push(data);
    this.wake();
  }

  /** @internal */
  onEnd(chunks: number, bytes: number): void {
    if (this.done) return;
    if (chunks !== this.nextSeq || bytes !== this.bytesReceived) {
      this.fail(new HaulError('BusProtocol', `the daemon's stream "${this.command}" ended after ${chunks} chunks (${bytes} bytes), but ${this.nextSeq} chunks (${this.bytesReceived} bytes) arrived.`));
      return;
    }
    this.totals = { chunks, bytes };
    this.done = true;
    this.client.forgetStream(this.id);
    this.wake();
  }

  /** @internal */
  fail(err: HaulError): void {
    if (this.done) return;
    this.error = err;
    this.done = true;
    this.client.forgetStream(this.id);
    this.wake();
  }

  /** Stops the stream; the daemon stops reading its source. */
  async cancel(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.queue.length = 0;
    this.client.forgetStream(this.id);
    this.client.sendControl({ id: this.id, type: 'cancel-stream' });
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    let finished = false;
    try {
      while (true) {
        const chunk = this.queue.shift();
        if (chunk) {
          this.returnCredit();
          yield chunk;
          continue;
        }
        if (this.error) throw this.error;
        if (this.done) {
          finished = true;
          return;
        }
        await this.nextArrival();
      }
    } finally {
      // A reader that stops early (break, an exception) cancels the stream.
      if (!finished && !this.error) await this.cancel();
    }
  }

  /** The stream as a byte stream, e.g. to pipe into an HTTP response. */
  toReadable(): Readable {
    return Readable.from(this, { objectMode: false, highWaterMark: BusLimits.maxStreamChunkBytes });
  }

  private returnCredit(): void {
    if (this.done) return;
    this.consumedSinceCredit++;
    if (this.consumedSinceCredit >= Math.ceil(this.credit / 2)) {
      this.client.sendControl({ id: this.id, type: 'credit', credit: this.consumedSinceCredit });
      this.granted += this.consumedSinceCredit;
      this.consumedSinceCredit = 0;
    }
  }

  private nextArrival(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.fail(new HaulError('StreamAborted', `the daemon sent nothing on the stream "${this.command}" for ${Math.round(this.idleTimeoutMs / 1000)} s; it may have stopped. Try again.`));
        this.client.sendControl({ id: this.id, type: 'cancel-stream' });
      }, this.idleTimeoutMs);
      this.waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }
}

/** Live events, validated; iterate with for await. Events the subscriber did not ask for are skipped. */
export class EventSubscription implements AsyncIterable<BusEvent> {
  private readonly early: BusEvent[] = [];
  private closed = false;
  /** Events dropped because they were malformed or their topic did not match their content. */
  droppedEvents = 0;

  constructor(
    private readonly socket: zmq.Subscriber,
    readonly endpoint: string,
    private readonly topics: string[],
    private readonly onClose: () => void,
  ) {}

  /** @internal */
  async waitUntilLive(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      this.socket.receiveTimeout = left;
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (err) {
        if ((err as { code?: string }).code === 'EAGAIN') break;
        throw err;
      }
      const event = this.parse(frames);
      if (!event) continue;
      if (this.wanted(eventTopic(event))) this.early.push(event);
      if (event.type === 'daemon-status') {
        this.socket.receiveTimeout = -1;
        return;
      }
    }
    throw new HaulError('DaemonNotRunning', `the Haul daemon answers commands but no events arrived from ${this.endpoint} within ${Math.round(timeoutMs / 100) / 10} s; check that its events endpoint is reachable (docs/bus.md).`);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<BusEvent> {
    try {
      while (this.early.length > 0) yield this.early.shift()!;
      while (!this.closed) {
        let frames: Buffer[];
        try {
          frames = await this.socket.receive();
        } catch (err) {
          if (this.closed) return;
          throw err;
        }
        const event = this.parse(frames);
        if (event && this.wanted(eventTopic(event))) yield event;
      }
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.onClose();
  }

  private wanted(topic: string): boolean {
    return this.topics.some((t) => topic.startsWith(t));
  }

  private parse(frames: Buffer[]): BusEvent | undefined {
    const [topic, body] = frames;
    const decoded = body && frames.length === 2 ? decodeJsonFrame(body, BusLimits.maxWireMessageBytes) : undefined;
    const parsed = decoded?.ok ? BusEvent.safeParse(decoded.value) : undefined;
    if (!parsed?.success || eventTopic(parsed.data) !== topic!.toString('utf8')) {
      this.droppedEvents++;
      return undefined;
    }
    return parsed.data;
  }
}
