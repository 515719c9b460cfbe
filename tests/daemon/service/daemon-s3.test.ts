// The daemon on a repository in an S3-compatible bucket (real s3rver): it opens the `s3:`
// location through open-storage like the CLI, runs a pull backup job over a real sshd into the
// bucket, and the CLI then restores it byte for byte from there.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haul, haulSync } from '../../helpers/cli.js';
import { createDaemonTestbed, fullRun, transitionsOf, type DaemonTestbed } from '../../helpers/daemon-testbed.js';
import { pseudoRandom } from '../../helpers/fixtures.js';
import { s3Credentials, startS3Server, type S3Server } from '../../helpers/s3.js';
import { sshdSkipReason } from '../../helpers/sshd.js';

const USER = 'haul-t-dmn-s3';
const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`the daemon on an S3 repository${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let bed: DaemonTestbed;
  let server: S3Server;
  let location: string;
  let env: Record<string, string>;
  const saved = { ...process.env };

  beforeAll(async () => {
    bed = await createDaemonTestbed('dmn-s3', [USER]);
    server = await startS3Server(path.join(bed.tmp, 's3rver'), ['daemon-repo']);
    location = `s3:${server.endpoint}/daemon-repo/haul`;
    const s3Env = { HAUL_S3_PATH_STYLE: '1', HAUL_S3_LISTING_DELAY_MS: '20', ...s3Credentials };
    // The in-process daemon's S3 client takes its credentials from the process environment.
    Object.assign(process.env, s3Env, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    env = { ...bed.env, HAUL_REPOSITORY: location, ...s3Env };
    expect(haulSync(['init', '--quiet'], env)).toMatchObject({ status: 0, stderr: '' });
  }, 180_000);
  afterAll(async () => {
    process.env = saved;
    await bed?.close();
    await server?.stop();
  });

  it('runs a pull backup job into the bucket, restorable byte for byte', async () => {
    const files = { 'a.bin': pseudoRandom('dmn-s3-a', 3 * 1024 * 1024), 'b.txt': Buffer.from('to the bucket\n') };
    const data = bed.writeData(USER, 'data', files);
    await bed.addClient('s3client', USER, data);
    const daemon = await bed.start({ repository: location });
    const job = await daemon.runNow('s3client');
    const [done] = await bed.waitForJobs((jobs) => jobs.length === 1 && ['succeeded', 'failed'].includes(jobs[0]!.state), 120_000);
    expect({ state: done!.state, message: done!.failureMessage }).toEqual({ state: 'succeeded', message: null });
    expect(await transitionsOf(bed.db, job.id)).toEqual(fullRun);

    const target = path.join(bed.tmp, 'restored');
    const r = await haul(['restore', `latest:${data}`, '--client', 's3client', '--target', target, '--quiet'], env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    for (const [name, bytes] of Object.entries(files)) expect(fs.readFileSync(path.join(target, name)).equals(bytes)).toBe(true);
  }, 240_000);
});
