// What a job of any kind gets from the job runner: its row, its client, its own repository
// handle, the stop signal, and the ways to report (log lines, phases, progress). Each kind
// (backup-job.ts, restore-job.ts, …) turns these into its work and returns how it ended.
import type { Client } from '../../prisma/generated/sqlite/client.js';
import type { JobLogLevel, JobPhase } from '../../shared/jobs.js';
import type { PrismaClient } from '../database/open-database.js';
import type { Repository } from '../repository/repository.js';
import type { ServerIdentity } from '../session/server-identity.js';
import type { JobCounters, JobEnd, JobRecord } from './job-store.js';

/** A running job's counters as the bus and the console show them. */
export interface JobProgress {
  filesDone: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  /** Bytes the job will have handled when done, when known (for an ETA). */
  totalBytes?: number;
  /** The path being read or written, raw (the bus escapes it for display). */
  currentPath?: string;
}

export interface JobContext {
  job: JobRecord;
  /** The job's client row: the one backed up, or the one restored onto. */
  client: Client;
  /** The job's own handle on the repository (closed by the runner). */
  repo: Repository;
  prisma: PrismaClient;
  identity: ServerIdentity;
  probeDir: string;
  /** Cached digests of clients' latest snapshots (daemon/session/previous-cache.ts). */
  previousCacheDir?: string;
  connectTimeoutMs: number;
  stallMs: number;
  /** How long a backup waits for prune to release the repository. */
  lockWaitMs: number;
  /** Aborted on cancel, daemon stop or the job's time limit; its reason says which. */
  signal: AbortSignal;
  log(line: string, level?: JobLogLevel): void;
  phase(state: JobPhase): void;
  progress(progress: JobProgress): void;
  /** Records the host key seen on first contact in the client's row. */
  pinHostKey(fingerprint: string): Promise<void>;
}

/**
 * Work that follows a succeeded job but is not part of it (writing the digest the next backup
 * reads): the runner starts it once the job's end is recorded and published. It must not reject;
 * what goes wrong is handed to `warn`, for the daemon's log (the job's own log is sealed by then).
 */
export type AfterJob = (warn: (line: string) => void) => Promise<void>;

/** How a job ended when nothing was thrown (a throw becomes failed or cancelled in the runner). */
export type JobOutcome = (Extract<JobEnd, { state: 'succeeded' }> & { afterEnd?: AfterJob }) | Extract<JobEnd, { state: 'failed' }>;

export function countersOf(p: JobProgress): JobCounters {
  return { filesDone: p.filesDone, bytesScanned: p.bytesScanned, bytesNew: p.bytesNew, bytesOnWire: p.bytesOnWire };
}
