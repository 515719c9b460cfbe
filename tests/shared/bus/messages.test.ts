// The bus protocol's schemas and helpers (shared/bus/): what they accept, what they refuse and
// how they say so.
import { describe, expect, it } from 'vitest';
import { jobToWire, type JobRecord } from '../../../daemon/bus/wire-job.js';
import { parseCurveClientKeyFile } from '../../../shared/bus/curve-keys.js';
import { checkEndpoint, defaultBusEndpoints, eventsEndpointFor } from '../../../shared/bus/endpoints.js';
import { BusEvent, commands, Counter, describeIssues, eventTopic, fromCounter, Job, jobTopic, RequestMessage, toCounter, type DaemonStatus } from '../../../shared/bus/messages.js';
import { displayText, formatDuration } from '../../../shared/display.js';
import { wireJob } from '../../helpers/bus.js';

const row: JobRecord = {
  id: 12, clientId: 3, clientName: 'web1', kind: 'backup', state: 'transferring', trigger: 'schedule', attempt: 2, retryOfId: 11,
  requestedBy: null, queuedAt: new Date('2026-11-23T10:00:00.000Z'), startedAt: new Date('2026-11-23T10:00:01.500Z'), finishedAt: null,
  updatedAt: new Date('2026-11-23T10:05:00.000Z'), failureCause: null, failureMessage: null, filesTotal: 5000n, filesDone: 3456n,
  bytesScanned: 18446744073709551615n, bytesNew: 0n, bytesOnWire: 12n, errors: 1, snapshotId: null, logPath: '/var/lib/haul/logs/2026/11/job-12.log',
  logSha256: null, daemonId: 'd1',
};

describe('bus messages', () => {
  it('a job row becomes the wire job: counters as exact decimal strings, times as ISO with ms', () => {
    const job = jobToWire(row);
    expect(job).toMatchObject({ id: 12, state: 'transferring', queuedAt: '2026-11-23T10:00:00.000Z', startedAt: '2026-11-23T10:00:01.500Z', finishedAt: null });
    expect(job.bytesScanned).toBe('18446744073709551615');
    expect(fromCounter(job.bytesScanned)).toBe(2n ** 64n - 1n);
    expect(() => jobToWire({ ...row, state: 'paused' })).toThrow(/state/);
  });

  it('counters: decimal strings only', () => {
    for (const good of ['0', '7', '18446744073709551615']) expect(Counter.safeParse(good).success).toBe(true);
    for (const bad of ['', '-1', '01', '1.5', '1e3', ' 1', '123456789012345678901', 12]) expect(Counter.safeParse(bad).success).toBe(false);
    expect(toCounter(42)).toBe('42');
    expect(toCounter(2n ** 63n)).toBe('9223372036854775808');
    expect(() => toCounter(-1)).toThrow('counter -1 is negative');
    expect(() => toCounter(2 ** 53)).toThrow('counter 9007199254740992 is not a safe integer');
  });

  it('jobs: times need milliseconds in UTC, states and kinds must be known', () => {
    const job = wireJob(1);
    expect(Job.safeParse(job).success).toBe(true);
    expect(Job.safeParse({ ...job, queuedAt: '2026-11-23T10:00:00Z' }).success).toBe(false);
    expect(Job.safeParse({ ...job, queuedAt: '2026-11-23T10:00:00.000+01:00' }).success).toBe(false);
    expect(Job.safeParse({ ...job, state: 'paused' }).success).toBe(false);
    expect(Job.safeParse({ ...job, logSha256: 'abc' }).success).toBe(false);
  });

  it('replies are read leniently (unknown fields dropped), requests strictly (unknown fields refused)', () => {
    const parsed = Job.parse({ ...wireJob(1), addedInVersion2: true });
    expect('addedInVersion2' in parsed).toBe(false);
    const params = commands['run-now'].params.safeParse({ client: 'web1', priority: 'high' });
    expect(params.success).toBe(false);
    expect(describeIssues(params.error!, 'params')).toBe('params: Unrecognized key: "priority"');
    expect(RequestMessage.safeParse({ v: 1, id: 'a', type: 'request', command: 'status', params: {}, extra: 1 }).success).toBe(false);
    expect(commands['list-jobs'].params.parse({})).toEqual({ limit: 50 });
    expect(commands.restore.params.parse({ snapshot: 'latest', path: '/srv', toClient: 'web1', target: '/tmp/r' })).toMatchObject({ overwrite: false });
    expect(commands.restore.params.safeParse({ snapshot: 'latest', path: 'srv', toClient: 'web1', target: '/tmp/r' }).success).toBe(false);
    expect(commands['run-now'].params.safeParse({ client: '../etc' }).success).toBe(false);
  });

  it('describeIssues names at most five problems and counts the rest', () => {
    const r = commands['list-jobs'].params.safeParse({ ids: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] });
    expect(describeIssues(r.error!, 'params')).toBe(
      'params.ids.0: Invalid input: expected number, received string; params.ids.1: Invalid input: expected number, received string; ' +
      'params.ids.2: Invalid input: expected number, received string; params.ids.3: Invalid input: expected number, received string; ' +
      'params.ids.4: Invalid input: expected number, received string; and 2 more');
  });

  it('topics: one per job with a trailing slash, so job 1 does not match job 12', () => {
    const at = '2026-11-23T10:00:00.000Z';
    const events: BusEvent[] = [
      { v: 1, type: 'job-state', at, previousState: null, job: wireJob(12) },
      { v: 1, type: 'job-log', at, jobId: 12, level: 'INFO', line: 'x' },
    ];
    expect(events.map(eventTopic)).toEqual(['job/12/state', 'job/12/log']);
    expect('job/12/state'.startsWith(jobTopic(1))).toBe(false);
    expect('job/12/state'.startsWith(jobTopic(12))).toBe(true);
  });

  it('endpoints: the defaults under the state directory, and what is refused', () => {
    expect(defaultBusEndpoints('/var/lib/haul')).toEqual({ commands: 'ipc:///var/lib/haul/run/commands.sock', events: 'ipc:///var/lib/haul/run/events.sock' });
    expect(() => checkEndpoint('ipc://run/commands.sock')).toThrow('bus endpoint ipc://run/commands.sock names a relative path; write ipc:///absolute/path/to/commands.sock.');
    expect(() => checkEndpoint('tcp://host')).toThrow('"tcp://host" is not a bus endpoint; write ipc:///path/to/commands.sock or tcp://host:port.');
    expect(() => checkEndpoint('tcp://[::1]:7450')).not.toThrow();
    const events: DaemonStatus['events'] = { ipc: 'ipc:///var/lib/haul/run/events.sock', tcp: 'tcp://0.0.0.0:7451' };
    expect(eventsEndpointFor('ipc:///var/lib/haul/run/commands.sock', events)).toBe('ipc:///var/lib/haul/run/events.sock');
    // Over TCP the daemon reports its bind address: the host is the one the client reached it at.
    expect(eventsEndpointFor('tcp://backup.example.org:7450', events)).toBe('tcp://backup.example.org:7451');
    expect(() => eventsEndpointFor('tcp://backup.example.org:7450', { ...events, tcp: null })).toThrow('the daemon at tcp://backup.example.org:7450 publishes no events over TCP; enable its TCP bus or connect over ipc:// on its machine.');
  });

  it('client key files: all three keys, Z85, or a message saying what is wrong', () => {
    const key = (c: string) => c.repeat(40);
    const good = `# comment\nserver-public-key ${key('a')}\npublic-key ${key('b')}\nsecret-key ${key('c')}\n`;
    expect(parseCurveClientKeyFile(good, 'k')).toEqual({ serverPublicKey: key('a'), publicKey: key('b'), secretKey: key('c') });
    expect(() => parseCurveClientKeyFile(`public-key ${key('b')}\n`, 'k')).toThrow("k lacks server-public-key, secret-key; make a new key file with `haul bus-key add` on the daemon's machine.");
    expect(() => parseCurveClientKeyFile(`${good}public-key short\n`, 'k')).toThrow('k, line 5: expected "server-public-key", "public-key" or "secret-key" followed by a 40-character Z85 key.');
  });
});

describe('display helpers', () => {
  it('displayText escapes what could start a line or drive a terminal, and nothing else', () => {
    expect(displayText('plain C:\\path "quoted" naïve 😀')).toBe('plain C:\\path "quoted" naïve 😀');
    expect(displayText('a\nb\r\tc\u0000\u001b[2J\u007f\u0085\u2028\u2029')).toBe('a\\nb\\r\\tc\\u0000\\u001b[2J\\u007f\\u0085\\u2028\\u2029');
    expect(displayText('lone \ud800 and \udc00 surrogates; a pair 😀 stays')).toBe('lone \\ud800 and \\udc00 surrogates; a pair 😀 stays');
  });

  it('formatDuration', () => {
    expect([850, 12_345, 245_000, 3_723_000, 2 * 86_400_000 + 3_723_000].map(formatDuration)).toEqual(['850 ms', '12.3 s', '4m 05s', '1h 02m 03s', '2d 01h 02m']);
  });
});
