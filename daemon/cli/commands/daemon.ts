// `haul daemon`: runs the daemon in the foreground until SIGTERM or SIGINT (Ctrl-C). The first
// signal stops it gracefully (running jobs get the grace period, then are cancelled); a second
// one cancels them at once. Exits 0 after a clean stop.
import type { Command } from 'commander';
import { parseCount, parseDuration, parsePort } from '../../service/daemon-config.js';
import { startDaemon } from '../../service/daemon.js';
import { repositoryPassphrase } from '../passphrase.js';
import { globalOptions, stateDirectory } from '../context.js';
import { defaultProbeDir } from './backup.js';

interface DaemonCommandOptions {
  timeZone?: string;
  maxJobs?: string;
  blackout: string[];
  httpHost?: string;
  httpPort?: string;
  grace?: string;
  connectTimeout?: string;
  stallTimeout?: string;
  jobTimeout?: string;
  retries?: string;
  retryDelay?: string;
  logFile?: string;
  logLevel?: string;
  daemonId?: string;
  busTcp?: string;
  busTcpEvents?: string;
  busAdvertise?: string;
  busGroupAccess?: boolean;
  jobRetention?: string;
  checkSchedule?: string;
  checkReadData?: string;
  pruneSchedule?: string;
  lockWait?: string;
}

const repeatable = (v: string, acc: string[]) => [...acc, v];

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .description('run the daemon in the foreground: schedules, job queue, the bus (run/commands.sock), /healthz and /metrics (stop with SIGTERM or Ctrl-C)')
    .option('--time-zone <zone>', "time zone of schedules and blackout windows (default: $HAUL_TIME_ZONE, the timeZone setting, else the system's)")
    .option('--max-jobs <n>', 'jobs run at once, across all clients (default: $HAUL_MAX_JOBS, the maxConcurrentJobs setting, else 4)')
    .option('--blackout <window>', 'no job starts inside this window, e.g. "mon-fri 08:00-18:00" (repeatable; default: $HAUL_BLACKOUT, ";"-separated)', repeatable, [])
    .option('--http-host <host>', 'address of /healthz and /metrics (default: $HAUL_HTTP_HOST, else 127.0.0.1)')
    .option('--http-port <port>', 'port of /healthz and /metrics, 0 for any free one, "off" for none (default: $HAUL_HTTP_PORT, else 7460)')
    .option('--grace <duration>', 'how long running jobs may go on after SIGTERM before they are cancelled (default: $HAUL_GRACE, else 60s)')
    .option('--connect-timeout <duration>', 'SSH connect and login (default: $HAUL_CONNECT_TIMEOUT, else 15s)')
    .option('--stall-timeout <duration>', 'a job whose probe sends nothing for this long is stopped (default: $HAUL_STALL_TIMEOUT, else 5m)')
    .option('--job-timeout <duration>', 'a job running longer than this is stopped (default: $HAUL_JOB_TIMEOUT, else 12h)')
    .option('--retries <n>', 'tries in all for a job that failed for a transient cause (default: $HAUL_RETRY_ATTEMPTS, else 4)')
    .option('--retry-delay <duration>', 'wait before the first retry, doubled for each next one (default: $HAUL_RETRY_DELAY, else 60s)')
    .option('--log-file <file>', "the daemon's own JSON log (default: $HAUL_LOG_FILE, else stderr)")
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: $HAUL_LOG_LEVEL, else info)')
    .option('--daemon-id <id>', 'name of this daemon in the jobs it runs (default: $HAUL_DAEMON_ID, else the host name)')
    .option('--bus-tcp <endpoint>', 'also serve the bus over TCP with CURVE, e.g. tcp://0.0.0.0:7450 (default: $HAUL_BUS_TCP, else only the Unix sockets in run/)')
    .option('--bus-tcp-events <endpoint>', 'the TCP events endpoint (default: $HAUL_BUS_TCP_EVENTS, else the port after --bus-tcp)')
    .option('--bus-advertise <endpoint>', "where consoles on other machines reach this daemon's bus, recorded for `haul web --fleet` (default: $HAUL_BUS_ADVERTISE, else --bus-tcp with this machine's name for a wildcard address, else the Unix socket)")
    .option('--bus-group-access', "let the daemon user's group use the bus sockets (0660 in a 0750 run/; default: $HAUL_BUS_GROUP_ACCESS)")
    .option('--job-retention <duration>', 'delete job records and their logs older than this, daily; 0 keeps them (default: $HAUL_JOB_RETENTION, else 365d)')
    .option('--check-schedule <cron>', 'when the verify job runs, or "off" (default: $HAUL_CHECK_SCHEDULE, the checkSchedule setting, else "0 4 * * *")')
    .option('--check-read-data <k/n>', 'the share of packs each verify re-reads: "day/7", "k/n" or "off" for structure only (default: $HAUL_CHECK_READ_DATA, else day/7)')
    .option('--prune-schedule <cron>', 'when the prune job runs, or "off" (default: $HAUL_PRUNE_SCHEDULE, the pruneSchedule setting, else "0 5 * * 0")')
    .option('--lock-wait <duration>', 'how long prune waits for running backups, and a backup for prune (default: $HAUL_LOCK_WAIT, else 1h)')
    .action(async (opts: DaemonCommandOptions, cmd: Command) => {
      const g = globalOptions(cmd);
      const duration = (v: string | undefined, what: string) => (v === undefined ? undefined : parseDuration(v, what));
      const httpPort = opts.httpPort ?? process.env['HAUL_HTTP_PORT'];
      const daemon = await startDaemon({
        stateDir: stateDirectory(g),
        ...(g.repo !== undefined ? { repository: g.repo } : {}),
        passphrase: await repositoryPassphrase(g),
        probeDir: defaultProbeDir(),
        ...(opts.timeZone !== undefined ? { timeZone: opts.timeZone } : {}),
        ...(opts.maxJobs !== undefined ? { maxConcurrentJobs: parseCount(opts.maxJobs, '--max-jobs') } : {}),
        ...(opts.blackout.length > 0 ? { blackout: opts.blackout } : {}),
        ...(httpPort === 'off' ? { http: false as const } : { http: { ...(opts.httpHost !== undefined ? { host: opts.httpHost } : {}), ...(opts.httpPort !== undefined ? { port: parsePort(opts.httpPort, '--http-port') } : {}) } }),
        ...(opts.grace !== undefined ? { graceMs: duration(opts.grace, '--grace')! } : {}),
        ...(opts.connectTimeout !== undefined ? { connectTimeoutMs: duration(opts.connectTimeout, '--connect-timeout')! } : {}),
        ...(opts.stallTimeout !== undefined ? { stallTimeoutMs: duration(opts.stallTimeout, '--stall-timeout')! } : {}),
        ...(opts.jobTimeout !== undefined ? { jobTimeoutMs: duration(opts.jobTimeout, '--job-timeout')! } : {}),
        retry: {
          ...(opts.retries !== undefined ? { maxAttempts: parseCount(opts.retries, '--retries') } : {}),
          ...(opts.retryDelay !== undefined ? { baseDelayMs: duration(opts.retryDelay, '--retry-delay')! } : {}),
        },
        ...(opts.logFile !== undefined ? { logFile: opts.logFile } : {}),
        ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
        ...(opts.daemonId !== undefined ? { daemonId: opts.daemonId } : {}),
        ...(opts.jobRetention !== undefined ? { jobRetentionMs: duration(opts.jobRetention, '--job-retention')! } : {}),
        bus: {
          ...(opts.busGroupAccess ? { groupAccess: true } : {}),
          ...(opts.busAdvertise !== undefined ? { advertise: opts.busAdvertise } : {}),
          ...(opts.busTcp !== undefined ? { tcp: { commands: opts.busTcp, ...(opts.busTcpEvents !== undefined ? { events: opts.busTcpEvents } : {}) } } : {}),
        },
        ...(opts.checkSchedule !== undefined ? { checkSchedule: opts.checkSchedule } : {}),
        ...(opts.checkReadData !== undefined ? { checkReadData: opts.checkReadData } : {}),
        ...(opts.pruneSchedule !== undefined ? { pruneSchedule: opts.pruneSchedule } : {}),
        ...(opts.lockWait !== undefined ? { lockWaitMs: duration(opts.lockWait, '--lock-wait')! } : {}),
      });
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals) => {
          signals++;
          daemon.log.info({ signal }, signals === 1 ? `${signal}: stopping gracefully` : `${signal} again: cancelling running jobs now`);
          void daemon.stop(signals === 1 ? {} : { graceMs: 0 }).then(resolve, (err: unknown) => {
            daemon.log.error({ err }, 'the daemon did not stop cleanly');
            process.exitCode = 1;
            resolve();
          });
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      // Everything is closed; should a library still hold the event loop open, do not hang.
      setTimeout(() => process.exit(), 2_000).unref();
    });
}
