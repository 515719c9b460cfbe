// Where the daemon's bus listens. Local processes use two Unix sockets in the state directory's
// run/ folder (file permissions decide who may connect); a remote web server uses the optional
// TCP endpoints, which are CURVE-encrypted and authenticated (docs/bus.md).
import * as path from 'node:path';
import { HaulError } from '../errors.js';
import type { DaemonStatus } from './messages.js';

/** Unix socket paths are limited by sockaddr_un.sun_path (108 bytes with the final NUL). */
export const MAX_IPC_PATH_BYTES = 107;

export interface BusEndpoints {
  /** Requests and replies (the daemon's ROUTER socket). */
  commands: string;
  /** Events (the daemon's XPUB socket). */
  events: string;
}

export function runDirectory(stateDir: string): string {
  return path.join(path.resolve(stateDir), 'run');
}

/** The ipc:// endpoints of a daemon whose state directory is `stateDir`. */
export function defaultBusEndpoints(stateDir: string): BusEndpoints {
  const run = runDirectory(stateDir);
  return { commands: `ipc://${path.join(run, 'commands.sock')}`, events: `ipc://${path.join(run, 'events.sock')}` };
}

/** The socket file of an ipc:// endpoint, or undefined for other transports. */
export function ipcPath(endpoint: string): string | undefined {
  return endpoint.startsWith('ipc://') ? endpoint.slice('ipc://'.length) : undefined;
}

/** Refuses what is neither ipc:///absolute/path nor tcp://host:port, before ZeroMQ sees it. */
export function checkEndpoint(endpoint: string): void {
  const socketPath = ipcPath(endpoint);
  if (socketPath !== undefined) {
    if (!path.isAbsolute(socketPath)) {
      throw new HaulError('InvalidArgument', `bus endpoint ${endpoint} names a relative path; write ipc:///absolute/path/to/commands.sock.`);
    }
    if (Buffer.byteLength(socketPath) > MAX_IPC_PATH_BYTES) {
      throw new HaulError('InvalidArgument', `the bus socket path ${socketPath} is ${Buffer.byteLength(socketPath)} bytes, more than the ${MAX_IPC_PATH_BYTES} a Unix socket allows; use a state directory (--home) with a shorter path.`);
    }
    return;
  }
  if (!/^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.*-]+):[0-9]{1,5}$/.test(endpoint)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(endpoint)} is not a bus endpoint; write ipc:///path/to/commands.sock or tcp://host:port.`);
  }
}

/**
 * The events endpoint to connect to, from the commands endpoint this client used and the
 * daemon's status. Over TCP the daemon reports what it bound (often tcp://0.0.0.0:PORT), so the
 * host is the one this client reached the daemon at and only the port is the daemon's.
 */
export function eventsEndpointFor(commandsEndpoint: string, events: DaemonStatus['events']): string {
  if (ipcPath(commandsEndpoint) !== undefined) {
    if (!events.ipc) throw new HaulError('BusProtocol', `the daemon at ${commandsEndpoint} publishes no events over ipc://; connect over TCP instead.`);
    return events.ipc;
  }
  const port = events.tcp ? /:([0-9]{1,5})$/.exec(events.tcp)?.[1] : undefined;
  if (!port) throw new HaulError('BusProtocol', `the daemon at ${commandsEndpoint} publishes no events over TCP; enable its TCP bus or connect over ipc:// on its machine.`);
  return commandsEndpoint.replace(/:[0-9]{1,5}$/, `:${port}`);
}
