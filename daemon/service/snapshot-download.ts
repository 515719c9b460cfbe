// The bus's `download-snapshot`: a snapshot, or a path in it, as a tar stream (the same writer
// as `haul dump`, daemon/restorer/tar-dump.ts). The tar is produced only as fast as the bus
// client takes it: the dump writes into a small buffer that the reply stream drains against the
// client's credit. The repository is held with a shared lock (prune waits) until the stream
// ends, is cancelled, or the client vanishes.
import { PassThrough } from 'node:stream';
import type { StreamMeta, StreamRequest } from '../../shared/bus/messages.js';
import { HaulError } from '../../shared/errors.js';
import { lockRepository, type RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { shortId } from '../repository/snapshot.js';
import { resolvePath } from '../restorer/restorer.js';
import { TarDump } from '../restorer/tar-dump.js';

export interface SnapshotDownload {
  meta: StreamMeta<'download-snapshot'>;
  chunks: AsyncIterable<Uint8Array>;
}

const bufferBytes = 1024 * 1024;

/** `web1-1a2b3c4d.tar`, or `web1-1a2b3c4d-www.tar` for a path: a file name a browser can save. */
function downloadName(client: string, snapshotId: string, subpath: string): string {
  const last = subpath.split('/').filter(Boolean).at(-1);
  const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100);
  return `${safe(client)}-${shortId(snapshotId)}${last ? `-${safe(last)}` : ''}.tar`;
}

export async function openSnapshotDownload(repository: Repository, params: StreamRequest<'download-snapshot'>): Promise<SnapshotDownload> {
  const repo = repository.reopen();
  let lock: RepositoryLock | undefined;
  const release = async () => {
    await lock?.release();
    await repo.close();
  };
  let snapshot;
  try {
    snapshot = await repo.findSnapshot(params.snapshot, params.client);
    // A wrong path fails the request before the stream starts.
    await resolvePath(repo, snapshot, params.path);
    lock = await lockRepository(repo, 'shared', { purpose: `download of snapshot ${shortId(snapshot.id)}` });
  } catch (err) {
    await release();
    throw err;
  }
  const out = new PassThrough({ highWaterMark: bufferBytes });
  // Errors reach the reader through the iterator; this keeps one with no reader from being uncaught.
  out.on('error', () => undefined);
  const dumped = new TarDump(repo, out).dump(snapshot, params.path).then(
    () => void out.end(),
    (err: unknown) => void out.destroy(err as Error),
  ).finally(release);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of out) yield chunk as Buffer;
    } finally {
      if (!out.readableEnded) out.destroy(new HaulError('StreamAborted', 'the download was stopped'));
      await dumped;
    }
  }
  return { meta: { name: downloadName(snapshot.client, snapshot.id, params.path), contentType: 'application/x-tar' }, chunks: chunks() };
}
