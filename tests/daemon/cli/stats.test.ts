// `haul stats` reads the job rows of a real SQLite database: per client usage against quota,
// totals and one point per day, repository-wide totals and the last verify and prune, as text
// and as the JSON documented in docs/cli.md.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';

describe('haul stats', () => {
  const tmp = tempDir('stats-cli');
  const home = path.join(tmp.dir, 'home');
  const env = haulEnv(path.join(tmp.dir, 'unused-repo'), { HAUL_HOME: home });
  const hour = 3_600_000;
  const now = Date.now();
  const at = (hoursAgo: number) => new Date(now - hoursAgo * hour);
  const MiB = 2 ** 20;

  beforeAll(async () => {
    const db = await openDatabase({ stateDir: home });
    try {
      const p = db.prisma;
      const web = await p.client.create({ data: { name: 'web1', host: 'web1', sshUser: 'b', quotaBytes: BigInt(100 * MiB), overdueHours: 36, storedBytes: BigInt(10 * MiB), storedBytesAt: at(50) } });
      const db1 = await p.client.create({ data: { name: 'db1', host: 'db1', sshUser: 'b' } });
      const job = (clientId: number, name: string, state: string, hoursAgo: number, n: { files: number; scanned: number; fresh: number; wire: number; stored: number; ms: number }) =>
        p.job.create({ data: { clientId, clientName: name, kind: 'backup', state, trigger: 'schedule', queuedAt: at(hoursAgo + 1), startedAt: at(hoursAgo + 1), finishedAt: at(hoursAgo), filesDone: BigInt(n.files), bytesScanned: BigInt(n.scanned), bytesNew: BigInt(n.fresh), bytesOnWire: BigInt(n.wire), bytesStored: BigInt(n.stored), durationMs: n.ms, ...(state === 'failed' ? { failureCause: 'unreachable' } : {}) } });
      // Before the recount at 50 h: in the period, but already inside storedBytes.
      await job(web.id, 'web1', 'succeeded', 60, { files: 10, scanned: 8 * MiB, fresh: 8 * MiB, wire: 8 * MiB, stored: 7 * MiB, ms: 4000 });
      await job(web.id, 'web1', 'succeeded', 30, { files: 10, scanned: 2 * MiB, fresh: MiB, wire: MiB, stored: MiB, ms: 2000 });
      await job(web.id, 'web1', 'failed', 2, { files: 3, scanned: MiB, fresh: MiB, wire: MiB, stored: 0, ms: 500 });
      await job(db1.id, 'db1', 'succeeded', 1, { files: 1, scanned: 4 * MiB, fresh: 4 * MiB, wire: 4 * MiB, stored: 3 * MiB, ms: 1000 });
      // Outside a 3-day period.
      await job(db1.id, 'db1', 'succeeded', 24 * 4, { files: 1, scanned: 50 * MiB, fresh: 50 * MiB, wire: 50 * MiB, stored: 50 * MiB, ms: 9000 });
      await p.job.create({ data: { clientId: null, clientName: '(repository)', kind: 'check', state: 'failed', trigger: 'schedule', failureCause: 'storage-error', queuedAt: at(5), finishedAt: at(5) } });
    } finally {
      await db.close();
    }
  });
  afterAll(() => tmp.cleanup());

  it('--json gives usage against quota (the recount plus what was stored since), totals, days and jobs', () => {
    const r = haulSync(['stats', '--days', '3', '--json'], env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const s = JSON.parse(r.stdout);
    expect(s.clients.map((c: { client: string }) => c.client)).toEqual(['db1', 'web1']);
    const web = s.clients[1];
    // 10 MiB recounted at 50 h, 1 MiB stored at 30 h, 1 MiB new (before compression) of the failed run.
    expect(web).toMatchObject({ quotaBytes: 100 * MiB, usedBytes: 12 * MiB, quotaUsed: 0.12, overdueHours: 36, lastSuccess: at(30).toISOString() });
    expect(web.totals).toEqual({ jobs: 3, succeeded: 2, failed: 1, cancelled: 0, files: 23, bytesScanned: 11 * MiB, bytesNew: 10 * MiB, bytesOnWire: 10 * MiB, bytesStored: 8 * MiB, durationMs: 6500 });
    expect(web.days.map((d: { date: string; jobs: number }) => [d.date, d.jobs])).toEqual(
      [...[60, 30, 2].reduce((m, h) => m.set(at(h).toISOString().slice(0, 10), (m.get(at(h).toISOString().slice(0, 10)) ?? 0) + 1), new Map<string, number>())].sort(([a], [b]) => a.localeCompare(b)),
    );
    expect(web.jobs[0]).toEqual({ id: 3, state: 'failed', finishedAt: at(2).toISOString(), files: 3, bytesScanned: MiB, bytesNew: MiB, bytesOnWire: MiB, bytesStored: 0, durationMs: 500, bytesPerSecond: 2 * MiB });
    expect(s.clients[0]).toMatchObject({ client: 'db1', quotaBytes: null, quotaUsed: null, usedBytes: 53 * MiB, totals: { jobs: 1, bytesStored: 3 * MiB } });
    expect(s.repository).toMatchObject({ usedBytes: 65 * MiB, totals: { jobs: 4, succeeded: 3, failed: 1, bytesNew: 14 * MiB }, lastCheck: { id: 6, state: 'failed', cause: 'storage-error', finishedAt: at(5).toISOString() }, lastPrune: null });
  });

  it('prints a table per client and the repository summary; --client adds one line per day', () => {
    const r = haulSync(['stats', '--days', '3'], env);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^CLIENT\s+USED\s+QUOTA\s+LAST SUCCESS \(UTC\)\s+OK\s+FAILED\s+SCANNED\s+NEW\s+WIRE\s+STORED$/);
    expect(lines[2]).toMatch(/^web1\s+12\.0 MiB\s+100\.0 MiB \(12%\)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+2\s+1\s+11\.0 MiB\s+10\.0 MiB\s+10\.0 MiB\s+8\.0 MiB$/);
    expect(r.stdout).toContain('\nlast 3 days: 4 backup jobs (3 succeeded, 1 failed), 14.0 MiB new, 14.0 MiB on the wire; 65.0 MiB stored by 2 client(s)\n');
    expect(r.stdout).toContain(`verify job 6 failed (storage-error) at ${at(5).toISOString()}; no prune yet\n`);
    const one = haulSync(['stats', '--client', 'db1', '--days', '3'], env);
    expect(one.stdout).toMatch(new RegExp(`\\nDAY \\(UTC\\)\\s+JOBS\\s+FAILED\\s+FILES\\s+SCANNED\\s+NEW\\s+WIRE\\s+STORED\\n${at(1).toISOString().slice(0, 10)}\\s+1\\s+0\\s+1\\s+4\\.0 MiB\\s+4\\.0 MiB\\s+4\\.0 MiB\\s+3\\.0 MiB\\n$`));
    const missing = haulSync(['stats', '--client', 'nope'], env);
    expect([missing.status, missing.stderr]).toEqual([2, 'haul: error: there is no client named "nope". `haul client list` shows the clients.\n']);
  });
});
