// A command closes what it opened before it ends. A local repository caches open file handles
// for reading packs; left to the garbage collector, each is closed with a warning on stderr
// ("Closing file descriptor N on garbage collection") whenever a full collection runs before the
// process exits, which V8 does when the process idles (CI caught it after a `haul backup`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { haulBin, haulEnv, haulSync, tempDir, testNode } from '../../helpers/cli.js';

describe('a command that read packs', () => {
  const tmp = tempDir('closing');
  afterAll(() => tmp.cleanup());

  it('leaves no file handle to the garbage collector: a full collection as it exits prints nothing', () => {
    const repo = path.join(tmp.dir, 'repo');
    const env = haulEnv(repo);
    const data = path.join(tmp.dir, 'data');
    fs.mkdirSync(data);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(data, `f${i}`), `file ${i}\n`.repeat(1000 * (i + 1)));
    expect(haulSync(['--quiet', 'init'], env).status).toBe(0);
    expect(haulSync(['--quiet', 'backup-local', '--client', 'c', data], env).status).toBe(0);
    // The collection V8's memory reducer may run at any idle moment, forced at the last one.
    const atExit = path.join(tmp.dir, 'gc-at-exit.cjs');
    fs.writeFileSync(atExit, "let done = false;\nprocess.on('beforeExit', () => { if (!done) { done = true; global.gc(); setTimeout(() => {}, 50); } });\n");
    const target = path.join(tmp.dir, 'restored');
    for (const args of [['ls', 'latest', '--client', 'c'], ['restore', `latest:${data}`, '--client', 'c', '--target', target]]) {
      const r = spawnSync(testNode, ['--expose-gc', '-r', atExit, haulBin, '--quiet', ...args], { env, encoding: 'utf8' });
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
    }
    expect(fs.readFileSync(path.join(target, 'f4'), 'utf8')).toBe('file 4\n'.repeat(5000));
  }, 60_000);
});
