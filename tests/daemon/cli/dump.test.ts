import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haulBin, haulEnv, haulSync, tempDir, testNode } from '../../helpers/cli.js';
import { describeTree, makeEveryKindTree } from '../../helpers/fixtures.js';
import { flipBit, openTestRepository, packPath } from '../../helpers/repo.js';

describe('haul dump', () => {
  const tmp = tempDir('dump');
  const repo = path.join(tmp.dir, 'repo');
  const data = path.join(tmp.dir, 'data');
  const env = haulEnv(repo);
  afterAll(() => tmp.cleanup());
  beforeAll(() => {
    fs.mkdirSync(data);
    makeEveryKindTree(data);
    expect(haulSync(['init'], env).status).toBe(0);
    expect(haulSync(['backup-local', '--client', 'alpha', data], env).status).toBe(0);
  });

  function dumpTo(ref: string, file: string) {
    const fd = fs.openSync(file, 'w');
    const r = spawnSync(testNode, [haulBin, 'dump', ref], { env, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    fs.closeSync(fd);
    return r;
  }

  it('writes a tar archive that GNU tar extracts to the same tree, odd names, links and all', () => {
    const archive = path.join(tmp.dir, 'data.tar');
    const r = dumpTo(`latest:${data}`, archive);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = path.join(tmp.dir, 'extracted');
    fs.mkdirSync(out);
    const tar = spawnSync('tar', ['-xf', archive, '-C', out], { encoding: 'utf8' });
    expect(tar.stderr).toBe('');
    expect(tar.status).toBe(0);
    const before = describeTree(data);
    const after = describeTree(path.join(out, 'data'));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) {
      const a = after.get(key)!;
      expect({ key, type: a.type, mode: a.mode, size: a.size, sha256: a.sha256, target: a.target, mtime: a.mtimeNs }).toEqual({ key, type: b.type, mode: b.mode, size: b.size, sha256: b.sha256, target: b.target, mtime: b.mtimeNs });
    }
    expect(after.get('/hard-a')!.ino).toBe(after.get('/docs/hard-b')!.ino);
  });

  it('dumps a single file under its own name', () => {
    const archive = path.join(tmp.dir, 'one.tar');
    expect(dumpTo(`latest:${data}/docs/readme.txt`, archive).status).toBe(0);
    const list = spawnSync('tar', ['-tf', archive], { encoding: 'utf8' });
    expect(list.stdout).toBe('readme.txt\n');
  });

  it('stops with exit code 3 and names the file when a chunk is damaged', async () => {
    const opened = await openTestRepository(repo);
    const snap = (await opened.listSnapshots()).at(-1)!;
    let tree = await opened.loadTree(snap.tree);
    for (const part of data.split('/').filter(Boolean)) tree = await opened.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
    const readme = await opened.loadTree(tree.nodes.find((n) => n.name === 'docs')!.subtree!);
    const node = readme.nodes.find((n) => n.name === 'readme.txt')!;
    const loc = opened.locate(Buffer.from(node.content![0]!, 'hex'))!;
    flipBit(packPath(repo, loc.pack), loc.offset + 30);
    const r = dumpTo(`latest:${data}/docs`, path.join(tmp.dir, 'damaged.tar'));
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`haul: error: the dump stopped at docs/readme.txt: chunk ${node.content![0]!.slice(0, 16)} in pack ${loc.pack} failed authentication`);
  });
});
