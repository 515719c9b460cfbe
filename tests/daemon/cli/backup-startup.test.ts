// How `haul backup` starts: only the command that runs is loaded (yet `--help` lists them all),
// and the key is unlocked while the client is connected, so the order of failures is part of
// the behaviour: a wrong passphrase fails after connecting but before the probe runs, and a
// changed host key fails before anything runs on the client, whatever the passphrase.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../daemon/cli/command-list.js';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { haul, haulEnv, haulSync, projectRoot, tempDir } from '../../helpers/cli.js';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../../helpers/sshd.js';

const USER = 'haul-t-startup';
const skip = sshdSkipReason();

describe('haul loads only the command it runs', () => {
  const tmp = tempDir('startup-help');
  afterAll(() => tmp.cleanup());
  const env = haulEnv(path.join(tmp.dir, 'repo'));

  it('`haul --help` still lists every command, in order, each with its description', () => {
    const r = haulSync(['--help'], env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const commandsSection = r.stdout.slice(r.stdout.indexOf('\nCommands:\n'));
    const listed = [...commandsSection.matchAll(/^ {2}([a-z][a-z-]*)(?: \[options\]| <[^>]+>| \[[^\]]+\])*\s+\S/gm)].map((m) => m[1]);
    expect(listed).toEqual([...COMMANDS.map((c) => c.name), 'help']);
    expect(COMMANDS).toHaveLength(26);
  });

  it('every entry of the list registers exactly the command it is named after', async () => {
    const { Command } = await import('commander');
    for (const entry of COMMANDS) {
      const program = new Command('haul');
      (await entry.load())(program);
      expect(program.commands.map((c) => c.name())).toEqual([entry.name]);
    }
  });

  it('`haul backup --help` shows the command\'s own options; a mistyped command gets a suggestion', () => {
    const help = haulSync(['--repo', '/nonexistent', 'backup', '--help'], env);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: haul backup [options] <client>');
    expect(help.stdout).toContain('--tag <tag>');
    const typo = haulSync(['bakup', 'web1'], env);
    expect([typo.status, typo.stderr]).toEqual([2, "error: unknown command 'bakup'\n(Did you mean backup?)\n(run with --help for usage)\n"]);
  });

  it('`haul --version` prints the version alone', () => {
    const r = haulSync(['--version'], env);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, `${JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version}\n`, '']);
  });
});

describe.skipIf(skip !== undefined)(`haul backup unlocks the key while it connects${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let user: UnixUser;
  const tmp = tempDir('startup');
  const repo = path.join(tmp.dir, 'repo');
  const home = path.join(tmp.dir, 'home');
  const env = haulEnv(repo, { HAUL_HOME: home });
  const wrongPassphrase = { ...env, HAUL_PASSWORD: 'not the passphrase' };
  let data: string;

  const snapshotRows = async (): Promise<number> => {
    const db = await openDatabase({ stateDir: home });
    try {
      return await db.prisma.snapshot.count();
    } finally {
      await db.close();
    }
  };
  const cachedProbes = (): string[] => {
    const dir = path.join(user.home, '.cache', 'haul');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith('haul-probe-')) : [];
  };

  beforeAll(async () => {
    execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
    user = ensureUser(USER);
    fs.rmSync(path.join(user.home, '.cache'), { recursive: true, force: true });
    data = path.join(user.home, 'data');
    fs.rmSync(data, { recursive: true, force: true });
    fs.mkdirSync(data);
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, `file-${i}.txt`), `file ${i}\n`.repeat(i + 1));
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, data]);
    sshd = await startSshd({ users: [USER] });
    expect(haulSync(['init'], env).status).toBe(0);
    const add = haulSync(['client', 'add', 'c1', `${USER}@${sshd.host}:${sshd.port}`, '--path', data, '--json'], env);
    expect(add.status).toBe(0);
    sshd.authorize(USER, JSON.parse(add.stdout).authorizedKeysLine);
  }, 120_000);

  afterAll(async () => {
    await sshd?.stop();
    if (data) fs.rmSync(data, { recursive: true, force: true });
    if (user) fs.rmSync(path.join(user.home, '.cache'), { recursive: true, force: true });
    tmp.cleanup();
  });

  it('a missing passphrase or repository fails before connecting: nothing pinned, nothing put on the client', async () => {
    const { HAUL_PASSWORD: _unused, ...noPassphrase } = env;
    const none = await haul(['--quiet', 'backup', 'c1'], noPassphrase, { timeoutMs: 60_000 });
    expect([none.status, none.stdout, none.stderr]).toEqual([
      2,
      '',
      'haul: error: no passphrase given. Set HAUL_PASSWORD_FILE to a file holding it (or pass --password-file), or set HAUL_PASSWORD; on a terminal Haul asks for it.\n',
    ]);
    const elsewhere = path.join(tmp.dir, 'no-repo-here');
    const missing = await haul(['--quiet', '--repo', elsewhere, 'backup', 'c1'], env, { timeoutMs: 60_000 });
    expect([missing.status, missing.stdout, missing.stderr]).toEqual([
      10,
      '',
      `haul: error: there is no Haul repository at ${elsewhere}. Check --repo (or HAUL_REPOSITORY), or create one with \`haul init\`.\n`,
    ]);
    const listed = JSON.parse(haulSync(['client', 'list', '--json'], env).stdout) as { hostKey?: string }[];
    expect(listed[0]).not.toHaveProperty('hostKey');
    expect(cachedProbes()).toEqual([]);
  }, 120_000);

  it('a wrong passphrase fails with exit 12 and the exact message after connecting, and leaves no snapshot', async () => {
    const r = await haul(['--quiet', 'backup', 'c1'], wrongPassphrase, { timeoutMs: 60_000 });
    expect([r.status, r.stdout, r.stderr]).toEqual([
      12,
      '',
      `haul: error: wrong passphrase: none of the 1 key(s) of the repository at ${repo} opens with it. Check HAUL_PASSWORD_FILE / HAUL_PASSWORD (a trailing newline in the file is ignored).\n`,
    ]);
    // It did connect (first contact pinned the host key) and checked the probe meanwhile...
    const listed = JSON.parse(haulSync(['client', 'list', '--json'], env).stdout) as { hostKey?: string }[];
    expect(listed[0]!.hostKey).toBe(sshd.hostKeyFingerprint);
    expect(cachedProbes()).toHaveLength(1);
    // ...but no session ran: no snapshot in the repository or the database.
    expect(JSON.parse(haulSync(['snapshots', '--json'], env).stdout)).toEqual([]);
    expect(await snapshotRows()).toBe(0);
    // No lock was left behind: the right passphrase backs up at once.
    const ok = await haul(['--quiet', 'backup', 'c1', '--json'], env, { timeoutMs: 60_000 });
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });
    expect((JSON.parse(ok.stdout) as { snapshot: { stats: { files: number } } }).snapshot.stats.files).toBe(20);
    expect(await snapshotRows()).toBe(1);
  }, 120_000);

  it('a changed host key fails first, with the exact message, even with a wrong passphrase; nothing runs on the client', async () => {
    const wrongKey = 'SHA256:' + 'B'.repeat(43);
    const db = await openDatabase({ stateDir: home });
    try {
      await db.prisma.client.update({ where: { name: 'c1' }, data: { hostKey: wrongKey } });
    } finally {
      await db.close();
    }
    fs.rmSync(path.join(user.home, '.cache'), { recursive: true, force: true });
    const r = await haul(['--quiet', 'backup', 'c1'], wrongPassphrase, { timeoutMs: 60_000 });
    const label = `client "c1" (${USER}@${sshd.host}:${sshd.port})`;
    expect([r.status, r.stdout, r.stderr]).toEqual([
      1,
      '',
      `haul: error: The SSH host key of ${label} has changed: Haul pinned ${wrongKey}, the client now shows an ED25519 key ${sshd.hostKeyFingerprint}. ` +
        'Haul does not connect to it until the key is checked. This happens when the client was reinstalled or its host keys regenerated, ' +
        'but it can also mean someone is intercepting the connection. Verify the new fingerprint on the client itself ' +
        '(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then re-pin it: haul client pin c1\n',
    ]);
    expect(cachedProbes()).toEqual([]);
    expect(await snapshotRows()).toBe(1);
  }, 120_000);
});
