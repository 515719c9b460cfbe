import type { Command } from 'commander';
import { databaseLocation } from '../../database/database-url.js';
import { databaseStatus, type DatabaseStatus } from '../../database/database-status.js';
import { migrateDatabase } from '../../database/open-database.js';
import { rebuildSnapshotListing, type RebuildResult } from '../../database/snapshot-listing.js';
import { globalOptions, openRepository, output, stateDirectory, withDatabase } from '../context.js';

function describeStatus(s: DatabaseStatus): string {
  const where = `database   ${s.provider} ${s.location}\n`;
  if (!s.exists) return where + 'schema     none: the file does not exist yet (`haul db migrate`, `haul client add` or a backup creates it)\n';
  let schema: string;
  if (s.version === 0) schema = `version 0 of ${s.latestVersion}: not migrated yet; run \`haul db migrate\``;
  else if (s.version < s.latestVersion) schema = `version ${s.version} of ${s.latestVersion}: run \`haul db migrate\` (the daemon also does when it starts)`;
  else if (s.version > s.latestVersion) schema = `version ${s.version}, newer than this Haul knows (${s.latestVersion}): upgrade Haul`;
  else schema = `version ${s.version} (up to date)`;
  const counts = s.counts ? `clients    ${s.counts.clients}\njobs       ${s.counts.jobs}\nsnapshots  ${s.counts.snapshots} listed\n` : '';
  return `${where}schema     ${schema}\n${counts}`;
}

function describeRebuild(r: RebuildResult, database: string, repository: string): string {
  const lines = [
    `rebuilt the snapshot listing in ${database} from the repository ${repository}:`,
    `  ${r.snapshots} snapshot(s) in the repository: ${r.added.length} added, ${r.updated.length} corrected, ${r.unchanged} already right`,
    `  ${r.removed.length} row(s) removed: their snapshots are no longer in the repository`,
  ];
  for (const u of r.unreadable) lines.push(`  warning: ${u.message}; its row, if it had one, was kept. \`haul check\` tells more.`);
  for (const p of r.placeholders) {
    lines.push(`  client ${p.name} had snapshots but no entry: added it disabled, as root@${p.host}:22 with the paths of its latest snapshot. Check it (\`haul client set ${p.name} --address USER@HOST[:PORT] --path …\`), then \`haul client set ${p.name} --enable\`.`);
  }
  return lines.join('\n') + '\n';
}

export function registerDb(program: Command): void {
  const db = program
    .command('db')
    .description("the daemon's database: SQLite in the state directory, or PostgreSQL when DATABASE_URL is set");
  db.command('migrate')
    .description('bring the database schema up to date (the daemon also does this when it starts)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const location = databaseLocation(stateDirectory(globalOptions(cmd)));
      const result = await migrateDatabase(location);
      // Opening also imports an earlier installation's clients.json, and says so.
      await withDatabase(cmd, async () => undefined);
      output(opts.json, { database: location.display, provider: location.provider, version: result.version, applied: result.applied.map((m) => `${m.version}_${m.name}`) }, () =>
        result.applied.length === 0
          ? `the database ${location.display} is up to date (version ${result.version})\n`
          : `applied ${result.applied.map((m) => `${m.version}_${m.name}`).join(', ')} to ${location.display}; now at version ${result.version}\n`);
    });
  db.command('status')
    .description('where the database is, its schema version, and how many clients, jobs and snapshots it holds (changes nothing)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const stateDir = stateDirectory(globalOptions(cmd));
      const status = await databaseStatus(databaseLocation(stateDir), stateDir);
      output(opts.json, status, () => describeStatus(status));
    });
  db.command('rebuild')
    .description("recreate the database's snapshot listing from the repository (after the database was lost, or to correct it)")
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const repo = await openRepository(cmd);
      await withDatabase(cmd, async (database) => {
        const result = await rebuildSnapshotListing(database.prisma, repo);
        output(opts.json, { database: database.location.display, repository: repo.storage.location, ...result }, () =>
          describeRebuild(result, database.location.display, repo.storage.location));
      });
    });
}
