// The backup pages' routes beyond the plain listings: one job with its timeline and log,
// browsing, comparing and downloading snapshots, restores and statistics. Reads of repository
// data and every action go to the daemon through the daemon link; the web process never opens the
// repository. Query strings are checked like bodies, so a bad one gets a message that says which.
// Every client, job and snapshot named goes through the caller's tenant scope first.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { ClientName } from '../../../shared/bus/messages.js';
import { HaulError } from '../../../shared/errors.js';
import { describeIssues, type RouteAction, type RouteContext } from '../route-definition.js';
import { inScope } from './daemon.js';

const OPERATE: readonly ['admin', 'operator'] = ['admin', 'operator'];

const SnapshotRef = z.string().regex(/^(latest|[0-9a-f]{1,64})$/, 'expected a snapshot ID (prefix) or "latest"');
const SnapshotPath = z.string().min(1).max(4096).startsWith('/', 'expected an absolute path in the snapshot').default('/');
const JobNumber = z.coerce.number().int().positive().max(2 ** 31 - 1);

function query<T extends z.ZodType>(ctx: RouteContext<unknown>, schema: T): z.output<T> {
  const parsed = schema.safeParse({ ...(ctx.req.query as Record<string, unknown>), ...ctx.params });
  if (!parsed.success) throw new HaulError('InvalidArgument', describeIssues(parsed.error));
  return parsed.data;
}

const jobQuery = z.object({
  client: ClientName.optional(),
  state: z.enum(['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded', 'failed', 'cancelled']).optional(),
  kind: z.enum(['backup', 'restore', 'check', 'prune']).optional(),
  before: JobNumber.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

export const listJobs: RouteAction = {
  query: jobQuery,
  async handle(ctx) {
    const q = query(ctx, jobQuery);
    const jobs = await ctx.services.daemon.listJobs({ limit: q.limit, ...(q.client ? { client: q.client } : {}), ...(q.state ? { state: q.state } : {}), ...(q.kind ? { kind: q.kind } : {}), ...(q.before ? { beforeId: q.before } : {}), ...inScope(ctx.caller!) });
    return { body: { jobs } };
  },
};

export const getJob: RouteAction = {
  async handle(ctx) {
    const { id } = query(ctx, z.object({ id: JobNumber }));
    await ctx.services.scoped.job(ctx.caller!, id);
    const { logPath: _hidden, ...job } = await ctx.services.daemon.getJob(id);
    return { body: { job } };
  },
};

/** The job's log as the daemon wrote it: plain text, lines already escaped by the daemon; never rendered as HTML. */
const logQuery = z.object({ id: JobNumber, download: z.enum(['1']).optional() });

export const jobLog: RouteAction = {
  query: logQuery,
  async handle(ctx) {
    const { id, download } = query(ctx, logQuery);
    await ctx.services.scoped.job(ctx.caller!, id);
    const job = await ctx.services.daemon.getJob(id);
    if (!job.logPath) throw new HaulError('JobNotFound', `job ${id} has no log yet (it has not started); try again once it runs.`);
    let file: fs.ReadStream;
    try {
      await fs.promises.access(job.logPath, fs.constants.R_OK);
      file = fs.createReadStream(job.logPath);
    } catch (err) {
      throw new HaulError('JobNotFound', `the log of job ${id} (${job.logPath}) cannot be read by the console (${(err as NodeJS.ErrnoException).code ?? 'error'}); run the console as the daemon's user or in its group, or read it with \`haul log ${id}\`.`);
    }
    ctx.res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    if (download) ctx.res.setHeader('Content-Disposition', `attachment; filename="haul-job-${id}.log"`);
    await pipeline(file, ctx.res);
    return { streamed: true };
  },
};

const browseQuery = z.object({ id: SnapshotRef, client: ClientName, path: SnapshotPath, offset: z.coerce.number().int().min(0).default(0) });

export const listDirectory: RouteAction = {
  query: browseQuery,
  async handle(ctx) {
    const q = query(ctx, browseQuery);
    await ctx.services.scoped.snapshot(ctx.caller!, q.client, q.id);
    return { body: await ctx.services.daemon.listDirectory({ snapshot: q.id, client: q.client, path: q.path, offset: q.offset }) };
  },
};

const diffQuery = z.object({ client: ClientName, from: SnapshotRef, to: SnapshotRef, path: SnapshotPath });

export const diffSnapshots: RouteAction = {
  query: diffQuery,
  async handle(ctx) {
    const q = query(ctx, diffQuery);
    await ctx.services.scoped.snapshot(ctx.caller!, q.client, q.from);
    await ctx.services.scoped.snapshot(ctx.caller!, q.client, q.to);
    return { body: await ctx.services.daemon.diffSnapshots(q) };
  },
};

/** A file or folder as tar, streamed from the daemon as the browser takes it; audited, since it hands out backed-up data. */
const downloadQuery = z.object({ id: SnapshotRef, client: ClientName, path: SnapshotPath });

export const downloadSnapshot: RouteAction = {
  query: downloadQuery,
  async handle(ctx) {
    const q = query(ctx, downloadQuery);
    const { tenantId } = await ctx.services.scoped.snapshot(ctx.caller!, q.client, q.id);
    const { name, body } = await ctx.services.daemon.download({ snapshot: q.id, client: q.client, path: q.path });
    const fileName = name.replace(/[^A-Za-z0-9._-]/g, '_');
    ctx.res.setHeader('Content-Type', 'application/x-tar');
    ctx.res.setHeader('Content-Disposition', `attachment; filename="${fileName}"`);
    try {
      await pipeline(body, ctx.res);
    } catch (err) {
      // Headers are gone already: cutting the connection is how the browser learns the download failed.
      ctx.res.destroy(err as Error);
    }
    return { streamed: true, audit: { target: `${q.client} ${q.id}`, detail: { path: q.path }, tenantId } };
  },
};

export const restoreRequest = z.strictObject({
  snapshot: SnapshotRef,
  client: ClientName,
  path: z.string().min(1).max(4096).startsWith('/', 'expected an absolute path in the snapshot'),
  toClient: ClientName,
  target: z.string().min(1).max(4096).startsWith('/', 'expected an absolute directory on the target client'),
  overwrite: z.boolean().default(false),
});

export const restore: RouteAction<z.infer<typeof restoreRequest>> = {
  body: restoreRequest,
  async handle(ctx) {
    await ctx.services.scoped.snapshot(ctx.caller!, ctx.body.client, ctx.body.snapshot);
    const { tenantId } = await ctx.services.scoped.client(ctx.caller!, ctx.body.toClient, OPERATE);
    const { jobId } = await ctx.services.daemon.restore({ ...ctx.body, requestedBy: ctx.caller!.user.username });
    return { status: 202, body: { jobId }, audit: { target: ctx.body.toClient, detail: { jobId, snapshot: ctx.body.snapshot, from: ctx.body.client, path: ctx.body.path, target: ctx.body.target, overwrite: ctx.body.overwrite }, tenantId } };
  },
};

const statisticsQuery = z.object({ client: ClientName.optional() });

export const statistics: RouteAction = {
  query: statisticsQuery,
  async handle(ctx) {
    const q = query(ctx, statisticsQuery);
    return { body: { points: await ctx.services.daemon.statistics({ ...(q.client ? { client: q.client } : {}), ...inScope(ctx.caller!) }) } };
  },
};
