// The objects a route names (a client, a job, a snapshot), looked up in the database and checked
// against the caller's tenant scope before the handler touches them. An object outside the scope
// gets exactly the answer of one that does not exist, so a guessed name or ID tells nothing; an
// object in the scope that needs a role the caller lacks on its tenant is refused as such.
import type { PrismaClient } from '../../daemon/database/open-database.js';
import { HaulError } from '../../shared/errors.js';
import type { Role } from '../../shared/roles.js';
import type { Caller } from './authentication.js';
import type { DaemonStatus } from './daemon-link.js';
import { forbidden } from './route-definition.js';

export interface ScopedClient {
  /** Undefined only for an admin naming a client that does not exist (the daemon then answers). */
  id: number | undefined;
  name: string;
  tenantId: number | null;
}

export interface ScopedJob {
  id: number;
  tenantId: number | null;
}

export function noSuchClient(name: string): HaulError {
  return new HaulError('ClientNotFound', `there is no client named ${JSON.stringify(name)}; the Clients page (or GET /api/clients) lists the clients you can see.`);
}

export function noSuchJob(id: number): HaulError {
  return new HaulError('JobNotFound', `there is no job ${id}; the Jobs page lists them.`);
}

export function noSuchSnapshot(ref: string, client: string): HaulError {
  return new HaulError('SnapshotNotFound', `client ${client} has no snapshot ${ref}; the Snapshots page lists them.`);
}

export class ScopedObjects {
  constructor(private readonly prisma: PrismaClient) {}

  /** A client the caller may see, acting with one of `roles` on its tenant when given. */
  async client(caller: Caller, name: string, roles?: readonly Role[]): Promise<ScopedClient> {
    const row = await this.prisma.client.findUnique({ where: { name }, select: { id: true, tenantId: true } });
    const tenantId = row?.tenantId ?? null;
    if (!caller.scope.sees(tenantId)) {
      if (!row && caller.scope.everywhere) return { id: undefined, name, tenantId: null };
      throw noSuchClient(name);
    }
    this.requireRole(caller, tenantId, roles);
    return { id: row?.id, name, tenantId };
  }

  /** A job the caller may see; a job whose client was removed belongs to no tenant, so only admins see it. */
  async job(caller: Caller, id: number, roles?: readonly Role[]): Promise<ScopedJob> {
    const row = await this.prisma.job.findUnique({ where: { id }, select: { client: { select: { tenantId: true } } } });
    const tenantId = row?.client?.tenantId ?? null;
    if (!caller.scope.sees(tenantId)) {
      if (!row && caller.scope.everywhere) return { id, tenantId: null };
      throw noSuchJob(id);
    }
    this.requireRole(caller, tenantId, roles);
    return { id, tenantId };
  }

  /**
   * A snapshot of a client the caller may see. For a member, a snapshot ID (prefix) must name a
   * snapshot of that client in the listing: the daemon resolves IDs across the repository, and
   * another tenant's snapshot must not be reachable through one's own client's name.
   */
  async snapshot(caller: Caller, clientName: string, ref: string, roles?: readonly Role[]): Promise<ScopedClient> {
    const client = await this.client(caller, clientName, roles);
    if (caller.scope.everywhere || ref === 'latest') return client;
    const found = await this.prisma.snapshot.findFirst({ where: { clientId: client.id!, id: { startsWith: ref } }, select: { id: true } });
    if (!found) throw noSuchSnapshot(ref, clientName);
    return client;
  }

  /** The daemon's status as the caller may see it: only its tenants' running jobs, and its tenants' queue length. */
  async status(caller: Caller, status: DaemonStatus): Promise<DaemonStatus> {
    const tenantIds = caller.scope.tenantIds();
    if (tenantIds === undefined || !status.connected) return status;
    const running = status.running ?? [];
    const clientIds = [...new Set(running.flatMap((j) => (j.clientId === null ? [] : [j.clientId])))];
    const visible = new Set((await this.prisma.client.findMany({ where: { id: { in: clientIds }, tenantId: { in: tenantIds } }, select: { id: true } })).map((c) => c.id));
    const queuedTotal = await this.prisma.job.count({ where: { state: 'queued', client: { tenantId: { in: tenantIds } } } });
    return { ...status, running: running.filter((j) => j.clientId !== null && visible.has(j.clientId)), queuedTotal };
  }

  /** The tenant a client belongs to, for the audit entry of an action on it. */
  async tenantOfClient(name: string): Promise<number | null> {
    return (await this.prisma.client.findUnique({ where: { name }, select: { tenantId: true } }))?.tenantId ?? null;
  }

  async tenantOfClientId(id: number): Promise<number | null> {
    return (await this.prisma.client.findUnique({ where: { id }, select: { tenantId: true } }))?.tenantId ?? null;
  }

  /** Null for a job that does not exist (yet) or whose client was removed: only admins see those. */
  async tenantOfJob(id: number): Promise<number | null> {
    return (await this.prisma.job.findUnique({ where: { id }, select: { client: { select: { tenantId: true } } } }))?.client?.tenantId ?? null;
  }

  async tenantName(tenantId: number | null): Promise<string | null> {
    if (tenantId === null) return null;
    return (await this.prisma.tenant.findUnique({ where: { id: tenantId }, select: { name: true } }))?.name ?? null;
  }

  private requireRole(caller: Caller, tenantId: number | null, roles: readonly Role[] | undefined): void {
    if (!roles) return;
    const held = caller.scope.roleIn(tenantId);
    if (held !== undefined && roles.includes(held)) return;
    throw forbidden({ ...caller, role: held ?? caller.role }, 'do that on this tenant', roles);
  }
}
