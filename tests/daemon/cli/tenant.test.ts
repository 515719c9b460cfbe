// `haul tenant …`, `haul client add --tenant` and `client move`, `haul user grant|revoke|set-role`
// as a user runs them: the compiled CLI in a child process over a real SQLite database in a
// temporary state directory; every change lands in the audit trail with its tenant.
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../../daemon/cli/database.js';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { haul, haulEnv, tempDir } from '../../helpers/cli.js';

const { dir, cleanup } = tempDir('cli-tenant');
const env = haulEnv(path.join(dir, 'no-repository'), { HAUL_HOME: dir });
const run = (...args: string[]) => haul(args, env, { timeoutMs: 60_000 });
afterAll(cleanup);

describe('haul tenant', () => {
  it('adds a tenant, puts clients and users in it, and refuses removing it while it has clients', async () => {
    const added = await run('tenant', 'add', 'acme', '--quota', '2T', '--retention', '{"keepDaily":14}', '--notify', 'ops@acme.example');
    expect([added.status, added.stdout, added.stderr]).toEqual([0, 'added tenant acme: 0 clients, quota 2.0 TiB, retention default {"keepDaily":14}, notifies ops@acme.example\n', '']);
    expect((await run('client', 'add', 'web1', 'backup@web1.example', '--path', '/srv', '--tenant', 'acme', '--json')).status).toBe(0);
    expect((await run('client', 'add', 'web2', 'backup@web2.example', '--path', '/srv')).status).toBe(0);
    const moved = await run('client', 'move', 'web2', '--tenant', 'acme');
    expect([moved.status, moved.stdout]).toEqual([0, 'moved client web2 from tenant default to acme\n']);

    const granted = await run('user', 'add', 'ada', '--role', 'auditor');
    expect(granted.stdout.split('\n')[0]).toBe('added auditor ada of tenant default');
    expect((await run('user', 'grant', 'ada', '--tenant', 'acme', '--role', 'operator')).stdout).toBe('ada is now operator of tenant acme\n');
    expect((await run('user', 'revoke', 'ada', '--tenant', 'default')).stdout).toBe('ada is no longer auditor of tenant default\n');

    const list = await run('tenant', 'list');
    expect(list.stdout).toBe(
      `${'acme'.padEnd(20)} 2 clients (web1, web2), quota 2.0 TiB, retention default {"keepDaily":14}, notifies ops@acme.example\n` +
      `${'default'.padEnd(20)} 0 clients, no quota, no retention default, no extra recipients\n`);

    const refusals: [string[], number, string][] = [
      [['tenant', 'remove', 'acme'], 1, 'tenant acme still has 2 clients (web1, web2); move them to another tenant first (`haul client move NAME --tenant OTHER`) or remove them. Nothing was changed.'],
      [['tenant', 'add', 'acme'], 1, 'a tenant named acme exists already; choose another name, or change it with `haul tenant edit acme`.'],
      [['tenant', 'edit', 'acme'], 2, 'nothing to change for tenant acme: give at least one of --quota, --retention, --notify, --no-notify.'],
      [['tenant', 'edit', 'acme', '--quota', 'lots'], 2, '"lots" is not a quota: write a size such as 50G, 1.5T or 800M (units are powers of 1024), or "none" to remove the limit.'],
      [['client', 'move', 'web1', '--tenant', 'nope'], 1, 'there is no tenant named "nope"; `haul tenant list` shows the tenants.'],
      [['user', 'grant', 'ada', '--tenant', 'acme', '--role', 'admin'], 2, '"admin" is not a tenant role; use operator or auditor (admins are global: `haul user set-role NAME admin`).'],
      [['user', 'add', 'root', '--role', 'admin', '--tenant', 'acme'], 2, 'an admin reaches every tenant; --tenant is for an operator or auditor.'],
    ];
    for (const [args, status, message] of refusals) {
      const r = await run(...args);
      expect([r.status, r.stderr], args.join(' ')).toEqual([status, `haul: error: ${message}\n`]);
    }

    expect((await run('tenant', 'edit', 'acme', '--quota', 'none', '--no-notify')).stdout).toBe('updated tenant acme: 2 clients (web1, web2), no quota, retention default {"keepDaily":14}, no extra recipients\n');
    await run('client', 'move', 'web1', '--tenant', 'default');
    await run('client', 'move', 'web2', '--tenant', 'default');
    expect((await run('tenant', 'remove', 'acme')).stdout).toBe('removed tenant acme\n');
    expect(JSON.parse((await run('user', 'list', '--json')).stdout)).toEqual([expect.objectContaining({ username: 'ada', role: 'auditor', tenants: [] })]);

    const db = await openDatabase({ stateDir: dir });
    try {
      const entries = await db.prisma.auditEntry.findMany({ orderBy: { id: 'asc' } });
      expect(entries.map((e) => [e.actor, e.action, e.target, e.tenantId])).toEqual([
        [cliActor(), 'tenant.add', 'acme', 2],
        [cliActor(), 'client.move', 'web2', 2],
        [cliActor(), 'user.add', 'ada', 1],
        [cliActor(), 'user.grant', 'ada', 2],
        [cliActor(), 'user.revoke', 'ada', 1],
        [cliActor(), 'tenant.edit', 'acme', 2],
        [cliActor(), 'client.move', 'web1', 1],
        [cliActor(), 'client.move', 'web2', 1],
        [cliActor(), 'tenant.remove', 'acme', null],
      ]);
    } finally {
      await db.close();
    }
  }, 300_000);
});
