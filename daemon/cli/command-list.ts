// Every top-level `haul` command and where it lives. A command's module (and everything it
// imports: Prisma, ssh2, the AWS SDK, zeromq, express...) is loaded only when that command runs,
// or when the whole list is needed (`haul --help`, an unknown command): loading all of them
// cost about 0.5 s of every command's start-up, more than most commands' own work.
import type { Command } from 'commander';

export interface CommandEntry {
  /** The top-level name, as typed after `haul`. */
  name: string;
  /** Loads the command's module and returns the function that registers it. */
  load(): Promise<(program: Command) => void>;
  /** A service that runs for days (the daemon, the console): worth V8's optimising compilers. */
  longRunning?: true;
}

/** In the order `haul --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'init', load: async () => (await import('./commands/init.js')).registerInit },
  { name: 'key', load: async () => (await import('./commands/key.js')).registerKey },
  { name: 'client', load: async () => (await import('./commands/client.js')).registerClient },
  { name: 'backup', load: async () => (await import('./commands/backup.js')).registerBackup },
  { name: 'backup-local', load: async () => (await import('./commands/backup-local.js')).registerBackupLocal },
  { name: 'snapshots', load: async () => (await import('./commands/snapshots.js')).registerSnapshots },
  { name: 'ls', load: async () => (await import('./commands/ls.js')).registerLs },
  { name: 'restore', load: async () => (await import('./commands/restore.js')).registerRestore },
  { name: 'dump', load: async () => (await import('./commands/dump.js')).registerDump },
  { name: 'check', load: async () => (await import('./commands/check.js')).registerCheck },
  { name: 'forget', load: async () => (await import('./commands/forget.js')).registerForget },
  { name: 'prune', load: async () => (await import('./commands/prune.js')).registerPrune },
  { name: 'repair', load: async () => (await import('./commands/repair.js')).registerRepair },
  { name: 'repo', load: async () => (await import('./commands/repo.js')).registerRepo },
  { name: 'db', load: async () => (await import('./commands/db.js')).registerDb },
  { name: 'status', load: async () => (await import('./commands/status.js')).registerStatus },
  { name: 'stats', load: async () => (await import('./commands/stats.js')).registerStats },
  { name: 'watch', load: async () => (await import('./commands/watch.js')).registerWatch },
  { name: 'log', load: async () => (await import('./commands/log.js')).registerLog },
  { name: 'bus-key', load: async () => (await import('./commands/bus-key.js')).registerBusKey },
  { name: 'daemon', load: async () => (await import('./commands/daemon.js')).registerDaemon, longRunning: true },
  { name: 'jobs', load: async () => (await import('./commands/jobs.js')).registerJobs },
  { name: 'user', load: async () => (await import('./commands/user.js')).registerUser },
  { name: 'tenant', load: async () => (await import('./commands/tenant.js')).registerTenant },
  { name: 'audit', load: async () => (await import('./commands/audit.js')).registerAudit },
  { name: 'web', load: async () => (await import('./commands/web.js')).registerWeb, longRunning: true },
];

/** Global options that take a value (`--repo DIR`): their value is not the command's name. */
const VALUE_OPTIONS = new Set(['--home', '--repo', '--password-file']);

/**
 * The commands to load for `args` (the arguments after `haul`): only the one named; none for
 * `haul --version`; all of them when none is named or the name is unknown (commander then shows
 * the full help, or suggests the closest name).
 */
export function commandsFor(args: readonly string[]): readonly CommandEntry[] {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-')) continue;
    const entry = COMMANDS.find((c) => c.name === arg);
    return entry ? [entry] : COMMANDS;
  }
  return args.includes('--version') || args.includes('-V') ? [] : COMMANDS;
}
