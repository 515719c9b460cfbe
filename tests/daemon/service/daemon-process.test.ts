// The real `haul daemon` process: SIGTERM (jobs finish within the grace period, or are cancelled
// cleanly when it runs out; exit 0), kill -9 at random points of a real backup (the job is failed
// with cause daemon-restart on the next start, the next run succeeds and reuses what arrived,
// check --read-data passes, the restore is byte for byte), start-up errors, and `haul jobs`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BlobType } from '../../../daemon/repository/blob.js';
import { readPackHeader } from '../../../daemon/repository/index-repair.js';
import { haul, haulBin, haulSync, testNode } from '../../helpers/cli.js';
import { createDaemonTestbed, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { openTestRepository } from '../../helpers/repo.js';
import { slowLink } from '../../helpers/slow-link.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const P1 = 'haul-t-dmn-p1';
const MiB = 1024 * 1024;
const dataBytes = 40 * MiB;
const skip = sshdSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunningDaemon {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logFile: string;
  stderr: () => string;
}

describe.skipIf(skip !== undefined)(`the haul daemon process${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let data: string;
  let link: { port: number; close(): void };
  const children: ChildProcess[] = [];
  let runs = 0;

  const startProcess = async (args: string[] = []): Promise<RunningDaemon> => {
    const logFile = path.join(bed.tmp, `daemon-${++runs}.log`);
    const child = spawn(testNode, [haulBin, 'daemon', '--http-port', 'off', '--log-file', logFile, '--time-zone', 'UTC', ...args], { env: bed.env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return { child, exit, logFile, stderr: () => stderr };
  };

  const logLines = (file: string): { msg: string; level: number }[] => {
    if (!fs.existsSync(file)) return [];
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: number });
  };

  const job = (id: number) => bed.db.prisma.job.findUniqueOrThrow({ where: { id } });

  beforeAll(async () => {
    bed = await createDaemonTestbed('dmn-process', [P1]);
    data = bed.writeData(P1, 'data', { 'one.bin': pseudoRandom('p-one', dataBytes / 2), 'two.bin': pseudoRandom('p-two', dataBytes / 2), 'small.txt': Buffer.from('hello\n') });
    // 30 MiB/s: one backup takes well over a second, so kills and signals land in the middle.
    link = await slowLink(bed.sshd.port, 30 * MiB);
  }, 120_000);
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await bed.reset();
  });
  afterAll(async () => {
    link?.close();
    await bed?.close();
  });

  it('SIGTERM lets a running job finish within the grace period, then exits 0', async () => {
    // Every second: the daemon starts a backup at once (catch-up of the slot a second ago).
    await bed.addClient('graceful', P1, data, { schedule: '* * * * * *', port: link.port });
    const d = await startProcess(['--grace', '60s']);
    const [running] = await bed.waitForJobs((all) => all[0]?.state === 'transferring', 30_000);
    d.child.kill('SIGTERM');
    const exit = await d.exit;
    expect({ exit, stderr: d.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: '' });
    expect((await job(running!.id)).state).toBe('succeeded');
    // No job started after the signal.
    expect(await bed.db.prisma.job.count({ where: { id: { gt: running!.id } } })).toBe(0);
    const msgs = logLines(d.logFile).map((l) => l.msg);
    expect(msgs).toContain('SIGTERM: stopping gracefully');
    expect(msgs.at(-1)).toBe('haul daemon stopped');
  }, 60_000);

  it('SIGTERM cancels a job cleanly when the grace period runs out: state cancelled, exit 0, check passes', async () => {
    await bed.addClient('cut-short', P1, data, { schedule: '* * * * * *', port: link.port });
    const d = await startProcess(['--grace', '300ms']);
    const [running] = await bed.waitForJobs((all) => all[0]?.state === 'transferring', 30_000);
    const signalled = Date.now();
    d.child.kill('SIGTERM');
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(10_000);
    const ended = await job(running!.id);
    expect([ended.state, ended.failureCause, ended.failureMessage]).toEqual(['cancelled', 'cancelled', 'the daemon was stopped and the job did not finish within the grace period of 0.3 s; no snapshot was written, what arrived is kept for the next run.']);
    const check = await haul(['check'], bed.env);
    expect(check.status).toBe(0);
    expect(check.stdout).toMatch(/: no errors\n$/);
  }, 60_000);

  it('kill -9 at random points of a real backup: the job fails with daemon-restart, the next run succeeds reusing what arrived, check --read-data passes', async () => {
    // 8 MiB/s: a run killed within 1.5 s stores at most about 12 MiB, so three kills never let a
    // run finish the 40 MiB first (on the faster link, one run that beat its kill turned every
    // later run into a quick no-change re-run that the kills missed).
    const crawl = await slowLink(bed.sshd.port, 8 * MiB);
    onTestFinished(() => crawl.close());
    await bed.addClient('crashy', P1, data, { schedule: '* * * * * *', port: crawl.port });
    const repo = await openTestRepository(bed.repoDir);
    // Data bytes in the repository's packs, indexed or not (a start after a crash indexes those).
    const storedData = async () => {
      let bytes = 0;
      const listed = new Set<string>();
      for await (const f of repo.storage.list('index')) for (const p of await repo.readIndexFile(f.name)) {
        if (listed.has(p.name)) continue;
        listed.add(p.name);
        for (const e of p.entries) if (e.type === BlobType.data) bytes += e.rawLength;
      }
      for await (const p of repo.storage.list('packs')) {
        if (listed.has(p.name)) continue;
        for (const e of await readPackHeader(repo, p.name, p.size)) if (e.type === BlobType.data) bytes += e.rawLength;
      }
      return bytes;
    };
    const before = await storedData();
    const kills: { job: number; state: string; afterMs: number }[] = [];
    const seen = new Set<number>();
    for (let round = 0; kills.length < 3 && round < 8; round++) {
      const d = await startProcess();
      const [started] = await bed.waitForJobs((all) => all[0] !== undefined && all[0].state !== 'queued' && !seen.has(all[0].id), 30_000);
      seen.add(started!.id);
      // A random moment of the run: connecting, checking the probe, transferring or finalizing.
      const afterMs = Math.round(Math.random() * 1_500);
      await sleep(afterMs);
      d.child.kill('SIGKILL');
      expect((await d.exit).signal).toBe('SIGKILL');
      const state = (await job(started!.id)).state;
      // A run that beat its kill (a re-run after a snapshot is quick) is no crash to recover.
      if (!['succeeded', 'failed', 'cancelled'].includes(state)) kills.push({ job: started!.id, state, afterMs });
    }
    expect(kills.length).toBe(3);
    const kept = (await storedData()) - before;
    const snapshotsBefore = (await repo.listSnapshots({ client: 'crashy' })).length;

    const d = await startProcess();
    const jobs = await bed.waitForJobs((all) => all.some((j) => j.state === 'succeeded'), 60_000);
    d.child.kill('SIGTERM');
    expect((await d.exit).code).toBe(0);
    const context = JSON.stringify({ kills, kept });
    for (const k of kills) {
      const j = jobs.find((x) => x.id === k.job)!;
      // A run killed after its snapshot was written but before the daemon recorded it is still
      // failed: the daemon cannot know; the snapshot itself is complete and listed by the repository.
      expect([j.state, j.failureCause, j.failureMessage], context).toEqual([
        'failed',
        'daemon-restart',
        `the daemon stopped (killed, crashed or the machine restarted) while this job was ${k.state}. No snapshot was written; the data it had stored is kept and the next run reuses it.`,
      ]);
    }
    const success = jobs.filter((j) => j.state === 'succeeded').at(-1)!;
    // Only what the killed runs had not stored is new (trees add a few hundred bytes)...
    expect(Number(success.bytesNew), context).toBeLessThanOrEqual(dataBytes + 6 - kept + 64 * 1024);
    // ...and all of that is, unless a killed run got as far as writing its snapshot.
    if (snapshotsBefore === 0) expect(Number(success.bytesNew), context).toBeGreaterThanOrEqual(dataBytes + 6 - kept);
    const verify = await haul(['check', '--read-data'], bed.env);
    expect({ status: verify.status, last: verify.stdout.trim().split('\n').at(-1) }, context).toMatchObject({ status: 0, last: expect.stringMatching(/: no errors$/) });
    const target = path.join(bed.tmp, 'restored');
    expect(haulSync(['restore', `${success.snapshotId}:${data}`, '--target', target], bed.env).status).toBe(0);
    for (const name of ['one.bin', 'two.bin', 'small.txt']) {
      const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
      expect(sha(path.join(target, name))).toBe(sha(path.join(data, name)));
    }

    // `haul jobs` shows them from the database, with the daemon down.
    const listing = haulSync(['jobs', '--client', 'crashy', '--state', 'failed', '--json'], bed.env);
    expect(listing.status).toBe(0);
    const listed3 = JSON.parse(listing.stdout) as { id: number; state: string; cause: string; trigger: string }[];
    expect(listed3.map((j) => [j.id, j.state, j.cause])).toEqual(kills.map((k) => [k.job, 'failed', 'daemon-restart']).reverse());
    const table = haulSync(['jobs', '--limit', '2'], bed.env).stdout.split('\n');
    expect(table[0]).toMatch(/^ID +CLIENT +KIND +TRIGGER +STATE +QUEUED \(UTC\) +TOOK +NEW +WIRE +CAUSE$/);
    const newest = await bed.db.prisma.job.findFirstOrThrow({ orderBy: { id: 'desc' } });
    expect(table[1]).toMatch(new RegExp(`^${newest.id} +crashy +backup +(schedule|catch-up) +${newest.state} +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d `));
  }, 240_000);

  it('refuses to start with a wrong passphrase or a port in use, saying what to do', async () => {
    const wrong = await haul(['daemon', '--http-port', 'off'], { ...bed.env, HAUL_PASSWORD: 'not it' }, { timeoutMs: 30_000 });
    expect(wrong.status).toBe(12);
    expect(wrong.stderr).toMatch(/^haul: error: wrong passphrase: none of the 1 key\(s\) of the repository at .* opens with it\./);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const busy = await haul(['daemon', '--http-port', String(port), '--log-level', 'silent'], bed.env, { timeoutMs: 30_000 });
    blocker.close();
    expect(busy.status).toBe(1);
    expect(busy.stderr).toBe(`haul: error: the daemon cannot listen on 127.0.0.1:${port} for /healthz and /metrics: the port is in use (another daemon?). Choose another port (--http-port, HAUL_HTTP_PORT) or turn it off with "off".\n`);
    const badWindow = await haul(['daemon', '--blackout', '25:00-26:00'], bed.env, { timeoutMs: 30_000 });
    expect(badWindow.status).toBe(2);
    expect(badWindow.stderr).toBe('haul: error: blackout window "25:00-26:00" is not valid: 25:00 is not a time of day. Write it as [DAYS ]HH:MM-HH:MM, e.g. "22:00-06:00" or "mon-fri 08:00-18:00" (in the daemon\'s time zone).\n');
  }, 60_000);
});
