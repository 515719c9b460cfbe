// The `haul` command line. Each command lives in its own file under commands/ and only parses
// options and calls the engine; this file wires them together and turns errors into exit codes.
import { Command, CommanderError } from 'commander';
import { ExitCode, HaulError } from '../../shared/errors.js';
import { HAUL_VERSION } from '../../shared/version.js';
import { releaseLocks } from './context.js';
import { registerAudit } from './commands/audit.js';
import { registerBackupLocal } from './commands/backup-local.js';
import { registerBackup } from './commands/backup.js';
import { registerBusKey } from './commands/bus-key.js';
import { registerCheck } from './commands/check.js';
import { registerClient } from './commands/client.js';
import { registerDaemon } from './commands/daemon.js';
import { registerDb } from './commands/db.js';
import { registerDump } from './commands/dump.js';
import { registerForget } from './commands/forget.js';
import { registerInit } from './commands/init.js';
import { registerJobs } from './commands/jobs.js';
import { registerKey } from './commands/key.js';
import { registerLog } from './commands/log.js';
import { registerLs } from './commands/ls.js';
import { registerPrune } from './commands/prune.js';
import { registerRepair } from './commands/repair.js';
import { registerRepo } from './commands/repo.js';
import { registerRestore } from './commands/restore.js';
import { registerSnapshots } from './commands/snapshots.js';
import { registerStats } from './commands/stats.js';
import { registerStatus } from './commands/status.js';
import { registerWatch } from './commands/watch.js';
import { registerTenant } from './commands/tenant.js';
import { registerUser } from './commands/user.js';
import { registerWeb } from './commands/web.js';

export function buildProgram(): Command {
  const program = new Command('haul')
    .description('Haul: pull-based, encrypted, deduplicating backups')
    .version(HAUL_VERSION)
    .option('--home <dir>', "the server's state directory: SSH identity and clients (default: $HAUL_HOME, else /var/lib/haul)")
    .option('--repo <location>', 'repository: a directory, or s3:https://HOST[:PORT]/BUCKET[/PREFIX] (default: $HAUL_REPOSITORY)')
    .option('--password-file <file>', 'read the repository passphrase from this file (default: $HAUL_PASSWORD_FILE, then $HAUL_PASSWORD)')
    .option('-q, --quiet', 'no progress output')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Exit codes:
  0   success
  1   the command failed (the message says why and what to do)
  2   usage error, or no passphrase given
  3   incomplete: check found errors, a restore left some files out (damaged, already
      present without --overwrite, or not creatable on the client), a backup could not read
      some files, or a job log could not be verified as unchanged
  10  no repository at the given location
  12  wrong passphrase`);
  registerInit(program);
  registerKey(program);
  registerClient(program);
  registerBackup(program);
  registerBackupLocal(program);
  registerSnapshots(program);
  registerLs(program);
  registerRestore(program);
  registerDump(program);
  registerCheck(program);
  registerForget(program);
  registerPrune(program);
  registerRepair(program);
  registerRepo(program);
  registerDb(program);
  registerStatus(program);
  registerStats(program);
  registerWatch(program);
  registerLog(program);
  registerBusKey(program);
  registerDaemon(program);
  registerJobs(program);
  registerUser(program);
  registerTenant(program);
  registerAudit(program);
  registerWeb(program);
  program.commands.forEach(function exitOverride(c: Command) {
    c.exitOverride();
    c.commands.forEach(exitOverride);
  });
  program.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    await releaseLocks();
    return ExitCode.ok;
  } catch (err) {
    await releaseLocks().catch(() => undefined);
    if (err instanceof CommanderError) {
      // Help and version are "errors" to commander; they are successes to the user.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      return ExitCode.usage;
    }
    if (err instanceof HaulError) {
      process.stderr.write(`haul: error: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`haul: unexpected error: ${(err as Error).stack ?? String(err)}\nThis is a bug in Haul; please report it with the lines above.\n`);
    return ExitCode.failure;
  }
}

process.exitCode = await main(process.argv);
