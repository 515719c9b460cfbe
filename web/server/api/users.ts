// User management for admins: list, add (with a one-time password), change role, disable,
// reset the password or the second factor, remove; which roles must use a second factor.
import { z } from 'zod';
import { ROLES } from '../../../shared/roles.js';
import type { RouteAction } from '../route-definition.js';
import { userJson } from './account.js';

export const listUsers: RouteAction = {
  handle: async (ctx) => ({ body: { users: (await ctx.services.users.list()).map(userJson) } }),
};

const addBody = z.object({ username: z.string().min(1).max(64), role: z.enum(ROLES), /** For an operator or auditor: the tenant of its role (default: "default"). */ tenant: z.string().min(1).max(63).optional() }).strict();

export const addUser: RouteAction<z.infer<typeof addBody>> = {
  body: addBody,
  async handle(ctx) {
    const { user, password } = await ctx.services.users.create({ username: ctx.body.username, role: ctx.body.role, ...(ctx.body.tenant === undefined || ctx.body.role === 'admin' ? {} : { tenant: ctx.body.tenant }) });
    const grant = user.grants[0];
    return { status: 201, body: { user: userJson(user), oneTimePassword: password }, audit: { target: user.username, detail: { role: user.role, ...(grant ? { tenant: grant.tenant } : {}) }, tenantId: grant?.tenantId ?? null } };
  },
};

const changeBody = z.object({ role: z.enum(ROLES).optional(), disabled: z.boolean().optional(), resetTotp: z.literal(true).optional() }).strict();

export const changeUser: RouteAction<z.infer<typeof changeBody>> = {
  body: changeBody,
  async handle(ctx) {
    const { users, sessions } = ctx.services;
    const name = ctx.params['username']!;
    let user = await users.get(name);
    const changed: Record<string, unknown> = {};
    if (ctx.body.role !== undefined && ctx.body.role !== user.role) {
      user = await users.setRole(name, ctx.body.role);
      changed['role'] = user.role;
    }
    if (ctx.body.disabled !== undefined && ctx.body.disabled !== user.disabled) {
      user = await users.setDisabled(name, ctx.body.disabled);
      changed['disabled'] = user.disabled;
      if (user.disabled) changed['sessionsEnded'] = await sessions.revokeAllOf(user.id);
    }
    if (ctx.body.resetTotp && user.totp) {
      user = await users.disableTotp(name);
      changed['totp'] = false;
      changed['recoveryCodesRevoked'] = true;
    }
    return { body: { user: userJson(user) }, audit: { target: user.username, detail: changed } };
  },
};

export const resetUserPassword: RouteAction = {
  async handle(ctx) {
    const { user, password } = await ctx.services.users.resetPassword(ctx.params['username']!);
    const ended = await ctx.services.sessions.revokeAllOf(user.id);
    return { body: { user: userJson(user), oneTimePassword: password }, audit: { target: user.username, detail: { sessionsEnded: ended } } };
  },
};

export const removeUser: RouteAction = {
  async handle(ctx) {
    const name = ctx.params['username']!;
    await ctx.services.users.remove(name);
    return { body: { ok: true }, audit: { target: name } };
  },
};

const secondFactorBody = z.object({ roles: z.array(z.enum(ROLES)).max(ROLES.length) }).strict();

export const secondFactorPolicy: RouteAction = {
  handle: async (ctx) => ({ body: { roles: await ctx.services.users.secondFactorRoles() } }),
};

export const setSecondFactorPolicy: RouteAction<z.infer<typeof secondFactorBody>> = {
  body: secondFactorBody,
  async handle(ctx) {
    const roles = await ctx.services.users.setSecondFactorRoles(ctx.body.roles);
    return { body: { roles }, audit: { detail: { roles } } };
  },
};
