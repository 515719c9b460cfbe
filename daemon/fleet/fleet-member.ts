// One daemon's part in the fleet: it joins (daemon-registry.ts), renews its lease every
// heartbeat over a database connection of its own (a burst of job queries on the shared pool
// must not delay a renewal past the lease), and, apart from the renewal, looks for daemons
// whose lease ran out. The one daemon that
// retires a dead daemon's row fails that daemon's unfinished jobs (cause daemon-restart, the
// message says the lease expired) and hands each to `onTakenOver`, which queues it once more.
import { isHaulError } from '../../shared/errors.js';
import type { DatabaseProvider } from '../database/database-url.js';
import type { Database, PrismaClient } from '../database/open-database.js';
import type { JobRecord, JobStore } from '../jobs/job-store.js';
import { DaemonRegistry, type FleetDaemonRecord } from './daemon-registry.js';
import { JobLeases } from './job-leases.js';

export interface FleetMemberOptions {
  prisma: PrismaClient;
  /** A second connection to the same database, for the heartbeat alone. */
  openHeartbeatDatabase: () => Promise<Database>;
  store: JobStore;
  daemonId: string;
  provider: DatabaseProvider;
  databaseName: string;
  busEndpoint: string | null;
  leaseMs: number;
  heartbeatMs: number;
  /** A dead daemon's job was failed here; queue the work again. */
  onTakenOver: (job: JobRecord, from: FleetDaemonRecord) => Promise<void>;
  /** This daemon's row was retired by another daemon (it missed its heartbeats): stop its jobs. */
  onLeaseLost: () => void;
  onError: (err: unknown, what: string) => void;
}

export class FleetMember {
  readonly leases: JobLeases;
  private registry: DaemonRegistry | undefined;
  private heartbeatDatabase: Database | undefined;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(private readonly options: FleetMemberOptions) {
    this.leases = new JobLeases(options.prisma, options.daemonId, options.provider);
  }

  /** Joins the fleet (or refuses, see DaemonRegistry.join) and takes over daemons found dead. */
  async join(): Promise<JobRecord[]> {
    const own = await this.options.openHeartbeatDatabase();
    const registry = new DaemonRegistry(own.prisma, { daemonId: this.options.daemonId, leaseMs: this.options.leaseMs, provider: this.options.provider, databaseName: this.options.databaseName, busEndpoint: this.options.busEndpoint });
    let dead: FleetDaemonRecord[];
    try {
      dead = await registry.join();
    } catch (err) {
      await own.close();
      throw err;
    }
    this.heartbeatDatabase = own;
    this.registry = registry;
    const taken = await this.takeOverAll(dead);
    this.timer = setInterval(() => {
      this.renewing ??= this.renew(registry).finally(() => (this.renewing = undefined));
      this.sweeping ??= this.sweep().finally(() => (this.sweeping = undefined));
    }, this.options.heartbeatMs);
    // Not unref'd: the heartbeat is what keeps an idle daemon (no schedules, no HTTP) alive.
    return taken;
  }

  private async renew(registry: DaemonRegistry): Promise<void> {
    try {
      if (!(await registry.renew())) {
        this.options.onLeaseLost();
        await registry.join();
      }
    } catch (err) {
      this.options.onError(err, 'the heartbeat could not reach the database; the lease runs out if this goes on');
    }
  }

  private async sweep(): Promise<void> {
    try {
      if (this.registry) await this.takeOverAll(await this.registry.expired());
    } catch (err) {
      this.options.onError(err, 'could not look for daemons whose lease expired');
    }
  }

  private async takeOverAll(dead: FleetDaemonRecord[]): Promise<JobRecord[]> {
    const taken: JobRecord[] = [];
    for (const row of dead) {
      if (!(await this.registry!.retire(row))) continue; // another daemon got there first
      for (const job of await this.leases.unfinishedJobsOf(row.id)) {
        // Taking over many jobs takes a while. A daemon that was only starved (not dead) joins
        // again as soon as it finds its row gone, and from then on its jobs are its own: failing
        // one it has claimed since would stop work it is doing (seen in the fleet benchmark).
        if (await this.registry!.rejoined(row)) break;
        const failed = await this.failTakenOver(job, row);
        if (!failed) continue;
        taken.push(failed);
        await this.options.onTakenOver(failed, row).catch((err: unknown) => this.options.onError(err, `could not queue job ${job.id} again after taking it over`));
      }
    }
    return taken;
  }

  private async failTakenOver(job: JobRecord, from: FleetDaemonRecord): Promise<JobRecord | undefined> {
    const message =
      `daemon ${from.id} on ${from.hostname} stopped renewing its lease (last heartbeat ${from.heartbeatAt.toISOString()}, lease ran out ${from.leaseExpiresAt.toISOString()}) while this job was ${job.state}; ` +
      `daemon ${this.options.daemonId} took it over and queues it once more. No snapshot was written; the data it had stored is kept and the next run reuses it.`;
    try {
      return await this.options.store.finish(job.id, { state: 'failed', cause: 'daemon-restart', message });
    } catch (err) {
      // It ended meanwhile (its daemon was alive after all, or a user cancelled it).
      if (isHaulError(err, 'InvalidArgument')) return undefined;
      throw err;
    }
  }

  /** Leaves the fleet: no more heartbeats, and the row goes so nobody takes this daemon over. */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([this.renewing, this.sweeping]);
    // A refused daemon never joined: the row under its ID is the running daemon's.
    const registry = this.registry;
    if (!registry) return;
    this.registry = undefined;
    await registry.leave().catch((err: unknown) => this.options.onError(err, 'could not remove this daemon from the FleetDaemon table; the others ignore it once its lease runs out'));
    await this.heartbeatDatabase?.close();
  }
}
