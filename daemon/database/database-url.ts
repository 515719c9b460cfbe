// Which database Haul uses: SQLite in the state directory unless DATABASE_URL names another
// SQLite file or a PostgreSQL server.
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';

export type DatabaseProvider = 'sqlite' | 'postgresql';

export interface DatabaseLocation {
  provider: DatabaseProvider;
  url: string;
  /** The URL without its password, for logs and messages. */
  display: string;
}

export function databaseLocation(stateDir: string, url = process.env['DATABASE_URL']): DatabaseLocation {
  if (!url) {
    const file = path.resolve(stateDir, 'haul.db');
    return { provider: 'sqlite', url: `file:${file}`, display: file };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    return { provider: 'postgresql', url, display: url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') };
  }
  if (url.startsWith('file:')) {
    const file = path.resolve(url.slice('file:'.length));
    return { provider: 'sqlite', url: `file:${file}`, display: file };
  }
  throw new HaulError('InvalidArgument', `DATABASE_URL=${JSON.stringify(url.replace(/:[^@/]*@/, ':***@'))} is neither file:PATH (SQLite) nor postgresql://… (PostgreSQL). Fix it, or unset it to use ${path.join(stateDir, 'haul.db')}.`);
}
