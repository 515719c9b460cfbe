// Bytes on the wire of pull backups with real parts (a real sshd, the real probe, the `haul` CLI):
// a chunk crosses the wire once per run (CHUNK_REPEAT), and a re-run of an unchanged tree sends
// one UNCHANGED per unchanged directory instead of an ENTRY per file (docs/probe-protocol.md).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulEnv, haulSync, projectRoot } from '../../helpers/cli.js';
import { describeTree, pseudoRandom } from '../../helpers/fixtures.js';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../../helpers/sshd.js';

const WIRE = 'haul-t-wire';
const KiB = 1024;
const MiB = 1024 * KiB;
const skip = sshdSkipReason();
const DIRS = 30;
const FILES_PER_DIR = 100;
const COPIES = 20;

interface BackupJson {
  id: string;
  log: string[];
  bytesOnWire: number;
  snapshot: { stats: { files: number; dirs: number; bytesRead: number } };
}

describe.skipIf(skip !== undefined)(`bytes on the wire of pull backups over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let tmp: string;
  let env: Record<string, string>;
  let user: UnixUser;
  let data: string;
  let firstStats: BackupJson['snapshot']['stats'];
  let firstId: string;

  const backup = async (): Promise<BackupJson> => {
    const r = await haul(['backup', 'wire', '--json'], env, { timeoutMs: 120_000 });
    expect({ status: r.status, stderr: r.stderr, signal: r.signal }).toEqual({ status: 0, stderr: '', signal: null });
    return JSON.parse(r.stdout) as BackupJson;
  };

  const expectRestoreMatches = () => {
    const target = fs.mkdtempSync(path.join(tmp, 'restore-'));
    const r = haulSync(['--quiet', 'restore', `latest:${data}`, '--client', 'wire', '--target', target], env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const before = describeTree(data);
    const after = describeTree(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) expect({ key, sha256: after.get(key)!.sha256, size: after.get(key)!.size }).toEqual({ key, sha256: b.sha256, size: b.size });
  };

  beforeAll(async () => {
    execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
    user = ensureUser(WIRE);
    sshd = await startSshd({ users: [WIRE] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-wire-'));
    env = haulEnv(path.join(tmp, 'repo'), { HAUL_HOME: path.join(tmp, 'home') });
    expect(haulSync(['init'], env).status).toBe(0);
    data = path.join(user.home, 'data');
    fs.rmSync(data, { recursive: true, force: true });
    // 3,000 small files of random bytes (1.5 MiB in all) in 30 directories, and 20 copies of
    // one 2 MiB random file: 41.5 MiB of files, 3.5 MiB of distinct content.
    for (let d = 0; d < DIRS; d++) {
      const dir = path.join(data, `dir-${String(d).padStart(2, '0')}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < FILES_PER_DIR; f++) fs.writeFileSync(path.join(dir, `f-${f}`), pseudoRandom(`wire ${d}/${f}`, 512));
    }
    const copy = pseudoRandom('wire copies', 2 * MiB);
    fs.mkdirSync(path.join(data, 'copies'));
    for (let i = 0; i < COPIES; i++) fs.writeFileSync(path.join(data, 'copies', `copy-${i}`), copy);
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, data]);
    const r = haulSync(['client', 'add', 'wire', `${WIRE}@${sshd.host}:${sshd.port}`, '--path', data, '--json'], env);
    expect(r.status).toBe(0);
    sshd.authorize(WIRE, JSON.parse(r.stdout).authorizedKeysLine);
  }, 180_000);

  afterAll(async () => {
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (data) fs.rmSync(data, { recursive: true, force: true });
  });

  it('a first backup puts one copy of repeated content on the wire, not twenty', async () => {
    const first = await backup();
    firstStats = first.snapshot.stats;
    firstId = first.id;
    expect(first.snapshot.stats.files).toBe(DIRS * FILES_PER_DIR + COPIES);
    // 3.5 MiB of distinct content, plus about 150 bytes of ENTRY and FILE_END per file.
    expect(first.bytesOnWire).toBeGreaterThan(3.5 * MiB);
    expect(first.bytesOnWire).toBeLessThan(3.5 * MiB + 600 * KiB);
    expectRestoreMatches();
  }, 180_000);

  it('a re-run with nothing changed sends a few hundred bytes for 3,020 files, where protocol 2 sent an ENTRY of about 120 bytes each', async () => {
    const again = await backup();
    // The same counts as the first backup (the unchanged tree's totals come from the server's records).
    expect(again.snapshot.stats).toMatchObject({ files: firstStats.files, dirs: firstStats.dirs, bytesRead: 0 });
    // PREVIOUS came from the digest the first backup cached in HAUL_HOME, not from its trees: a
    // record for every file and directory (ancestors included).
    const previous = again.log.find((l) => l.startsWith('previous snapshot'));
    expect(previous).toMatch(new RegExp(`^previous snapshot ${firstId.slice(0, 8)}: ${firstStats.files + firstStats.dirs} record\\(s\\) and \\d+ known chunk\\(s\\), from the cached digest$`));
    expect(fs.readdirSync(path.join(tmp, 'home', 'cache', 'previous')).filter((f) => f.endsWith('.digest'))).toHaveLength(1);
    // HELLO, the ancestors of the data directory as ENTRY frames, one UNCHANGED, WALK_DONE, DONE.
    expect(again.bytesOnWire).toBeLessThan(2 * KiB);
    // Protocol 2 sent at least one ENTRY of 75 bytes plus the path per file and directory.
    const before = (DIRS * FILES_PER_DIR + COPIES + DIRS + 2) * (75 + data.length + 8);
    expect(before / again.bytesOnWire).toBeGreaterThan(100);
  }, 180_000);

  it('after one file changed, sends that file, its directory and the directories above it, and names the rest unchanged', async () => {
    fs.appendFileSync(path.join(data, 'dir-07', 'f-3'), 'changed');
    const after = await backup();
    expect(after.snapshot.stats.bytesRead).toBe(512 + 7);
    // The file (519 bytes), ENTRY frames for it, dir-07 and the data directory, 99 + 31 UNCHANGED.
    expect(after.bytesOnWire).toBeLessThan(4 * KiB);
    expectRestoreMatches();
  }, 180_000);
});
