// What a client is (address, login, pinned host key, what to back up, when, how long to keep it)
// and the rules every one of those settings must follow, wherever it comes from: the command
// line, the console, a row of the database or an old clients.json. Pure checks, no storage.
import { createRequire } from 'node:module';
import { HaulError } from '../../shared/errors.js';
import { isFingerprint } from '../session/ssh-connection.js';

/** How many snapshots of each kind `prune` keeps; a missing kind keeps none of that kind. */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

export interface ClientConfig {
  /** The database row's ID (snapshot rows and jobs point at it). */
  id: number;
  name: string;
  host: string;
  port: number;
  user: string;
  /** OpenSSH SHA-256 fingerprint of the client's host key, pinned on first contact. */
  hostKey?: string;
  paths: string[];
  excludes: string[];
  oneFileSystem: boolean;
  /** Cron expression (5 fields, or 6 with seconds first); null: run only when asked. */
  schedule: string | null;
  /** null: keep every snapshot. */
  retention: RetentionPolicy | null;
  /** A disabled client is neither scheduled nor backed up on request. */
  enabled: boolean;
  /** Stored bytes it may use (docs/operations.md, Quotas); absent: no limit. */
  quotaBytes?: number;
  /** Hours without a successful backup before the daemon notifies; absent: never. */
  overdueHours?: number;
  created: string;
}

/** The settings an operator chooses; the rest (ID, pin, creation time) Haul fills in. */
export type ClientSettings = Omit<ClientConfig, 'id' | 'hostKey' | 'created'>;

const namePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;
// Bounds the probe enforces too (docs/probe-protocol.md, BACKUP); refused here, where the
// operator can fix them, rather than in the middle of a backup.
const MAX_PATH_BYTES = 4096;
const MAX_LIST_LENGTH = 1000;

export function checkClientName(name: string): string {
  if (!namePattern.test(name)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(name)} is not a valid client name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.`);
  }
  return name;
}

export function checkClientPaths(paths: string[]): string[] {
  if (paths.length === 0) throw new HaulError('InvalidArgument', 'a client needs at least one path to back up (--path /home, repeatable).');
  if (paths.length > MAX_LIST_LENGTH) throw new HaulError('InvalidArgument', `a client can have at most ${MAX_LIST_LENGTH} paths, not ${paths.length}; back up a common parent directory instead.`);
  for (const p of paths) {
    const normalised = p === '/' || (p.startsWith('/') && p.slice(1).split('/').every((c) => c !== '' && c !== '.' && c !== '..'));
    if (!normalised || p.includes('\0') || Buffer.byteLength(p) > MAX_PATH_BYTES) {
      throw new HaulError('InvalidArgument', `${JSON.stringify(p)} is not an absolute, normalised path (like /home or /srv/www) of at most ${MAX_PATH_BYTES} bytes.`);
    }
  }
  return paths;
}

export function checkExcludes(excludes: string[]): string[] {
  if (excludes.length > MAX_LIST_LENGTH) throw new HaulError('InvalidArgument', `a client can have at most ${MAX_LIST_LENGTH} exclude patterns, not ${excludes.length}; use wider patterns.`);
  for (const e of excludes) {
    if (e === '' || e.includes('\0') || Buffer.byteLength(e) > MAX_PATH_BYTES) {
      throw new HaulError('InvalidArgument', `${JSON.stringify(e)} is not a usable exclude pattern: give a name glob (*.tmp) or an absolute path glob (/srv/cache/*) of 1 to ${MAX_PATH_BYTES} bytes.`);
    }
  }
  return excludes;
}

export function checkHostKey(fingerprint: string, clientName: string): string {
  if (!isFingerprint(fingerprint)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(fingerprint)} is not an OpenSSH SHA-256 fingerprint ("SHA256:" and 43 base64 characters), so it cannot be pinned for ${clientName}; \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on the client prints the right one.`);
  }
  return fingerprint;
}

/** `user@host[:port]`, with `[v6]` brackets for IPv6 literals. */
export function parseAddress(address: string): { user: string; host: string; port: number } {
  const m = /^([a-z_][a-z0-9_.-]{0,31})@(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(address);
  if (!m) throw new HaulError('InvalidArgument', `${JSON.stringify(address)} is not an address of the form user@host or user@host:port.`);
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535) throw new HaulError('InvalidArgument', `port ${port} is out of range (1-65535).`);
  return { user: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

/** The inverse of parseAddress: `user@host:port`, an IPv6 host in brackets. */
export function formatAddress(c: { user: string; host: string; port: number }): string {
  return `${c.user}@${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
}

/**
 * A cron expression as the daemon's scheduler (node-schedule, which parses with cron-parser)
 * accepts it, returned with its fields separated by single spaces. cron-parser alone fills in
 * missing fields ("1 2 3" passes), so the field count is checked first.
 */
export function checkSchedule(expression: string): string {
  const fields = expression.trim().split(/\s+/).filter((f) => f !== '');
  const advice = 'Give a cron expression of 5 fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 every day) or 6 with seconds first, or --no-schedule to run the client only when asked.';
  if (fields.length !== 5 && fields.length !== 6) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(expression)} is not a schedule: it has ${fields.length} field(s). ${advice}`);
  }
  const normalised = fields.join(' ');
  // Loaded when a schedule is set, not by every command that reads a client (a backup's start-up).
  const cronParser = createRequire(import.meta.url)('cron-parser') as typeof import('cron-parser');
  try {
    cronParser.parseExpression(normalised);
  } catch (err) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(expression)} is not a schedule: ${(err as Error).message}. ${advice}`);
  }
  return normalised;
}

const retentionKeys = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
const MAX_KEEP = 100_000;

/** A retention policy from its JSON text; `null` means keep everything. */
export function parseRetention(json: string): RetentionPolicy | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new HaulError('InvalidArgument', `the retention policy ${JSON.stringify(json)} is not JSON. Give an object such as '{"keepDaily":7,"keepWeekly":4}', or 'null' to keep every snapshot.`);
  }
  return value === null ? null : checkRetention(value);
}

export function checkRetention(value: unknown): RetentionPolicy {
  const allowed = `keys: ${retentionKeys.join(', ')}; values: whole numbers from 1 to ${MAX_KEEP}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).length === 0) {
    throw new HaulError('InvalidArgument', `the retention policy ${JSON.stringify(value)} is not an object with at least one rule (${allowed}), e.g. {"keepDaily":7,"keepWeekly":4}.`);
  }
  const policy: RetentionPolicy = {};
  for (const [key, n] of Object.entries(value)) {
    if (!(retentionKeys as readonly string[]).includes(key)) {
      throw new HaulError('InvalidArgument', `the retention policy has an unknown rule ${JSON.stringify(key)} (${allowed}).`);
    }
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_KEEP) {
      throw new HaulError('InvalidArgument', `the retention rule ${key} is ${JSON.stringify(n)}; it must be a whole number from 1 to ${MAX_KEEP}.`);
    }
    policy[key as keyof RetentionPolicy] = n;
  }
  return policy;
}

/** Every rule above applied to a complete set of settings (for a new client or an import). */
export function checkClientSettings(s: ClientSettings): ClientSettings {
  checkClientName(s.name);
  parseAddress(formatAddress(s));
  return {
    ...s,
    paths: checkClientPaths(s.paths),
    excludes: checkExcludes(s.excludes),
    schedule: s.schedule === null ? null : checkSchedule(s.schedule),
    retention: s.retention === null ? null : checkRetention(s.retention),
  };
}

const sizeUnits: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** "50G", "1.5T", "800MiB", "1048576": a size in bytes (units are powers of 1024). */
export function parseQuota(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
  const bytes = m ? Math.round(Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!) : NaN;
  if (!m || !Number.isSafeInteger(bytes) || bytes < 1) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(text)} is not a quota: write a size such as 50G, 1.5T or 800M (units are powers of 1024), or "none" to remove the limit.`);
  }
  return bytes;
}

/** A whole number of hours, at least 1. */
export function checkOverdueHours(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(value)} is not a number of hours: give a whole number of at least 1 (e.g. 36), or "none" for no overdue notification.`);
  }
  return n;
}
