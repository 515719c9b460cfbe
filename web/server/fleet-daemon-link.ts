// The console's link to every daemon of a fleet (`haul web --fleet`): the daemons sharing one
// PostgreSQL database each record their bus endpoint in the FleetDaemon table, and this link
// keeps one BusDaemonLink per live daemon found there (re-read every few seconds). Events of all
// daemons are merged for the browsers; a command about a job goes to the daemon that holds it
// (Job.daemonId, the lease's owner), and run, restore and browsing go to the least busy daemon
// connected, since all of them reach the same repository and clients.
import type { CurveClientKeys } from '../../shared/bus/curve-keys.js';
import { HaulError } from '../../shared/errors.js';
import type { Database } from '../../daemon/database/open-database.js';
import { DaemonLinkBase } from './daemon-link-base.js';
import { BusDaemonLink } from './bus-daemon-link.js';
import type { DaemonLink, DaemonStatus, FleetDaemonStatus, NewClient, RestoreRequest } from './daemon-link.js';

export interface FleetDaemonLinkOptions {
  database: Database;
  /** The client key file's keys, for daemons advertising tcp:// (the fleet shares one bus server key, docs/deployment.md). */
  curve?: CurveClientKeys;
  /** How often the FleetDaemon table is re-read, and each daemon checked (default 5 s). */
  checkEveryMs?: number;
  timeoutMs?: number;
  log?: (message: string) => void;
}

interface Member {
  endpoint: string;
  link: BusDaemonLink;
  unsubscribe: () => void;
}

export class FleetDaemonLink extends DaemonLinkBase implements DaemonLink {
  private readonly members = new Map<string, Member>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** Why the last read of the FleetDaemon table failed, while it fails. */
  private registryError: string | undefined;
  private closed = false;

  constructor(private readonly options: FleetDaemonLinkOptions) {
    super(options.database);
  }

  private get checkEveryMs(): number {
    return this.options.checkEveryMs ?? 5000;
  }

  /** Reads the daemons now and keeps following them; resolves after the first round of connections. */
  async start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh(), this.checkEveryMs);
    this.timer.unref();
    await this.refresh();
  }

  /** One refresh at a time: links to daemons that joined, drops those that left or whose lease ran out. */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    let rows: { id: string; busEndpoint: string | null }[];
    try {
      rows = await this.options.database.prisma.fleetDaemon.findMany({ where: { leaseExpiresAt: { gt: new Date() }, busEndpoint: { not: null } }, select: { id: true, busEndpoint: true }, orderBy: { id: 'asc' } });
      this.registryError = undefined;
    } catch (err) {
      this.registryError = (err as Error).message.trim().split('\n').at(-1);
      this.announce();
      return;
    }
    const live = new Map(rows.map((r) => [r.id, r.busEndpoint!]));
    const starting: Promise<void>[] = [];
    for (const [id, member] of this.members) {
      if (live.get(id) === member.endpoint) continue;
      this.members.delete(id);
      member.unsubscribe();
      await member.link.close();
      this.options.log?.(`daemon ${id} left the fleet (or moved its bus); no longer following ${member.endpoint}`);
    }
    for (const [id, endpoint] of live) {
      if (this.members.has(id) || this.closed) continue;
      const link = new BusDaemonLink({ endpoint, database: this.options.database, ...(this.options.curve ? { curve: this.options.curve } : {}), checkEveryMs: this.checkEveryMs, ...(this.options.timeoutMs !== undefined ? { timeoutMs: this.options.timeoutMs } : {}), ...(this.options.log ? { log: (m: string) => this.options.log!(`daemon ${id}: ${m}`) } : {}) });
      const unsubscribe = link.subscribe({
        event: (e) => {
          for (const l of this.listeners) l.event(e);
        },
        status: () => this.announce(),
      });
      this.members.set(id, { endpoint, link, unsubscribe });
      starting.push(link.start());
    }
    await Promise.all(starting);
    this.announce();
  }

  private announce(): void {
    const status = this.status();
    for (const l of this.listeners) l.status(status);
  }

  status(): DaemonStatus {
    const daemons: FleetDaemonStatus[] = [...this.members].map(([id, m]) => ({ id, endpoint: m.endpoint, ...m.link.status() }));
    const connected = daemons.filter((d) => d.connected);
    if (daemons.length === 0) {
      const why = this.registryError !== undefined ? `the console cannot read the FleetDaemon table (${this.registryError})` : 'no live Haul daemon has recorded its bus in the database';
      return { connected: false, message: `${why}; start \`haul daemon\` on this database. The console looks again every ${this.checkEveryMs / 1000} s.`, daemons };
    }
    const who = daemons.map((d) => `${d.id}: ${d.message}`).join('; ');
    return {
      connected: connected.length > 0,
      message: `${connected.length} of ${daemons.length} daemon${daemons.length === 1 ? '' : 's'} connected (${who})`,
      running: connected.flatMap((d) => d.running ?? []),
      queuedTotal: connected.reduce((sum, d) => sum + (d.queuedTotal ?? 0), 0),
      daemons,
    };
  }

  /** The connected daemon with the fewest jobs, for work any daemon can do. */
  private anyDaemon(): DaemonLink {
    const connected = [...this.members.values()].map((m) => m.link).filter((l) => l.status().connected);
    const load = (l: DaemonLink) => (l.status().running?.length ?? 0) + (l.status().queuedTotal ?? 0);
    const best = connected.sort((a, b) => load(a) - load(b))[0];
    if (!best) throw new HaulError('DaemonNotConnected', this.status().message);
    return best;
  }

  /** The daemon holding the job (its lease), or any daemon when the job is unknown (it answers JobNotFound). */
  private async daemonOfJob(jobId: number): Promise<DaemonLink> {
    const job = await this.options.database.prisma.job.findUnique({ where: { id: jobId }, select: { daemonId: true } });
    if (job?.daemonId == null) return this.anyDaemon();
    const member = this.members.get(job.daemonId);
    if (member?.link.status().connected) return member.link;
    const why = member ? member.link.status().message : 'it has no live entry in the FleetDaemon table';
    throw new HaulError('DaemonNotConnected', `job ${jobId} belongs to daemon ${job.daemonId}, which the console cannot reach (${why.replace(/\.$/, '')}). If that daemon died, another takes its jobs over once its lease runs out; try again then.`);
  }

  async addClient(client: NewClient) {
    const chosen = this.anyDaemon();
    const added = await chosen.addClient(client);
    // The daemon that added it schedules it; the others learn of it by reloading.
    await this.reloadOthers(chosen);
    return added;
  }

  private async reloadOthers(done: DaemonLink): Promise<void> {
    const others = [...this.members].filter(([, m]) => m.link !== done && m.link.status().connected);
    await Promise.all(others.map(([id, m]) => m.link.reloadConfig().catch((err: unknown) => this.options.log?.(`daemon ${id} could not reload its clients: ${(err as Error).message}`))));
  }

  pinHostKey(request: { client: string; fingerprint?: string }) {
    return this.anyDaemon().pinHostKey(request);
  }

  runJob(request: { client: string; requestedBy: string }) {
    return this.anyDaemon().runJob(request);
  }

  async cancelJob(request: { jobId: number; requestedBy: string }): Promise<void> {
    await (await this.daemonOfJob(request.jobId)).cancelJob(request);
  }

  listDirectory(request: { snapshot: string; client: string; path: string; offset: number }) {
    return this.anyDaemon().listDirectory(request);
  }

  diffSnapshots(request: { client: string; from: string; to: string; path: string }) {
    return this.anyDaemon().diffSnapshots(request);
  }

  download(request: { snapshot: string; client: string; path: string }) {
    return this.anyDaemon().download(request);
  }

  restore(request: RestoreRequest) {
    return this.anyDaemon().restore(request);
  }

  /** Every connected daemon re-reads clients and settings; one that is not connected reads them when it next starts. */
  async reloadConfig(): Promise<{ message: string }> {
    const connected = [...this.members].filter(([, m]) => m.link.status().connected);
    if (connected.length === 0) throw new HaulError('DaemonNotConnected', this.status().message);
    const answers = await Promise.all(connected.map(async ([id, m]) => `${id}: ${(await m.link.reloadConfig()).message}`));
    const missed = this.members.size - connected.length;
    return { message: answers.join('; ') + (missed > 0 ? `; ${missed} daemon(s) not connected read the change when they restart` : '') };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.refreshing;
    for (const member of this.members.values()) {
      member.unsubscribe();
      await member.link.close();
    }
    this.members.clear();
  }
}
