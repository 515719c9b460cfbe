// API tokens: each user manages their own; an admin sees and can revoke everyone's.
import { z } from 'zod';
import type { ApiTokenView } from '../../../daemon/database/api-tokens.js';
import { HaulError } from '../../../shared/errors.js';
import { ROLES } from '../../../shared/roles.js';
import type { RouteAction } from '../route-definition.js';

function tokenJson(t: ApiTokenView) {
  return { id: t.id, name: t.name, role: t.role, username: t.username, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt, revokedAt: t.revokedAt };
}

export const listTokens: RouteAction = {
  async handle(ctx) {
    const caller = ctx.caller!;
    const tokens = await ctx.services.tokens.list(caller.role === 'admin' ? undefined : caller.user.id);
    return { body: { tokens: tokens.map(tokenJson) } };
  },
};

const createBody = z.object({ name: z.string().min(1).max(64), role: z.enum(ROLES).optional() }).strict();

export const createToken: RouteAction<z.infer<typeof createBody>> = {
  body: createBody,
  async handle(ctx) {
    const caller = ctx.caller!;
    const { token, view } = await ctx.services.tokens.create(caller.user, ctx.body.name, ctx.body.role ?? caller.user.role);
    return { status: 201, body: { token, info: tokenJson(view) }, audit: { target: caller.user.username, detail: { tokenId: view.id, name: view.name, role: view.role } } };
  },
};

export const revokeToken: RouteAction = {
  async handle(ctx) {
    const caller = ctx.caller!;
    const id = Number(ctx.params['id']);
    if (!Number.isSafeInteger(id) || id <= 0) throw new HaulError('InvalidArgument', `${JSON.stringify(ctx.params['id'])} is not a token number; the token list shows them.`);
    const view = await ctx.services.tokens.revoke(id, { userId: caller.user.id, anyUser: caller.role === 'admin' });
    return { body: { info: tokenJson(view) }, audit: { target: view.username, detail: { tokenId: view.id, name: view.name } } };
  },
};
