import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { TarDump } from '../../restorer/tar-dump.js';
import { openRepository } from '../context.js';
import { splitSnapshotRef } from './ls.js';

export function registerDump(program: Command): void {
  program
    .command('dump <snapshot[:path]>')
    .description('write a snapshot, or a file or directory inside it, to stdout as a tar archive')
    .option('--client <name>', 'with "latest": the latest snapshot of this client')
    .action(async (ref: string, opts: { client?: string }, cmd: Command) => {
      if (process.stdout.isTTY) {
        throw new HaulError('InvalidArgument', 'refusing to write a tar archive to a terminal. Redirect it: `haul dump … > backup.tar`, or pipe it: `haul dump … | tar -x -C DIR`.');
      }
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'dump' });
      const { snapshot, path } = splitSnapshotRef(ref);
      const snap = await repo.findSnapshot(snapshot, opts.client);
      await new TarDump(repo, process.stdout).dump(snap, path);
    });
}
