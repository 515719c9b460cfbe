// One restore onto a client, end to end: resolve the path in the snapshot, connect out over SSH
// (host key pinned), make sure the client has the right probe, run it in restore mode and stream
// the entries to it.
import { HaulError, isHaulError } from '../../shared/errors.js';
import { restoreTargetExitStatus } from '../../shared/probe-protocol.js';
import type { ClientConfig } from '../clients/client-config.js';
import { isRestoreTarget, resolveRestoreSelection, runClientRestore, type ClientRestoreLimits, type ClientRestoreProgress, type ClientRestoreResult } from '../restorer/client-restore.js';
import type { Repository } from '../repository/repository.js';
import type { StoredSnapshot } from '../repository/snapshot.js';
import { installAndStartProbe } from '../session/probe-process.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { lockRepository } from '../repository/lock.js';
import type { ConnectTimeouts } from '../session/ssh-connection.js';
import { connectToRegisteredClient, type PinHostKey } from './client-connection.js';

export interface RestoreToClientJobOptions {
  repo: Repository;
  snapshot: StoredSnapshot;
  /** The path in the snapshot (`/` for all of it). */
  subpath: string;
  /** The client the files go to (the snapshot's own, or another). */
  client: ClientConfig;
  /** Records the host key pinned on first contact (the caller's client store). */
  pinHostKey: PinHostKey;
  identity: ServerIdentity;
  /** Where the built probe binaries are (probe/dist). */
  probeDir: string;
  /** A directory on the client; without it, everything goes back to its original path. */
  target?: string;
  overwrite?: boolean;
  limits?: Partial<ClientRestoreLimits>;
  onProgress?: (p: ClientRestoreProgress) => void;
  onLog?: (line: string) => void;
  timeouts?: ConnectTimeouts;
  /** Aborting stops the restore: the SSH connection is closed and the job throws the signal's reason. */
  signal?: AbortSignal;
}

export interface RestoreToClientResult extends ClientRestoreResult {
  client: string;
  target: string;
}

export async function runRestoreToClientJob(options: RestoreToClientJobOptions): Promise<RestoreToClientResult> {
  // Shared: prune must not delete packs this restore is reading.
  const lock = await lockRepository(options.repo, 'shared', { purpose: `restore onto ${options.client.name}` });
  try {
    return await restoreToClient(options);
  } finally {
    await lock.release();
  }
}

async function restoreToClient(options: RestoreToClientJobOptions): Promise<RestoreToClientResult> {
  const { client } = options;
  const log = (line: string) => options.onLog?.(line);
  const target = options.target ?? '/';
  if (!isRestoreTarget(target)) {
    throw new HaulError('InvalidArgument', `the restore target ${JSON.stringify(target)} is not an absolute, normalised path on the client (like /srv/restore).`);
  }
  // A wrong path fails here, before anything connects.
  const selection = await resolveRestoreSelection(options.repo, options.snapshot, options.subpath);
  await options.repo.loadIndex();
  const { signal } = options;
  const stopped = () => (isHaulError(signal?.reason) ? signal.reason : new HaulError('JobCancelled', `the restore onto ${client.name} was cancelled; what was written on the client so far stays there.`));
  if (signal?.aborted) throw stopped();
  const conn = await connectToRegisteredClient(client, options.pinHostKey, options.identity, log, options.timeouts);
  // Closing the connection makes every step still waiting on the probe fail at once.
  const onAbort = () => void conn.close();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted) throw stopped();
    const running = await installAndStartProbe(conn, options.probeDir, '--restore', log);
    let result: ClientRestoreResult;
    try {
      result = await runClientRestore(options.repo, running.transport, selection, {
        target,
        originalPaths: options.target === undefined,
        overwrite: Boolean(options.overwrite),
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        onLog: log,
      });
    } catch (err) {
      const exit = await running.exitAfterFailure();
      const noExec = running.execFailure(exit);
      if (noExec) throw noExec;
      if (exit?.code === restoreTargetExitStatus) {
        const said = running.diagnostics.lastLines().at(-1)?.replace(/^haul-probe: /, '') ?? 'the probe cannot open or create the target';
        throw new HaulError('ProbeFailed', `${conn.label}: ${said}. Nothing was restored; choose another target, or fix the path on the client.`, { cause: err });
      }
      const last = running.diagnostics.lastLines().at(-1);
      if (last && isHaulError(err, 'ProbeFailed')) throw new HaulError('ProbeFailed', `${err.message} The probe said: ${JSON.stringify(last)}`, { cause: err });
      throw err;
    }
    await running.finish('restore');
    return { ...result, client: client.name, target };
  } catch (err) {
    if (signal?.aborted) throw stopped();
    if (err instanceof HaulError) throw err;
    throw new HaulError('ProbeFailed', `restore onto ${client.name} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await conn.close();
  }
}
