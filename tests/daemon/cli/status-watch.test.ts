// `haul status`, `haul watch`, `haul log verify` and `haul bus-key add`: the real CLI (bin/haul,
// compiled) as a thin client of the bus. Each test talks to a real bus server started here, with
// real handlers over an in-memory job table (tests/helpers/bus.ts) and events published by the
// test, so each output can be pinned exactly; tests/daemon/service/daemon-bus.test.ts runs the
// same commands against the real `haul daemon`.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobLog } from '../../../daemon/jobs/job-log.js';
import { BUS_PROTOCOL_VERSION, type BusEvent, type Job } from '../../../shared/bus/messages.js';
import { startTestBus, wireJob, type TestBus } from '../../helpers/bus.js';
import { haul, haulBin, haulEnv, tempDir, testNode, type HaulResult } from '../../helpers/cli.js';
import { freePort } from '../../helpers/sshd.js';

const env = haulEnv('/nonexistent-repository', { TZ: 'UTC' });

/** Starts `haul watch …` and resolves once it is subscribed (it says so on stderr). */
async function startWatch(args: string[]): Promise<{ done: Promise<HaulResult>; interrupt: () => void }> {
  const child = spawn(testNode, [haulBin, 'watch', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('(Ctrl-C to stop)\n')) resolve();
    });
    child.once('exit', () => reject(new Error(`haul watch exited early: ${stderr}`)));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const done = new Promise<HaulResult>((resolve) => child.once('close', (status, signal) => {
    clearTimeout(timer);
    resolve({ status, signal, stdout, stderr });
  }));
  await ready;
  return { done, interrupt: () => child.kill('SIGINT') };
}

const progressEvent = (jobId: number, at: string): BusEvent => ({
  v: BUS_PROTOCOL_VERSION, type: 'job-progress', at, jobId, filesTotal: '100', filesDone: '50', bytesScanned: String(200 * 1024),
  bytesNew: '0', bytesOnWire: '0', errors: 0, bytesPerSecond: 1024 * 1024, etaSeconds: 60, currentPath: null,
});
const stateEvent = (previous: Job['state'], job: Job, at: string): BusEvent => ({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at, previousState: previous, job });
const logEvent = (jobId: number, at: string, line: string): BusEvent => ({ v: BUS_PROTOCOL_VERSION, type: 'job-log', at, jobId, level: 'WARN', line });

describe('haul status and haul watch without a daemon', () => {
  const tmp = tempDir('cli-nodaemon');
  afterAll(() => tmp.cleanup());

  it('say that no daemon answers, where, and how to start one (exit 1)', async () => {
    const endpoint = `ipc://${path.join(tmp.dir, 'run', 'commands.sock')}`;
    for (const command of ['status', 'watch']) {
      const r = await haul([command, '--home', tmp.dir], env, { timeoutMs: 20_000 });
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`haul: error: no Haul daemon answers at ${endpoint}; start it with \`haul daemon\` (or check --bus and --home).\n`);
    }
    const viaEnv = await haul(['status'], { ...env, HAUL_BUS: 'ipc:///tmp/haul-nowhere/commands.sock' }, { timeoutMs: 20_000 });
    expect(viaEnv.stderr).toBe('haul: error: no Haul daemon answers at ipc:///tmp/haul-nowhere/commands.sock; start it with `haul daemon` (or check --bus and --home).\n');
    const bad = await haul(['status', '--bus', 'http://localhost:80'], env, { timeoutMs: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('haul: error: "http://localhost:80" is not a bus endpoint; write ipc:///path/to/commands.sock or tcp://host:port.\n');
  });
});

describe('haul status, watch and log verify against a running bus', () => {
  let bus: TestBus;
  beforeAll(async () => {
    bus = await startTestBus();
    bus.board.add(wireJob(1, { state: 'transferring', startedAt: '2026-11-23T10:00:05.000Z', filesTotal: '5000', filesDone: '3456', bytesScanned: '1288490189', bytesNew: '47185920', bytesOnWire: '12582912', errors: 2 }));
    bus.board.add(wireJob(2, { clientName: 'db1', trigger: 'schedule' }));
    bus.board.add(wireJob(3));
  });
  afterAll(async () => {
    await bus?.stop();
  });

  it('haul status: version, pid, uptime, running and queued jobs', async () => {
    const r = await haul(['status', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`Haul daemon 0.1.0 (bus protocol 1) at ipc://${path.join(bus.stateDir, 'run', 'commands.sock')}`);
    expect(lines[1]).toMatch(new RegExp(`^  pid ${process.pid}, up [0-9.]+ (ms|s) \\(since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\)$`));
    expect(lines.slice(2)).toEqual([
      '  1 running, 2 queued',
      'running:',
      '  job 1  backup of web1  transferring  3,456 of 5,000 files, 1.2 GiB scanned, 45.0 MiB new, 12.0 MiB sent, 2 errors  (started 2026-11-23 10:00:05)',
      'queued:',
      '  job 2  backup of db1  queued 2026-11-23 10:00:02 (schedule)',
      '  job 3  backup of web1  queued 2026-11-23 10:00:03 (manual)',
      '',
    ]);
    const json = await haul(['status', '--json', '--bus', bus.server.endpoints!.ipc.commands], env, { timeoutMs: 20_000 });
    const status = JSON.parse(json.stdout);
    expect(status).toMatchObject({ version: '0.1.0', protocol: 1, pid: process.pid, queuedTotal: 2 });
    expect(status.running[0]).toEqual(bus.board.jobs.get(1));
  });

  it('haul watch --job N prints the job, then its events, and exits 0 when it succeeds', async () => {
    const job = bus.board.add(wireJob(5, { state: 'transferring', startedAt: '2026-11-23T10:00:06.000Z', filesTotal: '100', filesDone: '10', bytesScanned: String(40 * 1024) }));
    const watch = await startWatch(['--job', '5', '--home', bus.stateDir]);
    // Another job's events are not shown.
    bus.server.publish(logEvent(50, '2026-11-23T10:00:59.000Z', '2026-11-23T10:00:59.000Z WARN  not job 5'));
    bus.server.publish(progressEvent(5, '2026-11-23T10:01:00.000Z'));
    bus.server.publish(logEvent(5, '2026-11-23T10:01:01.000Z', '2026-11-23T10:01:01.000Z WARN  "/srv/a\\nb\\u001b[2J": permission denied'));
    bus.server.publish(stateEvent('transferring', { ...job, state: 'succeeded', snapshotId: '1a2b3c4d5e6f' }, '2026-11-23T10:01:02.000Z'));
    const r = await watch.done;
    expect(r.stderr).toBe(`watching the Haul daemon at ipc://${path.join(bus.stateDir, 'run', 'commands.sock')}, job 5 (Ctrl-C to stop)\n`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe([
      'job 5  backup of web1  transferring  10 of 100 files, 40.0 KiB scanned, 0 B new, 0 B sent  (started 2026-11-23 10:00:06)',
      '10:01:00  job 5  50 of 100 files, 200.0 KiB scanned, 0 B new, 0 B sent, 1.0 MiB/s, 1m 00s left',
      '10:01:01  job 5  WARN  "/srv/a\\nb\\u001b[2J": permission denied',
      '10:01:02  job 5  backup of web1: transferring -> succeeded, snapshot 1a2b3c4d',
      '',
    ].join('\n'));
  });

  it('haul watch --job N exits 1 when the job fails, naming why', async () => {
    const job = bus.board.add(wireJob(6, { clientName: 'db1', state: 'connecting' }));
    const watch = await startWatch(['--job', '6', '--home', bus.stateDir]);
    bus.server.publish(stateEvent('connecting', { ...job, state: 'failed', failureCause: 'unreachable', failureMessage: 'cannot connect to db1:22: connection refused' }, '2026-11-23T10:02:00.000Z'));
    const r = await watch.done;
    expect(r.status).toBe(1);
    expect(r.stdout.split('\n').slice(1)).toEqual(['10:02:00  job 6  backup of db1: connecting -> failed (unreachable): cannot connect to db1:22: connection refused', '']);
    expect(r.stderr.split('\n').slice(1)).toEqual(['haul: error: job 6 (backup of db1) failed: cannot connect to db1:22: connection refused', '']);
  });

  it('haul watch --job for a job that has ended prints it and exits; for an unknown job says so', async () => {
    bus.board.add(wireJob(8, { state: 'succeeded', finishedAt: '2026-11-23T10:05:00.000Z', snapshotId: 'abcdef0123' }));
    const ended = await haul(['watch', '--job', '8', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(ended.status).toBe(0);
    expect(ended.stdout).toBe('job 8  backup of web1  succeeded, snapshot abcdef01  0 files, 0 B scanned, 0 B new, 0 B sent\n');
    const unknown = await haul(['watch', '--job', '999', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.split('\n').slice(1)).toEqual(['haul: error: there is no job 999; `haul status` lists running and queued jobs.', '']);
    const notANumber = await haul(['watch', '--job', '1x', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(notANumber.status).toBe(2);
    expect(notANumber.stderr).toBe('haul: error: --job takes a job number such as 12, not "1x"; `haul status` lists running and queued jobs.\n');
  });

  it('haul watch shows every job until Ctrl-C, then exits 0', async () => {
    const watch = await startWatch(['--home', bus.stateDir]);
    bus.server.publish(logEvent(11, '2026-11-23T10:03:00.000Z', '2026-11-23T10:03:00.000Z WARN  eleven'));
    bus.server.publish(logEvent(12, '2026-11-23T10:03:01.000Z', '2026-11-23T10:03:01.000Z WARN  twelve'));
    await new Promise((r) => setTimeout(r, 300));
    watch.interrupt();
    const r = await watch.done;
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    // First the daemon's status (the subscription handshake), then the events.
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d {2}daemon {2}\d+ running, \d+ queued$/);
    expect(lines.slice(1)).toEqual(['10:03:00  job 11  WARN  eleven', '10:03:01  job 12  WARN  twelve', '']);
  });

  it('haul log verify: ok (exit 0), then modified after an edit (exit 3); --file checks one file', async () => {
    const log = JobLog.create({ stateDir: bus.stateDir, jobId: 9 });
    log.info('backup of web1 started');
    log.summary({ kind: 'backup', client: 'web1', state: 'succeeded', durationMs: 1000, filesDone: 1, bytesScanned: 1, bytesNew: 1, bytesOnWire: 1, errors: 0 });
    const seal = log.finish();
    bus.board.add(wireJob(9, { state: 'succeeded', logPath: log.path, logSha256: seal.sha256 }));
    bus.board.add(wireJob(10, { state: 'transferring', logPath: path.join(bus.stateDir, 'logs', 'job-10.log') }));

    const ok = await haul(['log', 'verify', '9', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`job 9: ${log.path}: ok (${seal.bytes} bytes, sha256 ${seal.sha256})\n`);
    expect(ok.status).toBe(0);

    fs.appendFileSync(log.path, 'forged\n');
    const actual = (await import('node:crypto')).createHash('sha256').update(fs.readFileSync(log.path)).digest('hex');
    const modified = await haul(['log', 'verify', '9', '10', '--home', bus.stateDir], env, { timeoutMs: 20_000 });
    expect(modified.status).toBe(3);
    expect(modified.stdout).toBe(
      `job 9: ${log.path}: MODIFIED since the job ended: its SHA-256 is ${actual}, the database recorded ${seal.sha256}\n` +
      `job 10: ${path.join(bus.stateDir, 'logs', 'job-10.log')}: cannot be verified: no SHA-256 was recorded, because the job has not finished or the daemon stopped while it ran (and the file does not exist)\n`);
    expect(modified.stderr).toBe('haul: error: 2 of 2 job logs could not be verified as unchanged (see above).\n');

    const file = await haul(['log', 'verify', '--file', log.path, '--sha256', actual], env, { timeoutMs: 20_000 });
    expect(file.status).toBe(0);
    expect(file.stdout).toBe(`${log.path}: ok (${seal.bytes + 7} bytes, sha256 ${actual})\n`);
  });
});

describe('haul bus-key add, then haul status over TCP with the key file', () => {
  const tmp = tempDir('cli-bustcp');
  let bus: TestBus;
  beforeAll(async () => {
    bus = await startTestBus({ tcp: { commands: `tcp://127.0.0.1:${await freePort()}`, events: `tcp://127.0.0.1:${await freePort()}` } }, tmp.dir);
  });
  afterAll(async () => {
    await bus?.server.stop();
    tmp.cleanup();
  });

  it('makes a key file the daemon admits at once', async () => {
    const keyFile = path.join(tmp.dir, 'console.key');
    const added = await haul(['bus-key', 'add', 'console', '--out', keyFile, '--home', tmp.dir], env, { timeoutMs: 20_000 });
    expect(added.stderr).toBe('');
    expect(added.status).toBe(0);
    const publicKey = /^([!-~]{40}) console\n$/.exec(fs.readFileSync(path.join(tmp.dir, 'bus', 'authorized-clients'), 'utf8'))![1]!;
    expect(added.stdout).toBe(
      `added bus client console (public key ${publicKey}) to ${path.join(tmp.dir, 'bus', 'authorized-clients')}\n` +
      `Its key file is ${keyFile}: copy it to the client's machine (keep it mode 0600) and connect with\n` +
      '  --bus tcp://<this host>:<the daemon\'s TCP commands port> --bus-key <the file>\n' +
      `To revoke it, delete its line from ${path.join(tmp.dir, 'bus', 'authorized-clients')}.\n`);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);

    const tcpEndpoint = bus.server.endpoints!.tcp!.commands;
    const status = await haul(['status', '--bus', tcpEndpoint, '--bus-key', keyFile], env, { timeoutMs: 20_000 });
    expect(status.stderr).toBe('');
    expect(status.stdout.split('\n')[0]).toBe(`Haul daemon 0.1.0 (bus protocol 1) at ${tcpEndpoint}`);
    const noKey = await haul(['status', '--bus', tcpEndpoint], env, { timeoutMs: 20_000 });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toBe(`haul: error: the bus over TCP (${tcpEndpoint}) is CURVE-encrypted: give a client key file with --bus-key (or HAUL_BUS_KEY); \`haul bus-key add\` on the daemon's machine makes one.\n`);
  });
});
