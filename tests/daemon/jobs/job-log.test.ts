import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeJobLogVerification, JobLog, jobLogEvent, jobLogPath, pruneJobLogs, verifyJobLog, type JobLogLine } from '../../../daemon/jobs/job-log.js';
import { BusEvent } from '../../../shared/bus/messages.js';
import { projectRoot, tempDir, testNode } from '../../helpers/cli.js';
import { mountTmpfs, tmpfsSkipReason, unmount } from '../../helpers/sshd.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A clock that starts at `iso` and moves on by 1.5 ms a reading, so every line's time is known. */
function steppingClock(iso: string): () => Date {
  let t = Date.parse(iso);
  return () => {
    const d = new Date(t);
    t += 1.5;
    return d;
  };
}

describe('JobLog', () => {
  const tmp = tempDir('joblog');
  afterAll(() => tmp.cleanup());

  it('writes one plain-text line per event: ISO time with ms, level, text escaped so nothing can forge a line', () => {
    const stateDir = path.join(tmp.dir, 'format');
    const seen: JobLogLine[] = [];
    const log = JobLog.create({ stateDir, jobId: 12, date: new Date('2026-11-23T23:59:59Z'), clock: steppingClock('2026-11-23T10:15:42.123Z'), onLine: (l) => seen.push(l) });
    expect(log.path).toBe(path.join(stateDir, 'logs', '2026', '11', 'job-12.log'));
    expect(jobLogPath(stateDir, 12, new Date('2026-11-30T12:00:00Z'))).toBe(log.path);
    log.info('backup of web1 (backup@web1.example.org) started: trigger schedule, attempt 1');
    log.fileProblem('WARN', Buffer.from([0x2f, 0x73, 0x72, 0x76, 0x2f, 0x61, 0x0a, 0x62, 0xff, 0x22]), 'permission denied; left out');
    log.fileProblem('WARN', '/srv/naïve "quoted"\tname', 'vanished during the backup');
    log.error('the probe said: \u001b[31mred\u001b[0m\nFAKE 2026-01-01T00:00:00.000Z INFO  all good\u2028\ud800');
    log.summary({ kind: 'backup', client: 'web1', state: 'failed', durationMs: 72_500, filesDone: 3456n, bytesScanned: 1_288_490_189n, bytesNew: 47_185_920n, bytesOnWire: 12_582_912n, errors: 2, snapshotId: null, failureMessage: 'the connection to web1 was lost' });
    const seal = log.finish();

    const expected = [
      '2026-11-23T10:15:42.123Z INFO  backup of web1 (backup@web1.example.org) started: trigger schedule, attempt 1',
      // Invalid UTF-8: byte by byte, and the quote escaped so the name's end is unambiguous.
      '2026-11-23T10:15:42.124Z WARN  "/srv/a\\x0ab\\xff\\x22": permission denied; left out',
      '2026-11-23T10:15:42.126Z WARN  "/srv/naïve \\"quoted\\"\\tname": vanished during the backup',
      '2026-11-23T10:15:42.127Z ERROR the probe said: \\u001b[31mred\\u001b[0m\\nFAKE 2026-01-01T00:00:00.000Z INFO  all good\\u2028\\ud800',
      '2026-11-23T10:15:42.129Z ERROR summary: backup of web1 failed after 1m 12s: 3,456 files, 1.2 GiB scanned, 45.0 MiB new, 12.0 MiB on the wire, 2 errors; the connection to web1 was lost',
    ];
    const content = fs.readFileSync(log.path);
    expect(content.toString('utf8')).toBe(expected.join('\n') + '\n');
    expect(seen.map((l) => l.line)).toEqual(expected);
    expect(seen.map((l) => l.level)).toEqual(['INFO', 'WARN', 'WARN', 'ERROR', 'ERROR']);
    expect(seen.every((l) => l.jobId === 12)).toBe(true);
    // Each line is a valid bus event as it is.
    expect(BusEvent.parse(jobLogEvent(seen[3]!))).toEqual({ v: 1, type: 'job-log', at: '2026-11-23T10:15:42.127Z', jobId: 12, level: 'ERROR', line: expected[3] });
    expect(seal).toEqual({ path: log.path, sha256: sha256(content), bytes: content.byteLength, lines: 5, lostLines: 0, firstWriteError: null });
    expect(fs.statSync(log.path).mode & 0o777).toBe(0o640);
    expect(fs.statSync(path.dirname(log.path)).mode & 0o777).toBe(0o750);
    // finish() again returns the same seal; writing after it is a bug and says so.
    expect(log.finish()).toBe(seal);
    expect(() => log.info('late')).toThrow(`the log of job 12 is finished; nothing more can be written to ${log.path}`);
  });

  it('a succeeded job ends with an INFO summary naming its snapshot', () => {
    const log = JobLog.create({ stateDir: path.join(tmp.dir, 'summary'), jobId: 3, clock: () => new Date('2026-01-02T03:04:05.006Z') });
    log.summary({ kind: 'backup', client: 'db1', state: 'succeeded', durationMs: 3_723_000, filesDone: 1_234_567, bytesScanned: 0, bytesNew: 0, bytesOnWire: 512, errors: 1, snapshotId: '1a2b3c4d5e6f' });
    log.finish();
    expect(fs.readFileSync(log.path, 'utf8')).toBe('2026-01-02T03:04:05.006Z INFO  summary: backup of db1 succeeded after 1h 02m 03s: 1,234,567 files, 0 B scanned, 0 B new, 512 B on the wire, 1 error, snapshot 1a2b3c4d\n');
  });

  it('cuts a runaway line at 8192 characters and says how much was cut', () => {
    const log = JobLog.create({ stateDir: path.join(tmp.dir, 'long'), jobId: 4, clock: () => new Date('2026-01-02T03:04:05.006Z') });
    log.warn('x'.repeat(10_000));
    log.finish();
    expect(fs.readFileSync(log.path, 'utf8')).toBe(`2026-01-02T03:04:05.006Z WARN  ${'x'.repeat(8192)}… (1808 more characters cut)\n`);
  });

  it('a second log for the same job ID (a database restored from an old copy) goes next to the first, which is kept', () => {
    const stateDir = path.join(tmp.dir, 'again');
    const date = new Date('2026-02-01T00:00:00Z');
    const first = JobLog.create({ stateDir, jobId: 7, date });
    first.info('first life');
    first.finish();
    const second = JobLog.create({ stateDir, jobId: 7, date });
    second.info('second life');
    second.finish();
    expect(second.path).toBe(path.join(stateDir, 'logs', '2026', '02', 'job-7-2.log'));
    expect(fs.readFileSync(first.path, 'utf8')).toMatch(/ INFO {2}first life\n$/);
    expect(fs.readFileSync(second.path, 'utf8')).toMatch(/ INFO {2}second life\n$/);
  });

  it('verify: ok; modified after a one-byte change; missing when deleted; not-finished without a stored hash', async () => {
    const log = JobLog.create({ stateDir: path.join(tmp.dir, 'verify'), jobId: 21 });
    for (let i = 0; i < 100; i++) log.info(`file ${i} saved`);
    const { sha256: stored, bytes } = log.finish();

    expect(await verifyJobLog(log.path, stored)).toEqual({ status: 'ok', path: log.path, sha256: stored, bytes });
    expect(await verifyJobLog(log.path, stored.toUpperCase())).toMatchObject({ status: 'ok' });

    const content = fs.readFileSync(log.path);
    content[content.byteLength - 3] = 0x39; // "saved" → "sav9d": one byte
    fs.writeFileSync(log.path, content);
    const modified = await verifyJobLog(log.path, stored);
    expect(modified).toEqual({ status: 'modified', path: log.path, expected: stored, actual: sha256(content), bytes });
    expect(describeJobLogVerification(modified)).toBe(`${log.path}: MODIFIED since the job ended: its SHA-256 is ${sha256(content)}, the database recorded ${stored}`);

    // Appending a forged line is a modification too.
    fs.appendFileSync(log.path, '2026-01-01T00:00:00.000Z INFO  nothing to see\n');
    expect((await verifyJobLog(log.path, stored)).status).toBe('modified');

    expect(await verifyJobLog(log.path, null)).toEqual({ status: 'not-finished', path: log.path, actual: sha256(fs.readFileSync(log.path)) });
    fs.unlinkSync(log.path);
    expect(await verifyJobLog(log.path, stored)).toEqual({ status: 'missing', path: log.path });
    expect(describeJobLogVerification({ status: 'missing', path: log.path })).toBe(`${log.path}: MISSING: the job's log file is gone (the database recorded its SHA-256)`);
    expect(await verifyJobLog(log.path, null)).toEqual({ status: 'not-finished', path: log.path, actual: null });
  });

  it('every line written before the daemon is killed (SIGKILL) is in the file; verify then says not-finished', async () => {
    const moduleUrl = new URL(`file://${path.join(projectRoot, 'dist/daemon/jobs/job-log.js')}`).href;
    expect(fs.existsSync(new URL(moduleUrl)), 'run `npm run build` first: the writer runs from dist/').toBe(true);
    const stateDir = path.join(tmp.dir, 'killed');
    const script = `
      const { JobLog } = await import(${JSON.stringify(moduleUrl)});
      const log = JobLog.create({ stateDir: ${JSON.stringify(stateDir)}, jobId: 99 });
      for (let i = 0; i < 5000; i++) log.info('chunk ' + i + ' stored');
      process.stdout.write(log.path + '\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(testNode, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const logPath = await new Promise<string>((resolve) => child.stdout.setEncoding('utf8').once('data', (d: string) => resolve(d.trim())));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const lines = fs.readFileSync(logPath, 'utf8').split('\n');
    expect(lines).toHaveLength(5001);
    expect(lines[4999]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}chunk 4999 stored$/);
    expect(lines[5000]).toBe('');
    const verdict = await verifyJobLog(logPath, null);
    expect(verdict.status).toBe('not-finished');
    expect(describeJobLogVerification(verdict)).toBe(`${logPath}: cannot be verified: no SHA-256 was recorded, because the job has not finished or the daemon stopped while it ran`);
  });

  it('prune deletes logs last written before the cutoff and the folders left empty, and nothing else', () => {
    const stateDir = path.join(tmp.dir, 'prune');
    const make = (jobId: number, date: string, mtime: string) => {
      const log = JobLog.create({ stateDir, jobId, date: new Date(date) });
      log.info(`job ${jobId}`);
      log.finish();
      fs.utimesSync(log.path, new Date(mtime), new Date(mtime));
      return log.path;
    };
    const old1 = make(1, '2025-01-10T00:00:00Z', '2025-01-10T01:00:00Z');
    const old2 = make(2, '2025-03-10T00:00:00Z', '2025-03-10T01:00:00Z');
    const keptSameMonth = make(3, '2025-03-31T00:00:00Z', '2025-04-02T00:00:00Z'); // ran past the cutoff
    const recent = make(4, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z');
    // Not job logs: a note an operator left, and a link pointing at a log elsewhere.
    const note = path.join(stateDir, 'logs', '2025', '01', 'README');
    fs.writeFileSync(note, 'keep me');
    fs.utimesSync(note, new Date('2020-01-01'), new Date('2020-01-01'));
    const outside = path.join(tmp.dir, 'outside-job-5.log');
    fs.writeFileSync(outside, 'not ours');
    fs.utimesSync(outside, new Date('2020-01-01'), new Date('2020-01-01'));
    fs.symlinkSync(outside, path.join(stateDir, 'logs', '2025', '03', 'job-5.log'));

    const pruned = pruneJobLogs(stateDir, new Date('2025-04-01T00:00:00Z'));
    expect(pruned.removed).toEqual([old1, old2]);
    expect(pruned.bytes).toBe(2 * (24 + 1 + 6 + 6)); // "<time> INFO  job N\n"
    for (const kept of [keptSameMonth, recent, note, outside]) expect(fs.existsSync(kept)).toBe(true);
    expect(fs.lstatSync(path.join(stateDir, 'logs', '2025', '03', 'job-5.log')).isSymbolicLink()).toBe(true);

    fs.unlinkSync(note);
    const second = pruneJobLogs(stateDir, new Date('2025-12-31T00:00:00Z'));
    expect(second.removed).toEqual([keptSameMonth]);
    // 2025/01 is empty now and goes; 2025/03 still holds the link.
    expect(fs.readdirSync(path.join(stateDir, 'logs', '2025'))).toEqual(['03']);
    expect(pruneJobLogs(path.join(tmp.dir, 'no-logs-at-all'), new Date())).toEqual({ removed: [], bytes: 0 });
  });

  describe.skipIf(tmpfsSkipReason() !== undefined)(`on a full disk${tmpfsSkipReason() ? ` (skipped: ${tmpfsSkipReason()})` : ''}`, () => {
    const small = path.join(tmp.dir, 'small');
    afterAll(() => unmount(small));

    it('counts the lines it could not write, and its SHA-256 still matches the file', async () => {
      mountTmpfs(small, { size: '64k' });
      const seen: string[] = [];
      const log = JobLog.create({ stateDir: small, jobId: 5, onLine: (l) => seen.push(l.line) });
      for (let i = 0; i < 2000; i++) log.info(`line ${i} ${'-'.repeat(40)}`);
      const seal = log.finish();
      expect(seal.lostLines).toBeGreaterThan(0);
      expect(seal.lines + seal.lostLines).toBe(2000);
      expect(seal.firstWriteError).toMatch(/ENOSPC/);
      // Every line still reached the bus, and the stored hash is the file's.
      expect(seen).toHaveLength(2000);
      expect(await verifyJobLog(log.path, seal.sha256)).toMatchObject({ status: 'ok', bytes: fs.statSync(log.path).size });
    });
  });
});
