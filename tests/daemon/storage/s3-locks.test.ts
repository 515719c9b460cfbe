// Repository locks on an object store that lists new objects late. The objects live in a real
// S3-compatible server (s3rver); the late listing is simulated on top of it, because no store
// that runs here (s3rver, MinIO) lists late, yet some S3-compatible stores do.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockRepository } from '../../../daemon/repository/lock.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { S3Storage, parseS3Location, s3OptionsFromEnv } from '../../../daemon/storage/s3.js';
import type { ByteRange, ObjectKind, Storage, StoredObject } from '../../../daemon/storage/storage.js';
import { tempDir } from '../../helpers/cli.js';
import { s3Credentials, startS3Server, type S3Server } from '../../helpers/s3.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const lagMs = 400;

/** A bucket whose listings omit objects for `lagMs` after they were written (by any process sharing `written`). */
class LateListingStorage implements Storage {
  constructor(
    private readonly inner: S3Storage,
    private readonly written: Map<string, number>,
    readonly listingDelayMs: number,
  ) {}
  get location(): string {
    return this.inner.location;
  }
  isInitialised(): Promise<boolean> {
    return this.inner.isInitialised();
  }
  create(): Promise<void> {
    return this.inner.create();
  }
  async *list(kind: ObjectKind): AsyncIterable<StoredObject> {
    for await (const o of this.inner.list(kind)) {
      if (Date.now() - (this.written.get(`${kind}/${o.name}`) ?? 0) >= lagMs) yield o;
    }
  }
  read(kind: ObjectKind, name: string, range?: ByteRange): Promise<Buffer> {
    return this.inner.read(kind, name, range);
  }
  async write(kind: ObjectKind, name: string, data: Buffer | readonly Buffer[]): Promise<void> {
    await this.inner.write(kind, name, data);
    if (!this.written.has(`${kind}/${name}`)) this.written.set(`${kind}/${name}`, Date.now());
  }
  delete(kind: ObjectKind, name: string): Promise<void> {
    return this.inner.delete(kind, name);
  }
  stat(kind: ObjectKind, name: string): Promise<StoredObject | undefined> {
    return this.inner.stat(kind, name);
  }
}

describe('repository locks on a store that lists late', () => {
  const tmp = tempDir('s3-locks');
  let server: S3Server;
  const saved = { ...process.env };

  beforeAll(async () => {
    Object.assign(process.env, s3Credentials, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    server = await startS3Server(path.join(tmp.dir, 's3rver'), ['locks-test']);
  }, 60_000);
  afterAll(async () => {
    process.env = saved;
    await server?.stop();
    tmp.cleanup();
  });

  /** Two exclusive lockers race; each holds its lock a while. Returns their [start, end] times. */
  async function race(prefix: string, listingDelayMs: number): Promise<[number, number][]> {
    const s3 = new S3Storage(parseS3Location(`s3:${server.endpoint}/locks-test/${prefix}`), s3OptionsFromEnv({ HAUL_S3_PATH_STYLE: '1' }));
    const written = new Map<string, number>();
    const repo = await Repository.init(new LateListingStorage(s3, written, listingDelayMs), 'pw', { kdf });
    const holders = [repo, repo.reopen()].map(async (r) => {
      const lock = await lockRepository(r, 'exclusive', { purpose: 'prune', waitMs: 30_000 });
      const start = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const end = Date.now();
      await lock.release();
      return [start, end] as [number, number];
    });
    return Promise.all(holders);
  }

  const overlap = ([a, b]: [number, number][]): boolean => a![0] < b![1] && b![0] < a![1];

  it('never holds two exclusive locks at once when it re-lists after the listing delay', async () => {
    const held = await race('settled', 2 * lagMs);
    expect(overlap(held)).toBe(false);
  }, 120_000);

  it('(the hazard the delay prevents) trusting the first listing lets both lockers in', async () => {
    const held = await race('unsettled', 0);
    expect(overlap(held)).toBe(true);
  }, 120_000);
});
