// Commands over a real ZeroMQ bus (ipc:// sockets in a temporary state directory): the handler
// registry, typed errors, and everything a broken or hostile client can send. The handlers are
// real ones over an in-memory job table (tests/helpers/bus.ts); the daemon backs the same
// handlers with its database.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { BusClient } from '../../../shared/bus/bus-client.js';
import { BUS_PROTOCOL_VERSION } from '../../../shared/bus/messages.js';
import { HaulError } from '../../../shared/errors.js';
import { LEVEL, startTestBus, wireJob, type TestBus } from '../../helpers/bus.js';
import { projectRoot, tempDir, testNode } from '../../helpers/cli.js';
import { failure } from '../../helpers/errors.js';
import { ensureUser } from '../../helpers/sshd.js';

const distModule = (relative: string) => {
  const file = path.join(projectRoot, 'dist', relative);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first (child processes run the compiled code)`);
  return `file://${file}`;
};

/** Runs an ES module snippet in a separate Node process; resolves with its stdout once it printed a line. */
function runNode(script: string, options: { uid?: number; gid?: number } = {}) {
  const child = spawn(testNode, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], ...options });
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before printing a line`)));
  });
  return { child, firstLine };
}

/** A client that sends whatever bytes it is given, as a broken or hostile program would. */
async function rawDealer(endpoint: string) {
  const socket = new zmq.Dealer({ linger: 0 });
  socket.connect(endpoint);
  return {
    socket,
    send: (frames: (Buffer | string)[]) => socket.send(frames),
    /** The next message, or undefined when none comes within `ms`. */
    async receive(ms = 300): Promise<unknown> {
      socket.receiveTimeout = ms;
      try {
        const [frame] = await socket.receive();
        return JSON.parse(frame!.toString('utf8'));
      } catch (err) {
        if ((err as { code?: string }).code === 'EAGAIN') return undefined;
        throw err;
      }
    },
    close: () => socket.close(),
  };
}

const request = (id: string, command: string, params: unknown = {}) => JSON.stringify({ v: BUS_PROTOCOL_VERSION, id, type: 'request', command, params });

describe('bus commands', () => {
  let bus: TestBus;
  let client: BusClient;
  beforeAll(async () => {
    bus = await startTestBus({ maxInFlight: 3 });
    client = await BusClient.connect({ endpoint: bus.server.endpoints!.ipc.commands });
  });
  afterAll(async () => {
    client?.close();
    await bus?.stop();
  });

  it('answers status: version, protocol, pid, uptime, running and queued jobs, events endpoints', async () => {
    bus.board.add(wireJob(1, { state: 'transferring', startedAt: '2026-11-23T10:00:05.000Z', bytesScanned: '9007199254740993' }));
    bus.board.add(wireJob(2));
    const status = await client.request('status', {});
    expect(status).toMatchObject({ version: '0.1.0', protocol: 1, pid: process.pid, daemonId: 'test-daemon', queuedTotal: 1 });
    expect(status.events).toEqual({ ipc: `ipc://${path.join(bus.stateDir, 'run', 'events.sock')}`, tcp: null });
    expect(status.running.map((j) => j.id)).toEqual([1]);
    expect(status.queued.map((j) => j.id)).toEqual([2]);
    // A counter beyond 2^53 arrives exact: counters travel as decimal strings.
    expect(BigInt(status.running[0]!.bytesScanned)).toBe(9007199254740993n);
    expect(status.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(status.uptimeSeconds).toBeLessThan(60);
  });

  it('runs commands through their registered handlers with typed params and results', async () => {
    const { job } = await client.request('run-now', { client: 'db1' });
    expect(job).toMatchObject({ id: 3, clientName: 'db1', state: 'queued', trigger: 'manual' });
    const cancelled = await client.request('cancel', { jobId: 3 });
    expect(cancelled.job).toMatchObject({ id: 3, state: 'cancelled', failureCause: 'cancelled' });
    const listed = await client.request('list-jobs', { states: ['cancelled', 'queued'] });
    expect(listed.jobs.map((j) => [j.id, j.state])).toEqual([[3, 'cancelled'], [2, 'queued']]);
    expect((await client.request('list-jobs', { limit: 1 })).jobs.map((j) => j.id)).toEqual([3]);
  });

  it("a handler's HaulError reaches the client with its code and message; the daemon keeps serving", async () => {
    const err = await failure(client.request('run-now', { client: 'nosuch' }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toBe('there is no client named nosuch; `haul client list` shows them.');
    expect(err.exitCode).toBe(2);
    const twice = await failure(client.request('cancel', { jobId: 3 }));
    expect(twice.message).toBe('job 3 has cancelled already; there is nothing to cancel.');
  });

  it('a handler that throws a plain error or returns an invalid result is a bug: logged, answered as Internal', async () => {
    bus.server.handle('reload-config', () => {
      throw new TypeError('config is undefined');
    });
    const thrown = await failure(client.request('reload-config', {}));
    expect(thrown.code).toBe('Internal');
    expect(thrown.message).toBe('the daemon failed while handling "reload-config": config is undefined. This is a bug in Haul; the daemon log has the details.');
    const logged = bus.log.entries.find((e) => e.msg === 'the "reload-config" handler failed: config is undefined');
    expect(logged?.level).toBe(LEVEL.error);
    expect((logged?.err as { stack?: string }).stack).toContain('TypeError: config is undefined');

    bus.server.handle('reload-config', () => ({ clients: -1, message: 'reloaded' }));
    const invalid = await failure(client.request('reload-config', {}));
    expect(invalid.message).toBe('the daemon produced an invalid answer to "reload-config". This is a bug in Haul; the daemon log has the details.');
    expect(bus.log.at(LEVEL.error)).toContain('the "reload-config" handler returned a result that breaks the bus protocol: result.clients: Too small: expected number to be >=0');

    bus.server.handle('reload-config', () => ({ clients: 2, message: 'reloaded 2 clients' }));
    expect(await client.request('reload-config', {})).toEqual({ clients: 2, message: 'reloaded 2 clients' });
  });

  it('refuses bad parameters on the client side before sending', async () => {
    const err = await failure(client.request('cancel', { jobId: -4 }));
    expect(err.code).toBe('InvalidRequest');
    expect(err.message).toBe('invalid parameters for "cancel": params.jobId: Too small: expected number to be >=1.');
  });

  describe('malformed messages: each is logged and dropped, or answered with an error; the daemon keeps serving', () => {
    const cases: { name: string; frames: (Buffer | string)[]; answer?: { code: string; message: string }; logged: string }[] = [
      { name: 'random bytes (not UTF-8)', frames: [Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x9c, 0x13])], logged: 'not UTF-8' },
      { name: 'text that is not JSON', frames: ['{"v":1,"id":"x",'], logged: 'not JSON' },
      { name: 'JSON without a request id', frames: [JSON.stringify({ v: 1, type: 'request', command: 'status', params: {} })], logged: 'no valid request id, so no answer is possible' },
      { name: 'an id that is not an id', frames: [JSON.stringify({ v: 1, id: 'a b\nc', type: 'request', command: 'status' })], logged: 'no valid request id, so no answer is possible' },
      { name: 'JSON null', frames: ['null'], logged: 'no valid request id, so no answer is possible' },
      { name: 'two frames', frames: [request('two', 'status'), 'extra'], logged: '2 frames, where a request is one frame' },
      { name: 'an empty message', frames: [''], logged: 'not JSON' },
      {
        name: 'a parameter of the wrong type',
        frames: [request('w1', 'run-now', { client: 42 })],
        answer: { code: 'InvalidRequest', message: 'invalid parameters for "run-now": params.client: Invalid input: expected string, received number.' },
        logged: 'invalid parameters for "run-now": params.client: Invalid input: expected string, received number.',
      },
      {
        name: 'an unknown parameter',
        frames: [request('w2', 'cancel', { jobId: 1, force: true })],
        answer: { code: 'InvalidRequest', message: 'invalid parameters for "cancel": params: Unrecognized key: "force".' },
        logged: 'invalid parameters for "cancel": params: Unrecognized key: "force".',
      },
      {
        name: 'an envelope field of the wrong type',
        frames: [JSON.stringify({ v: 1, id: 'w3', type: 'request', command: 7, params: {} })],
        answer: { code: 'InvalidRequest', message: 'malformed bus message: command: Invalid input: expected string, received number.' },
        logged: 'malformed bus message: command: Invalid input: expected string, received number.',
      },
      {
        name: 'an unknown message type',
        frames: [JSON.stringify({ v: 1, id: 'w4', type: 'shutdown' })],
        answer: { code: 'InvalidRequest', message: "malformed bus message: type: Invalid discriminator value. Expected 'request' | 'credit' | 'cancel-stream'." },
        logged: "malformed bus message: type: Invalid discriminator value. Expected 'request' | 'credit' | 'cancel-stream'.",
      },
      {
        name: 'an unknown command',
        frames: [request('u1', 'format-disk')],
        answer: { code: 'UnknownCommand', message: 'the daemon knows no command "format-disk"; the commands are status, list-jobs, run-now, cancel, repin-host-key, add-client, reload-config, restore, list-directory, diff-snapshots, download-snapshot.' },
        logged: 'the daemon knows no command "format-disk"',
      },
      {
        name: 'a command the protocol defines but this daemon does not handle',
        frames: [request('u2', 'repin-host-key', { client: 'web1' })],
        answer: { code: 'UnknownCommand', message: 'this daemon does not handle "repin-host-key" yet (bus protocol 1 defines it, but the daemon has no handler for it).' },
        logged: 'this daemon does not handle "repin-host-key" yet',
      },
      {
        name: 'another protocol version',
        frames: [JSON.stringify({ v: 2, id: 'p2', type: 'request', command: 'status', params: {} })],
        answer: { code: 'UnsupportedProtocol', message: 'this daemon speaks bus protocol 1, the client sent 2; use a client of the same Haul version as the daemon.' },
        logged: 'this daemon speaks bus protocol 1, the client sent 2',
      },
      {
        name: 'an oversized request (100 KiB, under the connection limit)',
        frames: [request('big', 'run-now', { client: 'x'.repeat(100 * 1024) })],
        logged: `${request('big', 'run-now', { client: 'x'.repeat(100 * 1024) }).length} bytes, over the 65536-byte limit`,
      },
    ];

    for (const c of cases) {
      it(c.name, async () => {
        const raw = await rawDealer(bus.server.endpoints!.ipc.commands);
        try {
          const before = bus.log.entries.length;
          await raw.send(c.frames);
          const answer = await raw.receive(c.answer ? 2000 : 300);
          if (c.answer) {
            expect(answer).toMatchObject({ v: 1, type: 'error', error: c.answer });
          } else {
            expect(answer).toBeUndefined();
          }
          const warnings = bus.log.entries.slice(before).filter((e) => e.level === LEVEL.warn).map((e) => e.msg);
          expect(warnings).toHaveLength(1);
          expect(warnings[0]).toMatch(/^(dropped|refused) a bus message from ipc:[0-9a-f]+: /);
          expect(warnings[0]).toContain(c.logged);
          // The same connection, and the daemon, go on working.
          await raw.send([request('after', 'status')]);
          expect(await raw.receive(2000)).toMatchObject({ id: 'after', type: 'reply', result: { version: '0.1.0' } });
        } finally {
          raw.close();
        }
      });
    }

    it('a message over the connection limit (2 MiB): ZeroMQ drops that connection, the daemon and other clients are unharmed', async () => {
      const raw = await rawDealer(bus.server.endpoints!.ipc.commands);
      try {
        await raw.send([Buffer.alloc(2 * 1024 * 1024, 0x7b)]);
        expect(await raw.receive(500)).toBeUndefined();
        expect((await client.request('status', {})).version).toBe('0.1.0');
        // The dropped client reconnects on its own and is served again.
        await raw.send([request('again', 'status')]);
        expect(await raw.receive(3000)).toMatchObject({ id: 'again', type: 'reply' });
      } finally {
        raw.close();
      }
    });

    it('a flood of 2000 garbage messages: all dropped, the daemon answers the next request', async () => {
      const raw = await rawDealer(bus.server.endpoints!.ipc.commands);
      try {
        const before = bus.log.at(LEVEL.warn).length;
        for (let i = 0; i < 2000; i++) await raw.send([Buffer.from(`garbage ${i} \u0000`)]);
        await raw.send([request('after-flood', 'status')]);
        expect(await raw.receive(5000)).toMatchObject({ id: 'after-flood', type: 'reply' });
        expect(bus.log.at(LEVEL.warn).length - before).toBe(2000);
      } finally {
        raw.close();
      }
    });
  });

  it('a slow handler does not hold up other requests; past maxInFlight the daemon answers DaemonBusy', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    bus.server.handle('repin-host-key', async ({ client: name }) => {
      await gate;
      return { client: name, previous: null, fingerprint: 'SHA256:' + 'A'.repeat(43) };
    });
    const slow = [1, 2, 3].map(() => client.request('repin-host-key', { client: 'web1' }, { timeoutMs: 10_000 }));
    const started = Date.now();
    expect((await client.request('list-jobs', {}).catch((e: HaulError) => e)) as HaulError).toMatchObject({ code: 'DaemonBusy', message: 'the daemon is handling 3 requests already; try again in a moment.' });
    release();
    for (const r of await Promise.all(slow)) expect(r.fingerprint).toBe('SHA256:' + 'A'.repeat(43));
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await client.request('list-jobs', {})).jobs.length).toBeGreaterThan(0);
  });

  it('a request the daemon never answers times out with a clear error', async () => {
    bus.server.handle('reload-config', () => new Promise(() => undefined));
    const started = Date.now();
    const err = await failure(client.request('reload-config', {}, { timeoutMs: 300 }));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(err.code).toBe('BusTimeout');
    expect(err.message).toBe(`the Haul daemon at ${bus.server.endpoints!.ipc.commands} did not answer "reload-config" within 0.3 s; it may be overloaded or stopping. Try again, or read the daemon's log.`);
  });
});

describe('bus endpoints and permissions', () => {
  it('no daemon: the client says so at once, naming the endpoint and how to start one', async () => {
    const missing = '/tmp/haul-no-daemon-here/run/commands.sock';
    const started = Date.now();
    const err = await failure(BusClient.connect({ endpoint: `ipc://${missing}` }));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('DaemonNotRunning');
    expect(err.message).toBe(`no Haul daemon answers at ipc://${missing}; start it with \`haul daemon\` (or check --bus and --home).`);
  });

  it('sockets are 0600 in a 0700 run directory by default, 0660 in 0750 with group access; stop removes them', async () => {
    const own = await startTestBus();
    const run = path.join(own.stateDir, 'run');
    expect(fs.statSync(run).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(run, 'commands.sock')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(run, 'events.sock')).mode & 0o777).toBe(0o600);
    await own.server.stop();
    expect(fs.readdirSync(run)).toEqual([]);

    const group = await startTestBus({ groupAccess: true }, own.stateDir);
    expect(fs.statSync(run).mode & 0o777).toBe(0o750);
    expect(fs.statSync(path.join(run, 'commands.sock')).mode & 0o777).toBe(0o660);
    expect(fs.statSync(path.join(run, 'events.sock')).mode & 0o777).toBe(0o660);
    await group.stop();
    await own.stop(); // removes the state directory it made
  });

  it('a second daemon on the same state directory is refused, the first keeps running', async () => {
    const first = await startTestBus();
    try {
      const second = await failure(startTestBus({}, first.stateDir));
      expect(second.code).toBe('DaemonAlreadyRunning');
      expect(second.message).toBe(`another Haul daemon is running with the state directory ${first.stateDir} (it answers at ipc://${path.join(first.stateDir, 'run', 'commands.sock')}). Stop it first, or give this one another --home.`);
      const c = await BusClient.connect({ endpoint: first.server.endpoints!.ipc.commands });
      expect((await c.request('status', {})).pid).toBe(process.pid);
      c.close();
    } finally {
      await first.stop();
    }
  });

  it('a file that is not a socket where a socket goes is refused, not deleted', async () => {
    const tmp = await startTestBus();
    await tmp.server.stop();
    const file = path.join(tmp.stateDir, 'run', 'commands.sock');
    fs.writeFileSync(file, 'precious');
    const err = await failure(startTestBus({}, tmp.stateDir));
    expect(err.message).toBe(`${file} exists and is not a socket; the daemon needs that name for its bus. Move the file away and start again.`);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    fs.rmSync(tmp.stateDir, { recursive: true, force: true });
  });

  it('a state directory whose socket path is too long for a Unix socket is refused with the reason', async () => {
    const err = await failure(BusClient.connect({ endpoint: `ipc:///tmp/${'d'.repeat(100)}/run/commands.sock` }));
    expect(err.message).toBe(`the bus socket path /tmp/${'d'.repeat(100)}/run/commands.sock is 123 bytes, more than the 107 a Unix socket allows; use a state directory (--home) with a shorter path.`);
  });

  it('the sockets a killed daemon left behind are stale: the next daemon removes them and starts', async () => {
    const tmp = tempDir('bus-killed');
    try {
      const { child, firstLine } = runNode(`
        const { BusServer } = await import(${JSON.stringify(distModule('daemon/bus/bus-server.js'))});
        const quiet = { debug() {}, info() {}, warn() {}, error() {} };
        const server = new BusServer({ stateDir: ${JSON.stringify(tmp.dir)}, logger: quiet, version: '0.1.0', jobs: async () => ({ running: [], queued: [] }), heartbeatMs: 0 });
        await server.start();
        console.log('started');
        setInterval(() => {}, 1000);`);
      expect(await firstLine).toBe('started');
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      expect(fs.readdirSync(path.join(tmp.dir, 'run')).sort()).toEqual(['commands.sock', 'events.sock']);
      const next = await startTestBus({}, tmp.dir);
      const c = await BusClient.connect({ endpoint: next.server.endpoints!.ipc.commands });
      expect((await c.request('status', {})).pid).toBe(process.pid);
      c.close();
      await next.server.stop();
    } finally {
      tmp.cleanup();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('another Unix user is refused by the 0700/0600 default; a member of the daemon\'s group gets in with group access (needs root)', async () => {
    const other = ensureUser('haul-t-bus-other');
    const tmp = tempDir('bus-perm');
    fs.chmodSync(tmp.dir, 0o755); // as a state directory under /var/lib would be: the run/ folder decides
    const probe = (gid: number) => runNode(`
      const { BusClient } = await import(${JSON.stringify(distModule('shared/bus/bus-client.js'))});
      try {
        const c = await BusClient.connect({ endpoint: ${JSON.stringify(`ipc://${path.join(tmp.dir, 'run', 'commands.sock')}`)} });
        const s = await c.request('status', {});
        console.log(JSON.stringify({ pid: s.pid }));
        c.close();
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`, { uid: other.uid, gid }).firstLine;
    try {
      const own = await startTestBus({}, tmp.dir);
      expect(JSON.parse(await probe(other.gid))).toEqual({
        code: 'BusPermissionDenied',
        message: `permission denied connecting to the Haul daemon at ipc://${path.join(tmp.dir, 'run', 'commands.sock')}. Run this as the daemon's user, or as a member of its group if the daemon shares its bus with its group (docs/bus.md).`,
      });
      // Even in the daemon's group (gid 0 here), the default shuts it out.
      expect(JSON.parse(await probe(0)).code).toBe('BusPermissionDenied');
      await own.server.stop();

      const shared = await startTestBus({ groupAccess: true }, tmp.dir);
      expect(JSON.parse(await probe(0))).toEqual({ pid: process.pid });
      expect(JSON.parse(await probe(other.gid)).code).toBe('BusPermissionDenied');
      await shared.server.stop();
    } finally {
      tmp.cleanup();
    }
  });
});
