import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { Restorer } from '../../restorer/restorer.js';
import { shortId } from '../../repository/snapshot.js';
import { globalOptions, openRepository, output } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';
import { splitSnapshotRef } from './ls.js';

export function registerRestore(program: Command): void {
  program
    .command('restore <snapshot[:path]>')
    .description('restore a snapshot, or a file or directory inside it, into a local directory')
    .requiredOption('--target <dir>', 'directory to restore into (created if missing)')
    .option('--client <name>', 'with "latest": the latest snapshot of this client')
    .option('--overwrite', 'replace files that already exist in the target')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, opts: { target: string; client?: string; overwrite?: boolean; json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'restore' });
      const { snapshot, path } = splitSnapshotRef(ref);
      const snap = await repo.findSnapshot(snapshot, opts.client);
      const progress = createProgress('restore', { quiet: globalOptions(cmd).quiet || opts.json, bytes: true });
      const result = await new Restorer(repo, {
        overwrite: Boolean(opts.overwrite),
        onProgress: (p) => progress.update(p.bytes, path === '/' ? snap.stats.bytes : undefined, p.currentPath),
      }).restore(snap, path, opts.target);
      progress.stop();
      output(opts.json, { snapshot: snap.id, ...result }, () =>
        `restored ${result.files} files, ${result.dirs} directories, ${formatBytes(result.bytes)} from snapshot ${shortId(snap.id)} into ${opts.target}\n` +
        result.problems.map((p) => `haul: error: ${JSON.stringify(p.path).slice(1, -1)}: ${p.message}\n`).join(''));
      if (result.problems.length > 0) {
        throw new HaulError('RestoreRefused', `${result.problems.length} item(s) were not restored (listed above); everything else was restored and verified.`);
      }
    });
}
