// One pull backup of one client, end to end: connect out over SSH (host key pinned), make sure
// the client has the right probe, run it, and feed its stream to the backup session.
import { HaulError } from '../../shared/errors.js';
import type { ClientConfig } from '../clients/client-config.js';
import type { Repository } from '../repository/repository.js';
import { lockRepository } from '../repository/lock.js';
import { installAndStartProbe } from '../session/probe-process.js';
import { runPullBackup, type PullBackupResult, type PullProgress, type SessionLimits } from '../session/probe-session.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { connectToRegisteredClient } from './client-connection.js';

export interface PullBackupJobOptions {
  repo: Repository;
  client: ClientConfig;
  /** Records the host key pinned on first contact (the caller's client store). */
  pinHostKey: (fingerprint: string) => void | Promise<void>;
  identity: ServerIdentity;
  /** Where the built probe binaries are (probe/dist). */
  probeDir: string;
  tags?: string[];
  limits?: Partial<SessionLimits>;
  onProgress?: (p: PullProgress) => void;
  onLog?: (line: string) => void;
  /** How long to wait while prune holds the repository (default: fail at once). */
  lockWaitMs?: number;
}

export async function runPullBackupJob(options: PullBackupJobOptions): Promise<PullBackupResult> {
  const { client } = options;
  // Shared with other backups; keeps prune from deleting data this backup is about to reference.
  const lock = await lockRepository(options.repo, 'shared', { purpose: `backup of ${client.name}`, waitMs: options.lockWaitMs ?? 0 });
  try {
    return await pullBackup(options);
  } finally {
    await lock.release();
  }
}

async function pullBackup(options: PullBackupJobOptions): Promise<PullBackupResult> {
  const { client } = options;
  const log = (line: string) => options.onLog?.(line);
  const conn = await connectToRegisteredClient(client, options.pinHostKey, options.identity, log);
  try {
    const running = await installAndStartProbe(conn, options.probeDir, '--serve', log);
    let result: PullBackupResult;
    try {
      result = await runPullBackup(options.repo, running.transport, {
        client: client.name,
        hostname: client.host,
        paths: client.paths,
        excludes: client.excludes,
        oneFileSystem: client.oneFileSystem,
        ...(options.tags ? { tags: options.tags } : {}),
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        onLog: log,
      });
    } catch (err) {
      throw running.execFailure(await running.exitAfterFailure()) ?? err;
    }
    // The snapshot is saved; the probe gets EOF and a few seconds to exit before it is stopped.
    await running.finish('backup');
    return result;
  } catch (err) {
    if (err instanceof HaulError) throw err;
    throw new HaulError('ProbeFailed', `backup of ${client.name} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await conn.close();
  }
}
