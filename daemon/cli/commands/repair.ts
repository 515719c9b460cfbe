import type { Command } from 'commander';
import { rebuildIndex } from '../../repository/index-repair.js';
import { globalOptions, openRepository, output } from '../context.js';
import { createProgress } from '../progress.js';

export function registerRepair(program: Command): void {
  const repair = program.command('repair').description('rebuild damaged repository metadata');
  repair
    .command('index')
    .description('rebuild the index from the pack headers alone')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd, { kind: 'exclusive', purpose: 'repair index' });
      const progress = createProgress('repair index', { quiet: globalOptions(cmd).quiet || opts.json });
      const result = await rebuildIndex(repo, (done, total) => progress.update(done, total, 'packs'));
      progress.stop();
      output(opts.json, result, () =>
        `indexed ${result.blobs} blobs in ${result.packs} packs into ${result.indexFilesWritten} index file(s); removed ${result.indexFilesRemoved} old index file(s)\n` +
        result.unreadablePacks.map((p) => `warning: pack ${p.pack} left out: ${p.message}\n`).join(''));
    });
}
