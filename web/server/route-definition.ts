// The shape of one API route and the checks every route passes before its handler runs, in this
// order: logged in (unless public), request from our own origin, CSRF token (session callers,
// every method but GET), one-time password changed, second factor set up where an admin requires
// it, role allowed, body valid. Afterwards, a
// successful route that changes anything is written to the audit trail. Routes declare; this file
// enforces, so no handler can forget a check.
import { timingSafeEqual } from 'node:crypto';
import type { Express, Request, Response } from 'express';
import { z } from 'zod';
import { HaulError } from '../../shared/errors.js';
import type { Role } from '../../shared/roles.js';
import { callerOf, viaOf, type Caller } from './authentication.js';
import type { ConsoleServices } from './console-services.js';

export type Access = 'public' | readonly Role[];

/**
 * What a route changes. `none`: nothing (reads, checks). `own-account`: the caller's own login,
 * password, second factor or tokens. `system`: anything else (users, clients, jobs, settings);
 * auditors are never allowed one.
 */
export type Effect = 'none' | 'own-account' | 'system';

export interface RouteContext<Body> {
  req: Request;
  res: Response;
  services: ConsoleServices;
  /** Undefined only on public routes. */
  caller: Caller | undefined;
  params: Record<string, string>;
  body: Body;
}

export interface RouteReply {
  status?: number;
  body?: unknown;
  /** For the audit entry: what the action was about. `actor` only where there is no caller yet (login). */
  audit?: { actor?: string; target?: string | null; detail?: Record<string, unknown>; /** The tenant the action concerns (its auditors see the entry). */ tenantId?: number | null };
  /** The handler wrote the response itself (a download streamed as it arrives). */
  streamed?: boolean;
}

export interface RouteAction<Body = unknown> {
  /** Validates the JSON body; also documents it in the OpenAPI document. */
  body?: z.ZodType<Body>;
  /** The query parameters the handler reads (it validates them itself): documented in the OpenAPI document. */
  query?: z.ZodObject;
  handle(ctx: RouteContext<Body>): Promise<RouteReply>;
}

export interface RouteDefinition {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Express path syntax (`/api/users/:username`). */
  path: string;
  /** Lowercase, as in "you may not <summary>": also the OpenAPI summary. */
  summary: string;
  access: Access;
  effect: Effect;
  /** The audit action written after success; required for every effect but `none`. */
  audit?: string;
  /** Reachable while the caller still has to change a one-time password. */
  beforePasswordChange?: boolean;
  /** Reachable while the caller still has to set up the second factor their role requires. */
  beforeSecondFactor?: boolean;
  /** Only from a console login, never with an API token. */
  sessionOnly?: boolean;
  action: AnyRouteAction;
}

/** Any route's action, whatever its body type (handle is a method, so its parameter is bivariant). */
export interface AnyRouteAction {
  body?: z.ZodType;
  query?: z.ZodObject;
  handle(ctx: RouteContext<never>): Promise<RouteReply>;
}

export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The origin this request was addressed to, as a browser would write it in `Origin`. */
export function ownOrigin(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? ''}`;
}

export function describeIssues(error: z.ZodError): string {
  const issues = error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`);
  return `the request is not valid (${issues.join('; ')}); fix it and send it again.`;
}

export function forbidden(caller: Caller, summary: string, access: readonly Role[]): HaulError {
  const who = caller.via === 'token' ? `this API token (role ${caller.role})` : `your role (${caller.role})`;
  return new HaulError('Forbidden', `${who} may not ${summary}; that needs the ${access.join(' or ')} role. Ask an admin if you need it.`);
}

/** Whether the caller holds one of `access` on some tenant; which objects it reaches is checked per object (scoped-objects.ts). */
export function mayUse(caller: Caller, access: readonly Role[]): boolean {
  return caller.scope.roles().some((r) => access.includes(r));
}

export function checkAccess(route: RouteDefinition, req: Request, caller: Caller | undefined): void {
  // Changes come only from our own pages; a browser always sends Origin on such requests.
  const origin = req.get('origin');
  if (req.method !== 'GET' && origin !== undefined && origin !== ownOrigin(req)) {
    throw new HaulError('CsrfRejected', `the request comes from another site (${origin}); the console accepts changes only from its own pages.`);
  }
  if (route.access === 'public') return;
  if (!caller) throw new HaulError('Unauthenticated', 'you are not logged in, or your session has ended; log in again (or send an API token as Authorization: Bearer).');
  if (caller.via === 'session' && req.method !== 'GET') {
    const sent = req.get('x-csrf-token');
    if (sent === undefined || !sameToken(sent, caller.session!.csrfToken)) {
      throw new HaulError('CsrfRejected', 'the request has no valid CSRF token (X-CSRF-Token header); reload the page and try again.');
    }
  }
  if (route.sessionOnly && caller.via !== 'session') throw new HaulError('Forbidden', `an API token may not ${route.summary}; log in to the console for that.`);
  if (caller.via === 'session' && caller.user.mustChangePassword && !route.beforePasswordChange) {
    throw new HaulError('PasswordChangeRequired', 'change your one-time password first (Account page, or POST /api/me/password); until then nothing else is allowed.');
  }
  if (caller.mustEnrolSecondFactor && !route.beforeSecondFactor) {
    throw new HaulError('SecondFactorRequired', `your role (${caller.role}) must sign in with a second factor: set up two-factor sign-in on the Account page (POST /api/me/totp/setup); until then nothing else is allowed.`);
  }
  if (!mayUse(caller, route.access)) throw forbidden(caller, route.summary, route.access);
}

export function mountRoutes(app: Express, routes: readonly RouteDefinition[], services: ConsoleServices): void {
  for (const route of routes) {
    app[route.method](route.path, async (req: Request, res: Response) => {
      const caller = callerOf(res);
      checkAccess(route, req, caller);
      const action = route.action as RouteAction<unknown>;
      let body: unknown = undefined;
      if (action.body) {
        const parsed = action.body.safeParse(req.body ?? {});
        if (!parsed.success) throw new HaulError('InvalidArgument', describeIssues(parsed.error));
        body = parsed.data;
      }
      const params = Object.fromEntries(Object.entries(req.params as Record<string, string>));
      const reply = await action.handle({ req, res, services, caller, params, body });
      const status = reply.status ?? 200;
      if (route.audit && status < 400) {
        const actor = caller?.user.username ?? reply.audit?.actor ?? 'anonymous';
        await services.audit.append({
          actor,
          action: route.audit,
          target: reply.audit?.target ?? null,
          tenantId: reply.audit?.tenantId ?? null,
          detail: { ...reply.audit?.detail, address: req.ip, ...(caller ? { via: viaOf(caller) } : {}) },
        });
      }
      if (reply.streamed) return;
      if (reply.body === undefined) res.status(status === 200 ? 204 : status).end();
      else res.status(status).json(reply.body);
    });
  }
}
