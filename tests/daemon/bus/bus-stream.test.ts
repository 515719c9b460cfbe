// Streamed replies (download-snapshot) over a real ZeroMQ bus, with credit-based flow control:
// the bytes arrive exactly, a slow reader holds the daemon's source back instead of making it
// buffer, and a reader that cancels, breaks off or vanishes stops the source.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusClient } from '../../../shared/bus/bus-client.js';
import { BusLimits } from '../../../shared/bus/messages.js';
import { HaulError } from '../../../shared/errors.js';
import { LEVEL, startTestBus, until, type TestBus } from '../../helpers/bus.js';
import { tempDir } from '../../helpers/cli.js';
import { failure } from '../../helpers/errors.js';
import { pseudoRandom } from '../../helpers/fixtures.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What the daemon's tar writer would be: a source of `total` bytes in 1 MiB pieces that records how far it was read. */
class TracedSource {
  produced = 0;
  closed = false;
  constructor(readonly data: Buffer, private readonly failAt?: number) {}
  async *chunks(): AsyncGenerator<Buffer> {
    try {
      for (let offset = 0; offset < this.data.byteLength; offset += MiB) {
        if (this.failAt !== undefined && offset >= this.failAt) throw new HaulError('BlobCorrupt', 'blob 1234abcd in pack 5678ef01 is damaged; run `haul check --read-data`.');
        const piece = this.data.subarray(offset, offset + MiB);
        this.produced += piece.byteLength;
        yield piece;
      }
    } finally {
      this.closed = true;
    }
  }
}

describe('streamed replies', () => {
  let bus: TestBus;
  let client: BusClient;
  let source: TracedSource;
  const data = pseudoRandom('stream', 24 * MiB + 12345);
  beforeAll(async () => {
    bus = await startTestBus({ streamIdleTimeoutMs: 400, maxStreams: 2 });
    bus.server.handleStream('download-snapshot', async ({ snapshot, path: p }) => {
      if (snapshot === 'ffff') throw new HaulError('SnapshotNotFound', `no snapshot has an ID starting with ${snapshot}; \`haul snapshots\` lists them.`);
      return { meta: { name: `${snapshot}${p.replaceAll('/', '_')}.tar`, contentType: 'application/x-tar' }, chunks: source.chunks() };
    });
    client = await BusClient.connect({ endpoint: bus.server.endpoints!.ipc.commands });
  });
  afterAll(async () => {
    client?.close();
    await bus?.stop();
  });

  it('delivers 24 MiB byte for byte to a slow reader, never reading the source more than the credit window ahead', async () => {
    source = new TracedSource(data);
    const stream = await client.stream('download-snapshot', { snapshot: 'abcd1234', path: '/srv/www' }, { credit: 4 });
    expect(stream.meta).toEqual({ name: 'abcd1234_srv_www.tar', contentType: 'application/x-tar' });
    const received: Buffer[] = [];
    let consumed = 0;
    let maxAhead = 0;
    for await (const chunk of stream) {
      received.push(chunk);
      consumed += chunk.byteLength;
      maxAhead = Math.max(maxAhead, source.produced - consumed);
      expect(chunk.byteLength).toBeLessThanOrEqual(BusLimits.maxStreamChunkBytes);
      if (received.length % 8 === 0) await new Promise((r) => setTimeout(r, 5)); // a slow reader
    }
    const all = Buffer.concat(received);
    expect(all.byteLength).toBe(data.byteLength);
    expect(sha256(all)).toBe(sha256(data));
    expect(stream.totals).toEqual({ chunks: received.length, bytes: data.byteLength });
    expect(received.length).toBe(Math.ceil(MiB / BusLimits.maxStreamChunkBytes) * 24 + 1);
    // At most the 4 chunks of credit in flight and one 1 MiB source piece being cut: 2 MiB.
    expect(maxAhead).toBeLessThanOrEqual(4 * BusLimits.maxStreamChunkBytes + MiB);
    expect(source.closed).toBe(true);
  });

  it('pipes into a file through toReadable()', async () => {
    source = new TracedSource(data.subarray(0, 3 * MiB + 7));
    const tmp = tempDir('bus-stream');
    try {
      const file = path.join(tmp.dir, 'download.tar');
      const stream = await client.stream('download-snapshot', { snapshot: 'latest' });
      await pipeline(stream.toReadable(), fs.createWriteStream(file));
      expect(fs.readFileSync(file).equals(data.subarray(0, 3 * MiB + 7))).toBe(true);
    } finally {
      tmp.cleanup();
    }
  });

  it('a reader that stops reading holds the source at the credit window', async () => {
    source = new TracedSource(data);
    const stream = await client.stream('download-snapshot', { snapshot: 'abcd' }, { credit: 8 });
    await until(() => source.produced >= 2 * MiB);
    await new Promise((r) => setTimeout(r, 200));
    // 8 chunks of 256 KiB granted: two 1 MiB pieces read, nothing more while nobody reads.
    expect(source.produced).toBe(2 * MiB);
    await stream.cancel();
    await until(() => source.closed);
  });

  it('cancel and an early break stop the source on the daemon; both are logged there', async () => {
    source = new TracedSource(data);
    const stream = await client.stream('download-snapshot', { snapshot: 'abcd' });
    let n = 0;
    for await (const _chunk of stream) if (++n === 3) break;
    await until(() => source.closed);
    expect(source.produced).toBeLessThan(data.byteLength);
    await until(() => bus.log.at(LEVEL.info).some((m) => /^stream download-snapshot to ipc:[0-9a-f]+ stopped after \d+ chunks \(\d+ bytes\): the client cancelled it$/.test(m)));
  });

  it('a reader that vanishes without a word: the daemon stops the source after the idle timeout', async () => {
    source = new TracedSource(data);
    const other = await BusClient.connect({ endpoint: bus.server.endpoints!.ipc.commands });
    await other.stream('download-snapshot', { snapshot: 'abcd' }, { credit: 2 });
    await until(() => source.produced > 0);
    const started = Date.now();
    other.close();
    await until(() => source.closed, 3000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(source.produced).toBeLessThan(data.byteLength);
    expect(bus.log.at(LEVEL.info).some((m) => / stopped after \d+ chunks \(\d+ bytes\): (the client granted no credit for 0 s|Host unreachable)$/.test(m))).toBe(true);
  });

  it('a failing handler, or a source failing mid-stream, reaches the reader as a typed error', async () => {
    const notFound = await failure(client.stream('download-snapshot', { snapshot: 'ffff' }));
    expect(notFound.code).toBe('SnapshotNotFound');
    expect(notFound.message).toBe('no snapshot has an ID starting with ffff; `haul snapshots` lists them.');

    source = new TracedSource(data, 2 * MiB);
    const stream = await client.stream('download-snapshot', { snapshot: 'abcd' });
    let bytes = 0;
    const err = await failure((async () => {
      for await (const chunk of stream) bytes += chunk.byteLength;
    })());
    expect(bytes).toBe(2 * MiB);
    expect(err.code).toBe('BlobCorrupt');
    expect(err.message).toBe('blob 1234abcd in pack 5678ef01 is damaged; run `haul check --read-data`.');
  });

  it('more streams than allowed at once are answered DaemonBusy', async () => {
    source = new TracedSource(data);
    const a = await client.stream('download-snapshot', { snapshot: 'abcd' }, { credit: 1 });
    const b = await client.stream('download-snapshot', { snapshot: 'abcd' }, { credit: 1 });
    const c = await failure(client.stream('download-snapshot', { snapshot: 'abcd' }));
    expect(c.code).toBe('DaemonBusy');
    expect(c.message).toBe('the daemon is sending 2 streams already; try again when one has finished.');
    await a.cancel();
    await b.cancel();
  });
});
