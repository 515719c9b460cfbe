// How a command finds the daemon: --bus (else HAUL_BUS, else the ipc:// socket in the state
// directory), and over TCP a client key file from --bus-key (else HAUL_BUS_KEY).
import type { Command } from 'commander';
import type { BusClient } from '../../shared/bus/bus-client.js';
import { readCurveClientKeyFile } from '../../shared/bus/curve-keys.js';
import { defaultBusEndpoints } from '../../shared/bus/endpoints.js';
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

export async function connectToDaemon(cmd: Command, opts: BusOptions): Promise<BusClient> {
  const keyFile = opts.busKey ?? (process.env['HAUL_BUS_KEY'] || undefined);
  // Loaded here: ZeroMQ's addon costs a command that only declares the bus options (backup) nothing.
  const { BusClient } = await import('../../shared/bus/bus-client.js');
  return BusClient.connect({ endpoint: busEndpoint(cmd, opts), ...(keyFile ? { curve: readCurveClientKeyFile(keyFile) } : {}) });
}
