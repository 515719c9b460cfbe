// The audit trail for admins and auditors: read it page by page, and verify its hash chain.
import { HaulError } from '../../../shared/errors.js';
import type { RouteAction } from '../route-definition.js';

function positiveInteger(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isSafeInteger(n) || n <= 0) throw new HaulError('InvalidArgument', `the query parameter ${name} must be a positive whole number, not ${JSON.stringify(value)}.`);
  return n;
}

export const listAudit: RouteAction = {
  async handle(ctx) {
    const limit = positiveInteger(ctx.req.query['limit'], 'limit');
    const beforeId = positiveInteger(ctx.req.query['before'], 'before');
    const entries = await ctx.services.audit.list({ limit: limit ?? 100, ...(beforeId === undefined ? {} : { beforeId }) });
    return { body: { entries } };
  },
};

export const verifyAudit: RouteAction = {
  async handle(ctx) {
    const result = await ctx.services.audit.verify();
    return { body: result, audit: { detail: result.ok ? { ok: true, entries: result.entries, head: result.head } : { ok: false, brokenId: result.brokenId } } };
  },
};
