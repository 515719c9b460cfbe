import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulBin, haulEnv, haulSync, tempDir, testNode } from '../../helpers/cli.js';
import { describeTree, pseudoRandom, textLike } from '../../helpers/fixtures.js';

function runAndKill(args: string[], env: Record<string, string>, afterMs: number): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => {
    const child = spawn(testNode, [haulBin, ...args], { env, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? code);
    });
  });
}

describe('crash consistency', () => {
  const tmp = tempDir('crash');
  const data = path.join(tmp.dir, 'data');
  afterAll(() => tmp.cleanup());

  beforeAll(() => {
    fs.mkdirSync(path.join(data, 'small'), { recursive: true });
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(data, `big-${i}.bin`), pseudoRandom(`big${i}`, 9_000_000));
    for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(data, 'small', `f${i}.txt`), textLike(`small${i}`, 2_000 + i * 50));
  });

  it('kill -9 of a backup at 20+ points, from start-up to the snapshot write, always leaves a repository that check passes', async () => {
    const repo = path.join(tmp.dir, 'repo');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    // How long one uninterrupted backup takes here; the kill points spread over that span.
    const t0 = Date.now();
    expect(haulSync(['backup-local', '--client', 'timing', data], env).status).toBe(0);
    const span = Date.now() - t0;
    // Runs until 20 of them died by kill -9 (a run that beat its kill time still counts as a
    // check of a finished backup); load from parallel test files makes single runs slower.
    let killed = 0;
    for (let i = 0; killed < 20 && i < 48; i++) {
      // Each run is a new client, whose keyed chunker cuts different chunks: every run writes.
      const delay = Math.round((span * 0.9 * ((i % 24) + 0.5)) / 24);
      const outcome = await runAndKill(['backup-local', '--client', `crash-${i}`, data], env, delay);
      if (outcome === 'SIGKILL') killed++;
      const check = await haul(['check'], env);
      expect({ run: i, delay, status: check.status, stdout: check.stdout.split('\n').filter((l) => l.startsWith('error')) }).toEqual({ run: i, delay, status: 0, stdout: [] });
    }
    expect(killed).toBeGreaterThanOrEqual(20);

    // The repository stays fully usable: a new backup, a full verify and a byte-exact restore.
    expect(haulSync(['backup-local', '--client', 'after', data], env).status).toBe(0);
    const verify = haulSync(['check', '--read-data'], env);
    expect(verify.stdout).toMatch(/: no errors/);
    expect(verify.status).toBe(0);
    const target = path.join(tmp.dir, 'restored');
    expect(haulSync(['restore', `latest:${data}`, '--client', 'after', '--target', target], env).status).toBe(0);
    const a = describeTree(data);
    const b = describeTree(target);
    expect([...b].map(([k, v]) => [k, v.sha256, v.size])).toEqual([...a].map(([k, v]) => [k, v.sha256, v.size]));
  }, 240_000);

  it('two writers backing up at the same time both succeed and share chunks safely', async () => {
    const repo = path.join(tmp.dir, 'repo-concurrent');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    const [a, b] = await Promise.all([
      // --quiet: past 5 s on a loaded machine each would print a progress line to stderr.
      haul(['--quiet', 'backup-local', '--client', 'same', '--tag', 'a', `${data}/small`, `${data}/big-0.bin`], env),
      haul(['--quiet', 'backup-local', '--client', 'same', '--tag', 'b', `${data}/small`, `${data}/big-1.bin`], env),
    ]);
    expect([a.status, a.stderr, b.status, b.stderr]).toEqual([0, '', 0, '']);
    const verify = haulSync(['check', '--read-data'], env);
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/checked 2 snapshots, .*: no errors\n$/);
    const snaps = JSON.parse(haulSync(['snapshots', '--json'], env).stdout) as { id: string; tags: string[] }[];
    for (const s of snaps) {
      const target = path.join(tmp.dir, `concurrent-${s.tags[0]}`);
      expect(haulSync(['restore', `${s.id}:${data}`, '--target', target], env).status).toBe(0);
      const big = s.tags[0] === 'a' ? 'big-0.bin' : 'big-1.bin';
      expect(fs.readFileSync(path.join(target, big)).equals(fs.readFileSync(path.join(data, big)))).toBe(true);
      expect(fs.readdirSync(path.join(target, 'small')).length).toBe(200);
    }
  }, 120_000);
});
