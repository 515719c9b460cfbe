// What `haul db status` reports: where the database is, which schema version it has against the
// one this Haul ships, and how many clients, jobs and listed snapshots it holds. It only looks:
// it never migrates, never imports clients.json, and never creates a SQLite file.
import * as fs from 'node:fs';
import type { DatabaseLocation } from './database-url.js';
import { loadMigrations } from './migrate.js';
import { openDatabase, type PrismaClient } from './open-database.js';

export interface DatabaseStatus {
  provider: DatabaseLocation['provider'];
  /** The file, or the URL with its password hidden. */
  location: string;
  exists: boolean;
  /** Highest applied migration; 0 when none is. */
  version: number;
  /** Highest migration this Haul ships. */
  latestVersion: number;
  /** Row counts, when the schema is there to count them. */
  counts?: { clients: number; jobs: number; snapshots: number };
}

async function appliedVersion(prisma: PrismaClient): Promise<number> {
  try {
    const rows = await prisma.$queryRawUnsafe<{ version: number | bigint | null }[]>('SELECT MAX("version") AS "version" FROM "_haul_migrations"');
    return Number(rows[0]?.version ?? 0);
  } catch {
    // No migration table: nothing was ever applied.
    return 0;
  }
}

export async function databaseStatus(location: DatabaseLocation, stateDir: string): Promise<DatabaseStatus> {
  const status: DatabaseStatus = {
    provider: location.provider,
    location: location.display,
    exists: true,
    version: 0,
    latestVersion: loadMigrations(location.provider).length,
  };
  if (location.provider === 'sqlite' && !fs.existsSync(location.display)) return { ...status, exists: false };
  const db = await openDatabase({ stateDir, url: location.url, migrate: false });
  try {
    status.version = await appliedVersion(db.prisma);
    if (status.version > 0) {
      const [clients, jobs, snapshots] = await Promise.all([db.prisma.client.count(), db.prisma.job.count(), db.prisma.snapshot.count()]);
      status.counts = { clients, jobs, snapshots };
    }
    return status;
  } finally {
    await db.close();
  }
}
