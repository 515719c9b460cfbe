// Who gets which live event. A socket joins the dashboard room and the rooms of the jobs it
// watches; an event goes to the sockets of those rooms whose caller's tenant scope covers the
// job's client, decided here on the server for every socket, so another tenant's job never
// reaches a browser, whatever rooms it asked to join. Events are delivered in the order the
// daemon sent them.
import type { Server, Socket } from 'socket.io';
import type { Caller } from './authentication.js';
import type { ConsoleServices } from './console-services.js';
import type { DaemonEvent, DaemonStatus } from './daemon-link.js';

export const DASHBOARD_ROOM = 'dashboard';
/** One job's page: its log lines go only here, so the dashboard is not flooded with every job's log. */
export const jobRoom = (jobId: number) => `job:${jobId}`;

export interface SocketAuth {
  caller: Caller;
  /** How to check the caller again: the cookie and token the handshake carried. */
  headers: { cookie?: string; authorization?: string };
}

/** Jobs whose tenant is known; a job's progress and log lines come many times a second. */
const JOB_CACHE_LIMIT = 10_000;

export class TenantFanOut {
  private readonly jobTenants = new Map<number, number | null>();
  private delivery: Promise<void> = Promise.resolve();

  constructor(private readonly io: Server, private readonly services: ConsoleServices, private readonly log: (message: string) => void) {}

  event(e: DaemonEvent): void {
    this.enqueue(() => this.deliverEvent(e));
  }

  status(s: DaemonStatus): void {
    this.enqueue(() => this.deliverStatus(s));
  }

  private enqueue(work: () => Promise<void>): void {
    this.delivery = this.delivery.then(work).catch((err: unknown) => this.log(`a live event was not delivered: ${(err as Error)?.stack ?? String(err)}`));
  }

  private async deliverEvent(e: DaemonEvent): Promise<void> {
    const job = e['job'] as { id?: number; clientId?: number | null } | undefined;
    const jobId = typeof e['jobId'] === 'number' ? e['jobId'] : job?.id;
    if (jobId === undefined) {
      this.emit([DASHBOARD_ROOM], () => true, 'daemon:event', e);
      return;
    }
    // A state change names the client: look its tenant up afresh (the client may have moved).
    if (e.type === 'job-state') this.remember(jobId, await this.tenantOfClient(job?.clientId ?? null));
    const tenantId = this.jobTenants.has(jobId) ? this.jobTenants.get(jobId)! : await this.tenantOfJob(jobId);
    const rooms = e.type === 'job-log' ? [jobRoom(jobId)] : [DASHBOARD_ROOM, jobRoom(jobId)];
    this.emit(rooms, (caller) => caller.scope.sees(tenantId), 'daemon:event', e);
    if (e.type === 'job-state' && ['succeeded', 'failed', 'cancelled'].includes(String((e['job'] as { state?: unknown }).state))) this.jobTenants.delete(jobId);
  }

  private async deliverStatus(s: DaemonStatus): Promise<void> {
    const scoped = new Map<string, Promise<DaemonStatus>>();
    for (const socket of this.socketsIn([DASHBOARD_ROOM])) {
      const caller = (socket.data as SocketAuth).caller;
      // One query per distinct scope, not per socket.
      const key = JSON.stringify(caller.scope.tenantIds() ?? 'all');
      if (!scoped.has(key)) scoped.set(key, this.services.scoped.status(caller, s));
      socket.emit('daemon:status', await scoped.get(key)!);
    }
  }

  private emit(rooms: string[], allowed: (caller: Caller) => boolean, event: string, payload: unknown): void {
    for (const socket of this.socketsIn(rooms)) {
      if (allowed((socket.data as SocketAuth).caller)) socket.emit(event, payload);
    }
  }

  /** Each connected socket in any of the rooms, once. */
  private socketsIn(rooms: string[]): Socket[] {
    const ids = new Set<string>();
    for (const room of rooms) for (const id of this.io.sockets.adapter.rooms.get(room) ?? []) ids.add(id);
    return [...ids].flatMap((id) => this.io.sockets.sockets.get(id) ?? []);
  }

  private remember(jobId: number, tenantId: number | null): void {
    if (this.jobTenants.size >= JOB_CACHE_LIMIT) this.jobTenants.delete(this.jobTenants.keys().next().value!);
    this.jobTenants.set(jobId, tenantId);
  }

  private async tenantOfClient(clientId: number | null): Promise<number | null> {
    if (clientId === null) return null;
    return (await this.services.scoped.tenantOfClientId(clientId)) ?? null;
  }

  private async tenantOfJob(jobId: number): Promise<number | null> {
    const tenantId = await this.services.scoped.tenantOfJob(jobId);
    // Not remembered while unknown: the job's row may not be written yet.
    if (tenantId !== null) this.remember(jobId, tenantId);
    return tenantId;
  }
}
