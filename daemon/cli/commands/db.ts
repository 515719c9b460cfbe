import type { Command } from 'commander';
import { databaseLocation } from '../../database/database-url.js';
import { globalOptions, output, stateDirectory } from '../context.js';

export function registerDb(program: Command): void {
  const db = program
    .command('db')
    .description("the daemon's database: SQLite in the state directory, or PostgreSQL when DATABASE_URL is set");
  db.command('migrate')
    .description('bring the database schema up to date (the daemon also does this when it starts)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const location = databaseLocation(stateDirectory(globalOptions(cmd)));
      // Loaded on use: the database clients are large, and most commands never need them.
      const { migrateDatabase } = await import('../../database/open-database.js');
      const result = await migrateDatabase(location);
      output(opts.json, { database: location.display, provider: location.provider, version: result.version, applied: result.applied.map((m) => `${m.version}_${m.name}`) }, () =>
        result.applied.length === 0
          ? `the database ${location.display} is up to date (version ${result.version})\n`
          : `applied ${result.applied.map((m) => `${m.version}_${m.name}`).join(', ')} to ${location.display}; now at version ${result.version}\n`);
    });
}
