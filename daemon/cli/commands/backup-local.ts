import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { LocalArchiver } from '../../archiver/local-archiver.js';
import { shortId } from '../../repository/snapshot.js';
import { globalOptions, openRepository, output, recordSnapshotOrWarn } from '../context.js';
import { createProgress, formatBytes } from '../progress.js';

interface Options {
  client: string;
  tag: string[];
  exclude: string[];
  oneFileSystem?: boolean;
  json?: boolean;
}

export function registerBackupLocal(program: Command): void {
  program
    .command('backup-local <paths...>')
    .description('back up directories of this machine into the repository (no SSH; the engine on its own)')
    .requiredOption('--client <name>', 'the client name the snapshot is filed under')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--exclude <path>', 'leave out this path and everything under it (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('-x, --one-file-system', 'do not cross file-system boundaries')
    .option('--json', 'print the result as JSON (includes peak memory)')
    .action(async (paths: string[], opts: Options, cmd: Command) => {
      const repo = await openRepository(cmd, { kind: 'shared', purpose: 'backup-local' });
      const progress = createProgress('backup', { quiet: globalOptions(cmd).quiet || opts.json, bytes: true });
      const warnings: string[] = [];
      const archiver = new LocalArchiver(repo, {
        client: opts.client,
        paths,
        tags: opts.tag,
        excludes: opts.exclude,
        oneFileSystem: Boolean(opts.oneFileSystem),
        onProgress: (p) => progress.update(p.bytesRead, p.expectedBytes, p.currentPath),
        onWarning: (m) => {
          warnings.push(m);
          if (!opts.json) process.stderr.write(`haul: warning: ${m}\n`);
        },
      });
      const { id, snapshot } = await archiver.run();
      progress.stop();
      await recordSnapshotOrWarn(cmd, id, snapshot);
      const s = snapshot.stats;
      const peakRssBytes = process.resourceUsage().maxRSS * 1024;
      output(opts.json, { id, snapshot, warnings, peakRssBytes }, () =>
        `snapshot ${shortId(id)} saved for client ${snapshot.client}\n` +
        `  ${s.files} files, ${s.dirs} directories, ${formatBytes(s.bytes)} (${formatBytes(s.bytesRead)} read)\n` +
        `  added ${formatBytes(s.bytesNew)} in ${s.blobsNew} new blobs, ${formatBytes(s.bytesStored)} stored, in ${(s.durationMs / 1000).toFixed(1)} s\n`);
      if (warnings.length > 0) {
        throw new HaulError('IncompleteSnapshot', `the snapshot ${shortId(id)} was saved, but ${warnings.length} item(s) could not be read (see the warnings above).`);
      }
    });
}
