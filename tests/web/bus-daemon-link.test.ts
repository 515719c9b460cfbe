// The console's link to the daemon over a real ZeroMQ bus: it connects by itself, relays events,
// says plainly why it is not connected when the daemon goes away (and refuses actions with that
// message), and reconnects by itself when a daemon answers again on the same endpoint.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../daemon/database/open-database.js';
import { startTestBus, until, type TestBus } from '../helpers/bus.js';
import { tempDir } from '../helpers/cli.js';
import { failure } from '../helpers/errors.js';
import { BusDaemonLink } from '../../web/server/bus-daemon-link.js';
import type { DaemonEvent, DaemonStatus } from '../../web/server/daemon-link.js';

const waitLong = 10_000;

describe('BusDaemonLink', () => {
  const tmp = tempDir('buslink');
  const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-buslink-db-'));
  let db: Database;
  let bus: TestBus | undefined;
  let link: BusDaemonLink;
  const events: DaemonEvent[] = [];
  const statuses: DaemonStatus[] = [];

  beforeAll(async () => {
    db = await openDatabase({ stateDir: dbDir });
  });
  afterAll(async () => {
    await link?.close();
    await bus?.stop();
    await db?.close();
    tmp.cleanup();
    fs.rmSync(dbDir, { recursive: true, force: true });
  });

  it('says why it is not connected while no daemon runs, and refuses actions with that message', async () => {
    const endpoint = `ipc://${tmp.dir}/run/commands.sock`;
    link = new BusDaemonLink({ endpoint, database: db, checkEveryMs: 100, timeoutMs: 1000 });
    link.subscribe({ event: (e) => events.push(e), status: (s) => statuses.push(s) });
    await link.start();
    expect(link.status()).toEqual({
      connected: false,
      message: `the console is not connected to the Haul daemon (no Haul daemon answers at ${endpoint}; start it with \`haul daemon\` (or check --bus and --home)). It tries again every 0.1 s; start the daemon on this server and check that both use the same state directory.`,
    });
    const err = await failure(link.runJob({ client: 'web1', requestedBy: 'pat' }));
    expect([err.code, err.message]).toEqual(['DaemonNotConnected', link.status().message]);
    // Listings come from the database and do not need the daemon.
    expect(await link.listJobs({ limit: 10 })).toEqual([]);
  });

  it('connects by itself when the daemon starts, and relays its events', async () => {
    bus = await startTestBus({}, tmp.dir);
    await until(() => link.status().connected, waitLong);
    expect(link.status().message).toMatch(/^connected to the Haul daemon 0\.1\.0 \(pid \d+, running since \d{4}-\d\d-\d\d \d\d:\d\d UTC\)$/);
    expect(statuses.at(-1)?.connected).toBe(true);
    const { jobId } = await link.runJob({ client: 'web1', requestedBy: 'pat' });
    expect(jobId).toBe(1);
    await until(() => events.some((e) => e.type === 'job-state'), waitLong);
    expect(events.find((e) => e.type === 'job-state')).toMatchObject({ previousState: null, job: { id: 1, clientName: 'web1', state: 'queued' } });
    bus.board.transition(1, 'transferring');
    await until(() => events.filter((e) => e.type === 'job-state').length === 2, waitLong);
    expect(events.filter((e) => e.type === 'job-state').map((e) => (e['job'] as { state: string }).state)).toEqual(['queued', 'transferring']);
    await link.check();
    expect(link.status().running?.map((j) => [j.id, j.state])).toEqual([[1, 'transferring']]);
  });

  it('notices the daemon going away, and comes back with the next daemon', async () => {
    await bus!.stop();
    bus = undefined;
    await until(() => !link.status().connected, waitLong);
    expect(statuses.at(-1)).toMatchObject({ connected: false, message: expect.stringMatching(/^the console is not connected to the Haul daemon \(/) });
    expect((await failure(link.cancelJob({ jobId: 1, requestedBy: 'pat' }))).code).toBe('DaemonNotConnected');
    bus = await startTestBus({}, tmp.dir);
    await until(() => link.status().connected, waitLong);
    expect((await link.runJob({ client: 'db1', requestedBy: 'pat' })).jobId).toBe(1);
  });
});
