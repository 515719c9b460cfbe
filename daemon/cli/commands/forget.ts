import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { forgetSnapshots } from '../../maintenance/forget.js';
import type { RetentionPolicy } from '../../maintenance/retention-policy.js';
import { pruneRepository } from '../../maintenance/prune.js';
import { shortId } from '../../repository/snapshot.js';
import { openRepository, output } from '../context.js';
import { formatBytes } from '../progress.js';
import { formatPruneReport } from './prune.js';

const count = (flag: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new HaulError('InvalidArgument', `${flag} takes a whole number, not ${JSON.stringify(v)}.`);
  return Number(v);
};

interface ForgetCliOptions extends Omit<RetentionPolicy, 'keepTags'> {
  client?: string;
  keepTag: string[];
  dryRun?: boolean;
  prune?: boolean;
  json?: boolean;
}

const policyKeys = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly', 'keepWithin'] as const;

export function registerForget(program: Command): void {
  program
    .command('forget [ids...]')
    .description('remove snapshots by ID or by retention policy (data goes with `haul prune`)')
    .option('--client <name>', 'only this client (the policy applies to each client separately)')
    .option('--keep-last <n>', 'keep the n newest snapshots', count('--keep-last'))
    .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one', count('--keep-hourly'))
    .option('--keep-daily <n>', '... of each of the last n days', count('--keep-daily'))
    .option('--keep-weekly <n>', '... of each of the last n ISO weeks', count('--keep-weekly'))
    .option('--keep-monthly <n>', '... of each of the last n months', count('--keep-monthly'))
    .option('--keep-yearly <n>', '... of each of the last n years', count('--keep-yearly'))
    .option('--keep-within <duration>', 'keep every snapshot within this long of the client\'s newest (e.g. 14d, 6m)')
    .option('--keep-tag <tag>', 'keep every snapshot with this tag (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--dry-run', 'show what would be removed, remove nothing')
    .option('--prune', 'run `haul prune` afterwards')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nPeriods are calendar periods in the server\'s time zone (TZ). A snapshot kept by several rules lists them all.')
    .action(async (ids: string[], opts: ForgetCliOptions, cmd: Command) => {
      const policy: RetentionPolicy = Object.fromEntries(policyKeys.filter((k) => opts[k] !== undefined).map((k) => [k, opts[k]]));
      if (opts.keepTag.length) policy.keepTags = opts.keepTag;
      const repo = await openRepository(cmd);
      const result = await forgetSnapshots(repo, {
        ...(opts.client !== undefined ? { client: opts.client } : {}),
        ...(Object.keys(policy).length ? { policy } : {}),
        ids,
        dryRun: Boolean(opts.dryRun),
      });
      const pruned = opts.prune && !opts.dryRun ? await pruneRepository(repo) : undefined;
      output(opts.json, { dryRun: result.dryRun, removed: result.removed, decisions: result.decisions.map((d) => ({ id: d.snapshot.id, client: d.snapshot.client, time: d.snapshot.time, keep: d.keep, reasons: d.reasons })), prune: pruned }, () => {
        const lines: string[] = [];
        let client = '';
        for (const d of result.decisions) {
          if (d.snapshot.client !== client) {
            client = d.snapshot.client;
            lines.push(`client ${client}`);
          }
          lines.push(`  ${d.keep ? 'keep  ' : result.dryRun ? 'would remove' : 'remove'}  ${shortId(d.snapshot.id)}  ${d.snapshot.time}  ${formatBytes(d.snapshot.stats.bytes).padStart(10)}${d.reasons.length ? `  (${d.reasons.join(', ')})` : ''}`);
        }
        const gone = result.decisions.filter((d) => !d.keep).length;
        lines.push(result.dryRun ? `${gone} of ${result.decisions.length} snapshots would be removed (dry run: nothing was changed)` : `removed ${result.removed.length} of ${result.decisions.length} snapshots${pruned ? '' : '; run `haul prune` to free the space their data used'}`);
        return lines.join('\n') + '\n' + (pruned ? formatPruneReport(pruned) : '');
      });
    });
}
