import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';
import { describeTree, makeEveryKindTree, oddNames, pseudoRandom } from '../../helpers/fixtures.js';

describe('haul CLI round trip on a bare repository', () => {
  const tmp = tempDir('roundtrip');
  const repo = path.join(tmp.dir, 'repo');
  const data = path.join(tmp.dir, 'data');
  const env = haulEnv(repo);
  let snapshotId = '';

  beforeAll(() => {
    fs.mkdirSync(data);
    makeEveryKindTree(data);
    const init = haulSync(['init'], env);
    expect(init.stderr).toBe('');
    expect(init.status).toBe(0);
    const backup = haulSync(['backup-local', '--client', 'alpha', '--json', data], env);
    expect(backup.stderr).toBe('');
    expect(backup.status).toBe(0);
    snapshotId = JSON.parse(backup.stdout).id;
    // Every new blob is counted, including those still being compressed when the walk ended.
    const stats = JSON.parse(backup.stdout).snapshot.stats;
    expect(stats.bytesNew).toBeGreaterThan(3_250_000);
    expect(stats.bytesStored).toBeGreaterThan(3_000_000);
  });
  afterAll(() => tmp.cleanup());

  it('restores every file type byte for byte, with modes, mtimes, links and odd names', () => {
    const target = path.join(tmp.dir, 'restored');
    const r = haulSync(['restore', `${snapshotId.slice(0, 8)}:${data}`, '--target', target], env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const before = describeTree(data);
    const after = describeTree(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) {
      const a = after.get(key)!;
      expect({ key, type: a.type, mode: a.mode, size: a.size, sha256: a.sha256, target: a.target }).toEqual({ key, type: b.type, mode: b.mode, size: b.size, sha256: b.sha256, target: b.target });
      // Node sets times from a double of seconds; restore keeps the stored microsecond exactly.
      expect({ key, micros: a.mtimeNs / 1000n }).toEqual({ key, micros: b.mtimeNs / 1000n });
    }
    expect(after.get('/hard-a')!.ino).toBe(after.get('/docs/hard-b')!.ino);
    expect(after.has('/' + Buffer.from(oddNames.invalidUtf8).toString('latin1'))).toBe(true);
    expect(after.has('/' + Buffer.from(oddNames.newline).toString('latin1'))).toBe(true);
    // The mostly-empty image comes back sparse: fewer blocks than its size needs.
    const st = fs.statSync(path.join(target, 'sparse.img'));
    expect(st.size).toBe(9 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(2 * 1024 * 1024);
  });

  it('lists snapshots grouped by client and files with unambiguous names', () => {
    const snaps = haulSync(['snapshots'], env);
    expect(snaps.status).toBe(0);
    expect(snaps.stdout).toContain('client alpha\n');
    expect(snaps.stdout).toContain(snapshotId.slice(0, 8));
    const ls = haulSync(['ls', `latest:${data}`], env);
    expect(ls.status).toBe(0);
    expect(ls.stdout).toContain(`${data}/line\\nbreak\n`);
    expect(ls.stdout).toContain(`${data}/bad\\xff\\xfe.txt\n`);
    expect(ls.stdout).toContain(`${data}/link-to-readme -> docs/readme.txt\n`);
    const json = JSON.parse(haulSync(['ls', `latest:${data}/docs`, '--recursive', '--json'], env).stdout) as { path: string; type: string; size?: number }[];
    expect(json.map((e) => e.path)).toEqual([`${data}/docs/deep`, `${data}/docs/deep/deeper`, `${data}/docs/deep/deeper/random.bin`, `${data}/docs/hard-b`, `${data}/docs/readme.txt`]);
    expect(json.find((e) => e.path.endsWith('random.bin'))!.size).toBe(3_000_000);
  });

  it('restores a single file out of a snapshot', () => {
    const target = path.join(tmp.dir, 'one-file');
    const r = haulSync(['restore', `latest:${data}/docs/readme.txt`, '--target', target], env);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(target)).toEqual(['readme.txt']);
    expect(fs.readFileSync(path.join(target, 'readme.txt')).equals(fs.readFileSync(path.join(data, 'docs', 'readme.txt')))).toBe(true);
  });

  it('refuses to overwrite existing files unless asked', () => {
    const target = path.join(tmp.dir, 'existing');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'readme.txt'), 'mine');
    const r = haulSync(['restore', `latest:${data}/docs/readme.txt`, '--target', target], env);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain(`haul: error: ${target}/readme.txt: already exists; use --overwrite to replace it`);
    expect(fs.readFileSync(path.join(target, 'readme.txt'), 'utf8')).toBe('mine');
    const again = haulSync(['restore', `latest:${data}/docs/readme.txt`, '--target', target, '--overwrite'], env);
    expect(again.status).toBe(0);
    expect(fs.readFileSync(path.join(target, 'readme.txt')).equals(fs.readFileSync(path.join(data, 'docs', 'readme.txt')))).toBe(true);
  });

  it('a second backup of unchanged data reads nothing and adds only new directory metadata', () => {
    const r = haulSync(['backup-local', '--client', 'alpha', '--json', data], env);
    expect(r.status).toBe(0);
    const stats = JSON.parse(r.stdout).snapshot.stats;
    expect(stats.bytesRead).toBe(0);
    expect(stats.files).toBe(12);
    // Only the trees above `data` (whose atimes/mtimes the test run touched) may be new.
    expect(stats.bytesNew).toBeLessThan(20_000);
  });

  it('fails with a clear message and exit code 12 on a wrong passphrase', () => {
    const r = haulSync(['snapshots'], { ...env, HAUL_PASSWORD: 'wrong' });
    expect(r.status).toBe(12);
    expect(r.stderr).toBe(`haul: error: wrong passphrase: none of the 1 key(s) of the repository at ${repo} opens with it. Check HAUL_PASSWORD_FILE / HAUL_PASSWORD (a trailing newline in the file is ignored).\n`);
  });

  it('says how to give a passphrase when none is given (exit 2) and where no repository is (exit 10)', () => {
    const noPass = haulSync(['snapshots'], { ...env, HAUL_PASSWORD: '' });
    expect(noPass.status).toBe(2);
    expect(noPass.stderr).toBe('haul: error: no passphrase given. Set HAUL_PASSWORD_FILE to a file holding it (or pass --password-file), or set HAUL_PASSWORD; on a terminal Haul asks for it.\n');
    const missing = haulSync(['snapshots'], haulEnv(path.join(tmp.dir, 'nowhere')));
    expect(missing.status).toBe(10);
    expect(missing.stderr).toBe(`haul: error: there is no Haul repository at ${path.join(tmp.dir, 'nowhere')}. Check --repo (or HAUL_REPOSITORY), or create one with \`haul init\`.\n`);
  });

  it('reads the passphrase from a file, ignoring one trailing newline', () => {
    const file = path.join(tmp.dir, 'pass');
    fs.writeFileSync(file, 'correct horse battery staple\n');
    const r = haulSync(['--password-file', file, 'snapshots', '--json'], { ...env, HAUL_PASSWORD: '' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).filter((s: { client: string }) => s.client === 'alpha')).toHaveLength(2);
  });

  it('backs up a path below a symlinked directory as the real path, readable and checkable', () => {
    const link = path.join(tmp.dir, 'link-to-data');
    fs.symlinkSync(data, link);
    const r = haulSync(['backup-local', '--client', 'via-link', '--json', `${link}/docs`], env);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).snapshot.paths).toEqual([`${data}/docs`]);
    const ls = haulSync(['ls', `latest:${data}/docs`, '--client', 'via-link'], env);
    expect(ls.status).toBe(0);
    expect(ls.stdout).toContain(`${data}/docs/readme.txt\n`);
    expect(haulSync(['check'], env).status).toBe(0);
  });

  it('counts every new blob in the snapshot statistics, including the last ones compressed', () => {
    const small = path.join(tmp.dir, 'small-files');
    fs.mkdirSync(small);
    for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(small, `f${i}`), pseudoRandom(`stats${i}`, 20_000));
    const r = haulSync(['backup-local', '--client', 'stats', '--json', small], env);
    expect(r.status).toBe(0);
    const stats = JSON.parse(r.stdout).snapshot.stats;
    expect({ bytesRead: stats.bytesRead, newAtLeastRead: stats.bytesNew >= 200_000, blobsAtLeastFiles: stats.blobsNew >= 10 }).toEqual({ bytesRead: 200_000, newAtLeastRead: true, blobsAtLeastFiles: true });
  });

  it('refuses to init over an existing repository', () => {
    const r = haulSync(['init'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`haul: error: a repository already exists at ${repo}. Use it, or choose another location.\n`);
  });

  it('shows --help for every command and exits 2 on unknown options', () => {
    for (const cmd of [['init'], ['key', 'add'], ['key', 'list'], ['key', 'remove'], ['key', 'passwd'], ['backup-local'], ['snapshots'], ['ls'], ['restore'], ['dump'], ['check'], ['repair', 'index']]) {
      const r = haulSync([...cmd, '--help'], env);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`Usage: haul ${cmd.join(' ')}`);
    }
    expect(haulSync(['check', '--no-such-option'], env).status).toBe(2);
  });
});
