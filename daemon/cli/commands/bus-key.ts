import * as path from 'node:path';
import type { Command } from 'commander';
import { addBusClient } from '../../bus/curve-auth.js';
import { globalOptions, output, stateDirectory } from '../context.js';

export function registerBusKey(program: Command): void {
  const busKey = program.command('bus-key').description("keys of the clients that may use the daemon's bus over TCP (CURVE)");

  busKey
    .command('add <name>')
    .description("make a key pair for a remote bus client (e.g. a web server on another machine): write its key file and authorize its public key")
    .requiredOption('--out <file>', 'where to write the client key file (mode 0600; never overwritten)')
    .option('--json', 'print the result as JSON')
    .action((name: string, opts: { out: string; json?: boolean }, cmd: Command) => {
      const home = stateDirectory(globalOptions(cmd));
      const keyFile = path.resolve(opts.out);
      const added = addBusClient(home, name, keyFile);
      output(opts.json, { name, keyFile, ...added }, () =>
        `added bus client ${name} (public key ${added.publicKey}) to ${added.authorizedClients}\n` +
        `Its key file is ${keyFile}: copy it to the client's machine (keep it mode 0600) and connect with\n` +
        `  --bus tcp://<this host>:<the daemon's TCP commands port> --bus-key <the file>\n` +
        `To revoke it, delete its line from ${added.authorizedClients}.\n`);
    });
}
