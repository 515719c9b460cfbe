// One pull backup of one client, end to end: connect out over SSH (host key pinned), make sure
// the client has the right probe, run it, and feed its stream to the backup session.
import { HaulError } from '../../shared/errors.js';
import type { ClientConfig } from '../clients/client-config.js';
import type { Repository } from '../repository/repository.js';
import { ensureProbe, probeCommand } from '../session/probe-installer.js';
import { runPullBackup, type PullBackupResult, type PullProgress, type SessionLimits } from '../session/probe-session.js';
import type { ServerIdentity } from '../session/server-identity.js';
import { connectToClient } from '../session/ssh-connection.js';

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
}

export async function runPullBackupJob(options: PullBackupJobOptions): Promise<PullBackupResult> {
  const { client } = options;
  const log = (line: string) => options.onLog?.(line);
  const conn = await connectToClient({
    host: client.host,
    port: client.port,
    user: client.user,
    identity: options.identity,
    clientName: client.name,
    ...(client.hostKey ? { pinnedHostKey: client.hostKey } : {}),
  });
  try {
    if (conn.firstContact) {
      // Trust on first use: from now on any other key fails the job (invariant 4).
      await options.pinHostKey(conn.hostKeyFingerprint);
      log(`first contact with ${conn.label}: pinned its ${conn.hostKeyType} host key ${conn.hostKeyFingerprint}`);
    }
    const probe = await ensureProbe(conn, { probeDir: options.probeDir });
    log(probe.uploaded ? `uploaded the probe (${probe.arch}, sha256 ${probe.sha256.slice(0, 16)}) to ${probe.path}` : `the client's cached probe is current (${probe.arch})`);
    // `exec` in the remote shell: stopping the channel's process must stop the probe itself.
    const proc = await conn.exec(probeCommand(probe, ['--serve']));
    const result = await runPullBackup(options.repo, { input: proc.stdin, output: proc.stdout, diagnostics: proc.stderr, stop: () => proc.stop() }, {
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
    // The snapshot is saved; the probe gets EOF and a few seconds to exit before it is stopped.
    proc.stdin.end();
    const exit = await Promise.race([proc.exit, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref())]);
    if (!exit) {
      log('warning: the probe did not exit within 10 s after the backup; it was stopped');
      proc.stop();
    } else if (exit.code !== 0) {
      log(`warning: the probe exited with ${exit.code ?? exit.signal} after the snapshot was saved`);
    }
    return result;
  } catch (err) {
    if (err instanceof HaulError) throw err;
    throw new HaulError('ProbeFailed', `backup of ${client.name} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await conn.close();
  }
}

