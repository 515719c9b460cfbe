// The client list in the database, on a fresh SQLite file and on a real PostgreSQL server: every
// setting round-trips, every bad setting is refused with its message and stores nothing, and an
// earlier installation's clients.json is imported once.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAddress, type ClientSettings } from '../../../daemon/clients/client-config.js';
import { ClientStore } from '../../../daemon/database/client-store.js';
import { openDatabase, type Database } from '../../../daemon/database/open-database.js';
import { databasesUnderTest } from '../../helpers/databases.js';
import { failure } from '../../helpers/errors.js';

const databases = databasesUnderTest();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-client-store-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const PIN_A = 'SHA256:' + 'A'.repeat(43);
const PIN_B = 'SHA256:' + 'b'.repeat(42) + '+';

const web1: ClientSettings = {
  name: 'web1', user: 'backup', host: 'web1.example.org', port: 22, paths: ['/srv/www', '/etc'], excludes: ['*.tmp', '/srv/www/cache/*'],
  oneFileSystem: true, schedule: '0 3 * * *', retention: { keepDaily: 7, keepWeekly: 4 }, enabled: true,
};

describe('client addresses', () => {
  it('parses user@host[:port] and refuses anything else with a clear message', () => {
    expect(parseAddress('backup@web1.example.org')).toEqual({ user: 'backup', host: 'web1.example.org', port: 22 });
    expect(parseAddress('haul@10.0.0.5:2222')).toEqual({ user: 'haul', host: '10.0.0.5', port: 2222 });
    expect(parseAddress('haul@[::1]:22')).toEqual({ user: 'haul', host: '::1', port: 22 });
    expect(() => parseAddress('web1')).toThrow('"web1" is not an address of the form user@host or user@host:port.');
    expect(() => parseAddress('a@b:70000')).toThrow('port 70000 is out of range (1-65535).');
    expect(() => parseAddress('a;rm -rf /@b')).toThrow('"a;rm -rf /@b" is not an address of the form user@host or user@host:port.');
  });
});

describe.each(databases)('the client store on $name', ({ name: provider, skip, freshUrl }) => {
  let db: Database;
  let store: ClientStore;
  let stateDir: string;

  beforeEach(async (ctx) => {
    if (skip) return ctx.skip(skip);
    stateDir = fs.mkdtempSync(path.join(tmp, `${provider}-`));
    db = await openDatabase({ stateDir, url: await freshUrl() });
    store = new ClientStore(db.prisma);
  });
  afterEach(async () => {
    await db?.close();
  });

  it('adds, lists, changes, pins and removes clients; every setting round-trips', async () => {
    const added = await store.add({ ...web1, schedule: ' 0  3 * *  * ' });
    expect(added).toEqual({ ...web1, id: added.id, created: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    const v6 = await store.add({ ...web1, name: 'v6.host_2', host: '2001:db8::1', port: 2222, schedule: '*/10 * * * * *', retention: null, excludes: [], oneFileSystem: false, enabled: false });
    expect((await store.list()).map((c) => [c.name, c.host, c.port, c.schedule, c.retention, c.enabled])).toEqual([
      ['v6.host_2', '2001:db8::1', 2222, '*/10 * * * * *', null, false],
      ['web1', 'web1.example.org', 22, '0 3 * * *', { keepDaily: 7, keepWeekly: 4 }, true],
    ]);

    expect(await store.pinHostKey('web1', PIN_A)).toEqual({});
    expect(await store.pinHostKey('web1', PIN_B)).toEqual({ replaced: PIN_A });
    // A new address keeps the pin: another machine there is refused until an operator re-pins.
    const changed = await store.update('web1', {
      address: 'haul@[2001:db8::7]:2200', paths: ['/'], excludes: [], oneFileSystem: false, schedule: null, retention: null, enabled: false,
    });
    expect(changed).toEqual({
      id: added.id, name: 'web1', user: 'haul', host: '2001:db8::7', port: 2200, hostKey: PIN_B, paths: ['/'], excludes: [],
      oneFileSystem: false, schedule: null, retention: null, enabled: false, created: added.created,
    });
    expect(await store.get('web1')).toEqual(changed);
    expect(await store.update('web1', { retention: { keepLast: 3 }, enabled: true })).toMatchObject({ retention: { keepLast: 3 }, enabled: true, paths: ['/'] });

    await store.remove('web1');
    expect((await store.list()).map((c) => c.name)).toEqual([v6.name]);
    expect(await store.find('web1')).toBeUndefined();
  });

  it('refuses bad settings with a message that says what to do, and stores nothing', async () => {
    await store.add(web1);
    const refused = async (p: Promise<unknown>) => {
      const err = await failure(p);
      return [err.code, err.message];
    };
    expect(await refused(store.add(web1))).toEqual(['InvalidArgument', 'a client named web1 exists already.']);
    expect(await refused(store.add({ ...web1, name: 'Bad Name' }))).toEqual(['InvalidArgument', `"Bad Name" is not a valid client name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.`]);
    expect(await refused(store.add({ ...web1, name: 'x', paths: ['/srv/../etc'] }))).toEqual(['InvalidArgument', '"/srv/../etc" is not an absolute, normalised path (like /home or /srv/www) of at most 4096 bytes.']);
    expect(await refused(store.add({ ...web1, name: 'x', paths: [] }))).toEqual(['InvalidArgument', 'a client needs at least one path to back up (--path /home, repeatable).']);
    expect(await refused(store.add({ ...web1, name: 'x', excludes: [''] }))).toEqual(['InvalidArgument', '"" is not a usable exclude pattern: give a name glob (*.tmp) or an absolute path glob (/srv/cache/*) of 1 to 4096 bytes.']);
    expect(await refused(store.add({ ...web1, name: 'x', host: 'bad host' }))).toEqual(['InvalidArgument', '"backup@bad host:22" is not an address of the form user@host or user@host:port.']);
    const advice = 'Give a cron expression of 5 fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 every day) or 6 with seconds first, or --no-schedule to run the client only when asked.';
    expect(await refused(store.add({ ...web1, name: 'x', schedule: '61 * * * *' }))).toEqual(['InvalidArgument', `"61 * * * *" is not a schedule: Constraint error, got value 61 expected range 0-59. ${advice}`]);
    expect(await refused(store.update('web1', { schedule: '1 2 3' }))).toEqual(['InvalidArgument', `"1 2 3" is not a schedule: it has 3 field(s). ${advice}`]);
    expect(await refused(store.update('web1', { schedule: '0 0 30 2 *' }))).toEqual(['InvalidArgument', `"0 0 30 2 *" is not a schedule: Invalid explicit day of month definition. ${advice}`]);
    expect(await refused(store.update('web1', { retention: { keepDaily: 0 } }))).toEqual(['InvalidArgument', 'the retention rule keepDaily is 0; it must be a whole number from 1 to 100000.']);
    expect(await refused(store.update('web1', { retention: {} }))).toEqual(['InvalidArgument', 'the retention policy {} is not an object with at least one rule (keys: keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly; values: whole numbers from 1 to 100000), e.g. {"keepDaily":7,"keepWeekly":4}.']);
    expect(await refused(store.update('web1', { retention: { keepForever: 1 } as never }))).toEqual(['InvalidArgument', 'the retention policy has an unknown rule "keepForever" (keys: keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly; values: whole numbers from 1 to 100000).']);
    expect(await refused(store.update('web1', { address: 'web1' }))).toEqual(['InvalidArgument', '"web1" is not an address of the form user@host or user@host:port.']);
    expect(await refused(store.pinHostKey('web1', 'SHA256:short'))).toEqual(['InvalidArgument', '"SHA256:short" is not an OpenSSH SHA-256 fingerprint ("SHA256:" and 43 base64 characters), so it cannot be pinned for web1; `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the client prints the right one.']);
    const unknown = 'there is no client named "nope". `haul client list` shows the clients; `haul client add` adds one.';
    expect(await refused(store.get('nope'))).toEqual(['InvalidArgument', unknown]);
    expect(await refused(store.update('nope', { enabled: false }))).toEqual(['InvalidArgument', unknown]);
    expect(await refused(store.pinHostKey('nope', PIN_A))).toEqual(['InvalidArgument', unknown]);
    expect(await refused(store.remove('nope'))).toEqual(['InvalidArgument', unknown]);
    // Nothing of the refused changes reached the row.
    const [only] = await store.list();
    expect(only).toEqual({ ...web1, id: only!.id, created: only!.created, tenant: 'default' });
  });

  it('reports a row that was changed by hand instead of misreading it', async () => {
    await store.add(web1);
    await db.prisma.client.update({ where: { name: 'web1' }, data: { paths: '/srv' } });
    expect((await failure(store.get('web1'))).message).toBe('the paths of client "web1" in the database are not a JSON list of strings ("/srv"); the row was changed by hand. Set them again with `haul client set web1 --path …`.');
    await store.update('web1', { paths: ['/srv'] });
    await db.prisma.client.update({ where: { name: 'web1' }, data: { retention: '{"keepDaily":-1}' } });
    expect((await failure(store.list())).message).toBe(`the retention policy of client "web1" in the database is not valid ("{\\"keepDaily\\":-1}"); the row was changed by hand. Set it again with \`haul client set web1 --retention '{"keepDaily":7}'\`.`);
  });
});

describe.each(databases)('importing an earlier clients.json on $name', ({ name: provider, skip, freshUrl }) => {
  const legacy = {
    format: 'haul-clients-v1',
    clients: [
      { name: 'web1', host: 'web1.example.org', port: 22, user: 'backup', hostKey: PIN_A, paths: ['/srv/www'], excludes: ['*.tmp'], oneFileSystem: true, created: '2026-01-02T03:04:05.678Z' },
      { name: 'db1', host: '2001:db8::1', port: 2200, user: 'pg', paths: ['/var/lib/postgresql'], excludes: [], oneFileSystem: false, created: '2026-02-01T00:00:00.000Z' },
    ],
  };

  it('imports every client with its pin once, renames the file, and never reads it again', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const stateDir = fs.mkdtempSync(path.join(tmp, `import-${provider}-`));
    const url = await freshUrl();
    const file = path.join(stateDir, 'clients.json');
    fs.writeFileSync(file, JSON.stringify(legacy, null, 2));
    const text = fs.readFileSync(file);

    const first = await openDatabase({ stateDir, url });
    try {
      expect(first.legacyImport).toEqual({ file, renamedTo: `${file}.imported`, imported: ['web1', 'db1'], alreadyPresent: [] });
      expect(await new ClientStore(first.prisma).list()).toEqual([
        { id: expect.any(Number), name: 'db1', user: 'pg', host: '2001:db8::1', port: 2200, paths: ['/var/lib/postgresql'], excludes: [], oneFileSystem: false, schedule: null, retention: null, enabled: true, created: '2026-02-01T00:00:00.000Z', tenant: 'default' },
        { id: expect.any(Number), name: 'web1', user: 'backup', host: 'web1.example.org', port: 22, hostKey: PIN_A, paths: ['/srv/www'], excludes: ['*.tmp'], oneFileSystem: true, schedule: null, retention: null, enabled: true, created: '2026-01-02T03:04:05.678Z', tenant: 'default' },
      ]);
      // The operator goes on changing clients in the database.
      await new ClientStore(first.prisma).update('web1', { paths: ['/srv'] });
    } finally {
      await first.close();
    }
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readFileSync(`${file}.imported`).equals(text)).toBe(true);

    const second = await openDatabase({ stateDir, url });
    try {
      expect(second.legacyImport).toBeUndefined();
      expect((await new ClientStore(second.prisma).get('web1')).paths).toEqual(['/srv']);
    } finally {
      await second.close();
    }

    // The same file again (restored from a copy): the database's rows win, nothing is lost.
    fs.writeFileSync(file, text);
    const third = await openDatabase({ stateDir, url });
    try {
      expect(third.legacyImport).toEqual({ file, renamedTo: `${file}.imported-2`, imported: [], alreadyPresent: ['web1', 'db1'] });
      expect((await new ClientStore(third.prisma).get('web1')).paths).toEqual(['/srv']);
    } finally {
      await third.close();
    }
    expect(fs.readdirSync(stateDir).filter((f) => f.startsWith('clients.json')).sort()).toEqual(['clients.json.imported', 'clients.json.imported-2']);
  });

  it('imports nothing from a file with a bad entry, leaves it in place and says what to fix', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const stateDir = fs.mkdtempSync(path.join(tmp, `import-bad-${provider}-`));
    const url = await freshUrl();
    const file = path.join(stateDir, 'clients.json');
    const bad = { ...legacy, clients: [legacy.clients[0], { ...legacy.clients[1], paths: ['relative/path'] }] };
    fs.writeFileSync(file, JSON.stringify(bad));
    const err = await failure(openDatabase({ stateDir, url }));
    expect([err.code, err.message]).toEqual(['UnsupportedFormat', `cannot import the client list ${file} into the database: entry 2 ("db1"): "relative/path" is not an absolute, normalised path (like /home or /srv/www) of at most 4096 bytes. Nothing was imported and the file is unchanged; correct it (or move it away if those clients are no longer wanted), then run the command again.`]);
    fs.writeFileSync(file, '{"format":"haul-clients-v1","clients":[');
    expect((await failure(openDatabase({ stateDir, url }))).message).toBe(`cannot import the client list ${file} into the database: it is not valid JSON. Nothing was imported and the file is unchanged; correct it (or move it away if those clients are no longer wanted), then run the command again.`);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"format":"haul-clients-v1","clients":[');
    fs.rmSync(file);
    const db = await openDatabase({ stateDir, url });
    try {
      expect(await db.prisma.client.count()).toBe(0);
    } finally {
      await db.close();
    }
  });
});
