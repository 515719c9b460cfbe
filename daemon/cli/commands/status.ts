import type { Command } from 'commander';
import { formatDuration } from '../../../shared/display.js';
import { addBusOptions, connectToDaemon, type BusOptions } from '../bus.js';
import { output } from '../context.js';
import { jobLine, localDateTime } from '../job-lines.js';

export function registerStatus(program: Command): void {
  addBusOptions(program.command('status'))
    .description("show whether the daemon runs: its version, uptime, and running and queued jobs")
    .option('--json', 'print the status as JSON')
    .action(async (opts: BusOptions & { json?: boolean }, cmd: Command) => {
      const bus = await connectToDaemon(cmd, opts);
      try {
        const status = await bus.status();
        output(opts.json, status, () => {
          const lines = [
            `Haul daemon ${status.version} (bus protocol ${status.protocol}) at ${bus.endpoint}`,
            `  pid ${status.pid}, up ${formatDuration(status.uptimeSeconds * 1000)} (since ${localDateTime(status.startedAt)})`,
            `  ${status.running.length} running, ${status.queuedTotal} queued`,
          ];
          if (status.running.length > 0) lines.push('running:', ...status.running.map((j) => `  ${jobLine(j)}`));
          if (status.queued.length > 0) lines.push('queued:', ...status.queued.map((j) => `  ${jobLine(j)}`));
          if (status.queuedTotal > status.queued.length) lines.push(`  … and ${status.queuedTotal - status.queued.length} more`);
          return lines.join('\n') + '\n';
        });
      } finally {
        bus.close();
      }
    });
}
