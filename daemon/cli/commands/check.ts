import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { checkRepository, parseSubset } from '../../checker/checker.js';

export { parseSubset };
import { globalOptions, openRepository, output } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('verify the repository structure; with --read-data also decrypt and re-hash every blob')
    .option('--read-data', 'read every pack in full and verify every blob')
    .option('--read-data-subset <k/n>', 'with --read-data, read only part k of n of the packs (e.g. 3/7; "day/7" picks today\'s part of a weekly cycle)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { readData?: boolean; readDataSubset?: string; json?: boolean }, cmd: Command) => {
      const subset = opts.readDataSubset === undefined ? undefined : parseSubset(opts.readDataSubset);
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'check' });
      const progress = createProgress('check', { quiet: globalOptions(cmd).quiet || opts.json });
      const report = await checkRepository(repo, { readData: Boolean(opts.readData || subset), ...(subset ? { readDataSubset: subset } : {}), onProgress: (p) => progress.update(p.done, p.total, p.phase) });
      progress.stop();
      output(opts.json, report, () =>
        report.problems.map((p) => `${p.severity}: ${p.message}\n`).join('') +
        `checked ${report.snapshots} snapshots, ${report.trees} trees, ${report.packs} packs, ${report.indexFiles} index files` +
        (opts.readData || subset ? `, ${report.blobs} blobs (${formatBytes(report.bytesRead)} read)` : '') +
        `: ${report.errors === 0 ? 'no errors' : `${report.errors} error(s)`}${report.warnings ? `, ${report.warnings} warning(s)` : ''}\n`);
      if (report.errors > 0) throw new HaulError('CheckFailed', `the repository has ${report.errors} error(s), listed above. Files named there cannot be restored from the snapshots named.`);
    });
}

