// Errors are values with a cause a user can act on. Every HaulError carries a stable code (for
// logs, the API and tests) and a message that says what happened and what to do next.

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** The command finished, but found damaged data or could not restore some files. */
  integrity: 3,
  repositoryNotFound: 10,
  wrongPassphrase: 12,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'RepositoryNotFound'
  | 'RepositoryExists'
  | 'WrongPassphrase'
  | 'PassphraseMissing'
  | 'UnsupportedFormat'
  | 'ObjectCorrupt'
  | 'BlobCorrupt'
  | 'BlobMissing'
  | 'SnapshotNotFound'
  | 'PathNotFound'
  | 'KeyNotFound'
  | 'LastKey'
  | 'StorageFailure'
  | 'DiskFull'
  // Object storage (daemon/storage/s3.ts)
  | 'StorageBucketMissing'
  | 'StorageAuthRefused'
  | 'StorageThrottled'
  | 'StorageUnreachable'
  | 'InvalidArgument'
  | 'RestoreRefused'
  | 'IncompleteSnapshot'
  | 'CheckFailed'
  | 'RepositoryLocked'
  | 'PruneRefused'
  | 'QuotaExceeded'
  | 'ProtocolViolation'
  | 'ProbeFailed'
  | 'ProbeStalled'
  // SSH sessions to clients (daemon/session/ssh-connection.ts, probe-installer.ts)
  | 'HostKeyChanged'
  | 'HostKeyUnknown'
  | 'Unreachable'
  | 'AuthRefused'
  | 'ConnectionLost'
  | 'ProbeUploadFailed'
  | 'NoExec'
  | 'ClientDiskFull'
  | 'UnsupportedArchitecture'
  // Clients (daemon/database/client-store.ts)
  | 'ClientDisabled'
  // The daemon's database (daemon/database)
  | 'DatabaseUnavailable'
  | 'DatabaseTooNew'
  | 'MigrationFailed'
  // The daemon's bus (shared/bus/, daemon/bus/) and job logs (daemon/jobs/job-log.ts)
  | 'DaemonNotRunning'
  | 'DaemonAlreadyRunning'
  | 'DaemonBusy'
  | 'BusTimeout'
  | 'BusProtocol'
  | 'BusAuthRefused'
  | 'BusPermissionDenied'
  | 'UnknownCommand'
  | 'InvalidRequest'
  | 'UnsupportedProtocol'
  | 'StreamAborted'
  | 'Internal'
  | 'JobFailed'
  | 'JobLogUnverified'
  // The daemon's jobs and scheduler (daemon/jobs, daemon/scheduler, daemon/service)
  | 'JobCancelled'
  | 'JobTimedOut'
  | 'JobNotFound'
  | 'ClientNotFound'
  | 'DaemonStopping'
  // Console accounts, sessions and the audit trail (daemon/database, web/server)
  | 'UserNotFound'
  | 'UserExists'
  | 'LastAdmin'
  | 'TokenNotFound'
  | 'LoginFailed'
  | 'AccountLocked'
  | 'AccountDisabled'
  | 'TotpRequired'
  | 'SecondFactorRequired'
  | 'DirectoryUnavailable'
  | 'DirectoryNoRole'
  | 'DirectoryAccount'
  | 'RateLimited'
  | 'Unauthenticated'
  | 'Forbidden'
  | 'CsrfRejected'
  | 'PasswordChangeRequired'
  | 'AuditTrailBroken'
  // Tenants (daemon/database/tenants.ts)
  | 'TenantNotFound'
  | 'TenantExists'
  | 'TenantInUse'
  | 'DaemonNotConnected'
  | 'ListenFailed';

const exitCodeOf: Partial<Record<ErrorCode, ExitCode>> = {
  RepositoryNotFound: ExitCode.repositoryNotFound,
  WrongPassphrase: ExitCode.wrongPassphrase,
  PassphraseMissing: ExitCode.usage,
  InvalidArgument: ExitCode.usage,
  ObjectCorrupt: ExitCode.integrity,
  BlobCorrupt: ExitCode.integrity,
  BlobMissing: ExitCode.integrity,
  RestoreRefused: ExitCode.integrity,
  IncompleteSnapshot: ExitCode.integrity,
  CheckFailed: ExitCode.integrity,
  JobLogUnverified: ExitCode.integrity,
  AuditTrailBroken: ExitCode.integrity,
};

export class HaulError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = code;
    this.code = code;
  }

  get exitCode(): ExitCode {
    return exitCodeOf[this.code] ?? ExitCode.failure;
  }
}

export function isHaulError(err: unknown, code?: ErrorCode): err is HaulError {
  return err instanceof HaulError && (code === undefined || err.code === code);
}
