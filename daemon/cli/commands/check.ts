import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { checkRepository } from '../../checker/checker.js';
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

/** "k/n", or "day/n": part (days since the epoch mod n) + 1, so consecutive days cover every part. */
export function parseSubset(text: string, now = new Date()): { part: number; of: number } {
  const m = /^(\d+|day)\/(\d+)$/.exec(text);
  const of = m ? Number(m[2]) : 0;
  const part = m ? (m[1] === 'day' ? (Math.floor(now.getTime() / 86_400_000) % of) + 1 : Number(m[1])) : 0;
  if (!m || of < 1 || part < 1 || part > of) throw new HaulError('InvalidArgument', `--read-data-subset takes k/n with 1 <= k <= n (e.g. 2/7), or day/n, not ${JSON.stringify(text)}.`);
  return { part, of };
}
