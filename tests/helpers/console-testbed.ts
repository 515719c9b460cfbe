// The console wired to real parts: the web server on a real SQLite database, linked by a real
// BusDaemonLink to a real BusServer that answers with the snapshot browser's handlers over a real
// repository (two snapshots with hostile file names). The database holds clients, jobs (with a
// log file and a state timeline) and the snapshot listing, as the daemon writes them.
//
// Two bus handlers are stand-ins, registered here only because the daemon's own ones are wired
// elsewhere (daemon/service/daemon.ts): `download-snapshot` streams TarDump (the code `haul dump`
// uses), `restore` records what it was asked and queues a job on the in-memory job board,
// `repin-host-key` pins REPINNED_KEY in the database as if the client had shown it, and
// `reload-config` counts the clients.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { ClientStore } from '../../daemon/database/client-store.js';
import { recordSnapshot } from '../../daemon/database/snapshot-listing.js';
import { TarDump } from '../../daemon/restorer/tar-dump.js';
import { registerSnapshotHandlers } from '../../daemon/service/snapshot-browser.js';
import { BUS_PROTOCOL_VERSION, type CommandRequest } from '../../shared/bus/messages.js';
import { BusDaemonLink } from '../../web/server/bus-daemon-link.js';
import { startTestBus, wireJob, type TestBus } from './bus.js';
import { tempDir } from './cli.js';
import { twoSnapshots, type SnapshotFixture } from './snapshots.js';
import { startTestConsole, type TestConsole } from './web.js';

export const HOSTILE_LOG_LINE = `2026-11-23T10:00:01.000Z WARN cannot read /srv/<script>alert("log")</script> "quoted" \\xff: permission denied`;

export const REPINNED_KEY = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';

export interface ConsoleTestbed {
  web: TestConsole;
  bus: TestBus;
  link: BusDaemonLink;
  fx: SnapshotFixture;
  /** What the restore stand-in was asked, in order. */
  restores: CommandRequest<'restore'>[];
  /** The job with a log file and a timeline (succeeded, with the first snapshot). */
  loggedJobId: number;
  close(): Promise<void>;
}

export async function startConsoleTestbed(options: { jobs?: number } = {}): Promise<ConsoleTestbed> {
  const tmp = tempDir('consolebed');
  const fx = await twoSnapshots(tmp.dir);
  const bus = await startTestBus();
  registerSnapshotHandlers(bus.server, fx.repo);
  bus.server.handleStream('download-snapshot', async ({ snapshot: ref, path: p, client }) => {
    const snapshot = await fx.repo.findSnapshot(ref, client);
    const out = new PassThrough();
    new TarDump(fx.repo, out).dump(snapshot, p).then(() => out.end(), (err: unknown) => out.destroy(err as Error));
    return { meta: { name: `${snapshot.client}-${snapshot.id.slice(0, 8)}.tar`, contentType: 'application/x-tar' }, chunks: out };
  });
  const restores: CommandRequest<'restore'>[] = [];
  bus.server.handle('restore', async (params) => {
    restores.push(params);
    const job = bus.board.add(wireJob(9000 + restores.length, { kind: 'restore', clientName: params.toClient }));
    bus.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at: new Date().toISOString(), previousState: null, job });
    return { job };
  });

  let link!: BusDaemonLink;
  const web = await startTestConsole({
    daemonFor: async (database) => {
      link = new BusDaemonLink({ endpoint: bus.server.endpoints!.ipc.commands, database, checkEveryMs: 200 });
      await link.start();
      return link;
    },
  });
  const prisma = web.db.prisma;
  const clients = new ClientStore(prisma);
  bus.server.handle('repin-host-key', async ({ client, fingerprint }) => {
    const { replaced } = await clients.pinHostKey(client, fingerprint ?? REPINNED_KEY);
    return { client, previous: replaced ?? null, fingerprint: fingerprint ?? REPINNED_KEY };
  });
  bus.server.handle('reload-config', async () => {
    const n = (await clients.list()).length;
    return { clients: n, message: `reloaded ${n} clients` };
  });
  const common = { port: 22, user: 'backup', excludes: [], oneFileSystem: true, retention: null, enabled: true };
  const web1 = await clients.add({ ...common, name: 'web1', host: 'web1.example.net', paths: [fx.data], excludes: ['/var/cache'], schedule: '0 2 * * *' }, { hostKey: 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU' });
  await clients.add({ ...common, name: 'db1', host: '10.0.0.7', port: 2222, paths: ['/var/lib/postgresql'], schedule: null });
  for (const id of [fx.first, fx.second]) await recordSnapshot(prisma, id, await fx.repo.readSnapshot(id));

  const logPath = path.join(tmp.dir, 'job.log');
  fs.writeFileSync(logPath, `2026-11-23T10:00:00.000Z INFO backup of web1 started\n${HOSTILE_LOG_LINE}\n2026-11-23T10:00:02.000Z INFO snapshot ${fx.first.slice(0, 8)} saved\n`);
  const t0 = Date.parse('2026-11-23T10:00:00.000Z');
  const logged = await prisma.job.create({
    data: {
      clientId: web1.id, clientName: 'web1', kind: 'backup', state: 'succeeded', trigger: 'schedule', queuedAt: new Date(t0), startedAt: new Date(t0 + 1000), finishedAt: new Date(t0 + 9000),
      filesTotal: 8n, filesDone: 8n, bytesScanned: 307_250n, bytesNew: 307_250n, bytesOnWire: 120_000n, snapshotId: fx.first, logPath,
      transitions: { create: ['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded'].map((state, i) => ({ state, at: new Date(t0 + i * 1500) })) },
    },
  });
  await prisma.job.create({
    data: { clientName: 'db1', kind: 'backup', state: 'failed', trigger: 'manual', requestedBy: 'otto', queuedAt: new Date(t0 + 60_000), finishedAt: new Date(t0 + 65_000), failureCause: 'unreachable', failureMessage: 'cannot reach db1 (10.0.0.7:2222): connection refused. Check that sshd runs there.', clientId: (await clients.get('db1')).id },
  });
  const extra = options.jobs ?? 0;
  for (let i = 0; i < extra; i += 500) {
    await prisma.job.createMany({
      data: Array.from({ length: Math.min(500, extra - i) }, (_, k) => ({ clientName: 'web1', clientId: web1.id, kind: 'backup', state: 'succeeded', trigger: 'schedule', queuedAt: new Date(t0 - (i + k) * 60_000), finishedAt: new Date(t0 - (i + k) * 60_000 + 30_000), filesDone: 10n, bytesScanned: 1000n })),
    });
  }
  return {
    web, bus, link, fx, restores, loggedJobId: logged.id,
    async close() {
      await web.close();
      await bus.stop();
      await fx.repo.close();
      tmp.cleanup();
    },
  };
}
