import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';

// A real full disk: a small tmpfs mounted for the test. Mounting needs root; elsewhere the
// test is skipped and says so, since no unprivileged way fills a real file system safely.
const tmp = tempDir('diskfull');
const mountPoint = path.join(tmp.dir, 'small-disk');
fs.mkdirSync(mountPoint);
const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mountPoint]).status === 0;

describe.runIf(mounted)('a full disk under the repository (tmpfs of 40 MiB; needs root to mount)', () => {
  const repo = path.join(mountPoint, 'repo');
  const data = path.join(tmp.dir, 'data');
  const env = haulEnv(repo);

  beforeAll(() => {
    fs.mkdirSync(data);
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(data, `part-${i}.bin`), pseudoRandom(`full${i}`, 15_000_000));
  });
  afterAll(() => {
    spawnSync('umount', [mountPoint]);
    tmp.cleanup();
  });

  it('fails the backup with a clear message, keeps the repository consistent, and the next run succeeds', () => {
    expect(haulSync(['init'], env).status).toBe(0);
    const full = haulSync(['--quiet', 'backup-local', '--client', 'alpha', data], env);
    expect(full.status).toBe(1);
    expect(full.stderr).toMatch(/^haul: error: cannot store (packs|index)\/[0-9a-f]{64}: the disk holding the repository is full\. Free space on it, then run the backup again: nothing already stored was lost, and what this run stored is reused\.\n$/);
    expect(fs.readdirSync(path.join(repo, 'snapshots'))).toEqual([]);
    // No half-written temporary file is left behind.
    const leftovers = spawnSync('find', [repo, '-name', '.tmp-*'], { encoding: 'utf8' }).stdout;
    expect(leftovers).toBe('');
    const check = haulSync(['check', '--read-data'], env);
    expect(check.stdout).toMatch(/: no errors/);
    expect(check.status).toBe(0);

    expect(spawnSync('mount', ['-o', 'remount,size=128m', mountPoint]).status).toBe(0);
    const again = haulSync(['backup-local', '--client', 'alpha', '--json', data], env);
    expect(again.status).toBe(0);
    // Two 16 MiB packs fitted before the disk filled; the second run sends only the rest.
    const stats = JSON.parse(again.stdout).snapshot.stats;
    expect(stats.bytesRead).toBe(60_000_000);
    expect(stats.bytesNew).toBeLessThan(60_000_000 - 2 * 16_000_000);
    expect(haulSync(['check', '--read-data'], env).status).toBe(0);
    const target = path.join(tmp.dir, 'restored');
    expect(haulSync(['restore', `latest:${data}`, '--target', target], env).status).toBe(0);
    for (let i = 0; i < 4; i++) {
      expect(fs.readFileSync(path.join(target, `part-${i}.bin`)).equals(fs.readFileSync(path.join(data, `part-${i}.bin`)))).toBe(true);
    }
  });
});
