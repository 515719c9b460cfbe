// The daemon's side of the bus: commands on ROUTER sockets (a handler registry, every message
// validated, errors answered as typed errors, streamed replies with credit) and events on XPUB
// sockets. Local processes connect over ipc:// in $HAUL_HOME/run/; an optional TCP endpoint
// needs CURVE. Nothing a client sends can stop the daemon: a malformed message is logged and
// dropped, or answered with an error when it says which request it was. docs/bus.md has the
// protocol.
import * as zmq from 'zeromq';
import { checkEndpoint, defaultBusEndpoints, ipcPath } from '../../shared/bus/endpoints.js';
import {
  BUS_PROTOCOL_VERSION, BusLimits, ClientMessage, commands, describeIssues, isCommandName, isStreamCommandName, RequestId, streamCommands,
  type BusEvent, type CommandName, type CommandRequest, type CommandResult, type DaemonStatus, type DaemonStatusEvent, type Job,
  type StreamCommandName, type StreamMeta, type StreamRequest, type WireError,
} from '../../shared/bus/messages.js';
import { decodeJsonFrame, encodeJsonFrame, SendQueue } from '../../shared/bus/wire.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { BusLogger } from './bus-logger.js';
import { AuthorizedClients, authorizedClientsPath, loadOrCreateServerKeys, ZAP_DOMAIN, ZapHandler, type CurveKeyPair } from './curve-auth.js';
import { EventPublisher } from './event-publisher.js';
import { claimSocketPath, prepareRunDirectory, removeSocket, restrictSocket } from './ipc-sockets.js';
import { isUnreachable, ReplyStream } from './reply-stream.js';

export interface BusServerOptions {
  /** $HAUL_HOME: the ipc sockets go to run/, the CURVE keys to bus/. */
  stateDir: string;
  logger: BusLogger;
  /** Haul's version, reported by `status`. */
  version: string;
  daemonId?: string | null;
  /** The running and queued jobs, for `status` and the daemon-status event. */
  jobs: () => Promise<{ running: Job[]; queued: Job[]; queuedTotal?: number }>;
  /** Sockets 0660 in a 0750 directory (for a web server in the daemon's group) instead of 0600 in 0700. */
  groupAccess?: boolean;
  /** TCP endpoints (CURVE), e.g. { commands: 'tcp://0.0.0.0:7450', events: 'tcp://0.0.0.0:7451' }. */
  tcp?: { commands: string; events: string };
  /** A daemon-status event goes out this often (default 10 s; 0: never). */
  heartbeatMs?: number;
  /** At most one progress event per job per interval (default 250 ms: 4 a second). */
  progressIntervalMs?: number;
  /** A stream whose reader grants no credit for this long is stopped (default 60 s). */
  streamIdleTimeoutMs?: number;
  /** Requests handled at once; more are answered DaemonBusy (default 64). */
  maxInFlight?: number;
  /** Streams at once; more are answered DaemonBusy (default 8). */
  maxStreams?: number;
}

export interface RequestContext {
  /** The client's connection: transport and ZeroMQ routing ID, for logs. */
  peer: string;
  /** Aborted when a stream is cancelled or the bus stops. */
  signal: AbortSignal;
}

export type CommandHandler<C extends CommandName> = (params: CommandRequest<C>, context: RequestContext) => Promise<CommandResult<C>> | CommandResult<C>;
export interface StreamReply<C extends StreamCommandName> {
  meta: StreamMeta<C>;
  chunks: AsyncIterable<Uint8Array>;
}
export type StreamHandler<C extends StreamCommandName> = (params: StreamRequest<C>, context: RequestContext) => Promise<StreamReply<C>>;

interface CommandSocket {
  transport: 'ipc' | 'tcp';
  socket: zmq.Router;
  sender: SendQueue;
}

export class BusServer {
  private readonly context = new zmq.Context();
  private readonly handlers = new Map<string, CommandHandler<CommandName>>();
  private readonly streamHandlers = new Map<string, StreamHandler<StreamCommandName>>();
  private readonly commandSockets: CommandSocket[] = [];
  private readonly streams = new Map<string, ReplyStream>();
  private readonly publisher: EventPublisher;
  private readonly ipcFiles: string[] = [];
  private readonly stopController = new AbortController();
  private zap: ZapHandler | undefined;
  private inFlight = 0;
  private started = false;
  private stopped = false;
  readonly startedAt = new Date();
  /** Where clients connect; set by start(). */
  endpoints: { ipc: { commands: string; events: string }; tcp: { commands: string; events: string } | null } | undefined;
  /** The daemon's CURVE public key when TCP is on (clients' key files carry it). */
  serverPublicKey: string | undefined;

  constructor(private readonly options: BusServerOptions) {
    this.publisher = new EventPublisher(options.logger, () => this.statusEvent(), {
      progressIntervalMs: options.progressIntervalMs ?? 250,
    });
    this.handle('status', () => this.status());
  }

  /** Registers the handler of a command; its result is validated before it is sent. */
  handle<C extends CommandName>(command: C, handler: CommandHandler<C>): this {
    this.handlers.set(command, handler as unknown as CommandHandler<CommandName>);
    return this;
  }

  /** Registers the handler of a streamed command. */
  handleStream<C extends StreamCommandName>(command: C, handler: StreamHandler<C>): this {
    this.streamHandlers.set(command, handler as unknown as StreamHandler<StreamCommandName>);
    return this;
  }

  /** Publishes an event to every subscriber (progress is coalesced per job). */
  publish(event: BusEvent): void {
    this.publisher.publish(event);
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('BusServer.start called twice');
    this.started = true;
    const { stateDir, logger } = this.options;
    const groupAccess = this.options.groupAccess ?? false;
    const ipc = defaultBusEndpoints(stateDir);
    checkEndpoint(ipc.commands);
    // Everything that can refuse to start is checked before a socket is bound.
    const keys = this.options.tcp ? loadOrCreateServerKeys(stateDir) : undefined;
    prepareRunDirectory(stateDir, groupAccess);
    for (const endpoint of [ipc.commands, ipc.events]) await claimSocketPath(ipcPath(endpoint)!, stateDir);
    try {
      const commandsIpc = this.commandSocket('ipc', {});
      await this.bindIpc(commandsIpc.socket, ipc.commands, groupAccess);
      const eventsIpc = new zmq.XPublisher({ context: this.context, linger: 0 });
      eventsIpc.verbosity = 'allSubs';
      this.publisher.attach('ipc', eventsIpc);
      await this.bindIpc(eventsIpc, ipc.events, groupAccess);
      const tcp = keys ? await this.startTcp(this.options.tcp!, keys) : null;
      this.endpoints = { ipc, tcp };
    } catch (err) {
      await this.stop();
      throw err;
    }
    for (const s of this.commandSockets) void this.serve(s);
    this.publisher.startHeartbeat(this.options.heartbeatMs ?? 10_000);
    logger.info({ endpoints: this.endpoints }, `bus listening at ${ipc.commands}${this.endpoints.tcp ? ` and ${this.endpoints.tcp.commands} (CURVE)` : ''}`);
  }

  private async startTcp(endpoints: { commands: string; events: string }, keys: CurveKeyPair & { created: boolean }): Promise<{ commands: string; events: string }> {
    const { stateDir, logger } = this.options;
    if (keys.created) logger.info({ publicKey: keys.publicKey }, `made the bus's CURVE key pair (public key ${keys.publicKey})`);
    this.serverPublicKey = keys.publicKey;
    // The ZAP handler must be bound before the CURVE sockets accept anyone.
    this.zap = new ZapHandler(this.context, new AuthorizedClients(authorizedClientsPath(stateDir), logger), logger);
    await this.zap.start();
    const curve = { curveServer: true, curvePublicKey: keys.publicKey, curveSecretKey: keys.secretKey, zapDomain: ZAP_DOMAIN, zapEnforceDomain: true };
    const commandsTcp = this.commandSocket('tcp', curve);
    await commandsTcp.socket.bind(endpoints.commands);
    const eventsTcp = new zmq.XPublisher({ context: this.context, linger: 0, ...curve });
    eventsTcp.verbosity = 'allSubs';
    this.publisher.attach('tcp', eventsTcp);
    await eventsTcp.bind(endpoints.events);
    return { commands: commandsTcp.socket.lastEndpoint!, events: eventsTcp.lastEndpoint! };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopController.abort(new HaulError('StreamAborted', 'the daemon is stopping'));
    for (const stream of this.streams.values()) stream.stop(new HaulError('StreamAborted', 'the daemon is stopping'));
    this.publisher.close();
    for (const s of this.commandSockets) s.socket.close();
    this.zap?.close();
    for (const file of this.ipcFiles) removeSocket(file);
  }

  async status(): Promise<DaemonStatus> {
    const jobs = await this.options.jobs();
    return {
      version: this.options.version,
      protocol: BUS_PROTOCOL_VERSION,
      pid: process.pid,
      daemonId: this.options.daemonId ?? null,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.max(0, Math.round(Date.now() - this.startedAt.getTime()) / 1000),
      events: { ipc: this.endpoints?.ipc.events ?? null, tcp: this.endpoints?.tcp?.events ?? null },
      running: jobs.running,
      queued: jobs.queued.slice(0, 100),
      queuedTotal: jobs.queuedTotal ?? jobs.queued.length,
    };
  }

  private async statusEvent(): Promise<DaemonStatusEvent> {
    return { v: BUS_PROTOCOL_VERSION, type: 'daemon-status', at: new Date().toISOString(), status: await this.status() };
  }

  private commandSocket(transport: 'ipc' | 'tcp', security: Partial<zmq.SocketOptions<zmq.Router>>): CommandSocket {
    const socket = new zmq.Router({
      context: this.context,
      linger: 0,
      // Replies to a client that has gone fail at once (EHOSTUNREACH) instead of vanishing,
      // and no send ever waits: a stalled client must not stall the others.
      mandatory: true,
      sendTimeout: 0,
      // libzmq drops the connection of a peer sending more; below it, maxRequestBytes applies.
      maxMessageSize: BusLimits.maxWireMessageBytes,
      ...security,
    });
    const entry = { transport, socket, sender: new SendQueue(socket) };
    this.commandSockets.push(entry);
    return entry;
  }

  private async bindIpc(socket: zmq.Socket, endpoint: string, groupAccess: boolean): Promise<void> {
    await socket.bind(endpoint);
    const file = ipcPath(endpoint)!;
    this.ipcFiles.push(file);
    restrictSocket(file, groupAccess);
  }

  private async serve(s: CommandSocket): Promise<void> {
    try {
      for await (const [route, ...payload] of s.socket) {
        try {
          this.onMessage(s, route!, payload);
        } catch (err) {
          this.options.logger.error({ err }, `bus message handling failed: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      if (!this.stopped) this.options.logger.error({ err, transport: s.transport }, `the bus stopped receiving commands on ${s.transport}: ${(err as Error).message}; restart the daemon`);
    }
  }

  private onMessage(s: CommandSocket, route: Buffer, payload: Buffer[]): void {
    const peer = `${s.transport}:${route.toString('hex')}`;
    const drop = (problem: string) => this.options.logger.warn({ peer, problem }, `dropped a bus message from ${peer}: ${problem}`);
    if (payload.length !== 1) return drop(`${payload.length} frames, where a request is one frame`);
    const decoded = decodeJsonFrame(payload[0]!, BusLimits.maxRequestBytes);
    if (!decoded.ok) return drop(decoded.problem);
    const value = decoded.value as { v?: unknown; id?: unknown } | null;
    const id = typeof value === 'object' && value !== null && RequestId.safeParse(value.id).success ? (value.id as string) : undefined;
    const answerError = (error: WireError) => {
      this.options.logger.warn({ peer, id, code: error.code }, `refused a bus message from ${peer}: ${error.message}`);
      this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id: id!, type: 'error', error });
    };
    if (id === undefined) return drop('no valid request id, so no answer is possible');
    if (value!.v !== BUS_PROTOCOL_VERSION) {
      return answerError({ code: 'UnsupportedProtocol', message: `this daemon speaks bus protocol ${BUS_PROTOCOL_VERSION}, the client sent ${JSON.stringify(value!.v) ?? 'no version'}; use a client of the same Haul version as the daemon.` });
    }
    const parsed = ClientMessage.safeParse(value);
    if (!parsed.success) return answerError({ code: 'InvalidRequest', message: `malformed bus message: ${describeIssues(parsed.error)}.` });
    const message = parsed.data;
    const streamKey = `${peer}/${message.id}`;
    if (message.type === 'credit' || message.type === 'cancel-stream') {
      const stream = this.streams.get(streamKey);
      // A credit that crosses the stream's end on the wire is normal.
      if (!stream) return this.options.logger.debug({ peer, id }, `ignored a ${message.type} for stream ${message.id}, which has ended`);
      if (message.type === 'credit') stream.addCredit(message.credit);
      else stream.stop(new HaulError('StreamAborted', 'the client cancelled it'));
      return;
    }
    const command = message.command;
    if (isStreamCommandName(command)) {
      void this.startStream(s, route, peer, message.id, command, message.params, message.credit);
      return;
    }
    if (!isCommandName(command)) {
      return answerError({ code: 'UnknownCommand', message: `the daemon knows no command ${JSON.stringify(command)}; the commands are ${[...Object.keys(commands), ...Object.keys(streamCommands)].join(', ')}.` });
    }
    const handler = this.handlers.get(command);
    if (!handler) return answerError({ code: 'UnknownCommand', message: `this daemon does not handle "${command}" yet (bus protocol ${BUS_PROTOCOL_VERSION} defines it, but the daemon has no handler for it).` });
    const params = commands[command].params.safeParse(message.params);
    if (!params.success) return answerError({ code: 'InvalidRequest', message: `invalid parameters for "${command}": ${describeIssues(params.error, 'params')}.` });
    if (this.inFlight >= (this.options.maxInFlight ?? 64)) {
      return answerError({ code: 'DaemonBusy', message: `the daemon is handling ${this.inFlight} requests already; try again in a moment.` });
    }
    this.inFlight++;
    void this.runHandler(s, route, peer, message.id, command, handler, params.data).finally(() => this.inFlight--);
  }

  private async runHandler(s: CommandSocket, route: Buffer, peer: string, id: string, command: CommandName, handler: CommandHandler<CommandName>, params: CommandRequest<CommandName>): Promise<void> {
    let error: WireError;
    try {
      const result = await handler(params, { peer, signal: this.stopController.signal });
      const checked = commands[command].result.safeParse(result);
      if (checked.success) return this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id, type: 'reply', result: checked.data });
      this.options.logger.error({ command, problem: describeIssues(checked.error) }, `the "${command}" handler returned a result that breaks the bus protocol: ${describeIssues(checked.error, 'result')}`);
      error = { code: 'Internal', message: `the daemon produced an invalid answer to "${command}". This is a bug in Haul; the daemon log has the details.` };
    } catch (err) {
      error = this.wireError(command, err);
    }
    this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id, type: 'error', error });
  }

  private async startStream(s: CommandSocket, route: Buffer, peer: string, id: string, command: StreamCommandName, rawParams: unknown, credit: number | undefined): Promise<void> {
    const key = `${peer}/${id}`;
    const refuse = (error: WireError) => {
      this.options.logger.warn({ peer, id, code: error.code }, `refused a bus stream from ${peer}: ${error.message}`);
      this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id, type: 'error', error });
    };
    const handler = this.streamHandlers.get(command);
    if (!handler) return refuse({ code: 'UnknownCommand', message: `this daemon does not handle "${command}" yet (bus protocol ${BUS_PROTOCOL_VERSION} defines it, but the daemon has no handler for it).` });
    const params = streamCommands[command].params.safeParse(rawParams);
    if (!params.success) return refuse({ code: 'InvalidRequest', message: `invalid parameters for "${command}": ${describeIssues(params.error, 'params')}.` });
    if (this.streams.has(key)) return refuse({ code: 'InvalidRequest', message: `a stream with the id ${id} is already running on this connection.` });
    if (this.streams.size >= (this.options.maxStreams ?? 8)) return refuse({ code: 'DaemonBusy', message: `the daemon is sending ${this.streams.size} streams already; try again when one has finished.` });
    const stream = new ReplyStream((frames) => s.sender.send([route, ...frames]), id, `${command} to ${peer}`, credit ?? BusLimits.defaultStreamCredit, this.options.streamIdleTimeoutMs ?? 60_000, this.options.logger);
    this.streams.set(key, stream);
    try {
      const reply = await handler(params.data, { peer, signal: stream.signal });
      const meta = streamCommands[command].meta.safeParse(reply.meta);
      if (!meta.success) {
        this.options.logger.error({ command, problem: describeIssues(meta.error) }, `the "${command}" handler returned metadata that breaks the bus protocol: ${describeIssues(meta.error, 'meta')}`);
        return this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id, type: 'error', error: { code: 'Internal', message: `the daemon produced an invalid answer to "${command}". This is a bug in Haul; the daemon log has the details.` } });
      }
      await stream.run(meta.data, reply.chunks);
    } catch (err) {
      this.reply(s, route, { v: BUS_PROTOCOL_VERSION, id, type: 'error', error: this.wireError(command, err) });
    } finally {
      this.streams.delete(key);
    }
  }

  /** A handler's failure as the client sees it: a HaulError as it is, anything else as a bug. */
  private wireError(command: string, err: unknown): WireError {
    if (isHaulError(err)) return { code: err.code, message: err.message };
    this.options.logger.error({ err, command }, `the "${command}" handler failed: ${(err as Error).message}`);
    return { code: 'Internal', message: `the daemon failed while handling "${command}": ${(err as Error).message}. This is a bug in Haul; the daemon log has the details.` };
  }

  private reply(s: CommandSocket, route: Buffer, message: object): void {
    let frame: Buffer;
    try {
      frame = encodeJsonFrame(message);
    } catch (err) {
      this.options.logger.error({ err }, `could not encode an answer: ${(err as Error).message}`);
      return;
    }
    s.sender.send([route, frame]).catch((err: Error) => {
      if (this.stopped) return;
      const peer = `${s.transport}:${route.toString('hex')}`;
      if (isUnreachable(err)) this.options.logger.info({ peer }, `dropped an answer to ${peer}: the client disconnected`);
      else this.options.logger.warn({ peer, err }, `could not answer ${peer}: ${err.message}`);
    });
  }
}
