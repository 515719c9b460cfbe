import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { formatPruneReport, pruneRepository } from '../../maintenance/prune.js';

export { formatPruneReport };
import { globalOptions, openRepository, output } from '../context.js';
import { createProgress } from '../progress.js';

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('delete data no snapshot uses: drop unused packs, repack partly used ones, rewrite the index')
    .option('--dry-run', 'report what would be freed, change nothing')
    .option('--repack-threshold <share>', 'repack a pack when at least this share of its bytes is unused (0..1)', '0.1')
    .option('--wait <seconds>', 'wait this long for running backups to finish (prune needs the repository to itself)', '0')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dryRun?: boolean; repackThreshold: string; wait: string; json?: boolean }, cmd: Command) => {
      const threshold = Number(opts.repackThreshold);
      const wait = Number(opts.wait);
      if (!Number.isFinite(wait) || wait < 0) throw new HaulError('InvalidArgument', `--wait takes a number of seconds, not ${JSON.stringify(opts.wait)}.`);
      const repo = await openRepository(cmd);
      const progress = createProgress('prune', { quiet: globalOptions(cmd).quiet || opts.json });
      const report = await pruneRepository(repo, {
        repackThreshold: threshold,
        dryRun: Boolean(opts.dryRun),
        lockWaitMs: wait * 1000,
        onProgress: (phase, done, total) => progress.update(done, total, phase),
      });
      progress.stop();
      output(opts.json, report, () => formatPruneReport(report));
    });
}
