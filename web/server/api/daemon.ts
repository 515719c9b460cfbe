// Backups, through the daemon link: status, clients, jobs, snapshots, and starting or cancelling a
// job. The same job actions serve the REST API and socket.io events.
import { z } from 'zod';
import { HaulError } from '../../../shared/errors.js';
import type { Caller } from '../authentication.js';
import type { ConsoleServices } from '../console-services.js';
import type { RouteAction } from '../route-definition.js';

export const VERSION = '0.1.0';

export const status: RouteAction = {
  handle: async (ctx) => ({ body: { daemon: ctx.services.daemon.status(), version: VERSION } }),
};

function optionalClient(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 63) throw new HaulError('InvalidArgument', 'the query parameter client must be a client name (1 to 63 characters).');
  return value;
}

export const listClients: RouteAction = {
  handle: async (ctx) => ({ body: { clients: await ctx.services.daemon.listClients() } }),
};

export const addClientRequest = z.object({
  name: z.string().min(1).max(63),
  address: z.string().min(1).max(300),
  paths: z.array(z.string().min(1).max(4096)).min(1, 'give at least one path to back up').max(64),
  excludes: z.array(z.string().min(1).max(4096)).max(256).default([]),
  schedule: z.string().max(200).nullable().default(null),
}).strict();

export const addClient: RouteAction<z.infer<typeof addClientRequest>> = {
  body: addClientRequest,
  async handle(ctx) {
    const added = await ctx.services.daemon.addClient(ctx.body);
    return { status: 201, body: added, audit: { target: added.client, detail: { address: added.address, paths: ctx.body.paths } } };
  },
};

export const pinHostKey: RouteAction = {
  async handle(ctx) {
    const client = ctx.params['name']!;
    const pinned = await ctx.services.daemon.pinHostKey({ client });
    return { body: pinned, audit: { target: client, detail: { previous: pinned.previous, fingerprint: pinned.fingerprint } } };
  },
};

export const listSnapshots: RouteAction = {
  async handle(ctx) {
    const client = optionalClient(ctx.req.query['client']);
    return { body: { snapshots: await ctx.services.daemon.listSnapshots(client ? { client } : {}) } };
  },
};

export const runJobRequest = z.object({ client: z.string().min(1).max(63) }).strict();
export const cancelJobRequest = z.object({ jobId: z.number().int().positive() }).strict();

export async function runJob(services: ConsoleServices, caller: Caller, request: z.infer<typeof runJobRequest>) {
  const { jobId } = await services.daemon.runJob({ client: request.client, requestedBy: caller.user.username });
  return { result: { jobId }, audit: { target: request.client, detail: { jobId } } };
}

export async function cancelJob(services: ConsoleServices, caller: Caller, request: z.infer<typeof cancelJobRequest>) {
  await services.daemon.cancelJob({ jobId: request.jobId, requestedBy: caller.user.username });
  return { result: { ok: true }, audit: { target: `job ${request.jobId}`, detail: { jobId: request.jobId } } };
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
