import type { Command } from 'commander';
import { openRepository, output } from '../context.js';
import { newPassphrase } from '../passphrase.js';

export function registerKey(program: Command): void {
  const key = program.command('key').description('manage the passphrases (key files) that open the repository');

  key
    .command('list')
    .description('list key files')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const keys = await (await openRepository(cmd)).listKeys();
      output(opts.json, keys, () =>
        keys.map((k) => `${k.current ? '*' : ' '} ${k.name.slice(0, 8)}  ${k.created}  ${k.username}@${k.hostname}`).join('\n') + '\n');
    });

  key
    .command('add')
    .description('add a passphrase that opens the same repository')
    .option('--new-password-file <file>', 'read the new passphrase from this file (or set HAUL_NEW_PASSWORD_FILE or HAUL_NEW_PASSWORD)')
    .action(async (opts: { newPasswordFile?: string }, cmd: Command) => {
      const repo = await openRepository(cmd);
      const name = await repo.addKey(await newPassphrase(opts.newPasswordFile));
      process.stdout.write(`added key ${name.slice(0, 8)}\n`);
    });

  key
    .command('remove <id>')
    .description('remove a key file (not the one in use)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const removed = await (await openRepository(cmd)).removeKey(id);
      process.stdout.write(`removed key ${removed.slice(0, 8)}\n`);
    });

  key
    .command('passwd')
    .description('change the passphrase of the key in use (adds the new key, then removes the old one)')
    .option('--new-password-file <file>', 'read the new passphrase from this file (or set HAUL_NEW_PASSWORD_FILE or HAUL_NEW_PASSWORD)')
    .action(async (opts: { newPasswordFile?: string }, cmd: Command) => {
      const repo = await openRepository(cmd);
      const { added, removed } = await repo.replaceCurrentKey(await newPassphrase(opts.newPasswordFile));
      process.stdout.write(`changed the passphrase: key ${added.slice(0, 8)} replaces ${removed.slice(0, 8)}\n`);
    });
}
