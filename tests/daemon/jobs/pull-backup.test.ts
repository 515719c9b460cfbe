// Pull backups end to end with real parts: a real sshd on 127.0.0.1, separate Unix users as
// clients, the real static probe uploaded over SSH, and the `haul` CLI as an operator runs it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientStore } from '../../../daemon/database/client-store.js';
import { openDatabase } from '../../../daemon/database/open-database.js';
import { haul, haulEnv, haulSync, projectRoot } from '../../helpers/cli.js';
import { describeTree, makeEveryKindTree, pseudoRandom } from '../../helpers/fixtures.js';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../../helpers/sshd.js';

const ALPHA = 'haul-t-alpha';
const BETA = 'haul-t-beta';
const MiB = 1024 * 1024;
const skip = sshdSkipReason();

interface BackupJson {
  id: string;
  bytesOnWire: number;
  snapshot: { stats: { files: number; bytesNew: number; bytesRead: number } };
  log: string[];
}

describe.skipIf(skip !== undefined)(`pull backup over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let tmp: string;
  let env: Record<string, string>;
  let alpha: UnixUser;
  let beta: UnixUser;
  let alphaData: string;

  const backup = async (client: string): Promise<BackupJson> => {
    const r = await haul(['backup', client, '--json'], env, { timeoutMs: 120_000 });
    expect({ status: r.status, stderr: r.stderr, signal: r.signal }).toEqual({ status: 0, stderr: '', signal: null });
    return JSON.parse(r.stdout) as BackupJson;
  };

  const expectRestoreMatches = (client: string, source: string) => {
    const target = fs.mkdtempSync(path.join(tmp, `restore-${client}-`));
    const r = haulSync(['--quiet', 'restore', `latest:${source}`, '--client', client, '--target', target], env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const before = describeTree(source);
    const after = describeTree(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) {
      const a = after.get(key)!;
      expect({ key, type: a.type, mode: a.mode, size: a.size, sha256: a.sha256, target: a.target, micros: a.mtimeNs / 1000n }).toEqual({ key, type: b.type, mode: b.mode, size: b.size, sha256: b.sha256, target: b.target, micros: b.mtimeNs / 1000n });
    }
  };

  const addClient = (name: string, user: UnixUser, dataPath: string) => {
    const r = haulSync(['client', 'add', name, `${user.name}@${sshd.host}:${sshd.port}`, '--path', dataPath, '--json'], env);
    expect(r.status).toBe(0);
    sshd.authorize(user.name, JSON.parse(r.stdout).authorizedKeysLine);
  };

  beforeAll(async () => {
    execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
    alpha = ensureUser(ALPHA);
    beta = ensureUser(BETA);
    sshd = await startSshd({ users: [ALPHA, BETA] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-pull-'));
    env = haulEnv(path.join(tmp, 'repo'), { HAUL_HOME: path.join(tmp, 'home') });
    expect(haulSync(['init'], env).status).toBe(0);

    alphaData = path.join(alpha.home, 'data');
    fs.rmSync(alphaData, { recursive: true, force: true });
    fs.mkdirSync(alphaData);
    makeEveryKindTree(alphaData);
    fs.writeFileSync(path.join(alphaData, 'big.img'), pseudoRandom('pull-big', 256 * MiB));
    execFileSync('chown', ['-R', `${alpha.uid}:${alpha.gid}`, alphaData]);
    addClient('alpha', alpha, alphaData);
  }, 180_000);

  afterAll(async () => {
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (alphaData) fs.rmSync(alphaData, { recursive: true, force: true });
  });

  it('backs up a client over SSH and restores it byte for byte, pinning its host key on first contact', async () => {
    const first = await backup('alpha');
    expect(first.log).toContain(`first contact with client "alpha" (${ALPHA}@${sshd.host}:${sshd.port}): pinned its ssh-ed25519 host key ${sshd.hostKeyFingerprint}`);
    expect(first.snapshot.stats.files).toBe(13);
    expect(first.bytesOnWire).toBeGreaterThan(256 * MiB * 0.9);
    const list = haulSync(['client', 'list', '--json'], env);
    expect(JSON.parse(list.stdout)[0].hostKey).toBe(sshd.hostKeyFingerprint);
    // The snapshot is listed in the database, linked to the client's row.
    const db = await openDatabase({ stateDir: path.join(tmp, 'home') });
    try {
      const row = await db.prisma.snapshot.findUniqueOrThrow({ where: { id: first.id }, include: { client: true } });
      expect({ client: row.client?.name, clientName: row.clientName, files: row.files }).toEqual({ client: 'alpha', clientName: 'alpha', files: 13n });
    } finally {
      await db.close();
    }
    expectRestoreMatches('alpha', alphaData);
  }, 180_000);

  it('after edits, appends, a 100-byte insert in the 256 MiB file, a delete and a rename, sends about one chunk per change', async () => {
    const big = path.join(alphaData, 'big.img');
    const content = fs.readFileSync(big);
    fs.writeFileSync(big, Buffer.concat([content.subarray(0, 128 * MiB), pseudoRandom('insert', 100), content.subarray(128 * MiB)]));
    fs.appendFileSync(path.join(alphaData, 'docs', 'readme.txt'), 'one more line\n');
    fs.rmSync(path.join(alphaData, 'empty'));
    fs.renameSync(path.join(alphaData, 'hard-a'), path.join(alphaData, 'hard-a-renamed'));
    execFileSync('chown', ['-R', `${alpha.uid}:${alpha.gid}`, alphaData]);
    const second = await backup('alpha');
    // One or two re-cut chunks of the big file (at most 4 MiB each), the readme, metadata.
    expect(second.bytesOnWire).toBeLessThan(10 * MiB);
    expect(second.snapshot.stats.bytesNew).toBeLessThan(10 * MiB);
    expectRestoreMatches('alpha', alphaData);
    // Unchanged files are recognised from metadata: nothing is read on the client.
    const third = await backup('alpha');
    expect(third.snapshot.stats.bytesRead).toBe(0);
    expect(third.bytesOnWire).toBeLessThan(1 * MiB);
  }, 180_000);

  it('a second client with the same data gets nothing from the first: it sends every byte itself', async () => {
    const betaData = path.join(beta.home, 'data');
    fs.rmSync(betaData, { recursive: true, force: true });
    fs.mkdirSync(betaData);
    const shared = pseudoRandom('shared-between-clients', 6 * MiB);
    fs.writeFileSync(path.join(betaData, 'shared.bin'), shared);
    fs.writeFileSync(path.join(alphaData, 'shared.bin'), shared);
    execFileSync('chown', ['-R', `${beta.uid}:${beta.gid}`, betaData]);
    execFileSync('chown', ['-R', `${alpha.uid}:${alpha.gid}`, alphaData]);
    await backup('alpha');
    addClient('beta', beta, betaData);
    const b = await backup('beta');
    expect(b.bytesOnWire).toBeGreaterThan(6 * MiB);
    expectRestoreMatches('beta', betaData);
  }, 180_000);

  it('refuses a changed host key with a clear error until the operator re-pins', async () => {
    const wrong = 'SHA256:' + 'A'.repeat(43);
    const db = await openDatabase({ stateDir: path.join(tmp, 'home') });
    try {
      expect(await new ClientStore(db.prisma).pinHostKey('alpha', wrong)).toEqual({ replaced: sshd.hostKeyFingerprint });
    } finally {
      await db.close();
    }
    const r = await haul(['backup', 'alpha'], env, { timeoutMs: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`host key`);
    expect(r.stderr).toContain(wrong);
    expect(r.stderr).toContain(sshd.hostKeyFingerprint);
    expect(r.stderr).toContain('haul client pin alpha');
    const pin = haulSync(['client', 'pin', 'alpha', '--fingerprint', sshd.hostKeyFingerprint], env);
    expect(pin.stdout).toBe(`alpha: pinned ssh-ed25519 host key ${sshd.hostKeyFingerprint} (replacing ${wrong})\n`);
    expect((await haul(['backup', 'alpha'], env, { timeoutMs: 60_000 })).status).toBe(0);
  }, 180_000);

  it('check --read-data passes after all of it', () => {
    const r = haulSync(['check', '--read-data'], env);
    expect(r.stdout).toMatch(/: no errors/);
    expect(r.status).toBe(0);
  }, 180_000);
});
