// A damaged pack is found by verification, retired by `haul repair packs`, and healed by the next
// pull backup over real SSH: the client still has the chunks, uploads them again under the same
// IDs, and the OLDER snapshot restores byte for byte again.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulEnv, haulSync, projectRoot } from '../../helpers/cli.js';
import { describeTree, pseudoRandom, textLike } from '../../helpers/fixtures.js';
import { flipBit, openTestRepository, packPath } from '../../helpers/repo.js';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../../helpers/sshd.js';
import type { Tree } from '../../../daemon/repository/tree.js';

const USER = 'haul-t-heal';
const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`self-healing after a damaged pack${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let tmp: string;
  let env: Record<string, string>;
  let user: UnixUser;
  let data: string;

  beforeAll(async () => {
    execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
    user = ensureUser(USER);
    sshd = await startSshd({ users: [USER] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-heal-'));
    env = haulEnv(path.join(tmp, 'repo'), { HAUL_HOME: path.join(tmp, 'home') });
    expect(haulSync(['init'], env).status).toBe(0);
    data = path.join(user.home, 'data');
    fs.rmSync(data, { recursive: true, force: true });
    fs.mkdirSync(path.join(data, 'notes'), { recursive: true });
    for (const f of ['a', 'b', 'c']) fs.writeFileSync(path.join(data, `${f}.bin`), pseudoRandom(`heal-${f}`, 3_000_000));
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, 'notes', `n${i}.txt`), textLike(`heal-note-${i}`, 1_000 + i));
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, data]);
    const r = haulSync(['client', 'add', 'heal', `${USER}@${sshd.host}:${sshd.port}`, '--path', data, '--json'], env);
    expect(r.status).toBe(0);
    sshd.authorize(USER, (JSON.parse(r.stdout) as { authorizedKeysLine: string }).authorizedKeysLine);
  }, 120_000);

  afterAll(async () => {
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (data) fs.rmSync(data, { recursive: true, force: true });
  });

  it('verify names the damage, repair packs drops it, the next backup re-uploads it and the old snapshot is whole again', async () => {
    const first = await haul(['backup', 'heal', '--json'], env, { timeoutMs: 120_000 });
    expect(first.status).toBe(0);
    const snapshotId = (JSON.parse(first.stdout) as { id: string }).id;

    // Damage the first chunk of b.bin where it is stored.
    const repo = await openTestRepository(path.join(tmp, 'repo'));
    const snap = await repo.readSnapshot(snapshotId);
    let tree: Tree = await repo.loadTree(snap.tree);
    for (const part of data.split('/').filter(Boolean)) tree = await repo.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
    const chunk = tree.nodes.find((n) => n.name === 'b.bin')!.content![0]!;
    const loc = repo.locate(Buffer.from(chunk, 'hex'))!;
    flipBit(packPath(path.join(tmp, 'repo'), loc.pack), loc.offset + 100);

    const verify = haulSync(['check', '--read-data'], env);
    expect(verify.status).toBe(3);
    expect(verify.stdout).toContain(`error: snapshot ${snapshotId.slice(0, 8)} (client heal): ${data}/b.bin: chunk ${chunk.slice(0, 16)} damaged in pack ${loc.pack}.\n`);

    const repair = haulSync(['repair', 'packs', '--json'], env);
    expect(repair.status).toBe(0);
    const report = JSON.parse(repair.stdout) as { packsRepaired: string[]; blobsLost: string[]; blobsSalvaged: number };
    expect(report.packsRepaired).toEqual([loc.pack]);
    expect(report.blobsLost).toEqual([chunk]);
    expect(report.blobsSalvaged).toBeGreaterThan(0);
    const structure = haulSync(['check'], env);
    expect(structure.status).toBe(3);
    expect(structure.stdout).toContain(`error: snapshot ${snapshotId.slice(0, 8)} (client heal): ${data}/b.bin: chunk ${chunk.slice(0, 16)} is not in the index.\n`);

    const second = await haul(['backup', 'heal', '--json'], env, { timeoutMs: 120_000 });
    expect({ status: second.status, stderr: second.stderr }).toEqual({ status: 0, stderr: '' });
    // Only the lost chunk travels again (random bytes: no compression), plus frames and metadata.
    const wire = (JSON.parse(second.stdout) as { bytesOnWire: number }).bytesOnWire;
    expect(wire).toBeGreaterThan(loc.length - 100);
    expect(wire).toBeLessThan(loc.length + 100_000);

    const healed = haulSync(['check', '--read-data'], env);
    expect(healed.stdout).toMatch(/checked 2 snapshots, .*: no errors\n$/);
    const target = path.join(tmp, 'restored-first');
    expect(haulSync(['restore', `${snapshotId}:${data}`, '--target', target], env).status).toBe(0);
    const before = describeTree(data);
    const after = describeTree(target);
    expect([...after].map(([k, v]) => [k, v.sha256])).toEqual([...before].map(([k, v]) => [k, v.sha256]));
  }, 180_000);
});
