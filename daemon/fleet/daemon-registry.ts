// The daemons sharing one database, each a FleetDaemon row with a lease its heartbeat renews.
// Joining refuses a second live daemon under the same ID, and any second daemon on SQLite (one
// file, one daemon). A row whose lease ran out belongs to a dead daemon: `retire` removes it for
// exactly one caller, which then takes its jobs over (fleet-member.ts).
import * as os from 'node:os';
import type { FleetDaemon } from '../../prisma/generated/sqlite/client.js';
import { processAlive } from '../../shared/process-alive.js';
import { HaulError } from '../../shared/errors.js';
import type { PrismaClient } from '../database/open-database.js';
import type { DatabaseProvider } from '../database/database-url.js';

export type FleetDaemonRecord = FleetDaemon;

export interface DaemonRegistryOptions {
  daemonId: string;
  leaseMs: number;
  provider: DatabaseProvider;
  /** The database as users know it, for messages. */
  databaseName: string;
  /** Where consoles reach this daemon's bus (null: no bus); consoles with --fleet read it here. */
  busEndpoint: string | null;
}

export class DaemonRegistry {
  private readonly hostname = os.hostname();

  constructor(private readonly prisma: PrismaClient, private readonly options: DaemonRegistryOptions) {}

  /** Alive: its lease runs and, when it ran on this machine, its process still exists. */
  private alive(row: FleetDaemonRecord, now: Date): boolean {
    if (row.leaseExpiresAt <= now) return false;
    return row.hostname !== this.hostname || processAlive(row.pid);
  }

  /**
   * Adds this daemon's row, or refuses with what to do. Returns the rows of dead daemons found
   * on the way (their jobs are to be taken over); this daemon's own earlier row is not among them.
   */
  async join(): Promise<FleetDaemonRecord[]> {
    const now = new Date();
    const { daemonId, provider, databaseName } = this.options;
    const rows = await this.prisma.fleetDaemon.findMany({ orderBy: { id: 'asc' } });
    for (const row of rows.filter((r) => this.alive(r, now))) {
      const who = `on ${row.hostname} (pid ${row.pid}, last heartbeat ${row.heartbeatAt.toISOString()})`;
      if (row.id === daemonId) {
        throw new HaulError('DaemonAlreadyRunning', `a daemon with the ID ${JSON.stringify(daemonId)} already runs ${who} on ${databaseName}. Stop it, or give each daemon its own ID (--daemon-id, HAUL_DAEMON_ID).`);
      }
      if (provider === 'sqlite') {
        throw new HaulError('DaemonAlreadyRunning', `daemon ${JSON.stringify(row.id)} already runs ${who} on the SQLite database ${databaseName}, and SQLite serves one daemon. Stop that daemon first, or run several daemons on one PostgreSQL database (DATABASE_URL=postgresql://…, see docs/deployment.md).`);
      }
    }
    await this.prisma.fleetDaemon.upsert({
      where: { id: daemonId },
      create: { id: daemonId, hostname: this.hostname, pid: process.pid, startedAt: now, busEndpoint: this.options.busEndpoint, ...this.leaseFrom(now) },
      update: { hostname: this.hostname, pid: process.pid, startedAt: now, busEndpoint: this.options.busEndpoint, ...this.leaseFrom(now) },
    });
    return rows.filter((r) => r.id !== daemonId && !this.alive(r, now));
  }

  private leaseFrom(now: Date): { heartbeatAt: Date; leaseExpiresAt: Date } {
    return { heartbeatAt: now, leaseExpiresAt: new Date(now.getTime() + this.options.leaseMs) };
  }

  /** Renews this daemon's lease; false when its row is gone (another daemon took it over). */
  async renew(): Promise<boolean> {
    const renewed = await this.prisma.fleetDaemon.updateMany({ where: { id: this.options.daemonId }, data: this.leaseFrom(new Date()) });
    return renewed.count === 1;
  }

  /** Other daemons whose lease has run out. */
  expired(now = new Date()): Promise<FleetDaemonRecord[]> {
    return this.prisma.fleetDaemon.findMany({ where: { id: { not: this.options.daemonId }, leaseExpiresAt: { lt: now } }, orderBy: { id: 'asc' } });
  }

  /** Removes a dead daemon's row; true for exactly one of several daemons racing to do so. */
  async retire(row: FleetDaemonRecord): Promise<boolean> {
    const removed = await this.prisma.fleetDaemon.deleteMany({ where: { id: row.id, leaseExpiresAt: row.leaseExpiresAt } });
    return removed.count === 1;
  }

  /** After `retire(row)`: whether that daemon has joined again since (its row is back). */
  async rejoined(row: FleetDaemonRecord): Promise<boolean> {
    return (await this.prisma.fleetDaemon.count({ where: { id: row.id } })) > 0;
  }

  /** This daemon stops: its row goes, so nobody takes over jobs it ended itself. */
  async leave(): Promise<void> {
    await this.prisma.fleetDaemon.deleteMany({ where: { id: this.options.daemonId } });
  }

  list(): Promise<FleetDaemonRecord[]> {
    return this.prisma.fleetDaemon.findMany({ orderBy: { id: 'asc' } });
  }
}
