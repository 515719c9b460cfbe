import type { Command } from 'commander';
import { copyRepository, type CopyReport } from '../../maintenance/copy-repository.js';
import { openStorage } from '../../storage/open-storage.js';
import { globalOptions, openRepository, output } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';

function formatCopyReport(r: CopyReport): string {
  const o = r.objects;
  return `copied ${r.from} to ${r.to}: ${o.snapshots} snapshots, ${o.index} index files, ${o.packs} packs, ${o.keys} keys and the config` +
    `${r.skipped ? ` (${r.skipped} of them already there from an earlier run)` : ''}, ${formatBytes(r.bytesCopied)} in ${(r.durationMs / 1000).toFixed(1)} s\n`;
}

export function registerRepo(program: Command): void {
  const repo = program.command('repo').description('whole-repository operations');
  repo
    .command('copy')
    .description('copy a repository to another location (local directory or S3 bucket), byte for byte; run again, it resumes an interrupted copy or adds what is new')
    .option('--from <location>', 'the repository to copy (default: --repo / $HAUL_REPOSITORY)')
    .requiredOption('--to <location>', 'where to copy it: a new or empty directory or bucket prefix (s3:https://HOST[:PORT]/BUCKET[/PREFIX]), or an earlier copy to update')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { from?: string; to: string; json?: boolean }, cmd: Command) => {
      // The passphrase is checked on the source (nothing is decrypted, but a wrong location or
      // passphrase should fail before anything is written) and the shared lock keeps prune out.
      const source = await openRepository(cmd, { kind: 'shared', purpose: 'repo copy' }, opts.from);
      const target = await openStorage(opts.to);
      const progress = createProgress('copy', { quiet: globalOptions(cmd).quiet || opts.json });
      const report = await copyRepository(source, target, (done, total, detail) => progress.update(done, total, detail));
      progress.stop();
      output(opts.json, report, () => formatCopyReport(report));
    });
}
