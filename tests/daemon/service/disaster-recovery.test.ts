// The procedure of docs/operations.md, "The server is lost; the repository copy and the
// passphrase survive", step by step on a new state directory: the copy opens and checks clean,
// lists and restores byte for byte, `haul db rebuild` brings the client back as a placeholder,
// and once its address is set, pinned and enabled, its next backup goes into the old repository
// and reuses what is there. The old server's clients are a real sshd.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haulSync } from '../../helpers/cli.js';
import { createDaemonTestbed, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { testPassphrase } from '../../helpers/repo.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const U = 'haul-t-dr-web';
const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`recovery from a lost server with only the repository and the passphrase${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let data = '';
  const files = { 'site.bin': pseudoRandom('dr-site', 3 * 1024 * 1024), 'index.html': Buffer.from('<h1>hello</h1>\n') };

  beforeAll(async () => {
    bed = await createDaemonTestbed('dr', [U]);
    data = bed.writeData(U, 'www', files);
  }, 120_000);
  afterAll(async () => {
    await bed?.close();
  });

  it('restores from the repository copy on a new server, and backs up into it again', async () => {
    // The old server backs the client up, then is lost: only a copy of the repository and the
    // passphrase (and, as the procedure recommends, the SSH identity) survive.
    await bed.addClient('web1', U, data);
    const daemon = await bed.start();
    const job = await daemon.runNow('web1');
    const done = (await bed.waitForJobs((all) => all.some((j) => j.id === job.id && j.state === 'succeeded'), 90_000)).find((j) => j.id === job.id)!;
    await bed.reset();

    const site = path.join(bed.tmp, 'new-server');
    const oldRepo = path.join(site, 'old-repository');
    fs.cpSync(bed.repoDir, oldRepo, { recursive: true });
    const passFile = path.join(site, 'passphrase');
    fs.writeFileSync(passFile, `${testPassphrase}\n`, { mode: 0o600 });
    const home = path.join(site, 'home');
    fs.cpSync(path.join(bed.stateDir, 'identity'), path.join(home, 'identity'), { recursive: true });
    const env: Record<string, string> = { ...bed.env, HAUL_REPOSITORY: oldRepo, HAUL_PASSWORD_FILE: passFile, HAUL_HOME: home };
    delete env['HAUL_PASSWORD'];
    const run = (...args: string[]) => {
      const r = haulSync(['--quiet', ...args], env);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
      return r.stdout;
    };

    // Step 4: the copy opens and is consistent; every client's snapshots are listed.
    expect(run('check', '--read-data')).toMatch(/: no errors\n$/);
    const snapshots = JSON.parse(run('snapshots', '--json')) as { id: string; client: string }[];
    expect(snapshots.map((s) => [s.id, s.client])).toEqual([[done.snapshotId, 'web1']]);

    // Step 5: restore what is needed, byte for byte.
    const target = path.join(site, 'restored');
    run('restore', `latest:${data}`, '--client', 'web1', '--target', target);
    // A directory path: its contents land in the target.
    for (const [name, content] of Object.entries(files)) expect(fs.readFileSync(path.join(target, name)).equals(content)).toBe(true);

    // Step 6, without a copy of the database: rebuild, then give the placeholder its address back.
    expect(run('db', 'rebuild')).toContain('web1');
    const placeholder = (JSON.parse(run('client', 'list', '--json')) as { name: string; enabled: boolean; paths: string[] }[]).find((c) => c.name === 'web1')!;
    expect(placeholder).toMatchObject({ enabled: false, paths: [data] });
    run('client', 'set', 'web1', '--address', `${U}@${bed.sshd.host}:${bed.sshd.port}`);
    expect(run('client', 'pin', 'web1', '--fingerprint', bed.sshd.hostKeyFingerprint)).toContain(`web1: pinned`);
    run('client', 'set', 'web1', '--enable');
    const again = JSON.parse(run('backup', 'web1', '--json')) as { id: string; snapshot: { stats: { bytesNew: number; files: number } } };
    // The old repository already has every chunk: only the directory listings could be new.
    expect(again.snapshot.stats.files).toBe(2);
    expect(again.snapshot.stats.bytesNew).toBeLessThan(64 * 1024);
    expect((JSON.parse(run('snapshots', '--json')) as { id: string }[]).map((s) => s.id).sort()).toEqual([done.snapshotId, again.id].sort());
    expect(run('check')).toMatch(/: no errors\n$/);
  }, 300_000);
});
