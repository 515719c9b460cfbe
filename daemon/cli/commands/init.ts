import type { Command } from 'commander';
import { Repository } from '../../repository/repository.js';
import { globalOptions, output, repositoryStorage } from '../context.js';
import { repositoryPassphrase } from '../passphrase.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create a new, empty repository (the directory, or the bucket prefix, must be new or empty)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const storage = await repositoryStorage(g);
      const repo = await Repository.init(storage, await repositoryPassphrase(g, true));
      output(opts.json, { id: repo.config.id, location: storage.location, key: repo.keyName }, () =>
        `created repository ${repo.config.id} at ${storage.location}\n` +
        'Keep the passphrase safe: without it the repository cannot be read, by anyone.\n');
    });
}
