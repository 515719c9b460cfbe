// The caller's own account: log in and out, who am I, change the password, the TOTP second factor.
import { z } from 'zod';
import type { UserView } from '../../../daemon/database/users.js';
import { HaulError } from '../../../shared/errors.js';
import { generateTotpSecret, totpUri } from '../../../shared/totp.js';
import { clearedSessionCookie, sessionCookie, type Caller } from '../authentication.js';
import type { RouteAction, RouteContext } from '../route-definition.js';

export function userJson(user: UserView) {
  return {
    username: user.username,
    role: user.role,
    /** A member's roles per tenant; empty for an admin, who reaches every tenant. */
    tenants: user.grants.map((g) => ({ tenant: g.tenant, role: g.role })),
    disabled: user.disabled,
    lockedUntil: user.lockedUntil,
    totp: user.totp,
    mustChangePassword: user.mustChangePassword,
    failedLogins: user.failedLogins,
    createdAt: user.createdAt,
  };
}

function meJson(caller: Caller) {
  return { user: userJson(caller.user), role: caller.role, via: caller.via, csrfToken: caller.session?.csrfToken ?? null };
}

function secureRequest(ctx: RouteContext<unknown>): boolean {
  return ctx.services.secureCookies || ctx.req.secure;
}

function lockedMessage(until: Date): string {
  return `too many failed logins: this account is locked until ${until.toISOString().slice(11, 16)} UTC. Wait until then, or ask an admin to reset your password.`;
}

const loginBody = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  totp: z.string().max(16).optional(),
}).strict();

export const login: RouteAction<z.infer<typeof loginBody>> = {
  body: loginBody,
  async handle(ctx) {
    const { services, body } = ctx;
    const address = ctx.req.ip ?? 'unknown';
    services.loginLimiter.check(address, body.username);
    const result = await services.users.login(body.username, body.password, body.totp);
    if (!result.ok) {
      const counted = result.reason === 'wrong-password' || result.reason === 'totp-wrong';
      if (counted) services.loginLimiter.recordFailure(address, body.username);
      if (result.reason !== 'totp-required') {
        await services.audit.append({ actor: body.username, action: 'login.failed', detail: { reason: result.reason, address, knownUser: result.user !== undefined } });
      }
      const lockedNow = 'lockedNow' in result ? result.lockedNow : undefined;
      if (lockedNow) {
        await services.audit.append({ actor: body.username, action: 'user.locked', target: body.username, detail: { until: lockedNow.toISOString(), address } });
        throw new HaulError('AccountLocked', lockedMessage(lockedNow));
      }
      switch (result.reason) {
        case 'locked':
          throw new HaulError('AccountLocked', lockedMessage(result.lockedUntil));
        case 'disabled':
          throw new HaulError('AccountDisabled', 'this account is disabled; ask an admin to enable it.');
        case 'totp-required':
          throw new HaulError('TotpRequired', 'enter the 6-digit code from your authenticator app.');
        case 'totp-wrong':
          throw new HaulError('LoginFailed', 'wrong or already used code; enter the current 6-digit code from your authenticator app.');
        default:
          throw new HaulError('LoginFailed', `wrong user name or password. Check both and try again; after ${services.users.policy.maxFailedLogins} failed attempts the account is locked for ${services.users.policy.lockoutMs / 60_000} minutes.`);
      }
    }
    const session = await services.sessions.create(result.user.id);
    const maxAge = Math.floor(services.sessions.policy.lifetimeMs / 1000);
    ctx.res.setHeader('Set-Cookie', sessionCookie(session.secret, maxAge, secureRequest(ctx)));
    return {
      body: { user: userJson(result.user), role: result.user.role, via: 'session', csrfToken: session.csrfToken },
      audit: { actor: result.user.username, detail: { totp: result.user.totp } },
    };
  },
};

export const logout: RouteAction = {
  async handle(ctx) {
    const caller = ctx.caller!;
    if (caller.sessionSecret) await ctx.services.sessions.revoke(caller.sessionSecret);
    ctx.res.setHeader('Set-Cookie', clearedSessionCookie(secureRequest(ctx)));
    return { body: { ok: true } };
  },
};

export const me: RouteAction = {
  handle: async (ctx) => ({ body: meJson(ctx.caller!) }),
};

const passwordBody = z.object({ current: z.string().min(1).max(1024), next: z.string().min(1).max(1024) }).strict();

export const changePassword: RouteAction<z.infer<typeof passwordBody>> = {
  body: passwordBody,
  async handle(ctx) {
    const caller = ctx.caller!;
    const user = await ctx.services.users.changePassword(caller.user.id, ctx.body.current, ctx.body.next);
    // Anyone who learned the old password is logged out everywhere else.
    const ended = await ctx.services.sessions.revokeAllOf(user.id, caller.sessionSecret);
    return { body: { user: userJson(user) }, audit: { target: user.username, detail: { otherSessionsEnded: ended } } };
  },
};

export const newTotpSecret: RouteAction = {
  async handle(ctx) {
    const secret = generateTotpSecret();
    return { body: { secret, uri: totpUri(secret, ctx.caller!.user.username) } };
  },
};

const totpEnableBody = z.object({ secret: z.string().min(16).max(128), code: z.string().min(1).max(16) }).strict();

export const enableTotp: RouteAction<z.infer<typeof totpEnableBody>> = {
  body: totpEnableBody,
  async handle(ctx) {
    const user = await ctx.services.users.enableTotp(ctx.caller!.user.id, ctx.body.secret.replace(/\s/g, '').toUpperCase(), ctx.body.code.trim());
    return { body: { user: userJson(user) }, audit: { target: user.username } };
  },
};

const totpDisableBody = z.object({ password: z.string().min(1).max(1024) }).strict();

export const disableTotp: RouteAction<z.infer<typeof totpDisableBody>> = {
  body: totpDisableBody,
  async handle(ctx) {
    const { username } = await ctx.services.users.confirmPassword(ctx.caller!.user.id, ctx.body.password);
    const user = await ctx.services.users.disableTotp(username);
    return { body: { user: userJson(user) }, audit: { target: user.username } };
  },
};
