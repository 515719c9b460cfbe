// The audit trail for admins and auditors: read it page by page, and verify its hash chain. An
// auditor of some tenants reads only the entries about those tenants.
import { HaulError } from '../../../shared/errors.js';
import type { RouteAction } from '../route-definition.js';

const AUDIT_READERS: readonly ['admin', 'auditor'] = ['admin', 'auditor'];

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
    const tenantIds = ctx.caller!.scope.tenantIds(AUDIT_READERS);
    const entries = await ctx.services.audit.list({ limit: limit ?? 100, ...(beforeId === undefined ? {} : { beforeId }), ...(tenantIds === undefined ? {} : { tenantIds }) });
    return { body: { entries: entries.map(({ tenantId: _internal, ...entry }) => entry) } };
  },
};

export const verifyAudit: RouteAction = {
  async handle(ctx) {
    const result = await ctx.services.audit.verify();
    const tenantIds = ctx.caller!.scope.tenantIds(AUDIT_READERS);
    if (tenantIds !== undefined) {
      // The chain is one for all tenants: a member learns whether it holds, not how long it is or where it broke.
      const entries = await ctx.services.audit.count({ tenantIds });
      const body = result.ok ? { ok: true, entries } : { ok: false, entries, message: 'the audit trail\'s hash chain is broken; an admin sees where (`haul audit verify`).' };
      return { body, audit: { detail: { ok: result.ok }, tenantId: null } };
    }
    return { body: result, audit: { detail: result.ok ? { ok: true, entries: result.entries, head: result.head } : { ok: false, brokenId: result.brokenId } } };
  },
};
