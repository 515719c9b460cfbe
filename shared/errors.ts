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
  | 'InvalidArgument'
  | 'RestoreRefused'
  | 'IncompleteSnapshot'
  | 'CheckFailed'
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
  // The daemon's database (daemon/database)
  | 'DatabaseUnavailable'
  | 'DatabaseTooNew'
  | 'MigrationFailed'
  // Console accounts, sessions and the audit trail (daemon/database, web/server)
  | 'UserNotFound'
  | 'UserExists'
  | 'LastAdmin'
  | 'TokenNotFound'
  | 'LoginFailed'
  | 'AccountLocked'
  | 'AccountDisabled'
  | 'TotpRequired'
  | 'RateLimited'
  | 'Unauthenticated'
  | 'Forbidden'
  | 'CsrfRejected'
  | 'PasswordChangeRequired'
  | 'AuditTrailBroken'
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
