// The S3 backend end to end, against a real S3-compatible server (s3rver) started here: the real
// `haul` binary backs up, restores, checks, forgets and prunes on a bucket, copies repositories
// between a directory and a bucket, survives uploads cut mid-way, and explains a missing bucket,
// refused credentials, throttling and an unreachable endpoint.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulEnv, tempDir, type HaulResult } from '../../helpers/cli.js';
import { describeTree, makeEveryKindTree, pseudoRandom } from '../../helpers/fixtures.js';
import { s3Credentials, startCuttingProxy, startS3Server, type CuttingProxy, type S3Server } from '../../helpers/s3.js';
import { parseS3Location } from '../../../daemon/storage/s3.js';

const bucket = 'haul-test';
const timeoutMs = 240_000;

function expectOk(r: HaulResult): void {
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
}

function expectSameTree(restored: string, original: string): void {
  const before = describeTree(original);
  const after = describeTree(restored);
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [key, b] of before) {
    const a = after.get(key)!;
    expect({ key, type: a.type, size: a.size, sha256: a.sha256, target: a.target }).toEqual({ key, type: b.type, size: b.size, sha256: b.sha256, target: b.target });
  }
}

/** Every object file of a local repository (locks aside), relative path -> bytes. */
function repositoryFiles(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else out.set(path.relative(root, full), fs.readFileSync(full));
    }
  };
  walk(root);
  for (const k of [...out.keys()]) if (k.startsWith('locks/')) out.delete(k);
  return out;
}

describe('parseS3Location', () => {
  it('splits endpoint, bucket and prefix', () => {
    expect(parseS3Location('s3:http://minio:9000/haul/repository')).toEqual({ endpoint: 'http://minio:9000', bucket: 'haul', prefix: 'repository/' });
    expect(parseS3Location('s3:https://s3.eu-west-1.amazonaws.com/backups')).toEqual({ endpoint: 'https://s3.eu-west-1.amazonaws.com', bucket: 'backups', prefix: '' });
    expect(parseS3Location('s3:https://host/bkt/a/b/')).toEqual({ endpoint: 'https://host', bucket: 'bkt', prefix: 'a/b/' });
  });

  it('refuses a location without a valid bucket, with the syntax to use', () => {
    expect(() => parseS3Location('s3:https://host/')).toThrow('the repository location "s3:https://host/" names no valid bucket ("": 3 to 63 lowercase letters, digits, dots and dashes). Write it as s3:https://HOST[:PORT]/BUCKET[/PREFIX], e.g. s3:https://s3.eu-west-1.amazonaws.com/backups/haul or s3:http://minio:9000/haul/repository.');
    expect(() => parseS3Location('s3:ftp://host/bucket')).toThrow('must use http or https');
    expect(() => parseS3Location('s3:https://key:secret@host/bucket')).toThrow('may hold neither credentials nor a query');
  });
});

describe('haul on an S3 repository', () => {
  const tmp = tempDir('s3');
  const data = path.join(tmp.dir, 'data');
  let server: S3Server;
  let proxy: CuttingProxy;

  /** The environment of a `haul` run on `location`; the state directory stays under tmp. */
  const envFor = (location: string, extra: Record<string, string> = {}): Record<string, string> =>
    haulEnv(location, { HAUL_HOME: path.join(tmp.dir, 'home'), HAUL_S3_PATH_STYLE: '1', HAUL_S3_LISTING_DELAY_MS: '20', ...s3Credentials, ...extra });
  const s3 = (prefix: string, endpoint = server.endpoint, b = bucket): string => `s3:${endpoint}/${b}/${prefix}`;

  beforeAll(async () => {
    fs.mkdirSync(data);
    makeEveryKindTree(data);
    // Large enough for a full 16 MiB pack, which goes up as a multipart upload of 8 MiB parts.
    fs.writeFileSync(path.join(data, 'large.bin'), pseudoRandom('s3-large', 20 * 1024 * 1024));
    server = await startS3Server(path.join(tmp.dir, 's3rver'), [bucket]);
    proxy = await startCuttingProxy(server.port);
  }, timeoutMs);
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
    tmp.cleanup();
  });

  it('backs up, restores byte for byte, checks every blob, forgets and prunes', async () => {
    const env = envFor(s3('roundtrip'));
    expectOk(await haul(['init', '--quiet'], env));
    const first = await haul(['backup-local', '--client', 'alpha', '--json', '--quiet', data], env);
    expectOk(first);
    const firstId = (JSON.parse(first.stdout) as { id: string }).id;

    const target = path.join(tmp.dir, 'restored');
    expectOk(await haul(['restore', `${firstId}:${data}`, '--target', target, '--quiet'], env));
    expectSameTree(path.join(target), data);
    const check = await haul(['check', '--read-data', '--json', '--quiet'], env);
    expectOk(check);
    expect((JSON.parse(check.stdout) as { errors: number; problems: unknown[] })).toMatchObject({ errors: 0, problems: [] });

    // A second snapshot without the large file; forgetting the first leaves its packs unused.
    fs.renameSync(path.join(data, 'large.bin'), path.join(tmp.dir, 'large.bin'));
    try {
      const second = await haul(['backup-local', '--client', 'alpha', '--json', '--quiet', data], env);
      expectOk(second);
      expectOk(await haul(['forget', firstId, '--quiet'], env));
      const prune = await haul(['prune', '--json', '--quiet'], env);
      expectOk(prune);
      const report = JSON.parse(prune.stdout) as { snapshots: number; packsDeleted: number; packsRepacked: number; bytesFreed: number };
      expect(report, prune.stdout).toMatchObject({ snapshots: 1 });
      expect(report.packsDeleted + report.packsRepacked, prune.stdout).toBeGreaterThanOrEqual(1);
      // large.bin is 20 MiB of random bytes: incompressible, so at least that much is freed.
      expect(report.bytesFreed, prune.stdout).toBeGreaterThan(20 * 1024 * 1024);
      const after = await haul(['check', '--read-data', '--json', '--quiet'], env);
      expectOk(after);
      const again = path.join(tmp.dir, 'restored-after-prune');
      expectOk(await haul(['restore', `latest:${data}`, '--target', again, '--quiet'], env));
      expectSameTree(again, data);
    } finally {
      fs.renameSync(path.join(tmp.dir, 'large.bin'), path.join(data, 'large.bin'));
    }
  }, timeoutMs);

  it('copies a repository local -> S3 -> local byte for byte, and checks it on each', async () => {
    const local = path.join(tmp.dir, 'local-repo');
    const localEnv = envFor(local);
    expectOk(await haul(['init', '--quiet'], localEnv));
    expectOk(await haul(['backup-local', '--client', 'beta', '--quiet', data], localEnv));

    const toS3 = await haul(['repo', 'copy', '--from', local, '--to', s3('copy'), '--json', '--quiet'], localEnv);
    expectOk(toS3);
    const report = JSON.parse(toS3.stdout) as { objects: Record<string, number>; skipped: number };
    const files = repositoryFiles(local);
    const count = (dir: string): number => [...files.keys()].filter((k) => k.startsWith(dir + '/')).length;
    expect(report.objects).toEqual({ keys: count('keys'), packs: count('packs'), index: count('index'), snapshots: count('snapshots'), config: 1 });
    expect(report.skipped).toBe(0);
    expectOk(await haul(['check', '--read-data', '--quiet'], envFor(s3('copy'))));

    const back = path.join(tmp.dir, 'copied-back');
    expectOk(await haul(['repo', 'copy', '--from', s3('copy'), '--to', back, '--quiet'], localEnv));
    expectOk(await haul(['check', '--read-data', '--quiet'], envFor(back)));
    const copied = repositoryFiles(back);
    expect([...copied.keys()].sort()).toEqual([...files.keys()].sort());
    for (const [name, bytes] of files) expect({ name, same: copied.get(name)!.equals(bytes) }).toEqual({ name, same: true });

    const restored = path.join(tmp.dir, 'restored-from-copy');
    expectOk(await haul(['restore', `latest:${data}`, '--target', restored, '--quiet'], envFor(back)));
    expectSameTree(restored, data);

    // Copied again after another backup, only the new objects travel.
    fs.writeFileSync(path.join(data, 'new.txt'), 'added after the first copy\n');
    try {
      expectOk(await haul(['backup-local', '--client', 'beta', '--quiet', data], localEnv));
    } finally {
      fs.rmSync(path.join(data, 'new.txt'));
    }
    const update = await haul(['repo', 'copy', '--from', local, '--to', s3('copy'), '--json', '--quiet'], localEnv);
    expectOk(update);
    const updated = JSON.parse(update.stdout) as { objects: { keys: number; packs: number; index: number; snapshots: number; config: number }; skipped: number };
    const now = repositoryFiles(local);
    expect(updated.objects.snapshots).toBe(2);
    // Everything of the first copy is skipped but the config, which is always written (last).
    expect(updated.skipped).toBe(files.size - 1);
    const o = updated.objects;
    expect(o.keys + o.packs + o.index + o.snapshots + o.config).toBe(now.size);
    expectOk(await haul(['check', '--read-data', '--quiet'], envFor(s3('copy'))));

    // A copy onto another repository is refused before anything is written.
    const other = await haul(['repo', 'copy', '--from', local, '--to', s3('roundtrip'), '--quiet'], localEnv);
    expect(other.status).toBe(1);
    expect(other.stderr).toBe(`haul: error: ${s3('roundtrip')} already holds another repository. Copy to a new directory or bucket prefix.\n`);
  }, timeoutMs);

  it('leaves the repository consistent when uploads are cut mid-way, says so, and the next run completes', async () => {
    const direct = envFor(s3('cut'));
    const viaProxy = envFor(s3('cut', proxy.endpoint), { HAUL_S3_MAX_ATTEMPTS: '3' });
    expectOk(await haul(['init', '--quiet'], direct));
    // Small requests (listings, locks, index files) pass; any connection carrying a pack part is reset.
    proxy.cutAfter(1024 * 1024);
    let failed: HaulResult;
    try {
      failed = await haul(['backup-local', '--client', 'gamma', '--quiet', data], viaProxy);
    } finally {
      proxy.cutAfter(undefined);
    }
    expect(proxy.cuts).toBeGreaterThanOrEqual(3);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(
      new RegExp(`^haul: error: cannot store packs/[0-9a-f]{64} in ${s3('cut', proxy.endpoint).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the connection to the S3 endpoint ${proxy.endpoint} was lost \\(\\w+: [^)]*\\) after 3 attempts\\. Check the endpoint in the repository location, the network and the object store\\. Nothing already stored was lost; a backup run again reuses what arrived\\.\\n$`),
    );
    const snapshots = await haul(['snapshots', '--json', '--quiet'], direct);
    expectOk(snapshots);
    expect(JSON.parse(snapshots.stdout)).toEqual([]);
    expectOk(await haul(['check', '--read-data', '--quiet'], direct));

    expectOk(await haul(['backup-local', '--client', 'gamma', '--quiet', data], viaProxy));
    expectOk(await haul(['check', '--read-data', '--quiet'], direct));
    const restored = path.join(tmp.dir, 'restored-after-cut');
    expectOk(await haul(['restore', `latest:${data}`, '--target', restored, '--quiet'], direct));
    expectSameTree(restored, data);
  }, timeoutMs);

  it('names a missing bucket and says how to create it', async () => {
    const location = s3('repo', server.endpoint, 'no-such-bucket');
    const r = await haul(['init', '--quiet'], envFor(location));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`haul: error: cannot list ${location}: the bucket "no-such-bucket" does not exist at ${server.endpoint}. Create it (for example \`aws s3 mb s3://no-such-bucket\` or \`mc mb ALIAS/no-such-bucket\`), or correct the bucket in the repository location.\n`);
    const snaps = await haul(['snapshots', '--quiet'], envFor(location));
    expect(snaps.status).toBe(1);
    expect(snaps.stderr).toContain('the bucket "no-such-bucket" does not exist');
  }, timeoutMs);

  it('says the credentials were refused', async () => {
    // s3rver checks the access key ID but not SigV4 signatures, so an unknown key ID stands in
    // for wrong credentials here (a real store answers SignatureDoesNotMatch, handled the same).
    const location = s3('auth');
    const r = await haul(['init', '--quiet'], envFor(location, { AWS_ACCESS_KEY_ID: 'NOT-A-KEY' }));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`haul: error: cannot list ${location}: the object store at ${server.endpoint} refused the credentials (InvalidAccessKeyId). Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that this key may read, write and delete in the bucket "${bucket}".\n`);
  }, timeoutMs);

  it('gives up on a throttling store after bounded retries, and says what to do', async () => {
    // A real HTTP server answering every request as S3 does when it throttles (no s3rver option makes it throttle).
    let requests = 0;
    const slow = http.createServer((_req, res) => {
      requests++;
      res.writeHead(503, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
      const location = s3('throttled', endpoint);
      const r = await haul(['snapshots', '--quiet'], envFor(location, { HAUL_S3_MAX_ATTEMPTS: '3' }));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^haul: error: cannot (stat config\/config in|list) s3:http:\/\/127\.0\.0\.1:\d+\/haul-test\/throttled: the object store kept throttling requests \(\w+\) after 3 attempts\. Run fewer jobs at once \(the daemon's maxConcurrentJobs\) or try again later\. Nothing already stored was lost; a backup run again reuses what arrived\.\n$/);
      expect(requests).toBe(3);
    } finally {
      slow.close();
    }
  }, timeoutMs);

  it('says the endpoint cannot be reached', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const location = s3('nowhere', endpoint);
    const r = await haul(['snapshots', '--quiet'], envFor(location, { HAUL_S3_MAX_ATTEMPTS: '2' }));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`haul: error: cannot stat config/config in ${location}: cannot reach the S3 endpoint ${endpoint} (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${endpoint.split(':')[2]}) after 2 attempts. Check the endpoint in the repository location, the network and the object store. Nothing already stored was lost; a backup run again reuses what arrived.\n`);
  }, timeoutMs);
});
