// Claiming a queued job on PostgreSQL (daemon/fleet/job-leases.ts) when another transaction holds
// its row for a moment: the job is not taken for gone (the daemon would drop it from its queue
// while it stays queued in the database), it is 'locked' and claimed once the row is free.
// A real PostgreSQL server: the row lock is the point.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClientStore } from '../../../daemon/database/client-store.js';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { JobLeases } from '../../../daemon/fleet/job-leases.js';
import { JobStore } from '../../../daemon/jobs/job-store.js';
import { databasesUnderTest } from '../../helpers/databases.js';

const postgres = databasesUnderTest().find((d) => d.name === 'PostgreSQL')!;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-job-leases-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(postgres.skip !== undefined)(`job claims on PostgreSQL${postgres.skip ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  it('a job whose row another transaction holds is locked, not gone, and is claimed once it is free', async () => {
    const url = await postgres.freshUrl();
    const db = await openDatabase({ stateDir: tmp, url });
    const other = await openDatabase({ stateDir: tmp, url, migrate: false });
    try {
      const client = await new ClientStore(db.prisma).add({ name: 'held', user: 'backup', host: 'held.example.org', port: 22, paths: ['/srv'], excludes: [], oneFileSystem: false, schedule: '0 3 * * *', retention: { keepDaily: 7 }, enabled: true });
      const job = await new JobStore(db.prisma).create({ clientId: client.id, clientName: 'held', trigger: 'manual' });
      const leases = new JobLeases(db.prisma, 'daemon-a', 'postgresql');
      let release!: () => void;
      let held!: () => void;
      const rowHeld = new Promise<void>((r) => (held = r));
      const holding = other.prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT "id" FROM "Job" WHERE "id" = ${job.id} FOR UPDATE`;
        held();
        await new Promise<void>((r) => (release = r));
      }, { timeout: 30_000 });
      await rowHeld;
      expect(await leases.claim(job)).toEqual({ result: 'locked' });
      release();
      await holding;
      expect(await leases.claim(job)).toEqual({ result: 'claimed' });
      expect(await leases.claim(job)).toEqual({ result: 'gone' });
    } finally {
      await other.close();
      await db.close();
    }
  }, 60_000);
});
