// `haul client …` as an operator runs it: the clients live in the database of the state
// directory (SQLite here; the store itself is tested on PostgreSQL too).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';

describe('haul client', () => {
  const tmp = tempDir('client-cli');
  afterAll(() => tmp.cleanup());
  const home = path.join(tmp.dir, 'home');
  const env = haulEnv(path.join(tmp.dir, 'unused-repo'), { HAUL_HOME: home });
  const run = (...args: string[]) => haulSync(args, env);

  it('`client add` stores the client and prints the restricted authorized_keys line to paste on it', () => {
    const r = run('client', 'add', 'db1', 'backup@db1.example:2200', '--path', '/var/lib/postgresql', '--json');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const out = JSON.parse(r.stdout);
    expect(out.client).toEqual({
      id: 1, name: 'db1', user: 'backup', host: 'db1.example', port: 2200, paths: ['/var/lib/postgresql'], excludes: [], oneFileSystem: false,
      schedule: null, retention: null, enabled: true, created: expect.stringMatching(/^\d{4}-/),
    });
    expect(out.authorizedKeysLine).toMatch(/^restrict ssh-ed25519 [A-Za-z0-9+/=]+ haul@\S+$/);
    expect(fs.existsSync(path.join(home, 'haul.db'))).toBe(true);
    // The identity is made once and reused.
    const again = run('client', 'add', 'web1', 'backup@[2001:db8::1]', '--path', '/srv', '--path', '/etc', '--exclude', '*.tmp', '-x', '--schedule', '0 3 * * *', '--retention', '{"keepDaily":7}');
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(`added client web1 (backup@[2001:db8::1]:22), backing up /srv /etc; schedule "0 3 * * *"\n\n` +
      `On 2001:db8::1, as backup, append this line to ~/.ssh/authorized_keys (nothing else is installed):\n\n${out.authorizedKeysLine}\n\n` +
      'Then run `haul client pin web1` to check the connection and pin the client\'s host key.\n');
  });

  it('`client list` shows address, pin, paths, schedule, whether each client is enabled, and its tenant', () => {
    const list = run('client', 'list');
    expect(list.stdout).toBe(
      'db1                  backup@db1.example:2200  (host key not pinned yet)  /var/lib/postgresql  manual only  enabled  tenant default\n' +
      'web1                 backup@[2001:db8::1]:22  (host key not pinned yet)  /srv /etc  schedule "0 3 * * *"  enabled  tenant default\n');
    const json = JSON.parse(run('client', 'list', '--json').stdout);
    expect(json.map((c: { name: string; retention: unknown; oneFileSystem: boolean; tenant: string }) => [c.name, c.retention, c.oneFileSystem, c.tenant])).toEqual([['db1', null, false, 'default'], ['web1', { keepDaily: 7 }, true, 'default']]);
  });

  it('`client set` changes only what it is given and says what the client is now', () => {
    const r = run('client', 'set', 'web1', '--schedule', '30 2 * * 1-5', '--retention', '{"keepDaily":14,"keepMonthly":6}', '--disable', '--cross-file-systems', '--path', '/srv/www');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toBe('updated client web1 (backup@[2001:db8::1]:22): paths /srv/www, excludes *.tmp, crosses file systems, schedule "30 2 * * 1-5", retention {"keepDaily":14,"keepMonthly":6}, no quota, no overdue alert, disabled\n');
    const back = run('client', 'set', 'web1', '--no-schedule', '--no-excludes', '--retention', 'null', '--enable', '-x', '--address', 'haul@web1.example.org:2222');
    expect(back.stdout).toBe('updated client web1 (haul@web1.example.org:2222): paths /srv/www, no excludes, one file system, manual only, keeps every snapshot, no quota, no overdue alert, enabled\n');
    expect(run('client', 'list').stdout).toContain('web1                 haul@web1.example.org:2222  (host key not pinned yet)  /srv/www  manual only  enabled  tenant default\n');
  });

  it('`client set --quota --overdue-hours` sets the limits, and "none" removes them', () => {
    const r = run('client', 'set', 'db1', '--quota', '50G', '--overdue-hours', '36', '--json');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'db1', quotaBytes: 50 * 2 ** 30, overdueHours: 36 });
    expect(run('client', 'set', 'db1', '--quota', '1.5TiB').stdout).toContain(', quota 1.5 TiB, overdue after 36 h, ');
    const off = run('client', 'set', 'db1', '--quota', 'none', '--overdue-hours', 'none');
    expect(off.stdout).toContain(', no quota, no overdue alert, ');
    const bad = run('client', 'set', 'db1', '--quota', '50 apples');
    expect([bad.status, bad.stderr]).toEqual([2, 'haul: error: "50 apples" is not a quota: write a size such as 50G, 1.5T or 800M (units are powers of 1024), or "none" to remove the limit.\n']);
    const hours = run('client', 'set', 'db1', '--overdue-hours', '1.5');
    expect([hours.status, hours.stderr]).toEqual([2, 'haul: error: "1.5" is not a number of hours: give a whole number of at least 1 (e.g. 36), or "none" for no overdue notification.\n']);
  });

  // Each rule's message is tested on the store (tests/daemon/database/client-store.test.ts); here
  // the way the command line reports them.
  it('refuses bad settings with exit code 2 and a message that says what to do; nothing changes', () => {
    const before = run('client', 'list', '--json').stdout;
    const refused = (...args: string[]) => {
      const r = run(...args);
      return [r.status, r.stdout, r.stderr];
    };
    expect(refused('client', 'set', 'web1', '--schedule', 'every night')).toEqual([2, '', 'haul: error: "every night" is not a schedule: it has 2 field(s). Give a cron expression of 5 fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 every day) or 6 with seconds first, or --no-schedule to run the client only when asked.\n']);
    expect(refused('client', 'set', 'web1', '--retention', '{keepDaily:7}')).toEqual([2, '', `haul: error: the retention policy "{keepDaily:7}" is not JSON. Give an object such as '{"keepDaily":7,"keepWeekly":4}', or 'null' to keep every snapshot.\n`]);
    expect(refused('client', 'set', 'web1')).toEqual([2, '', 'haul: error: nothing to change for web1: give at least one of --address, --path, --exclude, --no-excludes, --schedule, --no-schedule, --retention, --enable, --disable, --one-file-system, --cross-file-systems, --quota, --overdue-hours.\n']);
    expect(refused('client', 'set', 'web1', '--enable', '--disable')).toEqual([2, '', "error: option '--enable' cannot be used with option '--disable'\n(run with --help for usage)\n"]);
    expect(refused('client', 'add', 'db1', 'backup@db1.example', '--path', '/srv')).toEqual([2, '', 'haul: error: a client named db1 exists already.\n']);
    expect(refused('client', 'remove', 'web2')).toEqual([2, '', 'haul: error: there is no client named "web2". `haul client list` shows the clients; `haul client add` adds one.\n']);
    expect(run('client', 'list', '--json').stdout).toBe(before);
  });

  it('`backup` refuses a disabled client and says how to enable it', () => {
    expect(run('client', 'set', 'db1', '--disable').status).toBe(0);
    const r = run('backup', 'db1');
    expect([r.status, r.stderr]).toEqual([1, 'haul: error: client db1 is disabled, so it is not backed up. If its address and paths are right (`haul client list`), enable it with `haul client set db1 --enable`.\n']);
  });

  it('`client remove` forgets the client', () => {
    const r = run('client', 'remove', 'db1');
    expect([r.status, r.stdout]).toEqual([0, 'removed client db1; its snapshots stay in the repository\n']);
    expect(run('client', 'list').stdout).not.toContain('db1');
  });

  it('an earlier installation\'s clients.json is imported on the first command, and renamed', () => {
    const oldHome = path.join(tmp.dir, 'old-home');
    fs.mkdirSync(oldHome);
    const pin = 'SHA256:' + 'Q'.repeat(43);
    fs.writeFileSync(path.join(oldHome, 'clients.json'), JSON.stringify({
      format: 'haul-clients-v1',
      clients: [{ name: 'legacy', host: 'old.example', port: 22, user: 'backup', hostKey: pin, paths: ['/home'], excludes: [], oneFileSystem: true, created: '2025-12-24T18:00:00.000Z' }],
    }));
    const oldEnv = { ...env, HAUL_HOME: oldHome };
    const first = haulSync(['client', 'list'], oldEnv);
    expect(first.stderr).toBe(`haul: imported 1 client(s) from ${oldHome}/clients.json into the database ${oldHome}/haul.db. The file is now ${oldHome}/clients.json.imported and is no longer read.\n`);
    expect(first.stdout).toBe(`legacy               backup@old.example:22  ${pin}  /home  manual only  enabled  tenant default\n`);
    expect(fs.readdirSync(oldHome).filter((f) => f.startsWith('clients')).sort()).toEqual(['clients.json.imported']);
    const second = haulSync(['client', 'list'], oldEnv);
    expect([second.stderr, second.stdout]).toEqual(['', first.stdout]);
  });
});
