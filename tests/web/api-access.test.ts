// Who may do what, against a real console server on real SQLite: every API route of the route
// table with every role (by session and by API token) and without a login, every socket.io
// event with every role, CSRF, origin checks, the one-time-password gate, security headers, the
// OpenAPI document, and an audit entry for every change.
import { io as connectSocket, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, type Role } from '../../shared/roles.js';
import { routes } from '../../web/server/routes.js';
import { socketEvents, type SocketReply } from '../../web/server/socket-events.js';
import { CONTENT_SECURITY_POLICY } from '../../web/server/security-headers.js';
import { ApiClient, TEST_PASSWORD, startTestConsole, type ApiResponse, type TestConsole } from '../helpers/web.js';

let web: TestConsole;
const tokens: Partial<Record<Role, string>> = {};

beforeAll(async () => {
  web = await startTestConsole();
  // The socket events name client web1 and job 1: they exist (in the default tenant, where the
  // operator and auditor hold their roles), so an allowed event reaches the daemon link.
  const web1 = await web.server.services.clients.add({ name: 'web1', host: 'web1.example.net', port: 22, user: 'backup', paths: ['/srv'], excludes: [], oneFileSystem: true, schedule: null, retention: null, enabled: true });
  expect((await web.db.prisma.job.create({ data: { clientId: web1.id, clientName: 'web1', kind: 'backup', state: 'queued', trigger: 'manual' } })).id).toBe(1);
  for (const role of ROLES) {
    await web.addUser(`the-${role}`, role);
    const client = new ApiClient(web.url);
    await client.login(`the-${role}`, TEST_PASSWORD);
    tokens[role] = (await client.request<{ token: string }>('POST', '/api/tokens', { name: 'route table', role })).body.token;
  }
});
afterAll(async () => web?.close());

/** A request to a route with harmless arguments: an empty body, IDs that do not exist. */
function concretePath(path: string): string {
  return path.replace(':username', 'nobody-here').replace(':id', '999999');
}

async function sessionFor(role: Role): Promise<ApiClient> {
  const client = new ApiClient(web.url);
  expect((await client.login(`the-${role}`, TEST_PASSWORD)).status).toBe(200);
  return client;
}

const protectedRoutes = routes.filter((r) => r.access !== 'public');

function errorCode(res: ApiResponse): string | undefined {
  return (res.body?.['error'] as { code?: string } | undefined)?.code;
}

describe('the route table', () => {
  it('never lets an auditor change the system, and audits every route that changes anything', () => {
    for (const r of routes) {
      if (r.effect === 'system') expect(r.access, `${r.method} ${r.path}`).not.toContain('auditor');
      if (r.effect !== 'none') expect(r.audit, `${r.method} ${r.path}`).toMatch(/^[a-z]+(\.[a-z-]+)?$/);
      if (r.method === 'get') expect(r.effect, `${r.method} ${r.path}`).toBe('none');
    }
    expect(new Set(routes.map((r) => `${r.method} ${r.path}`)).size).toBe(routes.length);
  });

  it.each(protectedRoutes.map((r) => [r.method.toUpperCase(), r.path, r]))('%s %s refuses a caller who is not logged in', async (method, path) => {
    const res = await new ApiClient(web.url).request(method, concretePath(path), method === 'GET' ? undefined : {});
    expect([res.status, res.body]).toEqual([401, { error: { code: 'Unauthenticated', message: 'you are not logged in, or your session has ended; log in again (or send an API token as Authorization: Bearer).' } }]);
  });

  const cases = protectedRoutes.flatMap((r) => ROLES.map((role) => [r.method.toUpperCase(), r.path, role, r] as const));
  it.each(cases)('%s %s as %s: allowed exactly when the table says so', async (method, path, role, route) => {
    const client = await sessionFor(role);
    const res = await client.request(method, concretePath(path), method === 'GET' ? undefined : {});
    const allowed = route.access !== 'public' && route.access.includes(role);
    if (allowed) {
      expect(errorCode(res), JSON.stringify(res.body)).not.toBe('Forbidden');
      expect(res.status).not.toBe(401);
    } else {
      const needs = (route.access as readonly Role[]).join(' or ');
      expect([res.status, res.body]).toEqual([403, { error: { code: 'Forbidden', message: `your role (${role}) may not ${route.summary}; that needs the ${needs} role. Ask an admin if you need it.` } }]);
    }
  });

  it.each(cases)('%s %s with an API token of role %s: allowed exactly when the table says so', async (method, path, role, route) => {
    const client = new ApiClient(web.url, tokens[role]);
    const res = await client.request(method, concretePath(path), method === 'GET' ? undefined : {});
    if (route.sessionOnly) {
      expect([res.status, res.body]).toEqual([403, { error: { code: 'Forbidden', message: `an API token may not ${route.summary}; log in to the console for that.` } }]);
    } else if (route.access !== 'public' && route.access.includes(role)) {
      expect(errorCode(res), JSON.stringify(res.body)).not.toBe('Forbidden');
      expect(res.status).not.toBe(401);
    } else {
      const needs = (route.access as readonly Role[]).join(' or ');
      expect([res.status, res.body]).toEqual([403, { error: { code: 'Forbidden', message: `this API token (role ${role}) may not ${route.summary}; that needs the ${needs} role. Ask an admin if you need it.` } }]);
    }
  });

  it('lists exactly the routes of the table in /api/openapi.json, with their roles', async () => {
    const res = await new ApiClient(web.url).request<{ openapi: string; paths: Record<string, Record<string, { 'x-roles': string[] }>> }>('GET', '/api/openapi.json');
    expect(res.body.openapi).toBe('3.1.0');
    const documented = Object.entries(res.body.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)).sort();
    expect(documented).toEqual(routes.map((r) => `${r.method} ${r.path.replace(/:([a-z]+)/gi, '{$1}')}`).sort());
    expect(res.body.paths['/api/users']!['post']!['x-roles']).toEqual(['admin']);
    expect(res.body.paths['/api/audit']!['get']!['x-roles']).toEqual(['admin', 'auditor']);
  });

  it('answers an unknown API route with 404 and where to look', async () => {
    const res = await (await sessionFor('admin')).request('GET', '/api/nope');
    expect([res.status, res.body]).toEqual([404, { error: { code: 'NotFound', message: 'there is no API route GET /api/nope; /api/openapi.json lists them.' } }]);
  });
});

describe('CSRF and origin', () => {
  it('refuses a change without the session\'s CSRF token, or with another session\'s', async () => {
    const admin = await sessionFor('admin');
    const other = await sessionFor('admin');
    const refused = { error: { code: 'CsrfRejected', message: 'the request has no valid CSRF token (X-CSRF-Token header); reload the page and try again.' } };
    const missing = await admin.request('POST', '/api/users', { username: 'csrf-victim', role: 'admin' }, { csrf: false });
    expect([missing.status, missing.body]).toEqual([403, refused]);
    const wrong = await admin.request('POST', '/api/users', { username: 'csrf-victim', role: 'admin' }, { csrf: false, headers: { 'x-csrf-token': other.csrfToken! } });
    expect([wrong.status, wrong.body]).toEqual([403, refused]);
    expect(await web.server.services.users.find('csrf-victim')).toBeUndefined();
    // Reading needs no token; the right token works.
    expect((await admin.request('GET', '/api/users')).status).toBe(200);
    expect((await admin.request('POST', '/api/users', { username: 'csrf-victim', role: 'auditor' })).status).toBe(201);
  });

  it('refuses a change that another site\'s page sends, even with a valid session and token', async () => {
    const admin = await sessionFor('admin');
    const res = await admin.request('POST', '/api/logout', {}, { headers: { origin: 'https://evil.example' } });
    expect([res.status, res.body]).toEqual([403, { error: { code: 'CsrfRejected', message: 'the request comes from another site (https://evil.example); the console accepts changes only from its own pages.' } }]);
    expect((await admin.request('GET', '/api/me')).status).toBe(200);
  });
});

describe('a one-time password', () => {
  it('must be changed before anything else is allowed', async () => {
    const { password } = await web.server.services.users.create({ username: 'newbie', role: 'operator' });
    const client = new ApiClient(web.url);
    const login = await client.login('newbie', password);
    expect(login.body).toMatchObject({ user: { username: 'newbie', mustChangePassword: true } });
    expect((await client.request('GET', '/api/me')).status).toBe(200);
    const blocked = await client.request('GET', '/api/jobs');
    expect([blocked.status, blocked.body]).toEqual([403, { error: { code: 'PasswordChangeRequired', message: 'change your one-time password first (Account page, or POST /api/me/password); until then nothing else is allowed.' } }]);
    const changed = await client.request('POST', '/api/me/password', { current: password, next: 'my own long password' });
    expect(changed.body).toMatchObject({ user: { mustChangePassword: false } });
    expect((await client.request('GET', '/api/jobs')).body).toMatchObject({ error: { code: 'DaemonNotConnected' } });
  });
});

describe('API tokens', () => {
  it('act with their own role, and stop working when revoked', async () => {
    const admin = await sessionFor('admin');
    const created = await admin.request<{ token: string; info: { id: number } }>('POST', '/api/tokens', { name: 'reader', role: 'auditor' });
    expect(created.status).toBe(201);
    const reader = new ApiClient(web.url, created.body.token);
    expect((await reader.request('GET', '/api/audit')).status).toBe(200);
    expect((await reader.request('GET', '/api/users')).status).toBe(403);
    expect((await admin.request('DELETE', `/api/tokens/${created.body.info.id}`)).status).toBe(200);
    const after = await reader.request('GET', '/api/audit');
    expect([after.status, after.body]).toEqual([401, { error: { code: 'Unauthenticated', message: 'the API token is unknown or revoked, or its user is disabled or no longer has its role; create a new token on the Account page.' } }]);
  });

  it('are judged alone: a bad token is refused even next to a valid session cookie', async () => {
    const admin = await sessionFor('admin');
    const res = await admin.request('GET', '/api/users', undefined, { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } });
    expect([res.status, res.body]).toEqual([401, { error: { code: 'Unauthenticated', message: 'the Authorization header must be "Bearer haul_…" with an API token; create one on the Account page.' } }]);
  });
});

describe('socket.io events', () => {
  async function connect(role: Role, options: { csrf?: boolean; origin?: string } = {}): Promise<Socket> {
    const client = await sessionFor(role);
    const socket = connectSocket(web.url, {
      transports: ['websocket'], reconnection: false,
      auth: options.csrf === false ? {} : { csrfToken: client.csrfToken },
      extraHeaders: { cookie: client.cookie!, ...(options.origin ? { origin: options.origin } : {}) },
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => reject(err));
    });
    return socket;
  }

  function emit(socket: Socket, event: string, payload: unknown): Promise<SocketReply> {
    return socket.timeout(10_000).emitWithAck(event, payload) as Promise<SocketReply>;
  }

  const eventCases = socketEvents.flatMap((e) => ROLES.map((role) => [e.event, role, e] as const));
  it.each(eventCases)('%s as %s: allowed exactly when the table says so', async (event, role, def) => {
    const socket = await connect(role);
    try {
      const reply = await emit(socket, event, event === 'job:run' ? { client: 'web1' } : event.startsWith('job:') ? { jobId: 1 } : {});
      if (def.access.includes(role)) {
        if (def.effect === 'system') expect(reply).toEqual({ error: { code: 'DaemonNotConnected', message: expect.stringContaining('not connected to the Haul daemon') } });
        else expect(reply).toMatchObject({ ok: true });
      } else {
        expect(reply).toEqual({ error: { code: 'Forbidden', message: `your role (${role}) may not ${def.summary}; that needs the ${def.access.join(' or ')} role. Ask an admin if you need it.` } });
      }
    } finally {
      socket.disconnect();
    }
  });

  it('never lets an auditor emit an event that changes the system', () => {
    for (const e of socketEvents) if (e.effect === 'system') expect(e.access).not.toContain('auditor');
  });

  it('refuses a connection without the CSRF token, from another origin, or without a login', async () => {
    await expect(connect('operator', { csrf: false })).rejects.toThrow('the connection has no valid CSRF token; reload the page.');
    await expect(connect('operator', { origin: 'https://evil.example' })).rejects.toThrow('the connection comes from another site (https://evil.example); the console accepts connections only from its own pages.');
    await expect(connect('operator', { origin: 'null' })).rejects.toThrow('the connection comes from another site (null); the console accepts connections only from its own pages.');
    const anonymous = connectSocket(web.url, { transports: ['websocket'], reconnection: false });
    await expect(new Promise((_, reject) => anonymous.once('connect_error', reject))).rejects.toThrow('you are not logged in, or your session has ended; log in again.');
    anonymous.disconnect();
  });

  it('drops a socket whose session ended since it connected', async () => {
    const client = await sessionFor('operator');
    const socket = connectSocket(web.url, { transports: ['websocket'], reconnection: false, auth: { csrfToken: client.csrfToken }, extraHeaders: { cookie: client.cookie! } });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    expect(await emit(socket, 'dashboard:subscribe', {})).toMatchObject({ ok: true });
    await client.request('POST', '/api/logout', {});
    const disconnected = new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
    expect(await emit(socket, 'dashboard:subscribe', {})).toEqual({ error: { code: 'Unauthenticated', message: 'your session has ended; log in again.' } });
    await disconnected;
  });
});

describe('the audit trail', () => {
  it('records every change made through the API, in order, by whom', async () => {
    const before = await web.server.services.audit.count();
    const admin = await sessionFor('admin');
    await admin.request('POST', '/api/users', { username: 'audited', role: 'operator' });
    await admin.request('PATCH', '/api/users/audited', { role: 'auditor', disabled: true });
    await admin.request('POST', '/api/users/audited/password', {});
    await admin.request('DELETE', '/api/users/audited');
    const token = await admin.request<{ info: { id: number } }>('POST', '/api/tokens', { name: 'ci', role: 'operator' });
    await admin.request('DELETE', `/api/tokens/${token.body.info.id}`);
    await admin.request('POST', '/api/audit/verify', {});
    await admin.request('POST', '/api/logout', {});
    await new ApiClient(web.url).login('the-admin', 'wrong password here');
    const entries = (await web.server.services.audit.list({ limit: 50 })).slice(0, (await web.server.services.audit.count()) - before).reverse();
    expect(entries.map((e) => [e.actor, e.action, e.target])).toEqual([
      ['the-admin', 'login', null],
      ['the-admin', 'user.add', 'audited'],
      ['the-admin', 'user.change', 'audited'],
      ['the-admin', 'user.password-reset', 'audited'],
      ['the-admin', 'user.remove', 'audited'],
      ['the-admin', 'token.create', 'the-admin'],
      ['the-admin', 'token.revoke', 'the-admin'],
      ['the-admin', 'audit.verify', null],
      ['the-admin', 'logout', null],
      ['the-admin', 'login.failed', null],
    ]);
    expect(entries[2]!.detail).toEqual({ role: 'auditor', disabled: true, sessionsEnded: 0, address: '127.0.0.1', via: 'session' });
    expect(entries[9]!.detail).toEqual({ reason: 'wrong-password', address: '127.0.0.1', knownUser: true });
    expect((await web.server.services.audit.verify()).ok).toBe(true);
  });
});

describe('response headers', () => {
  it('send a CSP without inline scripts, no-sniff and no framing, on pages and API answers', async () => {
    for (const p of ['/', '/api/me', '/api/openapi.json']) {
      const res = await fetch(web.url + p);
      expect(res.headers.get('content-security-policy'), p).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('x-powered-by')).toBeNull();
    }
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self';");
    expect(CONTENT_SECURITY_POLICY).toContain("frame-ancestors 'none'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe-inline');
    expect((await fetch(web.url + '/api/me')).headers.get('cache-control')).toBe('no-store');
  });

  it('serve the built app with no inline script', async () => {
    const html = await (await fetch(web.url + '/')).text();
    expect(html).toMatch(/<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/);
    expect(html.match(/<script/g)).toHaveLength(1);
  });
});
