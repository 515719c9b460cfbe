// `haul stats`: per client and repository-wide statistics over a period, from the database
// (the daemon need not run). The JSON shape is documented in docs/cli.md for the console.
import type { Command } from 'commander';
import { formatBytes } from '../../../shared/display.js';
import { HaulError } from '../../../shared/errors.js';
import type { Statistics } from '../../maintenance/statistics.js';
import { parseCount } from '../../service/daemon-config.js';
import { output, withDatabase } from '../context.js';

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

function describeStatistics(s: Statistics, days: number, oneClient: boolean): string {
  const lines = table(
    ['CLIENT', 'USED', 'QUOTA', 'LAST SUCCESS (UTC)', 'OK', 'FAILED', 'SCANNED', 'NEW', 'WIRE', 'STORED'],
    s.clients.map((c) => [
      c.client,
      formatBytes(c.usedBytes),
      c.quotaBytes === null ? '-' : `${formatBytes(c.quotaBytes)} (${Math.round(c.quotaUsed! * 100)}%)`,
      c.lastSuccess ? c.lastSuccess.replace('T', ' ').slice(0, 19) : 'never',
      String(c.totals.succeeded),
      String(c.totals.failed),
      formatBytes(c.totals.bytesScanned),
      formatBytes(c.totals.bytesNew),
      formatBytes(c.totals.bytesOnWire),
      formatBytes(c.totals.bytesStored),
    ]),
  );
  const r = s.repository;
  const repoJob = (what: string, j: Statistics['repository']['lastCheck']) => (j ? `${what} job ${j.id} ${j.state}${j.cause ? ` (${j.cause})` : ''} at ${j.finishedAt}` : `no ${what} yet`);
  lines.push('', `last ${days} days: ${r.totals.jobs} backup jobs (${r.totals.succeeded} succeeded, ${r.totals.failed} failed), ${formatBytes(r.totals.bytesNew)} new, ${formatBytes(r.totals.bytesOnWire)} on the wire; ${formatBytes(r.usedBytes)} stored by ${s.clients.length} client(s)`);
  lines.push(`${repoJob('verify', r.lastCheck)}; ${repoJob('prune', r.lastPrune)}`);
  if (oneClient && s.clients[0]) {
    lines.push('', ...table(['DAY (UTC)', 'JOBS', 'FAILED', 'FILES', 'SCANNED', 'NEW', 'WIRE', 'STORED'], s.clients[0].days.map((d) => [d.date, String(d.jobs), String(d.failed), String(d.files), formatBytes(d.bytesScanned), formatBytes(d.bytesNew), formatBytes(d.bytesOnWire), formatBytes(d.bytesStored)])));
  }
  return lines.join('\n') + '\n';
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('backup statistics per client and for the whole repository: usage against quota, bytes scanned, new, sent and stored, per day')
    .option('--client <name>', 'only this client, with one line per day')
    .option('--days <n>', 'the period, in days back from now (default 30)')
    .option('--json', 'print the result as JSON (the shape is in docs/cli.md)')
    .action(async (opts: { client?: string; days?: string; json?: boolean }, cmd: Command) => {
      const days = opts.days === undefined ? 30 : parseCount(opts.days, '--days');
      const { collectStatistics } = await import('../../maintenance/statistics.js');
      const stats = await withDatabase(cmd, (db) => collectStatistics(db.prisma, { days, ...(opts.client !== undefined ? { client: opts.client } : {}) }));
      if (opts.client !== undefined && stats.clients.length === 0) {
        throw new HaulError('InvalidArgument', `there is no client named ${JSON.stringify(opts.client)}. \`haul client list\` shows the clients.`);
      }
      output(opts.json, stats, () => describeStatistics(stats, days, opts.client !== undefined));
    });
}
