// forget + prune on real repositories through the real CLI: space comes back, what snapshots
// still need survives byte for byte, a crash at any point leaves a repository check passes, and
// the repository lock keeps prune and a backup apart.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulBin, haulEnv, haulSync, tempDir, testNode } from '../../helpers/cli.js';
import { lockRepository } from '../../../daemon/repository/lock.js';
import { describeTree, pseudoRandom, textLike } from '../../helpers/fixtures.js';
import { openTestRepository } from '../../helpers/repo.js';

interface PruneJson {
  dryRun: boolean;
  snapshots: number;
  blobsUnused: number;
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  bytesFreed: number;
  bytesBefore: number;
  bytesAfter: number;
}

function repoBytes(repo: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else total += fs.statSync(p).size;
    }
  };
  walk(path.join(repo, 'packs'));
  return total;
}

/** Lock objects in place (a writer's temporary file does not count until it is renamed). */
function locks(repo: string): string[] {
  return fs.readdirSync(path.join(repo, 'locks')).filter((n) => !n.startsWith('.'));
}

function sameTree(a: string, b: string): void {
  const x = describeTree(a);
  const y = describeTree(b);
  expect([...y].map(([k, v]) => [k, v.sha256, v.size])).toEqual([...x].map(([k, v]) => [k, v.sha256, v.size]));
}

describe('forget and prune', () => {
  const tmp = tempDir('prune');
  const data = path.join(tmp.dir, 'data');
  afterAll(() => tmp.cleanup());

  beforeAll(() => {
    fs.mkdirSync(path.join(data, 'docs'), { recursive: true });
    // 40 MB of incompressible data goes away later: more than two 16 MiB packs of its own.
    fs.writeFileSync(path.join(data, 'old.bin'), pseudoRandom('old', 40_000_000));
    fs.writeFileSync(path.join(data, 'keep.bin'), pseudoRandom('keep', 6_000_000));
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(data, 'docs', `d${i}.txt`), textLike(`doc${i}`, 3_000 + i));
  });

  it('frees the space of forgotten data, keeps every byte the remaining snapshots need, and a second prune finds nothing', async () => {
    const repo = path.join(tmp.dir, 'repo');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    expect(haulSync(['backup-local', '--client', 'c', '--tag', 'first', data], env).status).toBe(0);
    fs.renameSync(path.join(data, 'old.bin'), path.join(tmp.dir, 'old.bin'));
    fs.appendFileSync(path.join(data, 'docs', 'd1.txt'), 'changed\n');
    expect(haulSync(['backup-local', '--client', 'c', '--tag', 'second', data], env).status).toBe(0);
    fs.renameSync(path.join(tmp.dir, 'old.bin'), path.join(data, 'old.bin'));

    const dry = haulSync(['forget', '--keep-last', '1', '--dry-run'], env);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/^client c\n {2}keep {4}[0-9a-f]{8} .*\(last\)\n {2}would remove {2}[0-9a-f]{8} .*\n1 of 2 snapshots would be removed \(dry run: nothing was changed\)\n$/);
    expect((JSON.parse(haulSync(['snapshots', '--json'], env).stdout) as unknown[]).length).toBe(2);

    const forget = JSON.parse(haulSync(['forget', '--keep-last', '1', '--json'], env).stdout) as { removed: string[] };
    expect(forget.removed).toHaveLength(1);
    const before = repoBytes(repo);
    const dryPrune = JSON.parse(haulSync(['prune', '--dry-run', '--json'], env).stdout) as PruneJson;
    expect(repoBytes(repo)).toBe(before);
    const r = haulSync(['prune', '--json'], env);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout) as PruneJson;
    expect(report).toMatchObject({ dryRun: false, snapshots: 1, packsDeleted: dryPrune.packsDeleted, packsRepacked: dryPrune.packsRepacked });
    expect(report.packsDeleted).toBeGreaterThanOrEqual(1);
    // old.bin was 40 MB of random bytes: at least that much (less one partly shared chunk) comes back.
    expect(report.bytesFreed).toBeGreaterThan(36_000_000);
    expect(before - repoBytes(repo)).toBe(report.bytesFreed);
    expect(report.bytesAfter).toBe(repoBytes(repo));

    const again = JSON.parse(haulSync(['prune', '--json'], env).stdout) as PruneJson;
    expect(again).toMatchObject({ blobsUnused: 0, packsDeleted: 0, packsRepacked: 0, bytesFreed: 0 });
    const check = haulSync(['check', '--read-data'], env);
    expect(check.stdout).toMatch(/checked 1 snapshots, .*: no errors\n$/);
    const target = path.join(tmp.dir, 'restored');
    expect(haulSync(['restore', `latest:${data}`, '--client', 'c', '--target', target], env).status).toBe(0);
    fs.rmSync(path.join(data, 'old.bin'));
    try {
      sameTree(data, target);
    } finally {
      fs.writeFileSync(path.join(data, 'old.bin'), pseudoRandom('old', 40_000_000));
      fs.truncateSync(path.join(data, 'docs', 'd1.txt'), 3_001);
    }
  }, 120_000);

  it('kill -9 of prune at many points never breaks the repository, and a later prune finishes the job', async () => {
    const repo = path.join(tmp.dir, 'repo-crash');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    const keep = path.join(tmp.dir, 'keep-only');
    fs.mkdirSync(keep, { recursive: true });
    fs.copyFileSync(path.join(data, 'keep.bin'), path.join(keep, 'keep.bin'));
    fs.cpSync(path.join(data, 'docs'), path.join(keep, 'docs'), { recursive: true });
    const extra = path.join(tmp.dir, 'extra.bin');
    let killed = 0;
    for (let i = 0; i < 6; i++) {
      // Each round adds a snapshot of everything, forgets it, keeps the small one, prunes and kills.
      fs.writeFileSync(extra, pseudoRandom(`extra${i}`, 20_000_000));
      expect(haulSync(['backup-local', '--client', `full${i}`, keep, extra], env).status).toBe(0);
      expect(haulSync(['backup-local', '--client', 'small', keep], env).status).toBe(0);
      expect(haulSync(['forget', '--client', `full${i}`, '--keep-tag', 'none'], env).status).toBe(0);
      // The kill lands at a growing fraction (30 % to 80 %) of how long this round's prune takes
      // uninterrupted, timed on a copy of the repository and its state directory: a fixed delay
      // missed the work on a fast machine (the prune was done before it) or hit only start-up.
      const copy = path.join(tmp.dir, `repo-crash-copy${i}`);
      fs.cpSync(repo, copy, { recursive: true });
      if (fs.existsSync(`${repo}-home`)) fs.cpSync(`${repo}-home`, `${copy}-home`, { recursive: true });
      const started = Date.now();
      expect(haulSync(['prune', '--repack-threshold', '0.01'], haulEnv(copy)).status).toBe(0);
      const delay = Math.round((Date.now() - started) * (0.3 + 0.1 * i));
      fs.rmSync(copy, { recursive: true, force: true });
      fs.rmSync(`${copy}-home`, { recursive: true, force: true });
      const outcome = await new Promise<NodeJS.Signals | number | null>((resolve) => {
        const child = spawn(testNode, [haulBin, 'prune', '--repack-threshold', '0.01'], { env, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), delay);
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolve(signal ?? code);
        });
      });
      if (outcome === 'SIGKILL') killed++;
      const check = await haul(['check'], env);
      expect({ round: i, status: check.status, errors: check.stdout.split('\n').filter((l) => l.startsWith('error')) }).toEqual({ round: i, status: 0, errors: [] });
    }
    expect(killed).toBeGreaterThanOrEqual(3);
    const final = haulSync(['prune', '--repack-threshold', '0.01', '--json'], env);
    expect(final.status).toBe(0);
    expect(JSON.parse(haulSync(['prune', '--dry-run', '--json'], env).stdout)).toMatchObject({ blobsUnused: 0, packsDeleted: 0 });
    expect(haulSync(['check', '--read-data'], env).stdout).toMatch(/: no errors\n$/);
    const target = path.join(tmp.dir, 'restored-crash');
    expect(haulSync(['restore', `latest:${keep}`, '--client', 'small', '--target', target], env).status).toBe(0);
    sameTree(keep, target);
  }, 240_000);

  it('prune waits for a running backup (or says who holds the repository), and a backup does not start under prune', async () => {
    const repo = path.join(tmp.dir, 'repo-lock');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    expect(haulSync(['backup-local', '--client', 'a', data], env).status).toBe(0);
    expect(haulSync(['forget', '--client', 'a', '--keep-tag', 'none'], env).status).toBe(0);

    // A lock held by this test process stands in for a backup or a prune that is mid-way: it
    // makes the order of events certain, which two racing processes would not.
    const inProcess = await openTestRepository(repo);
    const shared = await lockRepository(inProcess, 'shared', { purpose: 'backup of web1' });
    const refused = haulSync(['prune'], env);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(`haul: error: the repository at ${repo} cannot be locked exclusively (for prune or index repair): it is in use by backup of web1 (shared lock by pid ${process.pid} on ${os.hostname()} since ${shared.created}). Wait for that to finish and try again; a lock whose process died is ignored after 30 minutes.\n`);
    const waited = haul(['prune', '--wait', '120', '--json'], env);
    await new Promise((r) => setTimeout(r, 1500));
    await shared.release();
    const w = await waited;
    expect(w.status).toBe(0);
    expect((JSON.parse(w.stdout) as PruneJson)).toMatchObject({ snapshots: 0, packsDeleted: expect.any(Number) });

    const exclusive = await lockRepository(inProcess, 'exclusive', { purpose: 'prune' });
    const b = haulSync(['backup-local', '--client', 'c', path.join(data, 'docs')], env);
    await exclusive.release();
    expect(b.status).toBe(1);
    expect(b.stderr).toBe(`haul: error: the repository at ${repo} cannot be locked for reading or writing: it is in use by prune (exclusive lock by pid ${process.pid} on ${os.hostname()} since ${exclusive.created}). Wait for that to finish and try again; a lock whose process died is ignored after 30 minutes.\n`);

    // And two real processes started together, each willing to wait: whichever locks first,
    // nothing is lost.
    // --quiet: on a loaded machine either may run past 5 s and print a progress line to stderr.
    const [backup, prune] = await Promise.all([haul(['--quiet', 'backup-local', '--client', 'b', data], { ...env, HAUL_LOCK_WAIT: '120' }), haul(['--quiet', 'prune', '--wait', '120', '--repack-threshold', '0'], env)]);
    expect([backup.status, backup.stderr, prune.status, prune.stderr]).toEqual([0, '', 0, '']);
    expect(haulSync(['check', '--read-data'], env).stdout).toMatch(/checked 1 snapshots, .*: no errors\n$/);
    const target = path.join(tmp.dir, 'restored-lock');
    expect(haulSync(['restore', `latest:${data}`, '--client', 'b', '--target', target], env).status).toBe(0);
    sameTree(data, target);
  }, 120_000);

  it('a lock left by a process that died on this machine does not block anyone', async () => {
    const repo = path.join(tmp.dir, 'repo-stale');
    const env = haulEnv(repo);
    expect(haulSync(['init'], env).status).toBe(0);
    const killedBackup = spawn(testNode, [haulBin, 'backup-local', '--client', 'x', data], { env, stdio: 'ignore' });
    while (locks(repo).length === 0) await new Promise((r) => setTimeout(r, 10));
    killedBackup.kill('SIGKILL');
    await new Promise((r) => killedBackup.on('exit', r));
    expect(locks(repo)).toHaveLength(1);
    const r = haulSync(['prune', '--json'], env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(locks(repo)).toHaveLength(0);
  }, 60_000);
});
