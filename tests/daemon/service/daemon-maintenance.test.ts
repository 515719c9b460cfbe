// The daemon's care of the repository over years: verify and prune as jobs (scheduled and on
// request) with the repository lock held against backups, retention after each backup, quotas,
// statistics on the job row, and notifications by email (a real SMTP server) and webhook (a real
// HTTP receiver). Real sshd clients, real SQLite, a real repository.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkRepository } from '../../../daemon/checker/checker.js';
import { TenantStore } from '../../../daemon/database/tenants.js';
import { forgetSnapshots } from '../../../daemon/maintenance/forget.js';
import { lockRepository } from '../../../daemon/repository/lock.js';
import type { Repository } from '../../../daemon/repository/repository.js';
import { nameBytes } from '../../../daemon/repository/tree.js';
import type { Daemon } from '../../../daemon/service/daemon.js';
import { createDaemonTestbed, transitionsOf, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { flipBit, openTestRepository, packPath } from '../../helpers/repo.js';
import { parseMail, startSmtp, type TestSmtp } from '../../helpers/smtp.js';
import { freePort, sshdSkipReason } from '../../helpers/sshd.js';

const U = ['haul-t-mnt-a', 'haul-t-mnt-b'] as const;
const KiB = 1024;
const MiB = 1024 * KiB;
const skip = sshdSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip !== undefined)(`daemon repository jobs, retention, quotas and notifications over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let smtp: TestSmtp;
  let web: http.Server;
  const hooks: { subject: string; event: { kind: string } }[] = [];
  let webhookUrl = '';
  /** Every job's log lines, as the daemon published them. */
  const logs = new Map<number, string[]>();
  const opened: Repository[] = [];

  const start = async (extra: Parameters<DaemonTestbed['start']>[0] = {}): Promise<Daemon> => {
    const daemon = await bed.start({
      notifications: { email: { host: '127.0.0.1', port: smtp.port, from: 'haul@backup.example.org', to: ['ops@example.org'] }, webhook: { url: webhookUrl }, digest: true },
      checkSchedule: null,
      pruneSchedule: null,
      checkReadData: '1/1',
      lockWaitMs: 60_000,
      retry: { maxAttempts: 1 },
      ...extra,
    });
    daemon.events.on('job-log', ({ job, line }) => logs.set(job.id, [...(logs.get(job.id) ?? []), line]));
    return daemon;
  };
  const ended = async (id: number, timeoutMs = 90_000) => (await bed.waitForJobs((all) => ['succeeded', 'failed', 'cancelled'].includes(all.find((j) => j.id === id)?.state ?? ''), timeoutMs)).find((j) => j.id === id)!;
  const repository = async () => {
    const repo = await openTestRepository(bed.repoDir);
    opened.push(repo);
    return repo;
  };
  const subjects = () => smtp.mail.map((m) => parseMail(m.raw).subject);

  beforeAll(async () => {
    bed = await createDaemonTestbed('dmn-maint', [...U]);
    smtp = await startSmtp();
    web = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        hooks.push(JSON.parse(body) as (typeof hooks)[number]);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webhookUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/hook`;
  }, 120_000);
  afterAll(async () => {
    for (const r of opened) await r.close();
    await bed?.close();
    await smtp?.close();
    await new Promise((r) => web?.close(r));
  });
  afterEach(async () => {
    await bed.reset();
  });

  it('applies the client\'s retention after each successful backup, logs what it forgot, and stores the statistics on the job', async () => {
    const data = bed.writeData(U[0], 'keep', { 'a.bin': pseudoRandom('keep-a', 3 * MiB), 'b.txt': Buffer.from('hello\n') });
    const id = await bed.addClient('mnt-keep', U[0], data);
    await bed.db.prisma.client.update({ where: { id }, data: { retention: '{"keepLast":2}' } });
    const daemon = await start();
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push(await ended((await daemon.runNow('mnt-keep')).id));
    expect(jobs.map((j) => j.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const [first, second, third] = jobs as [typeof jobs[0], typeof jobs[0], typeof jobs[0]];
    expect(logs.get(first.id)).toContain('retention {"keepLast":2}: nothing to forget of 1 snapshot(s) of mnt-keep; their data is freed by the next prune');
    expect(logs.get(third.id)).toContain('retention {"keepLast":2}: forgot 1 of 3 snapshot(s) of mnt-keep; their data is freed by the next prune');
    const repo = await repository();
    const firstSnap = await repo.readSnapshot(first.snapshotId!).catch(() => undefined);
    expect(firstSnap).toBeUndefined();
    expect(logs.get(third.id)!.filter((l) => l.startsWith('forgot snapshot '))).toEqual([expect.stringMatching(new RegExp(`^forgot snapshot ${first.snapshotId!.slice(0, 8)} of \\d{4}-`))]);
    expect((await repo.listSnapshots({ client: 'mnt-keep' })).map((s) => s.id).sort()).toEqual([second.snapshotId, third.snapshotId].sort());
    // Statistics: the first run read and stored everything, the later ones read nothing new.
    // New bytes are the file contents plus the directory listings (tree blobs).
    expect(first).toMatchObject({ filesDone: 2n, bytesScanned: BigInt(3 * MiB + 6) });
    expect(first.bytesNew).toBeGreaterThan(BigInt(3 * MiB + 6));
    expect(first.bytesNew).toBeLessThan(BigInt(3 * MiB + 64 * KiB));
    expect(first.bytesStored).toBeGreaterThan(BigInt(3 * MiB));
    expect(first.durationMs).toBeGreaterThan(0);
    expect(first.durationMs).toBeLessThanOrEqual(first.finishedAt!.getTime() - first.queuedAt.getTime());
    expect(third).toMatchObject({ filesDone: 2n, bytesScanned: 0n });
    expect(third.bytesNew).toBeLessThan(BigInt(64 * KiB));
    expect(third.bytesStored).toBeLessThan(BigInt(64 * KiB));
  }, 180_000);

  it('prune waits for a running backup\'s lock, a backup waits for prune, and prune charges each chunk to the client that stored it first', async () => {
    const shared = pseudoRandom('shared-file', 48 * KiB);
    const id1 = await bed.addClient('mnt-first', U[0], bed.writeData(U[0], 'first', { 'same.bin': shared }));
    const id2 = await bed.addClient('mnt-second', U[1], bed.writeData(U[1], 'second', { 'same.bin': shared }));
    const daemon = await start();
    const b1 = await ended((await daemon.runNow('mnt-first')).id);
    const b2 = await ended((await daemon.runNow('mnt-second')).id);
    expect([b1.state, b2.state]).toEqual(['succeeded', 'succeeded']);

    // A shared lock (a backup, from another process) keeps prune waiting; it goes on once released.
    const repo = await repository();
    const backupLock = await lockRepository(repo, 'shared', { purpose: 'backup of somebody' });
    const prune = await daemon.runMaintenance('prune', 'alice');
    expect(prune).toMatchObject({ kind: 'prune', clientId: null, clientName: '(repository)', trigger: 'manual', requestedBy: 'alice' });
    await sleep(1500);
    expect((await bed.db.prisma.job.findUniqueOrThrow({ where: { id: prune.id } })).state).toBe('transferring');
    await backupLock.release();
    const pruned = await ended(prune.id);
    expect(pruned.state).toBe('succeeded');
    expect(await transitionsOf(bed.db, prune.id)).toEqual(['queued', 'transferring', 'succeeded']);
    expect(logs.get(prune.id)).toContain('pruning: waiting up to 60 s for running backups to release the repository');
    expect(logs.get(prune.id)!.some((l) => /^freed \d/.test(l))).toBe(true);

    // The file both clients hold is one chunk, charged to the client that stored it first.
    const usage = async () => Object.fromEntries((await bed.db.prisma.client.findMany({ where: { id: { in: [id1, id2] } } })).map((c) => [c.name, c.storedBytes]));
    let u = await usage();
    expect(u['mnt-first']).toBeGreaterThan(BigInt(48 * KiB));
    expect(u['mnt-second']).toBeLessThan(BigInt(8 * KiB));

    // An exclusive lock (a prune, from another process) keeps a backup waiting until released.
    const pruneLock = await lockRepository(repo, 'exclusive', { purpose: 'prune elsewhere' });
    const waiting = await daemon.runNow('mnt-second');
    await sleep(1500);
    expect(daemon.status().running.map((j) => j.id)).toEqual([waiting.id]);
    expect((await bed.db.prisma.job.findUniqueOrThrow({ where: { id: waiting.id } })).state).toBe('queued');
    await pruneLock.release();
    expect((await ended(waiting.id)).state).toBe('succeeded');

    // Once the first client no longer keeps the file, the next prune charges it to the second.
    const forgotten = await forgetSnapshots(repo, { ids: [b1.snapshotId!] });
    expect(forgotten.removed).toEqual([b1.snapshotId]);
    expect((await ended((await daemon.runMaintenance('prune', 'alice')).id)).state).toBe('succeeded');
    u = await usage();
    expect(u['mnt-first']).toBe(0n);
    expect(u['mnt-second']).toBeGreaterThan(BigInt(48 * KiB));
    expect((await checkRepository(repo, { readData: true })).errors).toBe(0);
  }, 240_000);

  it('a backup that would pass its client\'s quota fails with cause quota, keeps a consistent repository, and notifies', async () => {
    const data = bed.writeData(U[1], 'quota', { 'big.bin': pseudoRandom('quota-big', 6 * MiB) });
    const id = await bed.addClient('mnt-quota', U[1], data);
    await bed.db.prisma.client.update({ where: { id }, data: { quotaBytes: BigInt(MiB) } });
    const mailBefore = smtp.mail.length;
    const daemon = await start();
    const job = await ended((await daemon.runNow('mnt-quota')).id);
    expect(job).toMatchObject({ state: 'failed', failureCause: 'quota', snapshotId: null });
    expect(job.failureMessage).toMatch(/^client mnt-quota would pass its storage quota of 1\.0 MiB: it uses 0 B and this backup had \d+(\.\d+)? (KiB|MiB) of new data\. The backup stopped without a snapshot; what it stored is kept and consistent, and the next run reuses it\. Raise the quota \(`haul client set mnt-quota --quota …`\), or forget old snapshots and prune\.$/);
    expect(job.bytesNew).toBeGreaterThan(BigInt(MiB));
    const repo = await repository();
    await repo.loadIndex();
    expect(await repo.listSnapshots({ client: 'mnt-quota' })).toEqual([]);
    const check = await checkRepository(repo, { readData: true });
    expect(check.problems).toEqual([]);

    // What it stored counts: the next run is refused before it connects.
    const again = await ended((await daemon.runNow('mnt-quota')).id);
    expect(again.failureCause).toBe('quota');
    expect(again.failureMessage).toContain(`it uses ${(Number(job.bytesNew) / MiB).toFixed(1)} MiB. The backup stopped without a snapshot`);
    expect(await transitionsOf(bed.db, again.id)).toEqual(['queued', 'failed']);

    const mail = await smtp.waitFor(mailBefore + 2);
    const quotaMail = mail.slice(mailBefore).map((m) => parseMail(m.raw));
    expect(quotaMail.map((m) => m.subject)).toEqual(['[Haul] mnt-quota is over its storage quota', '[Haul] mnt-quota is over its storage quota']);
    expect(quotaMail[0]!.body).toContain(`Job ${job.id} of mnt-quota stopped: the client uses `);
    expect(quotaMail[0]!.body).toContain(" of its 1.0 MiB quota. What was stored before stays consistent.\n\nThe client reached its storage quota. Raise it or tighten the client's retention.\n");
  }, 180_000);

  it('a backup that would pass its tenant\'s quota (all its clients together) fails with cause quota and names the tenant', async () => {
    const tenants = new TenantStore(bed.db.prisma);
    const team = await tenants.add('mnt-team', { quotaBytes: 3 * MiB });
    const first = await bed.addClient('mnt-team-a', U[0], bed.writeData(U[0], 'team-a', { 'a.bin': pseudoRandom('team-a', 2 * MiB) }));
    const second = await bed.addClient('mnt-team-b', U[1], bed.writeData(U[1], 'team-b', { 'b.bin': pseudoRandom('team-b', 2 * MiB) }));
    await bed.db.prisma.client.updateMany({ where: { id: { in: [first, second] } }, data: { tenantId: team.id } });
    const mailBefore = smtp.mail.length;
    const daemon = await start();
    // Alone, each client fits; together they pass the tenant's 3 MiB.
    expect((await ended((await daemon.runNow('mnt-team-a')).id)).state).toBe('succeeded');
    const job = await ended((await daemon.runNow('mnt-team-b')).id);
    expect(job).toMatchObject({ state: 'failed', failureCause: 'quota', snapshotId: null });
    expect(job.failureMessage).toMatch(/^client mnt-team-b would pass the storage quota of its tenant mnt-team, 3\.0 MiB for all its clients: they use 2\.\d MiB and this backup had \d+(\.\d+)? (KiB|MiB) of new data\. The backup stopped without a snapshot; what it stored is kept and consistent, and the next run reuses it\. Raise the tenant's quota \(`haul tenant edit mnt-team --quota …`\), or forget old snapshots of its clients and prune\.$/);
    const repo = await repository();
    await repo.loadIndex();
    expect((await repo.listSnapshots({ client: 'mnt-team-a' })).length).toBe(1);
    expect(await repo.listSnapshots({ client: 'mnt-team-b' })).toEqual([]);
    expect((await checkRepository(repo, { readData: true })).problems).toEqual([]);
    const mail = (await smtp.waitFor(mailBefore + 1)).slice(mailBefore).map((m) => parseMail(m.raw));
    expect(mail.map((m) => m.subject)).toContain('[Haul] tenant mnt-team is over its storage quota (mnt-team-b)');
  }, 180_000);

  it('notifies a failed job by email and webhook, an overdue client once per spell, and sends the daily digest', async () => {
    const deadPort = await freePort();
    await bed.addClient('mnt-gone', U[0], '/srv/nothing', { port: deadPort });
    const lateId = await bed.addClient('mnt-late', U[0], '/srv/nothing', { createdAt: new Date(Date.now() - 3 * 3_600_000) });
    await bed.db.prisma.client.update({ where: { id: lateId }, data: { overdueHours: 2 } });
    const mailBefore = smtp.mail.length;
    const hooksBefore = hooks.length;
    const daemon = await start();
    const job = await ended((await daemon.runNow('mnt-gone')).id);
    expect(job.failureCause).toBe('unreachable');
    // The start's own overdue round and the failure: two messages.
    await smtp.waitFor(mailBefore + 2);
    expect(await daemon.alerts!.checkOverdue()).toEqual(['mnt-late']);
    await daemon.alerts!.sendDigest();
    const mail = (await smtp.waitFor(mailBefore + 3)).slice(mailBefore).map((m) => parseMail(m.raw));
    const today = new Date().toISOString().slice(0, 10);
    expect(mail.map((m) => m.subject).sort()).toEqual([
      '[Haul] backup of mnt-gone failed: unreachable',
      '[Haul] mnt-late has no successful backup for over 2 hours',
      `[Haul] daily summary ${today}: 0 succeeded, 1 failed`,
    ].sort());
    const failure = mail.find((m) => m.subject.includes('failed: unreachable'))!;
    expect(failure.body).toContain(`Job ${job.id} (backup of mnt-gone, attempt 1) failed at ${job.finishedAt!.toISOString()}.\n\nCause: unreachable\n${job.failureMessage}\n`);
    expect(failure.body).toContain(`Read the full log with: haul log ${job.id}\n`);
    expect(mail.find((m) => m.subject.startsWith('[Haul] mnt-late'))!.body).toBe('Client mnt-late has not been backed up successfully ever; its threshold is 2 hours.\n\nCheck its recent jobs with: haul jobs --client mnt-late\n');
    expect(mail.find((m) => m.subject.startsWith('[Haul] daily'))!.body).toBe(`Jobs on ${today}: 0 succeeded, 1 failed; 0 B of new data.\n\nFailures:\n- mnt-gone: unreachable\n\nClients without a recent successful backup: mnt-late\n`);
    await sleep(300);
    expect(subjects().slice(mailBefore)).toHaveLength(3);
    expect(hooks.slice(hooksBefore).map((h) => h.event.kind).sort()).toEqual(['client-overdue', 'daily-digest', 'job-failed']);
  }, 120_000);

  it('runs the verify on its schedule as a job of the repository', async () => {
    await bed.addClient('mnt-sched', U[0], bed.writeData(U[0], 'sched', { 'x.txt': Buffer.from('x\n') }));
    await start({ checkSchedule: '*/2 * * * * *', checkReadData: null });
    const jobs = await bed.waitForJobs((all) => all.some((j) => j.kind === 'check' && j.state === 'succeeded'), 30_000);
    const check = jobs.find((j) => j.kind === 'check' && j.state === 'succeeded')!;
    expect(check).toMatchObject({ trigger: 'schedule', clientName: '(repository)', failureCause: null });
    expect(logs.get(check.id)![1]).toBe('verifying the repository: structure only');
    expect(logs.get(check.id)!.some((l) => /^checked \d+ snapshots, \d+ trees, \d+ packs, \d+ index files: no errors$/.test(l))).toBe(true);
  }, 60_000);

  // Last: it damages the repository.
  it('a verify that finds a damaged pack fails, names the snapshot and file in its log, and mails the damage', async () => {
    const data = bed.writeData(U[1], 'verify', { 'victim.bin': pseudoRandom('victim', 40 * KiB), 'fine.txt': Buffer.from('fine\n') });
    await bed.addClient('mnt-verify', U[1], data);
    const daemon = await start();
    const backup = await ended((await daemon.runNow('mnt-verify')).id);
    expect(backup.state).toBe('succeeded');
    const clean = await ended((await daemon.runMaintenance('check', 'auditor-carol')).id);
    expect(clean.state).toBe('succeeded');
    expect(logs.get(clean.id)).toContain('verifying the repository: structure, and re-reading part 1 of 1 of the packs (1/1)');

    const repo = await repository();
    const snap = await repo.readSnapshot(backup.snapshotId!);
    let tree = await repo.loadTree(snap.tree);
    for (const part of data.split('/').filter(Boolean)) tree = await repo.loadTree(tree.nodes.find((n) => nameBytes(n).toString() === part)!.subtree!);
    const victim = tree.nodes.find((n) => nameBytes(n).toString() === 'victim.bin')!;
    const chunk = victim.content![0]!;
    const loc = repo.locate(Buffer.from(chunk, 'hex'))!;
    flipBit(packPath(bed.repoDir, loc.pack), loc.offset + 100);

    const mailBefore = smtp.mail.length;
    const damaged = await ended((await daemon.runMaintenance('check', 'auditor-carol')).id);
    expect(damaged).toMatchObject({ state: 'failed', failureCause: 'storage-error' });
    expect(damaged.failureMessage).toMatch(/^the repository has \d+ error\(s\), listed in this job's log with the snapshots and files they affect\./);
    const fileLine = `error: snapshot ${backup.snapshotId!.slice(0, 8)} (client mnt-verify): ${data}/victim.bin: chunk ${chunk.slice(0, 16)} damaged in pack ${loc.pack}.`;
    expect(logs.get(damaged.id)).toContain(fileLine);
    const mail = parseMail((await smtp.waitFor(mailBefore + 1))[mailBefore]!.raw);
    expect(mail.subject).toMatch(/^\[Haul\] repository verification found \d+ error\(s\)$/);
    expect(mail.body).toContain(`- ${fileLine.slice('error: '.length)}\n`);
  }, 180_000);
});
