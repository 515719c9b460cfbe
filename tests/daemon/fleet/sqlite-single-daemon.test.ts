// SQLite serves one daemon: a second `haul daemon` on the same database file is refused with a
// message that names the running one and says what to do, and leaves the running one alone; once
// the first has stopped (or was killed), a new one starts.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../daemon/database/open-database.js';
import { haul, haulBin, haulEnv, haulSync, tempDir, testNode } from '../../helpers/cli.js';
import { pollUntil } from '../../helpers/fleet-testbed.js';

describe('one daemon per SQLite database', () => {
  const tmp = tempDir('fleet-sqlite');
  const repo = path.join(tmp.dir, 'repo');
  const home = path.join(tmp.dir, 'home');
  const env = haulEnv(repo, { HAUL_HOME: home });
  const dbFile = path.join(home, 'haul.db');
  // The refused daemons use the same database file from another state directory: on the same
  // one, its bus sockets refuse a second daemon first (daemon-bus.test.ts).
  const otherEnv = { ...haulEnv(repo, { HAUL_HOME: path.join(tmp.dir, 'home2') }), DATABASE_URL: `file:${dbFile}` };
  const logFile = path.join(tmp.dir, 'daemon.log');
  let db: Database;
  const children: ChildProcess[] = [];

  const start = (args: string[]) => {
    const child = spawn(testNode, [haulBin, 'daemon', '--http-port', 'off', '--log-file', logFile, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return { child, exit };
  };
  // Registered, and past its start (signal handlers set): its "started" line is in the log.
  const running = (id: string) =>
    pollUntil(
      async () => {
        const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
        const started = log.split('\n').some((l) => l.includes(`"daemon":"${id}"`) && l.includes('"msg":"haul daemon started'));
        return started ? ((await db.prisma.fleetDaemon.findUnique({ where: { id } })) ?? undefined) : undefined;
      },
      60_000,
      async () => `daemon ${id} never started`,
    );

  beforeAll(async () => {
    expect(haulSync(['init'], env).status).toBe(0);
    db = await openDatabase({ stateDir: home, url: '' });
  }, 60_000);
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await db?.close();
    tmp.cleanup();
  });

  it('refuses a second daemon, under another ID or the same one, and starts one after the first stopped', async () => {
    const first = start(['--daemon-id', 'first']);
    await running('first');
    // The heartbeat moves on every few seconds; the rest of the message is exact.
    const who = `on ${os.hostname()} (pid ${first.child.pid}, last heartbeat T)`;
    const stderrOf = (r: { stderr: string }) => r.stderr.replace(/last heartbeat \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)/, 'last heartbeat T)');

    const other = await haul(['daemon', '--http-port', 'off', '--log-file', path.join(tmp.dir, 'refused.log'), '--daemon-id', 'second'], otherEnv, { timeoutMs: 60_000 });
    expect([other.status, stderrOf(other)]).toEqual([
      1,
      `haul: error: daemon "first" already runs ${who} on the SQLite database ${dbFile}, and SQLite serves one daemon. Stop that daemon first, or run several daemons on one PostgreSQL database (DATABASE_URL=postgresql://…, see docs/deployment.md).\n`,
    ]);
    const same = await haul(['daemon', '--http-port', 'off', '--log-file', path.join(tmp.dir, 'refused.log'), '--daemon-id', 'first'], otherEnv, { timeoutMs: 60_000 });
    expect([same.status, stderrOf(same)]).toEqual([1, `haul: error: a daemon with the ID "first" already runs ${who} on ${dbFile}. Stop it, or give each daemon its own ID (--daemon-id, HAUL_DAEMON_ID).\n`]);
    // The refused ones changed nothing: the first daemon is still the one registered.
    expect((await db.prisma.fleetDaemon.findMany()).map((r) => [r.id, r.pid])).toEqual([['first', first.child.pid]]);

    first.child.kill('SIGTERM');
    expect(await first.exit).toEqual({ code: 0, signal: null });
    expect(await db.prisma.fleetDaemon.count()).toBe(0);
    const next = start(['--daemon-id', 'second']);
    await running('second');
    // Killed, it leaves its row behind; its process is gone, so a new daemon may start at once.
    next.child.kill('SIGKILL');
    await next.exit;
    const third = start(['--daemon-id', 'third']);
    await running('third');
    expect((await db.prisma.fleetDaemon.findMany()).map((r) => r.id)).toEqual(['third']);
    third.child.kill('SIGTERM');
    expect(await third.exit).toEqual({ code: 0, signal: null });
  }, 180_000);
});
