// A pull backup over a real sshd into a repository in a real S3-compatible bucket (s3rver), and
// its restore byte for byte: the SSH path and the S3 path together, as a fleet server runs them.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulEnv, haulSync, projectRoot } from '../../helpers/cli.js';
import { describeTree, makeEveryKindTree, pseudoRandom } from '../../helpers/fixtures.js';
import { s3Credentials, startS3Server, type S3Server } from '../../helpers/s3.js';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../../helpers/sshd.js';

const USER = 'haul-t-s3-pull';
const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`pull backup over a real sshd into an S3 bucket${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let server: S3Server;
  let user: UnixUser;
  let tmp: string;
  let data: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    execFileSync('bash', [path.join(projectRoot, 'probe', 'build.sh')], { stdio: 'pipe' });
    user = ensureUser(USER);
    sshd = await startSshd({ users: [USER] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-s3-pull-'));
    server = await startS3Server(path.join(tmp, 's3rver'), ['fleet']);
    env = haulEnv(`s3:${server.endpoint}/fleet/repository`, { HAUL_HOME: path.join(tmp, 'home'), HAUL_S3_PATH_STYLE: '1', HAUL_S3_LISTING_DELAY_MS: '20', ...s3Credentials });
    expect(haulSync(['init', '--quiet'], env)).toMatchObject({ status: 0, stderr: '' });

    data = path.join(user.home, 'data');
    fs.rmSync(data, { recursive: true, force: true });
    fs.mkdirSync(data);
    makeEveryKindTree(data);
    fs.writeFileSync(path.join(data, 'big.img'), pseudoRandom('s3-pull-big', 24 * 1024 * 1024));
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, data]);
    const added = haulSync(['client', 'add', 'web1', `${USER}@${sshd.host}:${sshd.port}`, '--path', data, '--json'], env);
    expect(added.status).toBe(0);
    sshd.authorize(USER, (JSON.parse(added.stdout) as { authorizedKeysLine: string }).authorizedKeysLine);
  }, 180_000);

  afterAll(async () => {
    await sshd?.stop();
    await server?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (data) fs.rmSync(data, { recursive: true, force: true });
  });

  it('backs up a client over SSH into the bucket, restores it byte for byte and checks every blob', async () => {
    const backup = await haul(['backup', 'web1', '--json', '--quiet'], env, { timeoutMs: 180_000 });
    expect({ status: backup.status, stderr: backup.stderr }).toEqual({ status: 0, stderr: '' });
    expect((JSON.parse(backup.stdout) as { snapshot: { stats: { files: number } } }).snapshot.stats.files).toBe(13);

    const target = path.join(tmp, 'restored');
    const restore = haulSync(['--quiet', 'restore', `latest:${data}`, '--client', 'web1', '--target', target], env);
    expect({ status: restore.status, stderr: restore.stderr }).toEqual({ status: 0, stderr: '' });
    const before = describeTree(data);
    const after = describeTree(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [key, b] of before) {
      const a = after.get(key)!;
      expect({ key, type: a.type, mode: a.mode, size: a.size, sha256: a.sha256, target: a.target }).toEqual({ key, type: b.type, mode: b.mode, size: b.size, sha256: b.sha256, target: b.target });
    }

    const check = haulSync(['check', '--read-data', '--quiet'], env);
    expect({ status: check.status, stderr: check.stderr }).toEqual({ status: 0, stderr: '' });
  }, 300_000);
});
