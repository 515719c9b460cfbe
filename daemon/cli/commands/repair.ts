import type { Command } from 'commander';
import { repairPacks } from '../../maintenance/repair-packs.js';
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
  repair
    .command('packs [packs...]')
    .description('retire damaged packs: keep every blob that still verifies, drop the rest from the index so the next backups upload them again')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nWithout pack names every pack is read and verified (as `check --read-data` does).')
    .action(async (packs: string[], opts: { json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd);
      const progress = createProgress('repair packs', { quiet: globalOptions(cmd).quiet || opts.json });
      const report = await repairPacks(repo, packs.length ? packs : undefined, (done, total) => progress.update(done, total, 'packs'));
      progress.stop();
      output(opts.json, report, () =>
        report.packsRepaired.length === 0
          ? `checked ${report.packsChecked} pack(s): none is damaged\n`
          : `retired ${report.packsRepaired.length} damaged pack(s) (${report.packsRepaired.join(', ')}): ${report.blobsSalvaged} blob(s) salvaged into new packs, ${report.blobsLost.length} lost\n` +
            (report.blobsLost.length ? 'The lost blobs are no longer in the index. `haul check` lists the files that need them; the next backup of each affected client uploads them again if the client still has them, which makes the older snapshots whole again.\n' : ''));
    });
}
