// What the server's JSON looks like (see web/server/api/*).
import type { Role } from '../../../shared/roles';

export type { Role };

export type TenantRole = 'operator' | 'auditor';

export interface UserInfo {
  username: string;
  role: Role;
  /** A member's role per tenant; empty for an admin (every tenant). */
  tenants: { tenant: string; role: TenantRole }[];
  /** Where the password is checked: here, or in the directory (LDAP). */
  source: 'local' | 'directory';
  disabled: boolean;
  lockedUntil: string | null;
  totp: boolean;
  mustChangePassword: boolean;
  failedLogins: number;
  createdAt: string;
}

export interface Me {
  user: UserInfo;
  role: Role;
  via: 'session' | 'token';
  csrfToken: string | null;
  /** The role requires a second factor this user has not set up yet. */
  mustEnrolSecondFactor: boolean;
  /** Only in the answer to a login with a recovery code: how many unused ones are left. */
  recoveryCodesLeft?: number;
}

export interface DaemonStatus {
  connected: boolean;
  message: string;
  running?: BusJob[];
  queuedTotal?: number;
  /** With several daemons (haul web --fleet): each one's own state. */
  daemons?: { id: string; endpoint: string; connected: boolean; message: string }[];
}

/** A job as the daemon's bus carries it (counters as decimal strings). */
export interface BusJob {
  id: number;
  clientName: string | null;
  kind: string;
  state: string;
  startedAt: string | null;
  queuedAt: string;
  filesTotal: string;
  filesDone: string;
  bytesScanned: string;
  bytesNew: string;
  failureMessage: string | null;
}

export interface JobProgress {
  type: 'job-progress';
  jobId: number;
  filesTotal: string;
  filesDone: string;
  bytesScanned: string;
  bytesNew: string;
  bytesOnWire: string;
  errors: number;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
  currentPath: string | null;
}

export type DaemonEvent =
  | JobProgress
  | { type: 'job-state'; at: string; previousState: string | null; job: BusJob }
  | { type: 'job-log'; jobId: number; level: string; line: string };

export interface JobRow {
  id: number;
  client: string | null;
  kind: string;
  state: string;
  trigger: string;
  requestedBy: string | null;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  filesTotal: number;
  filesDone: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  errors: number;
  failureCause: string | null;
  failureMessage: string | null;
  snapshotId: string | null;
}

export interface TenantInfo {
  name: string;
  quotaBytes: number | null;
  retention: Record<string, number> | null;
  notifyEmails: string[];
  clients: string[];
  createdAt: string;
}

export interface ClientRow {
  name: string;
  tenant: string;
  address: string;
  enabled: boolean;
  hostKeyPinned: boolean;
  hostKey: string | null;
  schedule: string | null;
  paths: string[];
  excludes: string[];
  retention: string | null;
  lastJob: { id: number; state: string; finishedAt: string | null; failureMessage: string | null } | null;
  lastSnapshot: { id: string; time: string } | null;
}

export interface SnapshotRow {
  id: string;
  client: string;
  time: string;
  paths: string[];
  files: number;
  bytes: number;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  hash: string;
}

export type AuditVerification =
  | { ok: true; entries: number; head: string }
  | { ok: false; entries: number; brokenId: number; message: string };

export interface TokenInfo {
  id: number;
  name: string;
  role: Role;
  username: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}
