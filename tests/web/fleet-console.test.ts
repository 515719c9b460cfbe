// One console over two `haul daemon` processes on one real PostgreSQL database (haul web --fleet):
// the console finds both daemons' buses in the FleetDaemon table, a real socket.io client sees
// the events of jobs on both, run-now goes to the less busy daemon, a cancel reaches the daemon
// that holds the job, and after kill -9 of one daemon the console says "1 of 2 daemons connected"
// and sends the next run to the one left.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { pseudoRandom } from '../helpers/fixtures.js';
import { createFleetTestbed, pollUntil, type FleetDaemonProcess, type FleetTestbed } from '../helpers/fleet-testbed.js';
import { postgresSkipReason } from '../helpers/postgres.js';
import { slowLink } from '../helpers/slow-link.js';
import { sshdSkipReason } from '../helpers/sshd.js';
import { testPasswordHashCost } from '../helpers/store-databases.js';
import { ApiClient, ensureWebBuilt } from '../helpers/web.js';
import type { DaemonStatus } from '../../web/server/daemon-link.js';
import { FleetDaemonLink } from '../../web/server/fleet-daemon-link.js';
import type { SocketReply } from '../../web/server/socket-events.js';
import { createWebServer, type WebServer } from '../../web/server/web-server.js';

const users = ['haul-t-flc-u1', 'haul-t-flc-u2'];
const skip = sshdSkipReason() ?? postgresSkipReason();
const MiB = 1024 * 1024;

type WireJobEvent = { type: string; job?: { id: number; state: string; daemonId: string | null }; jobId?: number };

describe.skipIf(skip !== undefined)(`one console over two daemons${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: FleetTestbed;
  let link: FleetDaemonLink;
  let web: WebServer;
  let socket: Socket;
  const links: { close(): void }[] = [];
  const events: WireJobEvent[] = [];
  const statuses: DaemonStatus[] = [];
  let daemons: FleetDaemonProcess[];

  beforeAll(async () => {
    ensureWebBuilt();
    bed = await createFleetTestbed('flc', users);
  }, 180_000);
  afterAll(async () => {
    socket?.disconnect();
    await web?.close();
    await link?.close();
    for (const l of links) l.close();
    await bed?.close();
  });

  const jobsSummary = async () => [JSON.stringify((await bed.db.prisma.job.findMany({ orderBy: { id: 'asc' } })).map((j) => [j.id, j.clientName, j.state, j.daemonId, j.failureMessage])), ...daemons.map((d) => d.logTail(15))].join('\n');
  const emit = (event: string, payload: unknown) => socket.timeout(30_000).emitWithAck(event, payload) as Promise<SocketReply>;
  const jobOf = (reply: SocketReply) => {
    if (!('ok' in reply)) throw new Error(`the console refused: ${JSON.stringify(reply)}`);
    return bed.db.prisma.job.findUniqueOrThrow({ where: { id: (reply.result as { jobId: number }).jobId } });
  };
  const inState = (id: number, states: string[]) => pollUntil(async () => (await bed.db.prisma.job.findFirst({ where: { id, state: { in: states } } })) ?? undefined, 120_000, jobsSummary);

  it('finds both daemons in the database and shows "2 of 2 daemons connected" to a socket.io client', async () => {
    // Each client's data crosses a 1 MiB/s link: a backup takes about 6 s, time to cancel it.
    for (const [i, user] of bed.users.entries()) {
      const dir = bed.writeData(user, `c${i}`, { 'data.bin': pseudoRandom(`flc-${i}`, 6 * MiB) });
      const slow = await slowLink(bed.sshd.port, MiB);
      links.push(slow);
      await bed.addClient(`flc-${i}`, user, dir, { port: slow.port });
    }
    daemons = [bed.startDaemon('flc-a'), bed.startDaemon('flc-b')];
    const rows = await pollUntil(async () => {
      const found = await bed.db.prisma.fleetDaemon.findMany({ orderBy: { id: 'asc' } });
      return found.length === 2 ? found : undefined;
    }, 90_000, async () => daemons.map((d) => d.stderr()).join('\n'));
    // Without --bus-tcp a daemon advertises its Unix socket, in its own state directory.
    expect(rows.map((r) => [r.id, r.busEndpoint])).toEqual(daemons.map((d) => [d.id, `ipc://${bed.tmp}/home-${d.id}/run/commands.sock`]));

    link = new FleetDaemonLink({ database: bed.db, checkEveryMs: 300 });
    await link.start();
    web = createWebServer({ database: bed.db, daemon: link, passwordHashCost: testPasswordHashCost, log: () => undefined });
    const url = await web.listen('127.0.0.1', 0);
    await web.services.users.create({ username: 'fleet-op', role: 'operator', password: 'correct horse battery' });
    const session = new ApiClient(url);
    expect((await session.login('fleet-op', 'correct horse battery')).status).toBe(200);
    socket = connectSocket(url, { transports: ['websocket'], reconnection: false, auth: { csrfToken: session.csrfToken }, extraHeaders: { cookie: session.cookie! } });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    socket.on('daemon:event', (e: WireJobEvent) => events.push(e));
    socket.on('daemon:status', (s: DaemonStatus) => statuses.push(s));
    const subscribed = await emit('dashboard:subscribe', {});
    expect(subscribed).toMatchObject({ ok: true });
    const status = ((subscribed as { result: { daemon: DaemonStatus } }).result.daemon);
    expect(status.connected).toBe(true);
    expect(status.message).toMatch(/^2 of 2 daemons connected \(flc-a: connected to the Haul daemon \S+ \(pid \d+, running since .+ UTC\); flc-b: connected to the Haul daemon \S+ \(pid \d+, running since .+ UTC\)\)$/);
    expect(status.daemons!.map((d) => [d.id, d.connected])).toEqual([['flc-a', true], ['flc-b', true]]);
  }, 180_000);

  it('runs one job on each daemon, relays the events of both, and sends a cancel to the daemon that holds the job', async () => {
    const first = await jobOf(await emit('job:run', { client: 'flc-0' }));
    await inState(first.id, ['transferring']);
    // The console learns the first daemon is busy from its status, then the next run goes to the other.
    await pollUntil(async () => (link.status().daemons!.find((d) => d.id === first.daemonId)?.running?.length === 1 ? true : undefined), 30_000, jobsSummary);
    const second = await jobOf(await emit('job:run', { client: 'flc-1' }));
    expect(new Set([first.daemonId, second.daemonId])).toEqual(new Set(['flc-a', 'flc-b']));
    await inState(second.id, ['transferring']);

    // The daemon that does not hold the job would refuse the cancel ("… not on this one"): an ok proves the route.
    expect(await emit('job:cancel', { jobId: second.id }), await jobsSummary()).toEqual({ ok: true, result: { ok: true } });
    const cancelled = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: second.id } });
    expect([cancelled.state, cancelled.daemonId, cancelled.failureMessage]).toEqual(['cancelled', second.daemonId, expect.stringMatching(/^cancelled by fleet-op via bus ipc:\S+ while it ran; no snapshot was written, what arrived is kept for the next run\.$/)]);
    const finished = await inState(first.id, ['succeeded', 'failed', 'cancelled']);
    expect([finished.state, finished.daemonId], await jobsSummary()).toEqual(['succeeded', first.daemonId]);

    // Every state change of both jobs reached the socket, each from the daemon running it.
    await pollUntil(async () => (events.some((e) => e.type === 'job-state' && e.job?.id === first.id && e.job.state === 'succeeded') ? true : undefined), 30_000, async () => JSON.stringify(events.filter((e) => e.type === 'job-state')));
    const statesOf = (id: number) => events.filter((e) => e.type === 'job-state' && e.job?.id === id).map((e) => [e.job!.state, e.job!.daemonId]);
    expect(statesOf(first.id).at(-1)).toEqual(['succeeded', first.daemonId]);
    expect(statesOf(second.id).at(-1)).toEqual(['cancelled', second.daemonId]);
    expect(statesOf(first.id).map(([s]) => s)).toEqual(expect.arrayContaining(['queued', 'transferring', 'succeeded']));
    expect(statesOf(second.id).map(([s]) => s)).toEqual(expect.arrayContaining(['queued', 'transferring', 'cancelled']));
    expect(events.some((e) => e.type === 'job-progress' && e.jobId === first.id)).toBe(true);
  }, 240_000);

  it('after kill -9 of one daemon: "1 of 2 daemons connected", and a run goes to the daemon left', async () => {
    const [victim, survivor] = daemons;
    victim!.child.kill('SIGKILL');
    expect((await victim!.exit).signal).toBe('SIGKILL');
    // Its FleetDaemon row stays until its lease (60 s by default) runs out: the console keeps it, not connected.
    const killedAt = Date.now();
    const down = await pollUntil(async () => statuses.find((s) => s.daemons?.some((d) => d.id === victim!.id && !d.connected)), 60_000, async () => JSON.stringify(link.status()));
    console.info(`the console saw daemon ${victim!.id} go after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
    expect(down.connected).toBe(true);
    expect(down.daemons!.map((d) => [d.id, d.connected])).toEqual([[victim!.id, false], [survivor!.id, true]].sort());
    expect(down.message).toMatch(new RegExp(`^1 of 2 daemons connected \\(.*${victim!.id}: the console is not connected to the Haul daemon \\(`));

    const run = await jobOf(await emit('job:run', { client: 'flc-0' }));
    expect(run.daemonId).toBe(survivor!.id);
    // The data is unchanged since the first run: this one is quick and stores nothing new.
    expect((await inState(run.id, ['succeeded', 'failed', 'cancelled'])).state, await jobsSummary()).toBe('succeeded');
    survivor!.child.kill('SIGTERM');
    expect(await survivor!.exit).toEqual({ code: 0, signal: null });
  }, 180_000);
});
