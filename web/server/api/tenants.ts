// Tenants for admins: list, create, change the quota, retention default and notification
// recipients, remove (refused while clients belong to it); and each member user's grants. The
// same rules as `haul tenant …` and `haul user grant|revoke` (daemon/database/tenants.ts).
import { z } from 'zod';
import { TENANT_ROLES, parseQuota, type RetentionPolicy, type TenantSettings, type TenantView } from '../../../daemon/database/tenants.js';
import { HaulError } from '../../../shared/errors.js';
import type { RouteAction } from '../route-definition.js';
import { userJson } from './account.js';

function tenantJson(t: TenantView) {
  return { name: t.name, quotaBytes: t.quotaBytes, retention: t.retention, notifyEmails: t.notifyEmails, clients: t.clients, createdAt: t.createdAt };
}

const settingsBody = {
  /** Bytes as a number, a size such as "50G", or null for no limit. */
  quota: z.union([z.number().int().positive(), z.string().min(1).max(32), z.null()]).optional(),
  /** A retention policy object such as {"keepDaily":7}, or null to keep everything. */
  retention: z.record(z.string(), z.number()).nullable().optional(),
  notifyEmails: z.array(z.string().min(3).max(254)).max(50).optional(),
};

function settingsOf(body: { quota?: number | string | null | undefined; retention?: Record<string, number> | null | undefined; notifyEmails?: string[] | undefined }): TenantSettings {
  return {
    ...(body.quota === undefined ? {} : { quotaBytes: typeof body.quota === 'string' ? parseQuota(body.quota) : body.quota }),
    ...(body.retention === undefined ? {} : { retention: body.retention as RetentionPolicy | null }),
    ...(body.notifyEmails === undefined ? {} : { notifyEmails: body.notifyEmails }),
  };
}

export const listTenants: RouteAction = {
  handle: async (ctx) => ({ body: { tenants: (await ctx.services.tenants.list()).map(tenantJson) } }),
};

const addBody = z.strictObject({ name: z.string().min(1).max(63), ...settingsBody });

export const addTenant: RouteAction<z.infer<typeof addBody>> = {
  body: addBody,
  async handle(ctx) {
    const tenant = await ctx.services.tenants.add(ctx.body.name, settingsOf(ctx.body));
    return { status: 201, body: { tenant: tenantJson(tenant) }, audit: { target: tenant.name, detail: settingsOf(ctx.body) as Record<string, unknown>, tenantId: tenant.id } };
  },
};

const editBody = z.strictObject(settingsBody);

export const editTenant: RouteAction<z.infer<typeof editBody>> = {
  body: editBody,
  async handle(ctx) {
    const change = settingsOf(ctx.body);
    if (Object.keys(change).length === 0) throw new HaulError('InvalidArgument', 'the request changes nothing; send at least one of quota, retention, notifyEmails.');
    const tenant = await ctx.services.tenants.edit(ctx.params['name']!, change);
    return { body: { tenant: tenantJson(tenant) }, audit: { target: tenant.name, detail: change as Record<string, unknown>, tenantId: tenant.id } };
  },
};

export const removeTenant: RouteAction = {
  async handle(ctx) {
    const name = ctx.params['name']!;
    await ctx.services.tenants.remove(name);
    return { body: { ok: true }, audit: { target: name } };
  },
};

const grantBody = z.strictObject({ tenant: z.string().min(1).max(63), role: z.enum(TENANT_ROLES) });

export const grantRole: RouteAction<z.infer<typeof grantBody>> = {
  body: grantBody,
  async handle(ctx) {
    const username = ctx.params['username']!;
    const grant = await ctx.services.tenants.grant(username, ctx.body.tenant, ctx.body.role);
    const user = await ctx.services.users.get(username);
    return { body: { user: userJson(user) }, audit: { target: username, detail: { tenant: grant.tenant, role: grant.role }, tenantId: grant.tenantId } };
  },
};

export const revokeRole: RouteAction = {
  async handle(ctx) {
    const username = ctx.params['username']!;
    const tenantName = ctx.params['tenant']!;
    const tenant = await ctx.services.tenants.get(tenantName);
    const role = await ctx.services.tenants.revoke(username, tenantName);
    const user = await ctx.services.users.get(username);
    return { body: { user: userJson(user) }, audit: { target: username, detail: { tenant: tenantName, role }, tenantId: tenant.id } };
  },
};
