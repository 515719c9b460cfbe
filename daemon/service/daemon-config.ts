// The daemon's configuration: each value from the start options (the command line), else the
// environment, else the Setting table (what an operator changed at run time; re-read by
// reload), else a default. docs/daemon.md lists every key.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseDuration } from '../../shared/duration.js';
import { checkEndpoint, defaultBusEndpoints } from '../../shared/bus/endpoints.js';
import { HaulError } from '../../shared/errors.js';
import type { JobTimeouts } from '../jobs/job-runner.js';
import { parseBlackoutList, parseBlackoutWindow, type BlackoutWindow } from '../scheduler/blackout-windows.js';
import { checkTimeZone, CronSchedule, defaultTimeZone } from '../scheduler/cron-schedule.js';
import { parseSubset } from '../checker/checker.js';
import { parseNotificationConfig, type NotificationConfig } from '../notifications/notifier.js';
import { defaultRetryPolicy, type RetryPolicy } from '../scheduler/retry-policy.js';

export interface DaemonOptions {
  stateDir?: string;
  /** The repository directory. */
  repository?: string;
  /** The repository passphrase (the CLI reads it from --password-file, HAUL_PASSWORD_FILE, ...). */
  passphrase: string;
  /** Overrides DATABASE_URL. */
  databaseUrl?: string;
  /** The built probes (probe/dist); the CLI passes its installation's. */
  probeDir?: string;
  timeZone?: string;
  maxConcurrentJobs?: number;
  /** Blackout windows, e.g. ["22:00-06:00", "sat,sun 00:00-24:00"]. */
  blackout?: string[];
  /** Where /healthz and /metrics listen; port 0 picks a free port; false turns it off. */
  http?: { host?: string; port?: number } | false;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  jobTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** How long running jobs may go on after a stop request before they are cancelled. */
  graceMs?: number;
  daemonId?: string;
  /** The daemon's own structured log: a file, or stderr when unset. */
  logFile?: string;
  logLevel?: string;
  /** How often a running job's counters reach the database. */
  progressIntervalMs?: number;
  /** The bus (ipc:// sockets in <stateDir>/run, optionally TCP with CURVE); false: no bus (in-process tests). */
  bus?: BusOptions | false;
  /** Job rows and their logs older than this are deleted, once a day; 0 keeps them forever. */
  jobRetentionMs?: number;
  /** How long a daemon's job leases last without a heartbeat, and how often it renews them. */
  leaseMs?: number;
  heartbeatMs?: number;
  /** Cron schedule of the daily verify job; null: none. Default "0 4 * * *". */
  checkSchedule?: string | null;
  /** What share of the packs each verify re-reads: "day/7" (default), "k/n", or null for structure only. */
  checkReadData?: string | null;
  /** Cron schedule of prune; null: none. Default "0 5 * * 0" (Sundays 05:00). */
  pruneSchedule?: string | null;
  /** How long prune waits for backups, and a backup for prune, to release the repository. */
  lockWaitMs?: number;
  /** Email and webhook targets (daemon/notifications/notifier.ts); unset: no notifications. */
  notifications?: unknown;
  /** How often clients are checked against their overdue threshold. */
  overdueCheckIntervalMs?: number;
}

export interface BusOptions {
  /** Sockets 0660 in a 0750 run/ for a web server in the daemon's group (default: 0600 in 0700). */
  groupAccess?: boolean;
  /** The TCP endpoints (CURVE), e.g. tcp://0.0.0.0:7450; events default to the next port. */
  tcp?: { commands: string; events?: string };
  /** Where consoles on other machines reach this daemon, recorded in the FleetDaemon table (haul web --fleet). */
  advertise?: string;
}

export interface DaemonConfig {
  stateDir: string;
  repository: string;
  databaseUrl: string | undefined;
  timeZone: string;
  maxConcurrentJobs: number;
  blackout: BlackoutWindow[];
  http: { host: string; port: number } | undefined;
  timeouts: JobTimeouts;
  retry: RetryPolicy;
  graceMs: number;
  daemonId: string;
  probeDir: string;
  logFile: string | undefined;
  logLevel: string;
  progressIntervalMs: number;
  bus: { groupAccess: boolean; tcp: { commands: string; events: string } | undefined; advertise: string } | undefined;
  jobRetentionMs: number;
  /** Job leases (daemon/fleet/): a daemon silent for leaseMs is taken over. */
  fleet: { leaseMs: number; heartbeatMs: number };
  maintenance: {
    checkSchedule: string | null;
    checkReadData: string | null;
    pruneSchedule: string | null;
    lockWaitMs: number;
  };
  notifications: NotificationConfig | undefined;
  /** Cron schedule of the daily digest (when the notifications ask for one). */
  digestSchedule: string;
  overdueCheckIntervalMs: number;
}

/** Keys of the Setting table the daemon reads (values are JSON). */
export const settingKeys = {
  timeZone: 'timeZone',
  blackout: 'blackoutWindows',
  maxConcurrentJobs: 'maxConcurrentJobs',
  checkSchedule: 'checkSchedule',
  checkReadData: 'checkReadData',
  pruneSchedule: 'pruneSchedule',
  notifications: 'notifications',
} as const;

/** A schedule, or "off"/null for none; checked as cron, read in the daemon's time zone. */
function maintenanceSchedule(value: unknown, what: string, timeZone: string): string | null {
  if (value === null || value === 'off') return null;
  if (typeof value !== 'string') throw new HaulError('InvalidArgument', `${what} must be a cron expression such as "0 4 * * *", or "off", not ${JSON.stringify(value)}.`);
  return CronSchedule.parse(value, timeZone, what).expression;
}

function readDataShare(value: unknown, what: string): string | null {
  if (value === null || value === 'off') return null;
  if (typeof value !== 'string') throw new HaulError('InvalidArgument', `${what} must be "day/7", "k/n" or "off", not ${JSON.stringify(value)}.`);
  parseSubset(value);
  return value;
}

function notificationsFrom(options: DaemonOptions, env: NodeJS.ProcessEnv, settings: ReadonlyMap<string, string>): NotificationConfig | undefined {
  if (options.notifications !== undefined) return parseNotificationConfig(options.notifications, 'the daemon options');
  const file = env['HAUL_NOTIFICATIONS_FILE'];
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new HaulError('InvalidArgument', `HAUL_NOTIFICATIONS_FILE ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the path of a JSON file as in docs/operations.md (Notifications).`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new HaulError('InvalidArgument', `HAUL_NOTIFICATIONS_FILE ${file} is not JSON; see docs/operations.md (Notifications) for its shape.`);
    }
    return parseNotificationConfig(value, file);
  }
  const stored = setting(settings, settingKeys.notifications);
  return stored === undefined ? undefined : parseNotificationConfig(stored, `the setting ${settingKeys.notifications}`);
}

export const defaultHttpPort = 7460;
/** Job history is kept a year by default: long enough for audits, short enough to stay small. */
export const defaultJobRetentionMs = 365 * 86_400_000;

export { parseDuration };

/** A whole number of at least 1, from an option, a variable or a setting. */
export function parseCount(value: unknown, what: string): number {
  const n = typeof value === 'string' ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new HaulError('InvalidArgument', `${what} must be a whole number of at least 1, not ${JSON.stringify(value)}.`);
  return n;
}

export function parsePort(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new HaulError('InvalidArgument', `${what} ${JSON.stringify(value)} is not a TCP port (0-65535, 0 picks a free one), or "off".`);
  return n;
}

function setting(settings: ReadonlyMap<string, string>, key: string): unknown {
  const raw = settings.get(key);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new HaulError('InvalidArgument', `the setting ${key} in the database is not JSON (${JSON.stringify(raw.slice(0, 80))}); correct or delete that row of the Setting table.`);
  }
}

function blackoutFrom(value: unknown, what: string): BlackoutWindow[] {
  if (typeof value === 'string') return parseBlackoutList(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.map(parseBlackoutWindow);
  throw new HaulError('InvalidArgument', `${what} must be a list of windows such as ["22:00-06:00"], not ${JSON.stringify(value)}.`);
}

/** The first of option, variable, setting that is given (null in an option or a setting counts). */
function pick(option: unknown, variable: string | undefined, stored: unknown, fallback: string): unknown {
  if (option !== undefined) return option;
  if (variable !== undefined) return variable;
  return stored !== undefined ? stored : fallback;
}

/** The effective configuration; `settings` are the Setting table's rows (key -> JSON text). */
export function resolveDaemonConfig(options: DaemonOptions, env: NodeJS.ProcessEnv, settings: ReadonlyMap<string, string>): DaemonConfig {
  const stateDir = options.stateDir ?? env['HAUL_HOME'] ?? '/var/lib/haul';
  const repository = options.repository ?? env['HAUL_REPOSITORY'];
  if (!repository) throw new HaulError('InvalidArgument', 'no repository given. Pass --repo DIR or set HAUL_REPOSITORY.');
  const probeDir = options.probeDir ?? env['HAUL_PROBE_DIR'];
  if (!probeDir) throw new HaulError('InvalidArgument', 'no probe directory given: set HAUL_PROBE_DIR to the folder with haul-probe-x86_64 (probe/dist of the installation).');
  const duration = (given: number | undefined, name: string, fallback: number) => given ?? (env[name] ? parseDuration(env[name]!, name) : fallback);

  const zoneSetting = setting(settings, settingKeys.timeZone);
  const timeZone = checkTimeZone(options.timeZone ?? env['HAUL_TIME_ZONE'] ?? (typeof zoneSetting === 'string' ? zoneSetting : undefined) ?? defaultTimeZone());
  const maxJobsSetting = setting(settings, settingKeys.maxConcurrentJobs);
  const maxConcurrentJobs = parseCount(options.maxConcurrentJobs ?? env['HAUL_MAX_JOBS'] ?? maxJobsSetting ?? 4, 'the number of jobs run at once (--max-jobs, HAUL_MAX_JOBS)');
  const blackoutSetting = setting(settings, settingKeys.blackout);
  const blackout = options.blackout
    ? options.blackout.map(parseBlackoutWindow)
    : env['HAUL_BLACKOUT'] !== undefined
      ? parseBlackoutList(env['HAUL_BLACKOUT'])
      : blackoutSetting !== undefined
        ? blackoutFrom(blackoutSetting, `the setting ${settingKeys.blackout}`)
        : [];

  let http: DaemonConfig['http'];
  if (options.http === false || env['HAUL_HTTP_PORT'] === 'off') {
    http = undefined;
  } else {
    const host = (options.http ? options.http.host : undefined) ?? env['HAUL_HTTP_HOST'] ?? '127.0.0.1';
    const p = (options.http ? options.http.port : undefined) ?? (env['HAUL_HTTP_PORT'] !== undefined ? parsePort(env['HAUL_HTTP_PORT'], 'HAUL_HTTP_PORT') : defaultHttpPort);
    http = { host, port: p };
  }

  return {
    stateDir,
    repository,
    databaseUrl: options.databaseUrl,
    timeZone,
    maxConcurrentJobs,
    blackout,
    http,
    timeouts: {
      connectMs: duration(options.connectTimeoutMs, 'HAUL_CONNECT_TIMEOUT', 15_000),
      stallMs: duration(options.stallTimeoutMs, 'HAUL_STALL_TIMEOUT', 5 * 60_000),
      totalMs: duration(options.jobTimeoutMs, 'HAUL_JOB_TIMEOUT', 12 * 3_600_000),
    },
    retry: {
      maxAttempts: parseCount(options.retry?.maxAttempts ?? env['HAUL_RETRY_ATTEMPTS'] ?? defaultRetryPolicy.maxAttempts, 'the number of tries (HAUL_RETRY_ATTEMPTS)'),
      baseDelayMs: duration(options.retry?.baseDelayMs, 'HAUL_RETRY_DELAY', defaultRetryPolicy.baseDelayMs),
      maxDelayMs: duration(options.retry?.maxDelayMs, 'HAUL_RETRY_MAX_DELAY', defaultRetryPolicy.maxDelayMs),
    },
    graceMs: duration(options.graceMs, 'HAUL_GRACE', 60_000),
    daemonId: options.daemonId ?? env['HAUL_DAEMON_ID'] ?? os.hostname(),
    probeDir,
    logFile: options.logFile ?? env['HAUL_LOG_FILE'],
    logLevel: options.logLevel ?? env['HAUL_LOG_LEVEL'] ?? 'info',
    progressIntervalMs: options.progressIntervalMs ?? 2_000,
    bus: busConfig(options.bus, env, stateDir),
    jobRetentionMs: duration(options.jobRetentionMs, 'HAUL_JOB_RETENTION', defaultJobRetentionMs),
    fleet: leaseTimes(duration(options.leaseMs, 'HAUL_LEASE', 60_000), duration(options.heartbeatMs, 'HAUL_HEARTBEAT', 10_000)),
    maintenance: {
      checkSchedule: maintenanceSchedule(pick(options.checkSchedule, env['HAUL_CHECK_SCHEDULE'], setting(settings, settingKeys.checkSchedule), '0 4 * * *'), 'the verify schedule (HAUL_CHECK_SCHEDULE)', timeZone),
      checkReadData: readDataShare(pick(options.checkReadData, env['HAUL_CHECK_READ_DATA'], setting(settings, settingKeys.checkReadData), 'day/7'), 'the share of packs a verify re-reads (HAUL_CHECK_READ_DATA)'),
      pruneSchedule: maintenanceSchedule(pick(options.pruneSchedule, env['HAUL_PRUNE_SCHEDULE'], setting(settings, settingKeys.pruneSchedule), '0 5 * * 0'), 'the prune schedule (HAUL_PRUNE_SCHEDULE)', timeZone),
      lockWaitMs: duration(options.lockWaitMs, 'HAUL_LOCK_WAIT', 3_600_000),
    },
    notifications: notificationsFrom(options, env, settings),
    digestSchedule: '0 8 * * *',
    overdueCheckIntervalMs: options.overdueCheckIntervalMs ?? 15 * 60_000,
  };
}

/** tcp://host:PORT -> tcp://host:PORT+1, the default events endpoint beside a commands endpoint. */
function nextPort(endpoint: string, what: string): string {
  const m = /^(tcp:\/\/.+):([0-9]{1,5})$/.exec(endpoint);
  if (!m || Number(m[2]) >= 65535) throw new HaulError('InvalidArgument', `${what} ${JSON.stringify(endpoint)} is not a TCP endpoint such as tcp://0.0.0.0:7450.`);
  return `${m[1]}:${Number(m[2]) + 1}`;
}

function busConfig(option: BusOptions | false | undefined, env: NodeJS.ProcessEnv, stateDir: string): DaemonConfig['bus'] {
  if (option === false) return undefined;
  const commands = option?.tcp?.commands ?? (env['HAUL_BUS_TCP'] || undefined);
  const tcp = commands === undefined ? undefined : { commands, events: option?.tcp?.events ?? (env['HAUL_BUS_TCP_EVENTS'] || nextPort(commands, 'the bus endpoint (HAUL_BUS_TCP)')) };
  const advertise = option?.advertise ?? (env['HAUL_BUS_ADVERTISE'] || undefined) ?? advertisedEndpoint(tcp?.commands, stateDir);
  checkEndpoint(advertise);
  return { groupAccess: option?.groupAccess ?? ['1', 'true', 'yes'].includes(env['HAUL_BUS_GROUP_ACCESS'] ?? ''), tcp, advertise };
}

/**
 * The endpoint a console elsewhere dials: the TCP one, with a wildcard address (0.0.0.0, *, ::)
 * replaced by this machine's name; without TCP the Unix socket, which serves this machine only.
 */
function advertisedEndpoint(tcpCommands: string | undefined, stateDir: string): string {
  if (tcpCommands === undefined) return defaultBusEndpoints(stateDir).commands;
  return tcpCommands.replace(/^tcp:\/\/(0\.0\.0\.0|\*|\[::\]|::):/, `tcp://${os.hostname()}:`);
}

/** A lease must survive a missed heartbeat or two, or a busy daemon would be taken over alive. */
function leaseTimes(leaseMs: number, heartbeatMs: number): DaemonConfig['fleet'] {
  if (heartbeatMs <= 0 || leaseMs < 3 * heartbeatMs) {
    throw new HaulError('InvalidArgument', `the lease (HAUL_LEASE, ${leaseMs / 1000} s) must be at least three heartbeats (HAUL_HEARTBEAT, ${heartbeatMs / 1000} s), so that one late heartbeat does not hand a live daemon's jobs to another; raise HAUL_LEASE or lower HAUL_HEARTBEAT.`);
  }
  return { leaseMs, heartbeatMs };
}
