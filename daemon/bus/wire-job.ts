// A job row (prisma/schema.prisma's Job: BigInt counters, Date times) as it travels on the bus:
// counters as decimal strings, times as ISO strings. Checked against the schema, so a state the
// bus protocol does not know fails here, in the daemon, not in every client.
import { Job, toCounter } from '../../shared/bus/messages.js';

/** The fields of the Prisma Job model the bus carries (a Prisma `Job` row fits). */
export interface JobRecord {
  id: number;
  clientId: number | null;
  clientName: string | null;
  kind: string;
  state: string;
  trigger: string;
  attempt: number;
  retryOfId: number | null;
  requestedBy: string | null;
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  failureCause: string | null;
  failureMessage: string | null;
  filesTotal: bigint;
  filesDone: bigint;
  bytesScanned: bigint;
  bytesNew: bigint;
  bytesOnWire: bigint;
  errors: number;
  snapshotId: string | null;
  logPath: string | null;
  logSha256: string | null;
  daemonId: string | null;
}

export function jobToWire(job: JobRecord): Job {
  return Job.parse({
    ...job,
    queuedAt: job.queuedAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    updatedAt: job.updatedAt.toISOString(),
    filesTotal: toCounter(job.filesTotal),
    filesDone: toCounter(job.filesDone),
    bytesScanned: toCounter(job.bytesScanned),
    bytesNew: toCounter(job.bytesNew),
    bytesOnWire: toCounter(job.bytesOnWire),
  });
}
