// The audit trail's hash chain on a real SQLite file and a real PostgreSQL database: each entry
// is chained to the one before, `verify()` names the first entry that was changed or removed,
// and appends from two connections at once never fork the chain.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, GENESIS_HASH, auditEntryHash, canonicalJson } from '../../../daemon/database/audit-trail.js';
import type { Database } from '../../../daemon/database/open-database.js';
import { projectRoot } from '../../helpers/cli.js';
import { testDatabases } from '../../helpers/store-databases.js';

const backends = testDatabases();

/**
 * Appends `n` entries as `actor` from a separate Node process (the compiled code in dist/), as the CLI does
 * beside a running web server. A second process, not a second connection in this one: libsql
 * waits for a lock synchronously, so two SQLite clients in one process would block each other.
 */
function appendFromAnotherProcess(url: string, actor: string, n: number): Promise<{ status: number | null; stderr: string }> {
  const dist = path.join(projectRoot, 'dist', 'daemon', 'database');
  if (!fs.existsSync(path.join(dist, 'audit-trail.js'))) throw new Error('dist/ is missing or stale: run `npm run build` first.');
  const script = `
    const { openDatabase } = await import(${JSON.stringify(path.join(dist, 'open-database.js'))});
    const { AuditTrail } = await import(${JSON.stringify(path.join(dist, 'audit-trail.js'))});
    const db = await openDatabase({ stateDir: '/nonexistent', url: process.argv[1] });
    const trail = new AuditTrail(db);
    for (let i = 0; i < ${n}; i++) await trail.append({ actor: ${JSON.stringify(actor)}, action: 'test.append', detail: { i } });
    await db.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, url], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    // The tail is enough to see why; Prisma prints its minified source above an error.
    child.on('close', (status) => resolve({ status, stderr: stderr.slice(-2000) }));
  });
}

describe('canonical JSON', () => {
  it('sorts keys at every level and drops undefined, so one value has one text', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', { z: null, y: true }], c: undefined }, at: new Date('2026-01-01T00:00:00.000Z') }))
      .toBe('{"a":{"d":[1,"x",{"y":true,"z":null}]},"at":"2026-01-01T00:00:00.000Z","b":1}');
    expect(canonicalJson({ name: '<script>"\n' })).toBe('{"name":"<script>\\"\\n"}');
  });
});

describe.each(backends)('the audit trail on $name', (backend) => {
  let db: Database;
  let trail: AuditTrail;
  const restore = 'Restore the database from a backup to see the original entries, and find out who could write to it.';

  beforeAll(async () => {
    if (backend.skip) return;
    db = await backend.open();
    trail = new AuditTrail(db);
  });
  afterAll(async () => db?.close());

  const raw = (sql: string) => db.prisma.$executeRawUnsafe(sql);

  it.skipIf(backend.skip)('chains each entry to the one before it and verifies the whole chain', async () => {
    const a = await trail.append({ actor: 'cli:root', action: 'user.add', target: 'alice', detail: { role: 'admin' } });
    const b = await trail.append({ actor: 'alice', action: 'login' });
    const c = await trail.append({ actor: 'alice', action: 'client.add', target: 'web1', detail: { paths: ['/srv'], address: 'backup@web1' } });
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect([b.prevHash, c.prevHash]).toEqual([a.hash, b.hash]);
    expect(c.hash).toBe(auditEntryHash(b.hash, { at: c.at, actor: 'alice', action: 'client.add', target: 'web1', detail: { address: 'backup@web1', paths: ['/srv'] } }));
    expect(b).toMatchObject({ target: null, detail: {} });
    expect(await trail.verify()).toEqual({ ok: true, entries: 3, head: c.hash });
    expect((await trail.list({ limit: 2 })).map((e) => e.id)).toEqual([c.id, b.id]);
    expect((await trail.list({ beforeId: b.id })).map((e) => e.id)).toEqual([a.id]);
  });

  it.skipIf(backend.skip)('names the first entry whose fields were changed, whatever field it was', async () => {
    const [a, b] = await trail.list({ limit: 2 }).then((l) => l.reverse());
    await raw(`UPDATE "AuditEntry" SET "detail" = '{"paths":["/"],"address":"backup@web1"}' WHERE "id" = ${b!.id}`);
    expect(await trail.verify()).toEqual({
      ok: false, entries: 2, brokenId: b!.id,
      message: `audit entry #${b!.id} (${b!.at.toISOString()} alice client.add) does not match its hash: it was changed after it was written. ${restore}`,
    });
    await raw(`UPDATE "AuditEntry" SET "detail" = '${JSON.stringify(b!.detail)}' WHERE "id" = ${b!.id}`);
    expect((await trail.verify()).ok).toBe(true);

    await raw(`UPDATE "AuditEntry" SET "actor" = 'mallory' WHERE "id" = ${a!.id}`);
    expect(await trail.verify()).toEqual({
      ok: false, entries: 1, brokenId: a!.id,
      message: `audit entry #${a!.id} (${a!.at.toISOString()} mallory login) does not match its hash: it was changed after it was written. ${restore}`,
    });
    await raw(`UPDATE "AuditEntry" SET "actor" = 'alice' WHERE "id" = ${a!.id}`);
    await raw(`UPDATE "AuditEntry" SET "detail" = 'not json' WHERE "id" = ${a!.id}`);
    expect(await trail.verify()).toMatchObject({ ok: false, brokenId: a!.id });
    await raw(`UPDATE "AuditEntry" SET "detail" = '{}' WHERE "id" = ${a!.id}`);
    expect((await trail.verify()).ok).toBe(true);
  });

  it.skipIf(backend.skip)('names the entry after a removed one, and a chain whose start was removed', async () => {
    const [first, second, third] = await trail.list().then((l) => l.reverse());
    await raw(`DELETE FROM "AuditEntry" WHERE "id" = ${second!.id}`);
    expect(await trail.verify()).toEqual({
      ok: false, entries: 1, brokenId: third!.id,
      message: `audit entry #${third!.id} does not follow #${first!.id}: it records a different previous hash, so an entry between them was removed or #${first!.id} was rewritten. ${restore}`,
    });
    await raw(`DELETE FROM "AuditEntry" WHERE "id" = ${first!.id}`);
    expect(await trail.verify()).toEqual({
      ok: false, entries: 0, brokenId: third!.id,
      message: `audit entry #${third!.id} does not start the chain: its previous hash is not the genesis hash, so the entries before it were removed. ${restore}`,
    });
    await raw(`DELETE FROM "AuditEntry"`);
    expect(await trail.verify()).toEqual({ ok: true, entries: 0, head: GENESIS_HASH });
  });

  it.skipIf(backend.skip)('never forks when other processes append at the same time', async () => {
    const n = 30;
    const writers = ['this-process', 'process-1', 'process-2', 'process-3'];
    const others = writers.slice(1).map((actor) => appendFromAnotherProcess(db.location.url, actor, n));
    // This process's appends run concurrently too (on PostgreSQL over several pooled connections).
    await Promise.all(Array.from({ length: n }, (_, i) => trail.append({ actor: 'this-process', action: 'test.append', detail: { i } })));
    for (const result of await Promise.all(others)) expect(result).toEqual({ status: 0, stderr: '' });
    const entries = await trail.list({ limit: 1000 });
    expect(entries).toHaveLength(writers.length * n);
    expect(new Set(entries.map((e) => e.prevHash)).size).toBe(writers.length * n);
    for (const actor of writers) {
      expect(entries.filter((e) => e.actor === actor).map((e) => Number(e.detail['i'])).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    }
    expect(await trail.verify()).toMatchObject({ ok: true, entries: writers.length * n });
  });
});
