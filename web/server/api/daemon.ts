// Backups, through the daemon link: status, clients, jobs, snapshots, and starting or cancelling a
// job. The same job actions serve the REST API and socket.io events. Every listing and every
// named object goes through the caller's tenant scope (scoped-objects.ts).
import { z } from 'zod';
import { HaulError } from '../../../shared/errors.js';
import type { Caller } from '../authentication.js';
import type { ConsoleServices } from '../console-services.js';
import type { RouteAction } from '../route-definition.js';

export const VERSION = '0.1.0';

export const status: RouteAction = {
  handle: async (ctx) => ({ body: { daemon: await ctx.services.scoped.status(ctx.caller!, ctx.services.daemon.status()), version: VERSION } }),
};

const OPERATE: readonly ['admin', 'operator'] = ['admin', 'operator'];

function optionalClient(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 63) throw new HaulError('InvalidArgument', 'the query parameter client must be a client name (1 to 63 characters).');
  return value;
}

export const listClients: RouteAction = {
  handle: async (ctx) => ({ body: { clients: await ctx.services.daemon.listClients(inScope(ctx.caller!)) } }),
};

/** The listing filter of the caller's scope: `{}` for an admin, the tenants otherwise. */
export function inScope(caller: Caller): { tenantIds?: number[] } {
  const tenantIds = caller.scope.tenantIds();
  return tenantIds === undefined ? {} : { tenantIds };
}

export const addClientRequest = z.object({
  name: z.string().min(1).max(63),
  address: z.string().min(1).max(300),
  paths: z.array(z.string().min(1).max(4096)).min(1, 'give at least one path to back up').max(64),
  excludes: z.array(z.string().min(1).max(4096)).max(256).default([]),
  schedule: z.string().max(200).nullable().default(null),
  /** The tenant the client joins: for a member, one it operates (needed when it operates several). */
  tenant: z.string().min(1).max(63).optional(),
}).strict();

/** The tenant a new client joins: one the caller operates; another tenant's name is answered like an unknown one. */
async function tenantForNewClient(services: ConsoleServices, caller: Caller, named: string | undefined): Promise<string | undefined> {
  if (caller.scope.everywhere) return named;
  const operated = caller.user.grants.filter((g) => g.role === 'operator' && caller.scope.roleIn(g.tenantId) === 'operator');
  if (named === undefined) {
    if (operated.length === 1) return operated[0]!.tenant;
    throw new HaulError('InvalidArgument', `you operate ${operated.length} tenants (${operated.map((g) => g.tenant).join(', ')}); say which one the client joins with "tenant".`);
  }
  if (!operated.some((g) => g.tenant === named)) throw new HaulError('TenantNotFound', `there is no tenant named ${JSON.stringify(named)} that you operate; your tenants are ${operated.map((g) => g.tenant).join(', ')}.`);
  return (await services.tenants.get(named)).name;
}

export const addClient: RouteAction<z.infer<typeof addClientRequest>> = {
  body: addClientRequest,
  async handle(ctx) {
    const { tenant: named, ...client } = ctx.body;
    const tenant = await tenantForNewClient(ctx.services, ctx.caller!, named);
    const added = await ctx.services.daemon.addClient({ ...client, ...(tenant === undefined ? {} : { tenant }) });
    return { status: 201, body: added, audit: { target: added.client, detail: { address: added.address, paths: ctx.body.paths, ...(tenant === undefined ? {} : { tenant }) }, tenantId: await ctx.services.scoped.tenantOfClient(added.client) } };
  },
};

export const listSnapshots: RouteAction = {
  async handle(ctx) {
    const client = optionalClient(ctx.req.query['client']);
    return { body: { snapshots: await ctx.services.daemon.listSnapshots({ ...(client ? { client } : {}), ...inScope(ctx.caller!) }) } };
  },
};

export const runJobRequest = z.object({ client: z.string().min(1).max(63) }).strict();
export const cancelJobRequest = z.object({ jobId: z.number().int().positive() }).strict();

export async function runJob(services: ConsoleServices, caller: Caller, request: z.infer<typeof runJobRequest>) {
  const { tenantId } = await services.scoped.client(caller, request.client, OPERATE);
  const { jobId } = await services.daemon.runJob({ client: request.client, requestedBy: caller.user.username });
  return { result: { jobId }, audit: { target: request.client, detail: { jobId }, tenantId } };
}

export async function cancelJob(services: ConsoleServices, caller: Caller, request: z.infer<typeof cancelJobRequest>) {
  const { tenantId } = await services.scoped.job(caller, request.jobId, OPERATE);
  await services.daemon.cancelJob({ jobId: request.jobId, requestedBy: caller.user.username });
  return { result: { ok: true }, audit: { target: `job ${request.jobId}`, detail: { jobId: request.jobId }, tenantId } };
}

export const runJobRoute: RouteAction<z.infer<typeof runJobRequest>> = {
  body: runJobRequest,
  async handle(ctx) {
    const { result, audit } = await runJob(ctx.services, ctx.caller!, ctx.body);
    return { status: 202, body: result, audit };
  },
};

export const cancelJobRoute: RouteAction = {
  async handle(ctx) {
    const jobId = Number(ctx.params['id']);
    if (!Number.isSafeInteger(jobId) || jobId <= 0) throw new HaulError('InvalidArgument', `${JSON.stringify(ctx.params['id'])} is not a job number.`);
    const { result, audit } = await cancelJob(ctx.services, ctx.caller!, { jobId });
    return { body: result, audit };
  },
};
