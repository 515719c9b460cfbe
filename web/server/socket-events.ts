// socket.io: live daemon events pushed to browsers, and a few actions the browser may send.
// Every event a client may emit is declared in one table with the roles allowed, exactly like
// the REST routes, and the caller is re-checked on every event (a session may have ended since
// the socket connected). The handshake needs the session cookie and its CSRF token, or an API
// token, and must come from our own origin. Live events reach a socket only when its caller's
// tenant scope covers the job's client (tenant-fan-out.ts).
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { z } from 'zod';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { Role } from '../../shared/roles.js';
import { cancelJob, cancelJobRequest, runJob, runJobRequest } from './api/daemon.js';
import { identify, type Caller } from './authentication.js';
import { DASHBOARD_ROOM, TenantFanOut, jobRoom, type SocketAuth } from './tenant-fan-out.js';
import type { ConsoleServices } from './console-services.js';
import { describeIssues, forbidden, mayUse, sameToken, type Effect } from './route-definition.js';

export interface SocketEventDefinition {
  event: string;
  summary: string;
  access: readonly Role[];
  effect: Effect;
  audit?: string;
  payload?: z.ZodType;
  handle(ctx: { services: ConsoleServices; caller: Caller; socket: Socket; payload: never }): Promise<{ result: unknown; audit?: { target?: string | null; detail?: Record<string, unknown>; tenantId?: number | null } }>;
}

const watchJobRequest = z.object({ jobId: z.number().int().positive() }).strict();

export const socketEvents: readonly SocketEventDefinition[] = [
  {
    event: 'dashboard:subscribe', summary: 'watch live job progress', access: ['admin', 'operator', 'auditor'], effect: 'none',
    async handle({ services, socket }) {
      await socket.join(DASHBOARD_ROOM);
      return { result: { daemon: services.daemon.status() } };
    },
  },
  {
    event: 'job:watch', summary: "follow a job's log live", access: ['admin', 'operator', 'auditor'], effect: 'none', payload: watchJobRequest,
    async handle({ socket, payload }) {
      const { jobId } = payload as z.infer<typeof watchJobRequest>;
      await socket.join(jobRoom(jobId));
      return { result: { jobId } };
    },
  },
  {
    event: 'job:unwatch', summary: 'stop following a job', access: ['admin', 'operator', 'auditor'], effect: 'none', payload: watchJobRequest,
    async handle({ socket, payload }) {
      await socket.leave(jobRoom((payload as z.infer<typeof watchJobRequest>).jobId));
      return { result: { ok: true } };
    },
  },
  {
    event: 'job:run', summary: 'run a backup job', access: ['admin', 'operator'], effect: 'system', audit: 'job.run', payload: runJobRequest,
    handle: ({ services, caller, payload }) => runJob(services, caller, payload as z.infer<typeof runJobRequest>),
  },
  {
    event: 'job:cancel', summary: 'cancel a job', access: ['admin', 'operator'], effect: 'system', audit: 'job.cancel', payload: cancelJobRequest,
    handle: ({ services, caller, payload }) => cancelJob(services, caller, payload as z.infer<typeof cancelJobRequest>),
  },
];

export type SocketReply = { ok: true; result: unknown } | { error: { code: string; message: string } };

/** The host:port an Origin header names; undefined for `null` or anything unparsable. */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

function errorReply(err: unknown): SocketReply {
  if (isHaulError(err)) return { error: { code: err.code, message: err.message } };
  return { error: { code: 'Internal', message: 'the console hit an unexpected error (it is in the server log); try again.' } };
}

export interface SocketServer {
  io: Server;
  close(): Promise<void>;
}

export function attachSocketServer(httpServer: HttpServer, services: ConsoleServices, log: (message: string) => void): SocketServer {
  const io = new Server(httpServer, { serveClient: false, maxHttpBufferSize: 64 * 1024 });

  io.use(async (socket, next) => {
    try {
      const req = socket.request;
      const origin = req.headers.origin;
      const host = req.headers.host;
      if (origin !== undefined && host !== undefined && originHost(origin) !== host) {
        throw new HaulError('CsrfRejected', `the connection comes from another site (${origin}); the console accepts connections only from its own pages.`);
      }
      const auth = (socket.handshake.auth ?? {}) as { token?: unknown; csrfToken?: unknown };
      const headers: SocketAuth['headers'] = typeof auth.token === 'string' ? { authorization: `Bearer ${auth.token}` } : { ...(req.headers.cookie ? { cookie: req.headers.cookie } : {}) };
      const caller = await identify(services, headers);
      if (!caller) throw new HaulError('Unauthenticated', 'you are not logged in, or your session has ended; log in again.');
      if (caller.via === 'session') {
        if (typeof auth.csrfToken !== 'string' || !sameToken(auth.csrfToken, caller.session!.csrfToken)) {
          throw new HaulError('CsrfRejected', 'the connection has no valid CSRF token; reload the page.');
        }
        if (caller.user.mustChangePassword) throw new HaulError('PasswordChangeRequired', 'change your one-time password first.');
        if (caller.mustEnrolSecondFactor) throw new HaulError('SecondFactorRequired', 'set up two-factor sign-in first (Account page).');
      }
      socket.data = { caller, headers } satisfies SocketAuth;
      next();
    } catch (err) {
      const e = errorReply(err);
      const failure = new Error('error' in e ? e.error.message : 'refused') as Error & { data?: unknown };
      failure.data = 'error' in e ? e.error : undefined;
      next(failure);
    }
  });

  io.on('connection', (socket) => {
    for (const def of socketEvents) {
      socket.on(def.event, async (payload: unknown, ack?: (reply: SocketReply) => void) => {
        const reply = typeof ack === 'function' ? ack : () => undefined;
        try {
          const { headers } = socket.data as SocketAuth;
          const caller = await identify(services, headers);
          // Live events are filtered by the scope the socket last showed: a changed grant counts from the next event it sends.
          if (caller) (socket.data as SocketAuth).caller = caller;
          if (!caller) {
            reply(errorReply(new HaulError('Unauthenticated', 'your session has ended; log in again.')));
            socket.disconnect(true);
            return;
          }
          if (!mayUse(caller, def.access)) throw forbidden(caller, def.summary, def.access);
          let parsed: unknown = undefined;
          if (def.payload) {
            const r = def.payload.safeParse(payload ?? {});
            if (!r.success) throw new HaulError('InvalidArgument', describeIssues(r.error));
            parsed = r.data;
          }
          const { result, audit } = await def.handle({ services, caller, socket, payload: parsed as never });
          if (def.audit) {
            await services.audit.append({
              actor: caller.user.username, action: def.audit, target: audit?.target ?? null, tenantId: audit?.tenantId ?? null,
              detail: { ...audit?.detail, address: socket.handshake.address, via: caller.via === 'token' ? `socket, token ${caller.tokenName}` : 'socket' },
            });
          }
          reply({ ok: true, result });
        } catch (err) {
          if (!isHaulError(err)) log(`socket event ${def.event} failed: ${(err as Error)?.stack ?? String(err)}`);
          reply(errorReply(err));
        }
      });
    }
  });

  const fanOut = new TenantFanOut(io, services, log);
  const unsubscribe = services.daemon.subscribe({ event: (e) => fanOut.event(e), status: (s) => fanOut.status(s) });
  return {
    io,
    close: async () => {
      unsubscribe();
      await io.close();
    },
  };
}
