// Who is calling: a browser with a session cookie, or a script with an API token in
// `Authorization: Bearer`. A request with an Authorization header is judged by it alone, so a
// bad token is refused, never silently replaced by a cookie the browser happened to send.
import type { NextFunction, Request, Response } from 'express';
import type { ActiveSession } from '../../daemon/database/sessions.js';
import type { UserView } from '../../daemon/database/users.js';
import { HaulError } from '../../shared/errors.js';
import type { Role } from '../../shared/roles.js';
import type { ConsoleServices } from './console-services.js';
import { TenantScope } from './tenant-scope.js';

export const SESSION_COOKIE = 'haul_session';

export interface Caller {
  user: UserView;
  /** The role this request acts with (a token's own role, else the user's). */
  role: Role;
  /** The tenants this request reaches, and the role on each (tenant-scope.ts). */
  scope: TenantScope;
  via: 'session' | 'token';
  session?: ActiveSession;
  sessionSecret?: string;
  /** A session whose role needs a second factor this local user has not set up yet. */
  mustEnrolSecondFactor?: boolean;
  tokenName?: string;
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(secret: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return sessionCookie('', 0, secure);
}

/** The caller a request's headers identify, or undefined for an anonymous one. */
export async function identify(services: ConsoleServices, headers: { cookie?: string | undefined; authorization?: string | undefined }): Promise<Caller | undefined> {
  if (headers.authorization !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization);
    if (!m) throw new HaulError('Unauthenticated', 'the Authorization header must be "Bearer haul_…" with an API token; create one on the Account page.');
    const found = await services.tokens.authenticate(m[1]!);
    if (!found) throw new HaulError('Unauthenticated', 'the API token is unknown or revoked, or its user is disabled or no longer has its role; create a new token on the Account page.');
    return { user: found.user, role: found.role, scope: TenantScope.of(found.user, found.role), via: 'token', tokenName: found.tokenName };
  }
  const secret = readCookie(headers.cookie, SESSION_COOKIE);
  if (secret === undefined || secret === '') return undefined;
  const session = await services.sessions.authenticate(secret);
  if (!session) return undefined;
  const mustEnrolSecondFactor = await services.users.mustEnrolSecondFactor(session.user);
  return { user: session.user, role: session.user.role, scope: TenantScope.of(session.user), via: 'session', session, sessionSecret: secret, mustEnrolSecondFactor };
}

export function authentication(services: ConsoleServices) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    res.locals['caller'] = await identify(services, { cookie: req.headers.cookie, authorization: req.headers.authorization });
    next();
  };
}

export function callerOf(res: Response): Caller | undefined {
  return res.locals['caller'] as Caller | undefined;
}

/** How the audit trail names the channel of an action. */
export function viaOf(caller: Caller): string {
  return caller.via === 'token' ? `token ${caller.tokenName}` : 'session';
}
