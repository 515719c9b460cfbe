// One pull backup of one client, end to end: connect out over SSH (host key pinned), make sure
// the client has the right probe, run it, and feed its stream to the backup session.
import { Duplex } from 'node:stream';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { JobPhase } from '../../shared/jobs.js';
import type { ClientConfig } from '../clients/client-config.js';
import { lockRepository, type RepositoryLock } from '../repository/lock.js';
import type { Repository } from '../repository/repository.js';
import { loadPreviousSnapshot, type PreviousSnapshot } from '../session/previous-snapshot.js';
import { installAndStartProbe, type RunningProbe } from '../session/probe-process.js';
import { runPullBackup, type PullBackupResult, type PullProgress, type SessionLimits } from '../session/probe-session.js';
import type { ServerIdentity } from '../session/server-identity.js';
import type { ConnectTimeouts, SshConnection } from '../session/ssh-connection.js';
import { connectToRegisteredClient, type PinHostKey } from './client-connection.js';

export interface PullBackupJobOptions {
  /**
   * The repository, or the promise of it while its key is still being unlocked: connecting,
   * pinning and checking the probe do not need it, so the CLI runs them while Argon2id works in
   * the thread pool. Once open it is locked and the client's previous snapshot is loaded, still
   * while connecting; the probe starts when both are done. If it fails, the connection is closed
   * and nothing else happens.
   */
  repo: Repository | Promise<Repository>;
  client: ClientConfig;
  /** Records the host key pinned on first contact (the caller's client store). */
  pinHostKey: PinHostKey;
  identity: ServerIdentity;
  /** Where the built probe binaries are (probe/dist). */
  probeDir: string;
  tags?: string[];
  limits?: Partial<SessionLimits>;
  timeouts?: ConnectTimeouts;
  onProgress?: (p: PullProgress) => void;
  onLog?: (line: string) => void;
  /** Called as the job enters each phase, in order: connecting, pushing-probe, transferring, finalizing. */
  onPhase?: (phase: JobPhase) => void;
  /**
   * Aborting stops the job: the probe is stopped, the packs already written are indexed, no
   * snapshot is written, and the job throws the signal's reason. Once the probe has sent
   * everything (finalizing), the snapshot is completed instead: that is only a few writes.
   */
  signal?: AbortSignal;
  /** How long to wait while prune holds the repository (default: fail at once). */
  lockWaitMs?: number;
  /** Where the digests of clients' latest snapshots are cached (`<state>/cache/previous`); none: read the trees. */
  previousCacheDir?: string;
  /** The caller writes the new digest after the job (the result's writeDigest; see PullBackupOptions). */
  writeDigestLater?: boolean;
}

function abortReason(signal: AbortSignal): HaulError {
  return isHaulError(signal.reason) ? signal.reason : new HaulError('JobCancelled', 'the job was cancelled before it finished; nothing was saved as a snapshot, what arrived is kept for the next run.');
}

/** `work`, unless the signal fires first; then whatever `work` still yields is handed to `discard`. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, discard: (value: T) => void): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(abortReason(signal));
      work.then(discard, () => undefined);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** A probe whose stream broke: was it the probe, or did the whole SSH connection go? */
async function connectionLost(conn: SshConnection, err: HaulError): Promise<HaulError | undefined> {
  const alive = await conn.run('true', { timeoutMs: 5_000 }).then(() => true, () => false);
  if (alive) return undefined;
  return new HaulError('ConnectionLost', `The SSH connection to ${conn.label} was lost during the backup (${err.message.replace(/\. Run the backup again.*$/, '')}). No snapshot was written; what arrived is kept and the next run reuses it. If it keeps happening, check the network and the client's sshd log.`, { cause: err });
}

export async function runPullBackupJob(options: PullBackupJobOptions): Promise<PullBackupResult> {
  if (options.signal?.aborted) throw abortReason(options.signal);
  const lockFor = (repo: Repository) => lockRepository(repo, 'shared', { purpose: `backup of ${options.client.name}`, waitMs: options.lockWaitMs ?? 0 });
  if (!(options.repo instanceof Promise)) {
    // An open repository (the daemon's) is locked before connecting: a job that waits for prune
    // waits in the queue, holding no connection to its client. Shared with other backups; keeps
    // prune from deleting data this backup is about to reference.
    const lock = await lockFor(options.repo);
    try {
      return await pullBackup(options, Promise.resolve(options.repo));
    } finally {
      await lock.release();
    }
  }
  // Still being unlocked (the CLI): connect meanwhile, lock once it is open.
  return pullBackup(options, options.repo, lockFor);
}

async function pullBackup(options: PullBackupJobOptions, repoReady: Promise<Repository>, lockFor?: (repo: Repository) => Promise<RepositoryLock>): Promise<PullBackupResult> {
  const log = (line: string) => options.onLog?.(line);
  let lock: RepositoryLock | undefined;
  // The repository's side runs while the job connects: the lock (the CLI's, once its key is
  // unlocked) and the client's previous snapshot, which the probe needs first of all.
  const prepared = repoReady.then(async (repo) => {
    if (lockFor) lock = await lockFor(repo);
    return { repo, previous: await loadPreviousSnapshot(repo, options.client.name, options.previousCacheDir, log) };
  });
  // Awaited once connected; a failure meanwhile (a wrong passphrase) must not count as unhandled.
  prepared.catch(() => undefined);
  try {
    return await connectedBackup(options, prepared, log);
  } finally {
    // A connection that failed first leaves the preparation running: the lock is released after it.
    await prepared.catch(() => undefined);
    await lock?.release();
  }
}

async function connectedBackup(options: PullBackupJobOptions, prepared: Promise<{ repo: Repository; previous: PreviousSnapshot }>, log: (line: string) => void): Promise<PullBackupResult> {
  const { client, signal } = options;
  options.onPhase?.('connecting');
  const conn = await untilAborted(
    connectToRegisteredClient(client, options.pinHostKey, options.identity, log, options.timeouts),
    signal,
    (late) => void late.close(),
  );
  let running: RunningProbe | undefined;
  let finalizing = false;
  // Stopping the probe and closing the connection makes every step still waiting on it fail at once.
  const onAbort = () => {
    if (finalizing) return;
    if (running) {
      running.proc.stop();
      // Node's destroy, with an error: ssh2's own Channel.destroy() only asks the client to close
      // the channel, so a read or a write waiting for 'drain' would wait on until the client's
      // answer came through (seconds behind the data on a slow link, never on a stalled one).
      Duplex.prototype.destroy.call(running.proc.channel, new Error('the job was stopped'));
    }
    void conn.close();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    options.onPhase?.('pushing-probe');
    // Started before the repository side is ready: the probe waits for BACKUP.
    running = await installAndStartProbe(conn, options.probeDir, '--serve', log);
    const { repo, previous } = await untilAborted(prepared, signal, () => undefined);
    options.onPhase?.('transferring');
    // Stopped while the probe was starting: the channel is torn down here, before a session
    // listens to it (a stream destroyed before anyone listened never tells them).
    if (signal?.aborted) {
      onAbort();
      throw abortReason(signal);
    }
    const probeRun = running;
    let result: PullBackupResult;
    try {
      result = await runPullBackup(repo, probeRun.transport, {
        client: client.name,
        hostname: client.host,
        paths: client.paths,
        excludes: client.excludes,
        oneFileSystem: client.oneFileSystem,
        ...(options.tags ? { tags: options.tags } : {}),
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        onLog: log,
        ...(options.previousCacheDir ? { previousCacheDir: options.previousCacheDir } : {}),
        previous,
        ...(options.writeDigestLater ? { writeDigestLater: true } : {}),
        onFinalizing: () => {
          finalizing = true;
          options.onPhase?.('finalizing');
        },
      });
    } catch (err) {
      if (signal?.aborted && !finalizing) throw err;
      throw probeRun.execFailure(await probeRun.exitAfterFailure()) ?? err;
    }
    // The snapshot is saved; the probe gets EOF and a few seconds to exit before it is stopped.
    await probeRun.finish('backup');
    return result;
  } catch (err) {
    if (signal?.aborted && !finalizing) throw abortReason(signal);
    if (isHaulError(err, 'ProbeFailed') && !finalizing) throw (await connectionLost(conn, err)) ?? err;
    if (err instanceof HaulError) throw err;
    throw new HaulError('ProbeFailed', `backup of ${client.name} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await conn.close();
  }
}
