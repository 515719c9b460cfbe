// The caller's own account: log in (local or directory) and out, who am I, change the password,
// the TOTP second factor and its recovery codes.
import QRCode from 'qrcode';
import { z } from 'zod';
import type { SecondFactorUsed, UserView } from '../../../daemon/database/users.js';
import { HaulError } from '../../../shared/errors.js';
import { totpUri } from '../../../shared/totp.js';
import { clearedSessionCookie, sessionCookie, type Caller } from '../authentication.js';
import type { DirectoryLoginResult } from '../directory/directory-login.js';
import type { RouteAction, RouteContext } from '../route-definition.js';

export function userJson(user: UserView) {
  return {
    username: user.username,
    role: user.role,
    /** A member's roles per tenant; empty for an admin, who reaches every tenant. */
    tenants: user.grants.map((g) => ({ tenant: g.tenant, role: g.role })),
    source: user.source,
    disabled: user.disabled,
    lockedUntil: user.lockedUntil,
    totp: user.totp,
    mustChangePassword: user.mustChangePassword,
    failedLogins: user.failedLogins,
    createdAt: user.createdAt,
  };
}

function meJson(caller: Caller) {
  return { user: userJson(caller.user), role: caller.role, via: caller.via, csrfToken: caller.session?.csrfToken ?? null, mustEnrolSecondFactor: caller.mustEnrolSecondFactor ?? false };
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

/** Local accounts first: a directory outage never stops them, and a local name cannot be taken over. */
async function checkLogin(ctx: RouteContext<z.infer<typeof loginBody>>): Promise<DirectoryLoginResult & { secondFactor?: SecondFactorUsed }> {
  const { services, body } = ctx;
  if (services.directory && (await services.users.sourceOf(body.username)) !== 'local') return services.directory.login(body.username, body.password);
  return services.users.login(body.username, body.password, body.totp);
}

export const login: RouteAction<z.infer<typeof loginBody>> = {
  body: loginBody,
  async handle(ctx) {
    const { services, body } = ctx;
    const address = ctx.req.ip ?? 'unknown';
    services.loginLimiter.check(address, body.username);
    const result = await checkLogin(ctx);
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
          throw new HaulError('LoginFailed', 'wrong or already used code; enter the current 6-digit code from your authenticator app, or one of your unused recovery codes.');
        case 'directory-unavailable':
          throw new HaulError('DirectoryUnavailable', 'the directory that checks this account\'s password cannot be reached right now; try again in a few minutes. Local accounts can still sign in; an admin finds the cause in the console\'s log.');
        case 'directory-account':
          throw new HaulError('DirectoryUnavailable', 'this account signs in through the directory, but the console has no directory configured; an admin must configure it (docs/operations.md, Directory login) or create a local account.');
        case 'no-role':
          throw new HaulError('DirectoryNoRole', 'your directory password is right, but none of your directory groups gives you a role in Haul; ask an admin to add you to one of the groups the console maps to a role.');
        default:
          throw new HaulError('LoginFailed', `wrong user name or password. Check both and try again; after ${services.users.policy.maxFailedLogins} failed attempts the account is locked for ${services.users.policy.lockoutMs / 60_000} minutes.`);
      }
    }
    const session = await services.sessions.create(result.user.id);
    const maxAge = Math.floor(services.sessions.policy.lifetimeMs / 1000);
    ctx.res.setHeader('Set-Cookie', sessionCookie(session.secret, maxAge, secureRequest(ctx)));
    const secondFactor = result.secondFactor ?? 'none';
    const recoveryCodesLeft = secondFactor === 'recovery-code' ? await services.users.unusedRecoveryCodes(result.user.id) : undefined;
    return {
      body: {
        user: userJson(result.user), role: result.user.role, via: 'session', csrfToken: session.csrfToken,
        mustEnrolSecondFactor: await services.users.mustEnrolSecondFactor(result.user),
        ...(recoveryCodesLeft === undefined ? {} : { recoveryCodesLeft }),
      },
      audit: { actor: result.user.username, detail: { source: result.user.source, secondFactor, ...(recoveryCodesLeft === undefined ? {} : { recoveryCodesLeft }) } },
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

export const startTotpSetup: RouteAction = {
  async handle(ctx) {
    const { secret, username } = await ctx.services.users.startTotpEnrolment(ctx.caller!.user.id);
    const uri = totpUri(secret, username);
    // An SVG the page shows as an <img> (data: URL): no markup of ours is inserted into the page.
    const qrSvg = await QRCode.toString(uri, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
    return { body: { secret, uri, qrSvg }, audit: { target: username } };
  },
};

const totpEnableBody = z.object({ code: z.string().min(1).max(16) }).strict();

export const enableTotp: RouteAction<z.infer<typeof totpEnableBody>> = {
  body: totpEnableBody,
  async handle(ctx) {
    const { user, recoveryCodes } = await ctx.services.users.confirmTotpEnrolment(ctx.caller!.user.id, ctx.body.code.trim());
    return { body: { user: userJson(user), recoveryCodes }, audit: { target: user.username, detail: { recoveryCodes: recoveryCodes.length } } };
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
