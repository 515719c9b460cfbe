import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';

describe('haul key', () => {
  const tmp = tempDir('keys');
  afterAll(() => tmp.cleanup());
  const repo = path.join(tmp.dir, 'repo');
  const env = haulEnv(repo, { HAUL_PASSWORD: 'first' });

  it('adds, lists, changes and removes passphrases that open the same repository', () => {
    expect(haulSync(['init'], env).status).toBe(0);
    const added = haulSync(['key', 'add'], { ...env, HAUL_NEW_PASSWORD: 'second' });
    expect(added.status).toBe(0);
    expect(added.stdout).toMatch(/^added key [0-9a-f]{8}\n$/);
    const list = JSON.parse(haulSync(['key', 'list', '--json'], { ...env, HAUL_PASSWORD: 'second' }).stdout) as { name: string; current: boolean }[];
    expect(list).toHaveLength(2);
    expect(list.filter((k) => k.current)).toHaveLength(1);

    // The key in use cannot remove itself.
    const current = list.find((k) => k.current)!.name;
    const self = haulSync(['key', 'remove', current.slice(0, 8)], { ...env, HAUL_PASSWORD: 'second' });
    expect(self.status).toBe(1);
    expect(self.stderr).toContain('is the one this command was opened with');

    const first = list.find((k) => !k.current)!.name;
    expect(haulSync(['key', 'remove', first.slice(0, 8)], { ...env, HAUL_PASSWORD: 'second' }).status).toBe(0);
    expect(haulSync(['snapshots'], env).status).toBe(12);

    const passwd = haulSync(['key', 'passwd'], { ...env, HAUL_PASSWORD: 'second', HAUL_NEW_PASSWORD: 'third' });
    expect(passwd.status).toBe(0);
    expect(haulSync(['snapshots'], { ...env, HAUL_PASSWORD: 'second' }).status).toBe(12);
    expect(haulSync(['snapshots'], { ...env, HAUL_PASSWORD: 'third' }).status).toBe(0);
  });

  it('a planted key file with absurd Argon2 costs neither blocks the good keys nor runs', () => {
    const keysDir = path.join(repo, 'keys');
    const good = fs.readdirSync(keysDir)[0]!;
    const planted = JSON.parse(fs.readFileSync(path.join(keysDir, good), 'utf8'));
    planted.kdf.memoryKiB = 64 * 1024 * 1024;
    // Sorted before the good key, so it is read first.
    fs.writeFileSync(path.join(keysDir, '00000000000000000000000000000000'), JSON.stringify(planted));
    expect(haulSync(['snapshots'], { ...env, HAUL_PASSWORD: 'third' }).status).toBe(0);
    const wrong = haulSync(['snapshots'], { ...env, HAUL_PASSWORD: 'nope' });
    expect(wrong.status).toBe(12);
    expect(wrong.stderr).toContain('(Also skipped: key file keys/00000000000000000000000000000000 asks for Argon2 costs outside the accepted range');
  });
});
