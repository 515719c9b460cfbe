// The real `haul daemon` process on its bus, with a real sshd client: `haul status`, run-now and
// `haul watch --job` to success (the snapshot listed in the database, `haul log` printing the
// job's log), download-snapshot as a tar equal to `haul dump` and to the data, restore onto the
// client as a job (byte for byte), cancel of a running backup with its events, and malformed
// messages that are logged and dropped while the daemon keeps answering.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { BusClient } from '../../../shared/bus/bus-client.js';
import { defaultBusEndpoints } from '../../../shared/bus/endpoints.js';
import { jobTopic, type BusEvent } from '../../../shared/bus/messages.js';
import { haul, haulBin, testNode } from '../../helpers/cli.js';
import { createDaemonTestbed, fullRun, transitionsOf, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { failure } from '../../helpers/errors.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { slowLink } from '../../helpers/slow-link.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const A = 'haul-t-dbus-a';
const MiB = 1024 * 1024;
const skip = sshdSkipReason();
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Events of a subscription until `done` says stop (or the time runs out). */
async function collect(subscription: AsyncIterable<BusEvent>, done: (e: BusEvent) => boolean, ms = 60_000): Promise<BusEvent[]> {
  const seen: BusEvent[] = [];
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no end after ${ms} ms; saw ${seen.map((e) => e.type).join(', ')}`)), ms).unref());
  const reading = (async () => {
    for await (const event of subscription) {
      seen.push(event);
      if (done(event)) return seen;
    }
    return seen;
  })();
  return Promise.race([reading, timeout]);
}

describe.skipIf(skip !== undefined)(`haul daemon on its bus${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let data: string;
  let files: Record<string, Buffer>;
  let link: { port: number; close(): void };
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let stderr = '';
  let logFile: string;
  let bus: BusClient;

  const logMessages = () => fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: number });

  beforeAll(async () => {
    bed = await createDaemonTestbed('dbus', [A]);
    files = { 'one.bin': pseudoRandom('dbus-one', 3 * MiB + 17), 'notes.txt': Buffer.from('restore me byte for byte\n') };
    data = bed.writeData(A, 'data', files);
    const big = bed.writeData(A, 'big', { 'big.bin': pseudoRandom('dbus-big', 48 * MiB) });
    await bed.addClient('web', A, data);
    // 8 MiB/s: the big backup runs for seconds, long enough to be cancelled mid-way.
    link = await slowLink(bed.sshd.port, 8 * MiB);
    await bed.addClient('slow', A, big, { port: link.port });
    logFile = path.join(bed.tmp, 'daemon.log');
    child = spawn(testNode, [haulBin, 'daemon', '--http-port', 'off', '--log-file', logFile, '--time-zone', 'UTC', '--grace', '0'], { env: bed.env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const endpoint = defaultBusEndpoints(bed.stateDir).commands;
    for (let i = 0; ; i++) {
      if (fs.existsSync(endpoint.slice('ipc://'.length))) break;
      if (i > 300 || child.exitCode !== null) throw new Error(`the daemon did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    bus = await BusClient.connect({ endpoint, timeoutMs: 20_000 });
  }, 180_000);

  afterAll(async () => {
    bus?.close();
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    link?.close();
    await bed?.close();
  }, 60_000);

  it('answers `haul status` from the real daemon', async () => {
    const text = await haul(['status'], bed.env, { timeoutMs: 30_000 });
    expect({ status: text.status, stderr: text.stderr }).toEqual({ status: 0, stderr: '' });
    expect(text.stdout.split('\n')[0]).toBe(`Haul daemon 0.1.0 (bus protocol 1) at ${defaultBusEndpoints(bed.stateDir).commands}`);
    expect(text.stdout.split('\n')[2]).toBe('  0 running, 0 queued');
    const json = await haul(['status', '--json'], bed.env, { timeoutMs: 30_000 });
    const status = JSON.parse(json.stdout) as { pid: number; daemonId: string; events: { ipc: string; tcp: string | null } };
    expect({ pid: status.pid, events: status.events }).toEqual({ pid: child.pid, events: { ipc: defaultBusEndpoints(bed.stateDir).events, tcp: null } });
    // The sockets are the daemon user's alone.
    expect(fs.statSync(path.join(bed.stateDir, 'run', 'commands.sock')).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('runs a backup asked for over the bus; `haul watch --job` follows it to success, the snapshot is listed, `haul log` prints its log', async () => {
    const { job } = await bus.request('run-now', { client: 'web' });
    expect({ kind: job.kind, state: job.state, trigger: job.trigger, client: job.clientName }).toEqual({ kind: 'backup', state: 'queued', trigger: 'manual', client: 'web' });
    expect(job.requestedBy).toMatch(/^bus ipc:[0-9a-f]+$/);
    const watch = await haul(['watch', '--job', String(job.id)], bed.env, { timeoutMs: 90_000 });
    expect({ status: watch.status, stderr: watch.stderr.split('\n')[0] }).toEqual({ status: 0, stderr: `watching the Haul daemon at ${defaultBusEndpoints(bed.stateDir).commands}, job ${job.id} (Ctrl-C to stop)` });
    const row = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(row.state).toBe('succeeded');
    // The state event, or (when the job ended before watch subscribed) the job's line.
    expect(watch.stdout.trim().split('\n').at(-1)).toMatch(new RegExp(`job ${job.id}  backup of web(: finalizing -> |  )succeeded, snapshot ${row.snapshotId!.slice(0, 8)}`));
    expect(await transitionsOf(bed.db, job.id)).toEqual(fullRun);

    // The console lists snapshots from the database, without opening the repository.
    const listed = await bed.db.prisma.snapshot.findUniqueOrThrow({ where: { id: row.snapshotId! } });
    expect({ client: listed.clientName, files: listed.files, bytes: listed.bytes, paths: JSON.parse(listed.paths) as string[] }).toEqual({ client: 'web', files: 2n, bytes: BigInt(3 * MiB + 17 + files['notes.txt']!.length), paths: [data] });

    const log = await haul(['log', String(job.id)], bed.env, { timeoutMs: 30_000 });
    expect(log.status).toBe(0);
    expect(row.logPath).toMatch(new RegExp(`^${bed.stateDir}/logs/\\d{4}/\\d{2}/job-${job.id}\\.log$`));
    expect(sha256(log.stdout)).toBe(row.logSha256);
    const lines = log.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^\\S+Z INFO  job ${job.id}: backup of client "web" \\(manual\\): paths ${data}$`));
    expect(lines.at(-1)).toMatch(new RegExp(`^\\S+Z INFO  job ${job.id} succeeded after \\d+\\.\\d s$`));
    const verify = await haul(['log', 'verify', String(job.id)], bed.env, { timeoutMs: 30_000 });
    expect({ status: verify.status, stdout: verify.stdout }).toEqual({ status: 0, stdout: `job ${job.id}: ${row.logPath}: ok (${Buffer.byteLength(log.stdout).toLocaleString('en-US')} bytes, sha256 ${row.logSha256})\n` });
  }, 120_000);

  it('streams a snapshot as tar: the same bytes as `haul dump`, and the data it holds', async () => {
    const stream = await bus.stream('download-snapshot', { snapshot: 'latest', client: 'web', path: data });
    const snapshotId = (await bed.db.prisma.snapshot.findFirstOrThrow({ where: { clientName: 'web' } })).id;
    expect(stream.meta).toEqual({ name: `web-${snapshotId.slice(0, 8)}-${path.basename(data)}.tar`, contentType: 'application/x-tar' });
    const chunks: Buffer[] = [];
    for await (const chunk of stream.toReadable()) chunks.push(chunk as Buffer);
    const tar = Buffer.concat(chunks);
    const dump = spawnSync(testNode, [haulBin, 'dump', `latest:${data}`, '--client', 'web'], { env: bed.env, maxBuffer: 64 * MiB });
    expect(dump.status).toBe(0);
    expect(sha256(tar)).toBe(sha256(dump.stdout));
    const out = path.join(bed.tmp, 'untarred');
    fs.mkdirSync(out);
    const untar = spawnSync('tar', ['-x', '-C', out], { input: tar });
    expect(untar.status).toBe(0);
    expect(fs.readdirSync(path.join(out, path.basename(data))).sort()).toEqual(Object.keys(files).sort());
    for (const [name, content] of Object.entries(files)) expect(sha256(fs.readFileSync(path.join(out, path.basename(data), name)))).toBe(sha256(content));

    // A path the snapshot does not have fails the request; no stream starts.
    const missing = await failure(bus.stream('download-snapshot', { snapshot: 'latest', client: 'web', path: `${data}/nope` }));
    expect(missing.message).toContain('nope');
  }, 60_000);

  it('restores onto the client as a daemon job, byte for byte, and keeps existing files without overwrite', async () => {
    const target = path.join(bed.user(A).home, 'dbus-restored');
    fs.rmSync(target, { recursive: true, force: true });
    const jobsBefore = await bed.db.prisma.job.count();
    const wrong = await failure(bus.request('restore', { snapshot: 'ffffffff', path: data, toClient: 'web', target }));
    expect(wrong.message).toBe('no snapshot ID starts with "ffffffff". `haul snapshots` lists them.');
    expect(await bed.db.prisma.job.count()).toBe(jobsBefore);

    const { job } = await bus.request('restore', { snapshot: 'latest', client: 'web', path: data, toClient: 'web', target });
    expect({ kind: job.kind, state: job.state, client: job.clientName }).toEqual({ kind: 'restore', state: 'queued', client: 'web' });
    const [done] = await bed.waitForJobs((all) => all.some((j) => j.id === job.id && ['succeeded', 'failed', 'cancelled'].includes(j.state)), 60_000).then((all) => all.filter((j) => j.id === job.id));
    expect({ state: done!.state, message: done!.failureMessage, errors: done!.errors }).toEqual({ state: 'succeeded', message: null, errors: 0 });
    expect(await transitionsOf(bed.db, job.id)).toEqual(['queued', 'connecting', 'transferring', 'finalizing', 'succeeded']);
    for (const [name, content] of Object.entries(files)) expect(sha256(fs.readFileSync(path.join(target, name)))).toBe(sha256(content));
    const log = fs.readFileSync(done!.logPath!, 'utf8');
    expect(log).toContain(`restored 2 files, 0 directories, 0 symlinks, 0 hard links, 0 other entries`);

    // Again into the same place: nothing is overwritten, both files are counted as not restored.
    fs.writeFileSync(path.join(target, 'notes.txt'), 'changed on the client\n');
    const again = (await bus.request('restore', { snapshot: 'latest', client: 'web', path: data, toClient: 'web', target })).job;
    const [second] = await bed.waitForJobs((all) => all.some((j) => j.id === again.id && j.state === 'succeeded'), 60_000).then((all) => all.filter((j) => j.id === again.id));
    expect(second!.errors).toBe(2);
    expect(fs.readFileSync(path.join(target, 'notes.txt'), 'utf8')).toBe('changed on the client\n');
    expect(fs.readFileSync(second!.logPath!, 'utf8')).toContain('2 item(s) were not restored (listed above); everything else was restored and verified. Restore again with overwrite to replace the entries that already exist.');
  }, 120_000);

  it('cancels a running backup over the bus; its states, progress and log lines reach subscribers', async () => {
    const subscription = await bus.subscribe({ topics: ['job/'] });
    try {
      const { job } = await bus.request('run-now', { client: 'slow' });
      let cancelled: Promise<unknown> | undefined;
      const events = await collect(subscription, (e) => {
        if (e.type === 'job-progress' && e.jobId === job.id && !cancelled) {
          // Once data flows, cancel it from a second connection, as the console would.
          cancelled = BusClient.connect({ endpoint: bus.endpoint }).then(async (other) => {
            try {
              return await other.request('cancel', { jobId: job.id });
            } finally {
              other.close();
            }
          });
        }
        return e.type === 'job-state' && e.job.id === job.id && e.job.state === 'cancelled';
      });
      const reply = (await cancelled) as { job: { state: string; failureCause: string; failureMessage: string } };
      expect({ state: reply.job.state, cause: reply.job.failureCause }).toEqual({ state: 'cancelled', cause: 'cancelled' });
      expect(reply.job.failureMessage).toMatch(/^cancelled by bus ipc:[0-9a-f]+ while it ran; no snapshot was written, what arrived is kept for the next run\.$/);
      const mine = events.filter((e) => (e.type === 'job-state' ? e.job.id : e.type === 'daemon-status' ? -1 : e.jobId) === job.id);
      expect(mine.filter((e) => e.type === 'job-state').map((e) => e.type === 'job-state' && e.job.state)).toEqual(['queued', 'connecting', 'pushing-probe', 'transferring', 'cancelled']);
      expect(mine.some((e) => e.type === 'job-progress')).toBe(true);
      // Every log line was published exactly as the job's log file holds it.
      const row = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
      const fileLines = fs.readFileSync(row.logPath!, 'utf8').trimEnd().split('\n');
      expect(mine.filter((e) => e.type === 'job-log').map((e) => e.type === 'job-log' && e.line)).toEqual(fileLines);
      expect(fileLines.at(-1)).toMatch(new RegExp(`INFO  job ${job.id} cancelled after`));
      expect(await bed.db.prisma.snapshot.count({ where: { clientName: 'slow' } })).toBe(0);
      expect(jobTopic(job.id)).toBe(`job/${job.id}/`);
    } finally {
      subscription.close();
    }
  }, 120_000);

  it('`haul backup` hands the backup to the running daemon and follows it: no passphrase needed, the job and its snapshot recorded', async () => {
    const noPassphrase = Object.fromEntries(Object.entries(bed.env).filter(([k]) => !k.startsWith('HAUL_PASSWORD')));
    const before = await bed.db.prisma.job.count();
    const r = await haul(['backup', 'web'], noPassphrase, { timeoutMs: 90_000 });
    expect({ status: r.status, stderrFirst: r.stderr.split('\n')[0] }).toEqual({ status: 0, stderrFirst: expect.stringMatching(new RegExp(`^backup of web runs as job \\d+ of the Haul daemon at ${defaultBusEndpoints(bed.stateDir).commands}; Ctrl-C cancels it$`)) });
    const printed = /^snapshot ([0-9a-f]{8}) saved for client web by job (\d+) of the daemon\n {2}2 of 2 files, [^\n]+ sent; \d[^\n]*s\n$/.exec(r.stdout);
    expect(printed, r.stdout).not.toBeNull();
    const row = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: Number(printed![2]) } });
    expect({ state: row.state, trigger: row.trigger, client: row.clientName, snapshot: row.snapshotId!.slice(0, 8), jobsAdded: (await bed.db.prisma.job.count()) - before }).toEqual({ state: 'succeeded', trigger: 'manual', client: 'web', snapshot: printed![1], jobsAdded: 1 });
    expect(row.requestedBy).toMatch(new RegExp(`^${os.userInfo().username} with haul backup via bus ipc:[0-9a-f]+$`));
    // The job's log lines reached the terminal as they were written.
    expect(r.stderr).toMatch(new RegExp(`\\nINFO  snapshot ${printed![1]} saved: 2 files`));
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^INFO  job ${row.id} succeeded after \\d+\\.\\d s$`));

    const json = await haul(['backup', 'web', '--json'], noPassphrase, { timeoutMs: 90_000 });
    const answer = JSON.parse(json.stdout) as { via: string; daemon: string; job: { id: number; state: string; snapshotId: string } };
    expect({ status: json.status, stderr: json.stderr, via: answer.via, daemon: answer.daemon, state: answer.job.state }).toEqual({ status: 0, stderr: '', via: 'daemon', daemon: defaultBusEndpoints(bed.stateDir).commands, state: 'succeeded' });
    expect((await bed.db.prisma.job.findUniqueOrThrow({ where: { id: answer.job.id } })).snapshotId).toBe(answer.job.snapshotId);

    // --no-daemon backs up in this process (with the passphrase): no job of the daemon's.
    const jobs = await bed.db.prisma.job.count();
    const here = await haul(['backup', 'web', '--no-daemon'], bed.env, { timeoutMs: 90_000 });
    expect({ status: here.status, line: here.stdout.split('\n')[0] }).toEqual({ status: 0, line: expect.stringMatching(/^snapshot [0-9a-f]{8} saved for client web$/) });
    expect(await bed.db.prisma.job.count()).toBe(jobs);
    // A client the daemon does not know fails as the daemon words it.
    const unknown = await haul(['backup', 'nobody'], noPassphrase, { timeoutMs: 30_000 });
    expect({ status: unknown.status, stderr: unknown.stderr }).toEqual({ status: 1, stderr: 'haul: error: there is no client named "nobody"; `haul client list` shows them.\n' });
  }, 180_000);

  it('Ctrl-C on `haul backup` cancels the daemon job it follows', async () => {
    const child = spawn(testNode, [haulBin, 'backup', 'slow'], { env: bed.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const [running] = await bed.waitForJobs((all) => all.some((j) => j.clientName === 'slow' && j.state === 'transferring'), 60_000).then((all) => all.filter((j) => j.clientName === 'slow' && j.state === 'transferring'));
    child.kill('SIGINT');
    expect(await closed).toBe(1);
    const row = await bed.db.prisma.job.findUniqueOrThrow({ where: { id: running!.id } });
    const daemonLog = () => logMessages().slice(-20).map((m) => m.msg).join('\n');
    expect({ state: row.state, cause: row.failureCause, out }, `${err}\n--- daemon log:\n${daemonLog()}\n--- daemon stderr:\n${stderr}`).toEqual({ state: 'cancelled', cause: 'cancelled', out: '' });
    expect(err).toContain(`cancelling job ${row.id}… (Ctrl-C again leaves without waiting)\n`);
    expect(err.trimEnd().split('\n').at(-1)).toBe(`haul: error: job ${row.id} (backup of slow) cancelled (cancelled): ${row.failureMessage}`);
  }, 120_000);

  it('refuses a second daemon on the same state directory, which leaves the running job alone', async () => {
    const { job } = await bus.request('run-now', { client: 'slow' });
    await bed.waitForJobs((all) => all.some((j) => j.id === job.id && j.state === 'transferring'), 60_000);
    const second = await haul(['daemon', '--http-port', 'off', '--time-zone', 'UTC'], bed.env, { timeoutMs: 60_000 });
    expect({ status: second.status, stderr: second.stderr }).toEqual({
      status: 1,
      stderr: `haul: error: another Haul daemon is running with the state directory ${bed.stateDir} (it answers at ${defaultBusEndpoints(bed.stateDir).commands}). Stop it first, or give this one another --home.\n`,
    });
    // Not taken for a job a killed daemon left behind: it runs on to its snapshot.
    const [row] = await bed.waitForJobs((all) => all.some((j) => j.id === job.id && ['succeeded', 'failed', 'cancelled'].includes(j.state)), 90_000).then((all) => all.filter((j) => j.id === job.id));
    expect({ state: row!.state, cause: row!.failureCause }).toEqual({ state: 'succeeded', cause: null });
  }, 180_000);

  it('logs and drops malformed messages, answers bad requests with an error, and keeps running', async () => {
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000 });
    dealer.connect(defaultBusEndpoints(bed.stateDir).commands);
    try {
      await dealer.send('this is not JSON');
      await dealer.send(['{"v":1}', 'a second frame']);
      await dealer.send(JSON.stringify({ v: 1, type: 'request', command: 'status', params: {} }));
      await dealer.send(Buffer.alloc(200 * 1024, 0x7b));
      await dealer.send(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
      await dealer.send(JSON.stringify({ v: 1, id: 'bad-params', type: 'request', command: 'cancel', params: { jobId: 'seven' } }));
      const [answer] = await dealer.receive();
      expect(JSON.parse(answer!.toString())).toEqual({ v: 1, id: 'bad-params', type: 'error', error: { code: 'InvalidRequest', message: 'invalid parameters for "cancel": params.jobId: Invalid input: expected number, received string.' } });
      await dealer.send(JSON.stringify({ v: 1, id: 'no-such', type: 'request', command: 'format-disk', params: {} }));
      const [unknown] = await dealer.receive();
      expect((JSON.parse(unknown!.toString()) as { error: { code: string } }).error.code).toBe('UnknownCommand');
    } finally {
      dealer.close();
    }
    const status = await haul(['status', '--json'], bed.env, { timeoutMs: 30_000 });
    expect(status.status).toBe(0);
    expect(child.exitCode).toBeNull();
    const dropped = logMessages().filter((l) => l.level === 40 && l.msg.startsWith('dropped a bus message from ipc:'));
    expect(dropped.map((l) => l.msg.replace(/^dropped a bus message from ipc:[0-9a-f]+: /, ''))).toEqual([
      'not JSON',
      '2 frames, where a request is one frame',
      'no valid request id, so no answer is possible',
      '204800 bytes, over the 65536-byte limit',
      'not UTF-8',
    ]);
  }, 60_000);

  it('reloads its configuration and re-pins a host key over the bus, refusing a fingerprint the client does not show', async () => {
    const reload = await bus.request('reload-config', {});
    expect(reload).toEqual({ clients: 2, message: 'reloaded 2 client(s): 0 scheduled; time zone UTC, at most 4 job(s) at once' });

    const stale = `SHA256:${'A'.repeat(43)}`;
    await bed.db.prisma.client.update({ where: { name: 'web' }, data: { hostKey: stale } });
    const wrong = await failure(bus.request('repin-host-key', { client: 'web', fingerprint: `SHA256:${'B'.repeat(43)}` }));
    expect({ code: wrong.code, message: wrong.message }).toEqual({ code: 'HostKeyChanged', message: `web presents host key ${bed.sshd.hostKeyFingerprint}, not the SHA256:${'B'.repeat(43)} you gave; nothing was pinned. Check that you are talking to the right machine.` });
    expect((await bed.db.prisma.client.findUniqueOrThrow({ where: { name: 'web' } })).hostKey).toBe(stale);
    const repinned = await bus.request('repin-host-key', { client: 'web' });
    expect(repinned).toEqual({ client: 'web', previous: stale, fingerprint: bed.sshd.hostKeyFingerprint });
    expect((await bed.db.prisma.client.findUniqueOrThrow({ where: { name: 'web' } })).hostKey).toBe(bed.sshd.hostKeyFingerprint);
    const unknown = await failure(bus.request('run-now', { client: 'nobody' }));
    expect({ code: unknown.code, message: unknown.message }).toEqual({ code: 'ClientNotFound', message: 'there is no client named "nobody"; `haul client list` shows them.' });
  }, 60_000);

  it('stops on SIGTERM and removes its bus sockets', async () => {
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(fs.existsSync(path.join(bed.stateDir, 'run', 'commands.sock'))).toBe(false);
    expect(fs.existsSync(path.join(bed.stateDir, 'run', 'events.sock'))).toBe(false);
  }, 60_000);
});
