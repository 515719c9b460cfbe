// What every daemon link shares. The listings need no daemon: clients, job history, snapshots
// and statistics come from the shared database (backup-records.ts), so these pages keep working
// while daemons restart. And the listeners of live events and status changes. BusDaemonLink (one
// daemon) and FleetDaemonLink (several) build on it.
import type { Database } from '../../daemon/database/open-database.js';
import { BackupRecords } from './backup-records.js';
import type { DaemonEvent, DaemonStatus, InTenants, JobQuery } from './daemon-link.js';

export type DaemonLinkListener = { event(e: DaemonEvent): void; status(s: DaemonStatus): void };

export abstract class DaemonLinkBase {
  protected readonly records: BackupRecords;
  protected readonly listeners = new Set<DaemonLinkListener>();

  constructor(database: Database) {
    this.records = new BackupRecords(database.prisma);
  }

  listClients(query: InTenants = {}) {
    return this.records.clients(query.tenantIds);
  }

  listJobs(query: JobQuery) {
    return this.records.jobs(query);
  }

  getJob(id: number) {
    return this.records.job(id);
  }

  listSnapshots(query: { client?: string } & InTenants) {
    return this.records.snapshots(query.client, query.tenantIds);
  }

  statistics(query: { client?: string } & InTenants) {
    return this.records.statistics(query.client, query.tenantIds);
  }

  subscribe(listener: DaemonLinkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
