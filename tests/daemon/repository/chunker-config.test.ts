// The chunker a repository names in its config, and what the server tells the probe: a new
// repository cuts at normalisation 1; one whose config predates the field keeps cutting at 2,
// so its files keep deduplicating against what it already holds.
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GearChunker, cutAll } from '../../../daemon/chunker/gear-chunker.js';
import { defaultChunker, parseConfig, type ChunkerParams } from '../../../daemon/repository/config.js';
import { Repository } from '../../../daemon/repository/repository.js';
import { runPullBackup } from '../../../daemon/session/probe-session.js';
import { LocalStorage } from '../../../daemon/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { FakeProbe, type StartMessages } from '../../helpers/fake-probe.js';
import { pseudoRandom } from '../../helpers/fixtures.js';

const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const KiB = 1024;
const MiB = 1024 * KiB;

describe('the repository chunker', () => {
  const tmp = tempDir('chunker-config');
  afterAll(() => tmp.cleanup());

  /** Creates a repository, opens it again from storage alone, and returns the BACKUP a probe gets from it. */
  async function startOf(name: string, chunker?: ChunkerParams): Promise<{ repo: Repository; start: StartMessages }> {
    const storage = new LocalStorage(path.join(tmp.dir, name));
    await Repository.init(storage, 'pw', { kdf, ...(chunker ? { chunker } : {}) });
    const repo = await Repository.open(storage, 'pw');
    const probe = new FakeProbe();
    const session = runPullBackup(repo, probe.transport, { client: 'alpha', hostname: 'alpha.example', paths: ['/data'] });
    probe.hello();
    const start = await probe.readStart();
    probe.walkDone();
    await probe.readNeeds();
    probe.done();
    await session;
    return { repo, start };
  }

  it('of a new repository is 256 KiB / 512 KiB / 4 MiB at normalisation 1, and the probe is told so', async () => {
    const { repo, start } = await startOf('new');
    expect(repo.config.chunker).toEqual({ algorithm: 'gear32-v1', minSize: 256 * KiB, avgSize: 512 * KiB, maxSize: 4 * MiB, normalization: 1 });
    expect(defaultChunker).toEqual(repo.config.chunker);
    expect({ min: start.min, avg: start.avg, max: start.max, normalization: start.normalization }).toEqual({ min: 256 * KiB, avg: 512 * KiB, max: 4 * MiB, normalization: 1 });
  });

  it('of a repository whose config names no normalisation (written before it existed) cuts at 2, on the server and in the probe', async () => {
    const old: ChunkerParams = { algorithm: 'gear32-v1', minSize: 256 * KiB, avgSize: MiB, maxSize: 4 * MiB };
    const { repo, start } = await startOf('old', old);
    expect(repo.config.chunker).toEqual(old);
    expect(start.normalization).toBe(2);
    expect(start.avg).toBe(MiB);
    // The server's own chunker (local backups) cuts as level 2 does, and not as level 1.
    const data = pseudoRandom('chunker-config', 24 * MiB);
    const key = Buffer.alloc(32, 7);
    const cut = (p: ChunkerParams) => cutAll(new GearChunker(key, p), data);
    const asRead = cut(repo.config.chunker);
    expect(asRead.length).toBeGreaterThan(10);
    expect(asRead).toEqual(cut({ ...old, normalization: 2 }));
    expect(asRead).not.toEqual(cut({ ...old, normalization: 1 }));
  });

  it('refuses a config whose normalisation this version does not know, saying to upgrade', () => {
    const config = (normalization: unknown) => Buffer.from(JSON.stringify({
      format: 'haul-repository-v1', blobId: 'hmac-sha256(sha256)', cipher: 'aes-256-gcm+hkdf-sha256', compression: 'zstd',
      chunker: { algorithm: 'gear32-v1', minSize: 1024, avgSize: 4096, maxSize: 16384, normalization },
    }));
    for (const bad of [4, -1, 1.5, '1', null]) {
      expect(() => parseConfig(config(bad))).toThrow(`the repository's chunker normalisation ${JSON.stringify(bad)} is not one this version of Haul knows (0 to 3). Upgrade Haul.`);
    }
    for (const good of [0, 3, undefined]) expect(parseConfig(config(good)).chunker.normalization).toBe(good);
    // The chunker itself refuses what a config could not hold.
    const params: ChunkerParams = { algorithm: 'gear32-v1', minSize: 1024, avgSize: 4096, maxSize: 16384 };
    for (const bad of [4, -1, 0.5]) expect(() => new GearChunker(Buffer.alloc(32), { ...params, normalization: bad })).toThrow('chunker: normalization must be an integer from 0 to 3');
  });
});
