import type { Command } from 'commander';
import { openRepository, output } from '../context.js';
import { formatBytes } from '../progress.js';
import { shortId } from '../../repository/snapshot.js';

export function registerSnapshots(program: Command): void {
  program
    .command('snapshots')
    .description('list snapshots, oldest first, grouped by client')
    .option('--client <name>', 'only this client')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { client?: string; json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd);
      const snaps = await repo.listSnapshots(opts.client === undefined ? {} : { client: opts.client });
      for (const bad of repo.unreadableSnapshots) process.stderr.write(`haul: warning: snapshot ${bad.id.slice(0, 8)} left out: ${bad.message}\n`);
      output(opts.json, snaps, () => {
        if (snaps.length === 0) return 'no snapshots\n';
        const clients = [...new Set(snaps.map((s) => s.client))].sort();
        return clients.map((c) => `client ${c}\n` + snaps.filter((s) => s.client === c).map((s) =>
          `  ${shortId(s.id)}  ${s.time}  ${formatBytes(s.stats.bytes).padStart(10)}  ${s.paths.join(' ')}${s.tags.length ? `  [${s.tags.join(',')}]` : ''}`).join('\n')).join('\n') + '\n';
      });
    });
}
