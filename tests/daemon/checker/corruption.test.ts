import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';
import { pseudoRandom, textLike } from '../../helpers/fixtures.js';
import { flipBit, indexEntries, openTestRepository, packPath } from '../../helpers/repo.js';
import { nameBytes } from '../../../daemon/repository/tree.js';
import type { Repository } from '../../../daemon/repository/repository.js';

/** Walks a snapshot's tree to the node at an absolute path. */
async function nodeAt(repo: Repository, absPath: string) {
  const snap = (await repo.listSnapshots()).at(-1)!;
  let tree = await repo.loadTree(snap.tree);
  const parts = absPath.split('/').filter(Boolean);
  for (let i = 0; ; i++) {
    const node = tree.nodes.find((n) => nameBytes(n).toString() === parts[i])!;
    if (i === parts.length - 1) return { snap, node };
    tree = await repo.loadTree(node.subtree!);
  }
}

describe('damaged repository bytes are found, named and never restored', () => {
  const tmp = tempDir('corrupt');
  afterAll(() => tmp.cleanup());
  let repoDir = '';
  let data = '';
  let env: Record<string, string> = {};
  let n = 0;

  beforeEach(() => {
    n++;
    repoDir = path.join(tmp.dir, `repo${n}`);
    data = path.join(tmp.dir, `data${n}`);
    fs.mkdirSync(path.join(data, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(data, 'victim.bin'), pseudoRandom(`victim${n}`, 600_000));
    fs.writeFileSync(path.join(data, 'sub', 'bystander.txt'), textLike(`bystander${n}`, 300_000));
    env = haulEnv(repoDir);
    expect(haulSync(['init'], env).status).toBe(0);
    expect(haulSync(['backup-local', '--client', 'alpha', data], env).status).toBe(0);
  });

  it('a flipped bit in a data chunk: check --read-data names pack, snapshot and file; restore refuses only that file', async () => {
    const repo = await openTestRepository(repoDir);
    const { snap, node } = await nodeAt(repo, `${data}/victim.bin`);
    const loc = repo.locate(Buffer.from(node.content![0]!, 'hex'))!;
    flipBit(packPath(repoDir, loc.pack), loc.offset + 100);

    const quick = haulSync(['check'], env);
    expect(quick.status).toBe(0);
    const full = haulSync(['check', '--read-data'], env);
    expect(full.status).toBe(3);
    expect(full.stdout).toContain(`error: pack ${loc.pack} does not match its name: its bytes were changed on disk.\n`);
    expect(full.stdout).toContain(`error: pack ${loc.pack}: chunk ${node.content![0]!.slice(0, 16)} in pack ${loc.pack} failed authentication: the pack's bytes were changed on disk.\n`);
    expect(full.stdout).toContain(`error: snapshot ${snap.id.slice(0, 8)} (client alpha): ${data}/victim.bin: chunk ${node.content![0]!.slice(0, 16)} damaged in pack ${loc.pack}.\n`);
    expect(full.stderr).toContain('haul: error: the repository has 3 error(s), listed above.');

    const target = path.join(tmp.dir, 'restore-after-chunk-damage');
    const restore = haulSync(['restore', `latest:${data}`, '--target', target], env);
    expect(restore.status).toBe(3);
    expect(restore.stdout).toContain(`haul: error: ${target}/victim.bin: not restored: chunk ${node.content![0]!.slice(0, 16)} in pack ${loc.pack} failed authentication`);
    expect(fs.existsSync(path.join(target, 'victim.bin'))).toBe(false);
    expect(fs.readFileSync(path.join(target, 'sub', 'bystander.txt')).equals(fs.readFileSync(path.join(data, 'sub', 'bystander.txt')))).toBe(true);
  });

  it('a flipped bit in a tree: check names the snapshot and the directory', async () => {
    const repo = await openTestRepository(repoDir);
    const { snap, node } = await nodeAt(repo, `${data}/sub`);
    const loc = repo.locate(Buffer.from(node.subtree!, 'hex'))!;
    flipBit(packPath(repoDir, loc.pack), loc.offset + 5);
    const r = haulSync(['check'], env);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain(`error: snapshot ${snap.id.slice(0, 8)} (client alpha): ${data}/sub: directory listing unreadable: tree ${node.subtree!.slice(0, 16)} in pack ${loc.pack} failed authentication: the pack's bytes were changed on disk.\n`);
    const target = path.join(tmp.dir, 'restore-after-tree-damage');
    const restore = haulSync(['restore', `latest:${data}`, '--target', target], env);
    expect(restore.status).toBe(3);
    expect(restore.stdout).toContain(`haul: error: ${target}/sub: directory contents not restored: tree ${node.subtree!.slice(0, 16)}`);
    expect(fs.readFileSync(path.join(target, 'victim.bin')).equals(fs.readFileSync(path.join(data, 'victim.bin')))).toBe(true);
  });

  it('a flipped bit in an index file: check names it, repair index rebuilds the same index, check passes', async () => {
    const repo = await openTestRepository(repoDir);
    const before = await indexEntries(repo);
    const [indexFile] = fs.readdirSync(path.join(repoDir, 'index'));
    flipBit(path.join(repoDir, 'index', indexFile!), 60);
    const r = haulSync(['check'], env);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain(`error: index file ${indexFile} cannot be read: index file index/${indexFile} failed authentication: its bytes were changed after it was written. Run \`haul repair index\` to rebuild the index from the packs.\n`);
    // With the index unreadable nothing is restorable, and check says so rather than skipping.
    const snap = fs.readdirSync(path.join(repoDir, 'snapshots'))[0]!;
    expect(r.stdout).toMatch(new RegExp(`error: snapshot ${snap.slice(0, 8)} \\(client alpha\\): /: directory listing unreadable: tree [0-9a-f]{16}[0-9a-f]* is not in the index\\.\n`));

    const repair = haulSync(['repair', 'index'], env);
    expect(repair.status).toBe(0);
    expect(repair.stdout).toMatch(/^indexed \d+ blobs in 1 packs into 1 index file\(s\); removed 1 old index file\(s\)\n$/);
    expect(haulSync(['check', '--read-data'], env).status).toBe(0);
    expect(await indexEntries(await openTestRepository(repoDir))).toEqual(before);
  });

  it('a flipped bit in a snapshot file: check names it', async () => {
    const [snapFile] = fs.readdirSync(path.join(repoDir, 'snapshots'));
    flipBit(path.join(repoDir, 'snapshots', snapFile!), 70);
    const r = haulSync(['check'], env);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain(`error: snapshot ${snapFile!.slice(0, 8)} cannot be read: snapshot ${snapFile!.slice(0, 8)} does not match its name: its bytes were changed on disk.\n`);
  });

  it('a truncated pack: check reports it and the files it holds', async () => {
    const repo = await openTestRepository(repoDir);
    const { node } = await nodeAt(repo, `${data}/victim.bin`);
    const loc = repo.locate(Buffer.from(node.content![0]!, 'hex'))!;
    const file = packPath(repoDir, loc.pack);
    fs.truncateSync(file, fs.statSync(file).size - 1000);
    const r = haulSync(['check'], env);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain(`error: pack ${loc.pack} cannot be read:`);
    // The pack also holds the root tree, so the whole snapshot is reported as lost.
    expect(r.stdout).toContain(`(client alpha): /: directory listing lost: its pack ${loc.pack} is unreadable.\n`);
  });
});
