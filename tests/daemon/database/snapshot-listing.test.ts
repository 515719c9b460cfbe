// The database's snapshot listing against the repository it mirrors, with real `haul backup-local`
// snapshots, on a SQLite file and on a real PostgreSQL server: backups list their snapshots, and
// after the database is lost `haul db rebuild` recreates exactly what the repository holds.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../../daemon/database/migrate.js';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';
import { databasesUnderTest } from '../../helpers/databases.js';
import { flipBit, openTestRepository } from '../../helpers/repo.js';
import { freePort } from '../../helpers/sshd.js';

const databases = databasesUnderTest();
/** What `haul db status` reports as up to date: the newest migration this checkout has. */
const latestSchemaVersion = loadMigrations('sqlite').length;
const tmp = tempDir('listing');
afterAll(() => tmp.cleanup());

/** Listing rows as the database holds them, without the client link, by ID. */
async function listing(url: string, stateDir: string) {
  const db = await openDatabase({ stateDir, url });
  try {
    const rows = await db.prisma.snapshot.findMany({ orderBy: { id: 'asc' }, include: { client: { select: { name: true } } } });
    return rows.map(({ clientId: _id, client, ...row }) => ({ ...row, linkedTo: client?.name ?? null }));
  } finally {
    await db.close();
  }
}

/** What the listing must hold, computed from the repository itself. */
async function fromRepository(repoDir: string, linked: Set<string>) {
  const repo = await openTestRepository(repoDir);
  const snaps = await repo.listSnapshots();
  return snaps.sort((a, b) => a.id.localeCompare(b.id)).map((s) => ({
    id: s.id, clientName: s.client, hostname: s.hostname, time: new Date(s.time), paths: JSON.stringify(s.paths), tags: JSON.stringify(s.tags),
    files: BigInt(s.stats.files), dirs: BigInt(s.stats.dirs), bytes: BigInt(s.stats.bytes), bytesNew: BigInt(s.stats.bytesNew),
    bytesStored: BigInt(s.stats.bytesStored), errors: s.stats.errors, durationMs: s.stats.durationMs,
    linkedTo: linked.has(s.client) ? s.client : null,
  }));
}

describe.each(databases)('the snapshot listing on $name', ({ name: provider, skip, freshUrl, lose }) => {
  const test = it.skipIf(skip !== undefined);
  const dir = path.join(tmp.dir, provider);
  const repoDir = path.join(dir, 'repo');
  const home = path.join(dir, 'home');
  const data = path.join(dir, 'data');
  let url = '';
  let env: Record<string, string> = {};
  const ids: Record<string, string> = {};
  const run = (...args: string[]) => haulSync(args, env);
  const backup = (client: string, ...paths: string[]) => {
    const r = run('backup-local', '--client', client, '--json', ...paths);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    return JSON.parse(r.stdout).id as string;
  };

  beforeAll(async () => {
    if (skip) return;
    url = await freshUrl();
    env = haulEnv(repoDir, { HAUL_HOME: home, DATABASE_URL: url });
    fs.mkdirSync(path.join(data, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(data, 'a.txt'), 'a'.repeat(1000));
    fs.writeFileSync(path.join(data, 'b.bin'), Buffer.alloc(5000, 7));
    fs.writeFileSync(path.join(data, 'sub', 'c'), 'c'.repeat(300));
    expect(run('init').status).toBe(0);
    expect(run('client', 'add', 'web1', 'backup@web1.example.org', '--path', data).status).toBe(0);
    ids['web1-first'] = backup('web1', data);
    fs.writeFileSync(path.join(data, 'd.txt'), 'd'.repeat(700));
    ids['web1-second'] = backup('web1', data);
    ids['laptop'] = backup('laptop', path.join(data, 'sub'));
  }, 120_000);

  test('each backup lists its snapshot with its statistics, linked to its client row when there is one', async () => {
    const rows = await listing(url, home);
    expect(rows).toEqual(await fromRepository(repoDir, new Set(['web1'])));
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect([ids['web1-first'], ids['web1-second'], ids['laptop']].map((id) => {
      const r = byId.get(id!)!;
      return [r.clientName, r.linkedTo, r.files, r.dirs, r.bytes];
    })).toEqual([['web1', 'web1', 3n, 2n, 6300n], ['web1', 'web1', 4n, 2n, 7000n], ['laptop', null, 1n, 1n, 300n]]);
  });

  test('after the database is lost, `haul db rebuild` recreates exactly the rows the repository holds', async () => {
    await lose(url);
    const display = provider === 'SQLite' ? url.slice('file:'.length) : url;
    const host = os.hostname();
    const r = run('db', 'rebuild');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toBe(
      `rebuilt the snapshot listing in ${display} from the repository ${repoDir}:\n` +
      '  3 snapshot(s) in the repository: 3 added, 0 corrected, 0 already right\n' +
      '  0 row(s) removed: their snapshots are no longer in the repository\n' +
      `  client web1 had snapshots but no entry: added it disabled, as root@${host}:22 with the paths of its latest snapshot. Check it (\`haul client set web1 --address USER@HOST[:PORT] --path …\`), then \`haul client set web1 --enable\`.\n` +
      `  client laptop had snapshots but no entry: added it disabled, as root@${host}:22 with the paths of its latest snapshot. Check it (\`haul client set laptop --address USER@HOST[:PORT] --path …\`), then \`haul client set laptop --enable\`.\n`);
    expect(await listing(url, home)).toEqual(await fromRepository(repoDir, new Set(['web1', 'laptop'])));
    expect(run('client', 'list').stdout).toBe(
      `laptop               root@${host}:22  (host key not pinned yet)  ${data}/sub  manual only  disabled  tenant default\n` +
      `web1                 root@${host}:22  (host key not pinned yet)  ${data}  manual only  disabled  tenant default\n`);
  });

  test('rebuilding again changes nothing', async () => {
    const before = await listing(url, home);
    const r = run('db', 'rebuild', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      database: provider === 'SQLite' ? url.slice('file:'.length) : url, repository: repoDir,
      snapshots: 3, added: [], updated: [], unchanged: 3, removed: [], unreadable: [], placeholders: [],
    });
    expect(await listing(url, home)).toEqual(before);
  });

  test('corrects a row changed by hand, and drops a snapshot that is no longer in the repository', async () => {
    const db = await openDatabase({ stateDir: home, url });
    try {
      await db.prisma.snapshot.update({ where: { id: ids['web1-second']! }, data: { bytes: 1n, clientName: 'someone-else' } });
    } finally {
      await db.close();
    }
    fs.rmSync(path.join(repoDir, 'snapshots', ids['laptop']!));
    const r = run('db', 'rebuild', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ snapshots: 2, added: [], updated: [ids['web1-second']], unchanged: 1, removed: [ids['laptop']], placeholders: [] });
    const rows = await listing(url, home);
    expect(rows).toEqual(await fromRepository(repoDir, new Set(['web1'])));
    expect(rows.map((row) => row.id).sort()).toEqual([ids['web1-first'], ids['web1-second']].sort());
  });

  test('keeps the row of a snapshot that cannot be read, and says so', async () => {
    const before = await listing(url, home);
    const first = ids['web1-first']!;
    flipBit(path.join(repoDir, 'snapshots', first), 40);
    const json = run('db', 'rebuild', '--json');
    const message = `snapshot ${first.slice(0, 8)} does not match its name: its bytes were changed on disk.`;
    expect(JSON.parse(json.stdout)).toMatchObject({ snapshots: 1, added: [], updated: [], unchanged: 1, removed: [], unreadable: [{ id: first, message }] });
    expect(await listing(url, home)).toEqual(before);
    const human = run('db', 'rebuild');
    expect(human.stdout).toContain(`\n  warning: ${message}; its row, if it had one, was kept. \`haul check\` tells more.\n`);
    expect(human.status).toBe(0);
  });

  test('`haul db status` tells where the database is, its version and what it holds', () => {
    const r = run('db', 'status');
    const where = provider === 'SQLite' ? `sqlite ${url.slice('file:'.length)}` : `postgresql ${url}`;
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: `database   ${where}\nschema     version ${latestSchemaVersion} (up to date)\nclients    2\njobs       0\nsnapshots  2 listed\n` });
  });
});

describe('a database that cannot be used', () => {
  const dir = path.join(tmp.dir, 'unusable');
  const repoDir = path.join(dir, 'repo');
  const data = path.join(dir, 'data');

  it('does not fail a backup: the snapshot is saved, a warning names `haul db rebuild`, which lists it later', async () => {
    fs.mkdirSync(data, { recursive: true });
    fs.writeFileSync(path.join(data, 'f'), 'x'.repeat(123));
    const port = await freePort();
    // Nothing listens there; the password must not show in any message.
    const nowhere = `postgresql://haul:secret@127.0.0.1:${port}/haul`;
    const env = haulEnv(repoDir, { DATABASE_URL: nowhere });
    expect(haulSync(['init'], env).status).toBe(0);
    const r = haulSync(['backup-local', '--client', 'host1', '--json', data], env);
    const id = JSON.parse(r.stdout).id as string;
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(`haul: warning: snapshot ${id.slice(0, 8)} is saved in the repository, but the database could not list it (cannot reach the PostgreSQL database postgresql://haul:***@127.0.0.1:${port}/haul: connect ECONNREFUSED 127.0.0.1:${port}. Check that the server runs and DATABASE_URL is right.). Once the database works, \`haul db rebuild\` lists it.\n`);
    expect(haulSync(['snapshots', '--json'], env).stdout).toContain(id);

    // With the embedded default the rebuild lists it.
    const sqliteEnv = haulEnv(repoDir);
    const status = haulSync(['db', 'status'], sqliteEnv);
    expect(status.stdout).toBe(`database   sqlite ${repoDir}-home/haul.db\nschema     none: the file does not exist yet (\`haul db migrate\`, \`haul client add\` or a backup creates it)\n`);
    expect(fs.existsSync(`${repoDir}-home/haul.db`)).toBe(false);
    expect(JSON.parse(haulSync(['db', 'rebuild', '--json'], sqliteEnv).stdout)).toMatchObject({ snapshots: 1, added: [id] });
    expect((await listing(`file:${repoDir}-home/haul.db`, `${repoDir}-home`)).map((row) => [row.id, row.bytes, row.linkedTo])).toEqual([[id, 123n, 'host1']]);
  });
});
