// How a command finds the daemon: --bus (else HAUL_BUS, else the ipc:// socket in the state
// directory), and over TCP a client key file from --bus-key (else HAUL_BUS_KEY).
import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { BusClient } from '../../shared/bus/bus-client.js';
import { readCurveClientKeyFile } from '../../shared/bus/curve-keys.js';
import { defaultBusEndpoints, ipcPath } from '../../shared/bus/endpoints.js';
import { globalOptions, stateDirectory } from './context.js';

export interface BusOptions {
  bus?: string;
  busKey?: string;
}

export function addBusOptions(cmd: Command): Command {
  return cmd
    .option('--bus <endpoint>', "the daemon's bus: ipc:///path/commands.sock or tcp://host:port (default: $HAUL_BUS, else run/commands.sock in the state directory)")
    .option('--bus-key <file>', 'client key file for a bus over TCP, from `haul bus-key add` (default: $HAUL_BUS_KEY)');
}

export function busEndpoint(cmd: Command, opts: BusOptions): string {
  return opts.bus ?? (process.env['HAUL_BUS'] || defaultBusEndpoints(stateDirectory(globalOptions(cmd))).commands);
}

/** Whether the bus was named (--bus, HAUL_BUS) rather than defaulted to this state directory's socket. */
export function busNamed(opts: BusOptions): boolean {
  return opts.bus !== undefined || Boolean(process.env['HAUL_BUS']);
}

/**
 * Whether a daemon may listen for this command. On the default endpoint, no socket file means
 * none does, known without loading the bus client (ZeroMQ, the message schemas: about 0.15 s
 * of a command's start-up); a named bus is always tried.
 */
export function daemonMayListen(cmd: Command, opts: BusOptions): boolean {
  if (busNamed(opts)) return true;
  const socket = ipcPath(busEndpoint(cmd, opts));
  return socket === undefined || fs.existsSync(socket);
}

export async function connectToDaemon(cmd: Command, opts: BusOptions): Promise<BusClient> {
  const keyFile = opts.busKey ?? (process.env['HAUL_BUS_KEY'] || undefined);
  // Loaded here: ZeroMQ's addon costs a command that only declares the bus options (backup) nothing.
  const { BusClient } = await import('../../shared/bus/bus-client.js');
  return BusClient.connect({ endpoint: busEndpoint(cmd, opts), ...(keyFile ? { curve: readCurveClientKeyFile(keyFile) } : {}) });
}
