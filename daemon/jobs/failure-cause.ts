// Turns whatever ended a job into the typed cause stored with it. The cause decides what the
// scheduler does next (only transient causes are retried) and what an operator reads first; the
// message beside it keeps the full story.
import { isHaulError, type ErrorCode } from '../../shared/errors.js';
import type { FailureCause } from '../../shared/jobs.js';

const causeOfCode: Partial<Record<ErrorCode, FailureCause>> = {
  Unreachable: 'unreachable',
  AuthRefused: 'auth-refused',
  HostKeyChanged: 'host-key-changed',
  HostKeyUnknown: 'host-key-changed',
  ConnectionLost: 'connection-lost',
  ProtocolViolation: 'protocol-violation',
  ProbeFailed: 'probe-error',
  ProbeUploadFailed: 'probe-error',
  NoExec: 'probe-error',
  ClientDiskFull: 'probe-error',
  UnsupportedArchitecture: 'probe-error',
  ProbeStalled: 'timeout',
  JobTimedOut: 'timeout',
  JobCancelled: 'cancelled',
  DaemonStopping: 'cancelled',
  StorageFailure: 'storage-error',
  DiskFull: 'storage-error',
  StorageBucketMissing: 'storage-error',
  StorageAuthRefused: 'storage-error',
  StorageThrottled: 'storage-error',
  StorageUnreachable: 'storage-error',
  RepositoryNotFound: 'storage-error',
  WrongPassphrase: 'storage-error',
  ObjectCorrupt: 'storage-error',
  BlobCorrupt: 'storage-error',
  BlobMissing: 'storage-error',
  UnsupportedFormat: 'storage-error',
  ClientNotFound: 'client-config',
  InvalidArgument: 'client-config',
  DatabaseUnavailable: 'internal',
  QuotaExceeded: 'quota',
  // A verify that found damage, or a prune that refused to guess: the repository needs attention.
  CheckFailed: 'storage-error',
  PruneRefused: 'storage-error',
  // Prune (or a backup) waited its limit for the other to release the repository.
  RepositoryLocked: 'timeout',
};

export interface JobFailure {
  cause: FailureCause;
  message: string;
}

export function failureOf(err: unknown): JobFailure {
  if (isHaulError(err)) return { cause: causeOfCode[err.code] ?? 'internal', message: err.message };
  // Not a HaulError: a bug somewhere below. The stack goes to the daemon's log, the message here.
  const message = err instanceof Error ? err.message : String(err);
  return { cause: 'internal', message: `unexpected error: ${message}. This is a bug in Haul; the daemon's log has the details, please report it.` };
}

/** Transient causes: the same job may well succeed a little later. Never a hostile or permanent one. */
export const transientCauses: readonly FailureCause[] = ['unreachable', 'connection-lost'];
