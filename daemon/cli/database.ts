// Commands that work on the daemon's database (users, the audit trail, the console) open it
// here: SQLite in the state directory, or DATABASE_URL; migrated before use.
import * as os from 'node:os';
import type { Command } from 'commander';
import { openDatabase, type Database } from '../database/open-database.js';
import { globalOptions, stateDirectory } from './context.js';

export async function withDatabase<T>(cmd: Command, work: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ stateDir: stateDirectory(globalOptions(cmd)) });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/** How the audit trail names an action taken on the command line. */
export function cliActor(): string {
  let name: string;
  try {
    name = os.userInfo().username;
  } catch {
    name = `uid ${process.getuid?.() ?? '?'}`;
  }
  return `cli:${name}`;
}
