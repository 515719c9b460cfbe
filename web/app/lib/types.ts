// What the server's JSON looks like (see web/server/api/*).
import type { Role } from '../../../shared/roles';

export type { Role };

export interface UserInfo {
  username: string;
  role: Role;
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
}

export interface DaemonStatus {
  connected: boolean;
  message: string;
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
