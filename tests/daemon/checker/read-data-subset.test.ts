// `check --read-data-subset k/n`: the parts together read every pack exactly once, and damage is
// reported by the part that holds the damaged pack and by no other.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSubset } from '../../../daemon/cli/commands/check.js';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { flipBit, packPath } from '../../helpers/repo.js';

describe('check --read-data-subset', () => {
  const tmp = tempDir('subset');
  afterAll(() => tmp.cleanup());

  it('covers every pack once over n parts and finds damage only in its own part', () => {
    const repo = path.join(tmp.dir, 'repo');
    const env = haulEnv(repo);
    fs.mkdirSync(path.join(tmp.dir, 'data'));
    fs.writeFileSync(path.join(tmp.dir, 'data', 'big.bin'), pseudoRandom('subset', 70_000_000));
    expect(haulSync(['init'], env).status).toBe(0);
    expect(haulSync(['backup-local', '--client', 'c', path.join(tmp.dir, 'data')], env).status).toBe(0);
    const packs = fs.readdirSync(path.join(repo, 'packs')).flatMap((d) => fs.readdirSync(path.join(repo, 'packs', d)).filter((n) => !n.startsWith('.')));
    const total = packs.reduce((a, p) => a + fs.statSync(packPath(repo, p)).size, 0);
    expect(packs.length).toBeGreaterThanOrEqual(4);

    const parts = [1, 2, 3].map((k) => JSON.parse(haulSync(['check', '--read-data-subset', `${k}/3`, '--json'], env).stdout) as { bytesRead: number; errors: number });
    expect(parts.reduce((a, p) => a + p.bytesRead, 0)).toBe(total);
    expect(parts.map((p) => p.errors)).toEqual([0, 0, 0]);

    // The largest pack holds file data only; a tree pack would fail every part's structure check.
    const victim = packs.reduce((a, b) => (fs.statSync(packPath(repo, b)).size > fs.statSync(packPath(repo, a)).size ? b : a));
    flipBit(packPath(repo, victim), 5000);
    const part = (parseInt(victim.slice(0, 8), 16) % 3) + 1;
    const results = [1, 2, 3].map((k) => haulSync(['check', '--read-data-subset', `${k}/3`], env));
    expect(results.map((r) => r.status)).toEqual([1, 2, 3].map((k) => (k === part ? 3 : 0)));
    expect(results[part - 1]!.stdout).toContain(`error: pack ${victim} does not match its name: its bytes were changed on disk.\n`);
  }, 120_000);

  it('day/n walks through the parts on consecutive days, and nonsense is refused', () => {
    const days = [0, 1, 2, 3, 4, 5, 6, 7].map((d) => parseSubset('day/7', new Date(Date.UTC(2026, 10, 23) + d * 86_400_000)).part);
    expect(new Set(days.slice(0, 7)).size).toBe(7);
    expect(days[7]).toBe(days[0]);
    expect(() => parseSubset('0/7')).toThrow('--read-data-subset takes k/n with 1 <= k <= n (e.g. 2/7), or day/n, not "0/7".');
    expect(() => parseSubset('8/7')).toThrow(/not "8\/7"/);
  });
});
