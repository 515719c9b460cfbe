import * as path from 'node:path';
import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { ClientRegistry, parseAddress } from '../../clients/client-registry.js';
import { authorizedKeysLine, loadOrCreateServerIdentity } from '../../session/server-identity.js';
import { connectToClient, isFingerprint } from '../../session/ssh-connection.js';
import { globalOptions, output, stateDirectory } from '../context.js';

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerClient(program: Command): void {
  const client = program.command('client').description('manage the machines this server backs up over SSH');

  client
    .command('add <name> <address>')
    .description('register a client (address: user@host[:port]) and print the line to paste into its authorized_keys')
    .option('--path <path>', 'absolute path to back up (repeatable)', collect, [])
    .option('--exclude <pattern>', 'leave out matching entries: /absolute/glob or name glob (repeatable)', collect, [])
    .option('-x, --one-file-system', 'do not cross file-system boundaries on the client')
    .option('--json', 'print the result as JSON')
    .action((name: string, address: string, opts: { path: string[]; exclude: string[]; oneFileSystem?: boolean; json?: boolean }, cmd: Command) => {
      const home = stateDirectory(globalOptions(cmd));
      const { user, host, port } = parseAddress(address);
      const registry = new ClientRegistry(home);
      const added = registry.add({ name, user, host, port, paths: opts.path, excludes: opts.exclude, oneFileSystem: Boolean(opts.oneFileSystem) });
      const identity = loadOrCreateServerIdentity(path.join(home, 'identity'));
      const line = authorizedKeysLine(identity);
      output(opts.json, { client: added, authorizedKeysLine: line }, () =>
        `added client ${name} (${user}@${host}:${port}), backing up ${opts.path.join(' ')}\n\n` +
        `On ${host}, as ${user}, append this line to ~/.ssh/authorized_keys (nothing else is installed):\n\n${line}\n\n` +
        `Then run \`haul client pin ${name}\` to check the connection and pin the client's host key.\n`);
    });

  client
    .command('list')
    .description('list clients')
    .option('--json', 'print the result as JSON')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const clients = new ClientRegistry(stateDirectory(globalOptions(cmd))).list();
      output(opts.json, clients, () => clients.length === 0 ? 'no clients\n' :
        clients.map((c) => `${c.name.padEnd(20)} ${c.user}@${c.host}:${c.port}  ${c.hostKey ?? '(host key not pinned yet)'}  ${c.paths.join(' ')}`).join('\n') + '\n');
    });

  client
    .command('pin <name>')
    .description("connect to a client and pin its host key (after a deliberate key change: re-pin)")
    .option('--fingerprint <SHA256:...>', 'pin only if the client presents this key (as `ssh-keygen -lf` prints it on the client)')
    .action(async (name: string, opts: { fingerprint?: string }, cmd: Command) => {
      const home = stateDirectory(globalOptions(cmd));
      const registry = new ClientRegistry(home);
      const c = registry.get(name);
      if (opts.fingerprint !== undefined && !isFingerprint(opts.fingerprint)) {
        throw new HaulError('InvalidArgument', `${JSON.stringify(opts.fingerprint)} is not a SHA256 fingerprint; on the client, \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` prints it.`);
      }
      const identity = loadOrCreateServerIdentity(path.join(home, 'identity'));
      // No pin given to the connection: this command is how an operator replaces it.
      const conn = await connectToClient({ host: c.host, port: c.port, user: c.user, identity, clientName: c.name });
      try {
        if (opts.fingerprint !== undefined && opts.fingerprint !== conn.hostKeyFingerprint) {
          throw new HaulError('HostKeyChanged', `${c.name} presents host key ${conn.hostKeyFingerprint}, not the ${opts.fingerprint} you gave; nothing was pinned. Check that you are talking to the right machine.`);
        }
        const before = c.hostKey;
        registry.update(name, (x) => ({ ...x, hostKey: conn.hostKeyFingerprint }));
        process.stdout.write(before === conn.hostKeyFingerprint
          ? `${name}: host key ${conn.hostKeyFingerprint} was already pinned; the connection works\n`
          : `${name}: pinned ${conn.hostKeyType} host key ${conn.hostKeyFingerprint}${before ? ` (replacing ${before})` : ''}\n`);
      } finally {
        await conn.close();
      }
    });

  client
    .command('remove <name>')
    .description('forget a client (its snapshots stay in the repository)')
    .action((name: string, _opts: unknown, cmd: Command) => {
      new ClientRegistry(stateDirectory(globalOptions(cmd))).remove(name);
      process.stdout.write(`removed client ${name}; its snapshots stay in the repository\n`);
    });
}
