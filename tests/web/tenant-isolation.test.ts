// Tenants must not see each other, through any door: the console wired to real parts (real
// SQLite, a real bus to a real repository, tests/helpers/console-testbed.ts), with tenant alpha
// owning web1 and db1 (their jobs, snapshots, log and audit entries) and tenant beta owning b1.
// Every route of the route table is walked as beta's operator (or auditor), by session and by
// API token, against alpha's objects and against objects that do not exist: the answers must be
// the same but for the name asked about. A route added without a case here fails the test.
// Socket.io: beta's sockets get no event of alpha's jobs while alpha's operator gets them all.
import { io as connectSocket, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientStore } from '../../daemon/database/client-store.js';
import { TenantStore } from '../../daemon/database/tenants.js';
import { BUS_PROTOCOL_VERSION } from '../../shared/bus/messages.js';
import { routes } from '../../web/server/routes.js';
import { wireJob } from '../helpers/bus.js';
import { startConsoleTestbed, type ConsoleTestbed } from '../helpers/console-testbed.js';
import { ApiClient, TEST_PASSWORD, type ApiResponse } from '../helpers/web.js';

let bed: ConsoleTestbed;
let tenants: TenantStore;
let betaJobId: number;
let alphaQueued: number;
let betaQueued: number;
const tokens: Record<string, string> = {};

async function session(username: string): Promise<ApiClient> {
  const client = new ApiClient(bed.web.url);
  expect((await client.login(username, TEST_PASSWORD)).status).toBe(200);
  return client;
}

beforeAll(async () => {
  bed = await startConsoleTestbed();
  const prisma = bed.web.db.prisma;
  tenants = new TenantStore(prisma);
  await tenants.add('alpha');
  await tenants.add('beta');
  await tenants.moveClient('web1', 'alpha');
  await tenants.moveClient('db1', 'alpha');
  const clients = new ClientStore(prisma);
  const b1 = await clients.add({ name: 'b1', host: 'b1.example.org', port: 22, user: 'backup', paths: ['/srv'], excludes: [], oneFileSystem: true, schedule: null, retention: null, enabled: true }, { tenant: 'beta' });
  betaJobId = (await prisma.job.create({ data: { clientId: b1.id, clientName: 'b1', kind: 'backup', state: 'succeeded', trigger: 'manual' } })).id;
  const web1 = await clients.get('web1');
  // The dashboard's queue length: three of alpha's jobs wait, two of beta's.
  alphaQueued = 3;
  betaQueued = 2;
  for (let i = 0; i < alphaQueued; i++) await prisma.job.create({ data: { clientId: web1.id, clientName: 'web1', kind: 'backup', state: 'queued', trigger: 'schedule' } });
  for (let i = 0; i < betaQueued; i++) await prisma.job.create({ data: { clientId: b1.id, clientName: 'b1', kind: 'backup', state: 'queued', trigger: 'schedule' } });

  await bed.web.addUser('admin', 'admin');
  await bed.web.server.services.users.create({ username: 'ann', role: 'operator', password: TEST_PASSWORD, tenant: 'alpha' });
  await bed.web.server.services.users.create({ username: 'bob', role: 'operator', password: TEST_PASSWORD, tenant: 'beta' });
  await bed.web.server.services.users.create({ username: 'bea', role: 'auditor', password: TEST_PASSWORD, tenant: 'beta' });
  // Token 1 is ann's: beta's users must not be able to tell it from a token that does not exist.
  expect((await (await session('ann')).request<{ info: { id: number } }>('POST', '/api/tokens', { name: 'alpha-ci', role: 'operator' })).body.info.id).toBe(1);
  for (const name of ['bob', 'bea']) {
    const role = name === 'bob' ? 'operator' : 'auditor';
    tokens[name] = (await (await session(name)).request<{ token: string }>('POST', '/api/tokens', { name: 'walk', role })).body.token;
  }
  // Alpha's audit entries: its operator changes its client and runs a backup.
  const ann = await session('ann');
  expect((await ann.request('PATCH', '/api/clients/web1', { schedule: '0 4 * * *' })).status).toBe(200);
  expect((await ann.request('POST', '/api/jobs', { client: 'web1' })).status).toBe(202);
  // And one of beta's: its auditor has something to read.
  expect((await (await session('bob')).request('PATCH', '/api/clients/b1', { schedule: '0 5 * * *' })).status).toBe(200);
}, 120_000);
afterAll(async () => bed?.close());

type Caller = 'bob' | 'bea';

interface ObjectCase {
  kind: 'object';
  as: Caller;
  /** alpha's object, and one that does not exist (also used in the answer's text). */
  targets: [alpha: string, missing: string];
  request(target: string): [method: string, path: string, body?: unknown];
}

interface ListCase {
  kind: 'list';
  as: Caller;
  request: [method: string, path: string, body?: unknown];
  /** What the answer must show exactly (only beta's rows). */
  expected(body: Record<string, unknown>): void;
}

interface OwnCase {
  kind: 'own';
  /** Why the route concerns no tenant's objects. */
  reason: string;
}

const own = (reason: string): OwnCase => ({ kind: 'own', reason });
const obj = (as: Caller, targets: [string, string], request: ObjectCase['request']): ObjectCase => ({ kind: 'object', as, targets, request });

function names(list: unknown): string[] {
  return (list as { name?: string; client?: string }[]).map((x) => x.name ?? x.client ?? '?');
}

const cases: Record<string, ObjectCase | ListCase | OwnCase> = {
  'post /api/login': own('logging in names no tenant object'),
  'post /api/logout': own("the caller's own session"),
  'get /api/me': {
    kind: 'list', as: 'bob', request: ['GET', '/api/me'],
    expected: (b) => expect((b['user'] as { tenants: unknown }).tenants).toEqual([{ tenant: 'beta', role: 'operator' }]),
  },
  'post /api/me/password': own("the caller's own password"),
  'post /api/me/totp/setup': own("the caller's own second factor"),
  'post /api/me/totp': own("the caller's own second factor"),
  'delete /api/me/totp': own("the caller's own second factor"),
  'get /api/tokens': {
    kind: 'list', as: 'bob', request: ['GET', '/api/tokens'],
    expected: (b) => expect((b['tokens'] as { username: string }[]).map((t) => t.username)).toEqual(['bob']),
  },
  'post /api/tokens': own("the caller's own tokens"),
  'delete /api/tokens/:id': obj('bob', ['1', '999999'], (id) => ['DELETE', `/api/tokens/${id}`]),
  'get /api/users': obj('bob', ['', ''], () => ['GET', '/api/users']),
  'post /api/users': obj('bob', ['ann', 'nobody'], (u) => ['POST', '/api/users', { username: u, role: 'auditor' }]),
  'patch /api/users/:username': obj('bob', ['ann', 'nobody'], (u) => ['PATCH', `/api/users/${u}`, { disabled: true }]),
  'post /api/users/:username/password': obj('bob', ['ann', 'nobody'], (u) => ['POST', `/api/users/${u}/password`, {}]),
  'delete /api/users/:username': obj('bob', ['ann', 'nobody'], (u) => ['DELETE', `/api/users/${u}`]),
  'post /api/users/:username/grants': obj('bob', ['alpha', 'nope'], (t) => ['POST', '/api/users/bob/grants', { tenant: t, role: 'operator' }]),
  'delete /api/users/:username/grants/:tenant': obj('bob', ['alpha', 'nope'], (t) => ['DELETE', `/api/users/ann/grants/${t}`]),
  'get /api/settings/second-factor': obj('bob', ['', ''], () => ['GET', '/api/settings/second-factor']),
  'patch /api/settings/second-factor': obj('bob', ['', ''], () => ['PATCH', '/api/settings/second-factor', { roles: ['operator'] }]),
  'get /api/tenants': obj('bob', ['', ''], () => ['GET', '/api/tenants']),
  'post /api/tenants': obj('bob', ['alpha', 'nope'], (t) => ['POST', '/api/tenants', { name: t }]),
  'patch /api/tenants/:name': obj('bob', ['alpha', 'nope'], (t) => ['PATCH', `/api/tenants/${t}`, { quota: '1G' }]),
  'delete /api/tenants/:name': obj('bob', ['alpha', 'nope'], (t) => ['DELETE', `/api/tenants/${t}`]),
  'get /api/audit': {
    kind: 'list', as: 'bea', request: ['GET', '/api/audit?limit=1000'],
    // Beta's entries only: the grants and tokens above name beta's users, none of alpha's actions.
    expected: (b) => {
      const entries = b['entries'] as { actor: string; target: string | null }[];
      expect(entries.length).toBeGreaterThan(0);
      expect(entries.filter((e) => e.actor === 'ann' || e.target === 'web1' || e.target === 'db1')).toEqual([]);
    },
  },
  'post /api/audit/verify': {
    kind: 'list', as: 'bea', request: ['POST', '/api/audit/verify', {}],
    expected: (b) => expect(b).toEqual({ ok: true, entries: expect.any(Number) }),
  },
  'get /api/status': {
    kind: 'list', as: 'bob', request: ['GET', '/api/status'],
    expected: (b) => {
      const daemon = b['daemon'] as { running: { clientName: string }[]; queuedTotal: number };
      expect(daemon.running.map((j) => j.clientName)).toEqual([]);
      expect(daemon.queuedTotal).toBe(betaQueued);
    },
  },
  'get /api/clients': { kind: 'list', as: 'bob', request: ['GET', '/api/clients'], expected: (b) => expect(names(b['clients'])).toEqual(['b1']) },
  'patch /api/clients/:name': obj('bob', ['web1', 'nope1'], (c) => ['PATCH', `/api/clients/${c}`, { enabled: false }]),
  'post /api/clients/:name/host-key': obj('bob', ['web1', 'nope1'], (c) => ['POST', `/api/clients/${c}/host-key`, {}]),
  'post /api/clients': obj('bob', ['alpha', 'nope'], (t) => ['POST', '/api/clients', { name: 'sneaky', address: 'backup@10.0.0.9', paths: ['/'], tenant: t }]),
  'get /api/jobs': {
    kind: 'list', as: 'bob', request: ['GET', '/api/jobs'],
    expected: (b) => expect(names(b['jobs'])).toEqual(Array(1 + betaQueued).fill('b1')),
  },
  // Job 1 is alpha's logged job (the testbed's first).
  'get /api/jobs/:id': obj('bob', ['1', '999999'], (id) => ['GET', `/api/jobs/${id}`]),
  'get /api/jobs/:id/log': obj('bob', ['1', '999999'], (id) => ['GET', `/api/jobs/${id}/log`]),
  'get /api/snapshots': { kind: 'list', as: 'bob', request: ['GET', '/api/snapshots'], expected: (b) => expect(b['snapshots']).toEqual([]) },
  'get /api/snapshots/diff': obj('bob', ['web1', 'nope1'], (c) => ['GET', `/api/snapshots/diff?client=${c}&from=latest&to=latest`]),
  'get /api/snapshots/:id/ls': obj('bob', ['web1', 'nope1'], (c) => ['GET', `/api/snapshots/latest/ls?client=${c}&path=/`]),
  'get /api/snapshots/:id/download': obj('bob', ['web1', 'nope1'], (c) => ['GET', `/api/snapshots/latest/download?client=${c}&path=/`]),
  'post /api/restores': obj('bob', ['web1', 'nope1'], (c) => ['POST', '/api/restores', { snapshot: 'latest', client: c, path: '/', toClient: 'b1', target: '/tmp/x' }]),
  'get /api/statistics': { kind: 'list', as: 'bob', request: ['GET', '/api/statistics'], expected: (b) => expect(b['points']).toEqual([]) },
  'post /api/jobs': obj('bob', ['web1', 'nope1'], (c) => ['POST', '/api/jobs', { client: c }]),
  'post /api/jobs/:id/cancel': obj('bob', ['1', '999999'], (id) => ['POST', `/api/jobs/${id}/cancel`, {}]),
};

/** The answer with the name asked about replaced, so alpha's and a missing one's can be compared. */
function normalised(res: ApiResponse, target: string): unknown {
  const text = JSON.stringify({ status: res.status, body: res.body });
  return JSON.parse(target === '' ? text : text.replace(new RegExp(`\\b${target}\\b`, 'g'), '<target>'));
}

const callers = { session: (name: Caller) => session(name), token: async (name: Caller) => new ApiClient(bed.web.url, tokens[name]) };

describe('a user of another tenant', () => {
  it('has a case here for every route of the route table', () => {
    expect(Object.keys(cases).sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
  });

  const objectCases = Object.entries(cases).flatMap(([route, c]) => (c.kind === 'object' ? (['session', 'token'] as const).map((via) => [route, via, c] as const) : []));
  it.each(objectCases)("%s by %s: alpha's object is refused exactly like one that does not exist", async (_route, via, c) => {
    const client = await callers[via](c.as);
    const [alpha, missing] = c.targets;
    expect(bed.loggedJobId).toBe(1);
    const before = await bed.web.db.prisma.job.count();
    const onAlpha = await client.request(...c.request(alpha));
    const onMissing = await client.request(...c.request(missing));
    expect(onAlpha.status).toBeGreaterThanOrEqual(400);
    expect(normalised(onAlpha, alpha)).toEqual(normalised(onMissing, missing));
    expect(await bed.web.db.prisma.job.count()).toBe(before);
  });

  const listCases = Object.entries(cases).flatMap(([route, c]) => (c.kind === 'list' ? (['session', 'token'] as const).map((via) => [route, via, c] as const) : []));
  it.each(listCases)('%s by %s: shows and counts only its own tenant', async (_route, via, c) => {
    const client = await callers[via](c.as);
    const res = await client.request<Record<string, unknown>>(...c.request);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    c.expected(res.body);
  });

  it("cannot reach alpha's snapshot through its own client's name", async () => {
    const bob = await session('bob');
    const ls = await bob.request('GET', `/api/snapshots/${bed.fx.first}/ls?client=b1&path=/`);
    const none = await bob.request('GET', `/api/snapshots/${'ab'.repeat(32)}/ls?client=b1&path=/`);
    expect(normalised(ls, bed.fx.first)).toEqual(normalised(none, 'ab'.repeat(32)));
    expect([ls.status, ls.body]).toEqual([404, { error: { code: 'SnapshotNotFound', message: `client b1 has no snapshot ${bed.fx.first}; the Snapshots page lists them.` } }]);
    const restore = await bob.request('POST', '/api/restores', { snapshot: 'latest', client: 'b1', path: '/', toClient: 'web1', target: '/tmp/x' });
    expect([restore.status, restore.body]).toEqual([404, { error: { code: 'ClientNotFound', message: 'there is no client named "web1"; the Clients page (or GET /api/clients) lists the clients you can see.' } }]);
    expect(bed.restores).toEqual([]);
  });

  it('an alpha operator sees alpha and acts on it; an admin sees both tenants', async () => {
    const ann = await session('ann');
    expect(names((await ann.request<{ clients: unknown }>('GET', '/api/clients')).body.clients)).toEqual(['db1', 'web1']);
    expect((await ann.request<{ job: { client: string } }>('GET', `/api/jobs/${bed.loggedJobId}`)).body.job.client).toBe('web1');
    const status = (await ann.request<{ daemon: { queuedTotal: number } }>('GET', '/api/status')).body.daemon;
    expect(status.queuedTotal).toBe(alphaQueued);
    expect((await ann.request('GET', `/api/jobs/${betaJobId}`)).status).toBe(404);
    const admin = await session('admin');
    const all = (await admin.request<{ clients: { name: string; tenant: string }[] }>('GET', '/api/clients')).body.clients;
    expect(all.map((c) => [c.name, c.tenant])).toEqual([['b1', 'beta'], ['db1', 'alpha'], ['web1', 'alpha']]);
  });

  it('an auditor reads only its tenant\'s audit entries, an admin all of them', async () => {
    const bea = await session('bea');
    const entries = (await bea.request<{ entries: { action: string; target: string | null }[] }>('GET', '/api/audit?limit=1000')).body.entries;
    const total = await bed.web.db.prisma.auditEntry.count({ where: { tenantId: (await tenants.get('beta')).id } });
    expect(entries.length).toBe(total);
    const alphaEntries = await bed.web.server.services.audit.list({ tenantIds: [(await tenants.get('alpha')).id] });
    expect(alphaEntries.map((e) => `${e.actor} ${e.action} ${e.target}`).reverse()).toEqual(['ann client.change web1', 'ann job.run web1']);
    const admin = await session('admin');
    expect((await admin.request<{ entries: unknown[] }>('GET', '/api/audit?limit=1000')).body.entries.length).toBe(await bed.web.db.prisma.auditEntry.count());
  });
});

describe('live events over socket.io', () => {
  async function connect(username: string): Promise<{ socket: Socket; events: Record<string, unknown>[]; statuses: { running: { clientName: string }[]; queuedTotal: number }[] }> {
    const client = await session(username);
    const socket = connectSocket(bed.web.url, { transports: ['websocket'], reconnection: false, auth: { csrfToken: client.csrfToken }, extraHeaders: { cookie: client.cookie! } });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const events: Record<string, unknown>[] = [];
    const statuses: { running: { clientName: string }[]; queuedTotal: number }[] = [];
    socket.on('daemon:event', (e: Record<string, unknown>) => events.push(e));
    socket.on('daemon:status', (s: { running: { clientName: string }[]; queuedTotal: number }) => statuses.push(s));
    expect(await socket.emitWithAck('dashboard:subscribe', {})).toMatchObject({ ok: true });
    return { socket, events, statuses };
  }

  const at = () => new Date().toISOString();
  const counters = { filesTotal: '10', filesDone: '5', bytesScanned: '100', bytesNew: '50', bytesOnWire: '40', errors: 0, bytesPerSecond: null, etaSeconds: null, currentPath: '/srv/a' };

  it("reach beta's sockets only for beta's jobs, even when beta asks to watch alpha's job", async () => {
    const web1 = await bed.web.server.services.clients.get('web1');
    const b1 = await bed.web.server.services.clients.get('b1');
    const ann = await connect('ann');
    const bob = await connect('bob');
    try {
      const alphaJob = bed.loggedJobId;
      for (const s of [ann.socket, bob.socket]) {
        expect(await s.emitWithAck('job:watch', { jobId: alphaJob })).toEqual({ ok: true, result: { jobId: alphaJob } });
        expect(await s.emitWithAck('job:watch', { jobId: betaJobId })).toEqual({ ok: true, result: { jobId: betaJobId } });
      }
      // A running job of each tenant on the daemon's board: the status events list them.
      bed.bus.board.add(wireJob(alphaJob, { clientId: web1.id, clientName: 'web1', state: 'transferring' }));
      bed.bus.board.add(wireJob(betaJobId, { clientId: b1.id, clientName: 'b1', state: 'transferring' }));
      const publish = (jobId: number, clientId: number, clientName: string) => {
        bed.bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at: at(), previousState: 'queued', job: wireJob(jobId, { clientId, clientName, state: 'connecting' }) });
        bed.bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-progress', at: at(), jobId, ...counters });
        bed.bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-log', at: at(), jobId, level: 'INFO', line: `line of job ${jobId}` });
      };
      publish(alphaJob, web1.id, 'web1');
      // Beta's events go last: delivery keeps the daemon's order, so once bob has them, alpha's would have come before.
      publish(betaJobId, b1.id, 'b1');
      await expect.poll(() => bob.events.length, { timeout: 10_000 }).toBe(3);
      await expect.poll(() => ann.events.length, { timeout: 10_000 }).toBe(3);
      const jobOf = (e: Record<string, unknown>) => (e['jobId'] as number | undefined) ?? (e['job'] as { id: number }).id;
      expect(bob.events.map((e) => [e['type'], jobOf(e)])).toEqual([['job-state', betaJobId], ['job-progress', betaJobId], ['job-log', betaJobId]]);
      expect(ann.events.map((e) => [e['type'], jobOf(e)])).toEqual([['job-state', alphaJob], ['job-progress', alphaJob], ['job-log', alphaJob]]);

      // The daemon's status: each sees its own running job and its own queue length.
      await expect.poll(() => bob.statuses.at(-1)?.running.map((j) => j.clientName), { timeout: 10_000 }).toEqual(['b1']);
      await expect.poll(() => ann.statuses.at(-1)?.running.map((j) => j.clientName), { timeout: 10_000 }).toEqual(['web1']);
      expect(bob.statuses.every((s) => s.running.every((j) => j.clientName === 'b1'))).toBe(true);
      expect(bob.statuses.at(-1)!.queuedTotal).toBe(betaQueued);
    } finally {
      ann.socket.disconnect();
      bob.socket.disconnect();
      bed.bus.board.jobs.clear();
    }
  });

  it("refuses beta's operator running or cancelling alpha's jobs over the socket like a missing one", async () => {
    const bob = await connect('bob');
    try {
      const run = await bob.socket.emitWithAck('job:run', { client: 'web1' });
      const runMissing = await bob.socket.emitWithAck('job:run', { client: 'nope1' });
      expect(JSON.parse(JSON.stringify(run).split('web1').join('X'))).toEqual(JSON.parse(JSON.stringify(runMissing).split('nope1').join('X')));
      expect(run).toEqual({ error: { code: 'ClientNotFound', message: 'there is no client named "web1"; the Clients page (or GET /api/clients) lists the clients you can see.' } });
      const cancel = await bob.socket.emitWithAck('job:cancel', { jobId: bed.loggedJobId });
      expect(cancel).toEqual({ error: { code: 'JobNotFound', message: `there is no job ${bed.loggedJobId}; the Jobs page lists them.` } });
    } finally {
      bob.socket.disconnect();
    }
  });
});
