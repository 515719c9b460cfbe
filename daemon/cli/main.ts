// The `haul` command line. Each command lives in its own file under commands/ and only parses
// options and calls the engine; this file wires them together and turns errors into exit codes.
import * as v8 from 'node:v8';
import { Command, CommanderError } from 'commander';
import { ExitCode, HaulError } from '../../shared/errors.js';
import { HAUL_VERSION } from '../../shared/version.js';
import { commandsFor } from './command-list.js';
import { closeStorages } from './context.js';
import { releaseLocks } from './held-locks.js';

/** The program with the commands `args` needs (see command-list.ts): all of them for `haul --help`. */
export async function buildProgram(args: readonly string[]): Promise<Command> {
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
  const entries = commandsFor(args);
  // Prisma compiles its query compiler (WebAssembly, several MB) when the database opens; V8
  // then optimises its hot functions on background threads, and Node waits for those before it
  // exits: 0.35-0.5 s of wall time after the last query, and 0.4 CPU s, measured on Node 20 for a
  // command that opens the database and runs two queries (`--no-wasm-tier-up` alone did not stop
  // it: dynamic tiering still ran). Liftoff's baseline code is fast enough for the handful of
  // queries a command runs; the daemon and the console run for days and keep the optimiser.
  // (A V8 flag set at run time: it is read when a WebAssembly module is compiled, which happens later.)
  if (!entries.some((c) => c.longRunning)) v8.setFlagsFromString('--liftoff-only');
  // A backup keeps what it builds (trees, the IDs of the chunks it stored, the records for the
  // next run) while a gigabyte of short-lived buffers passes through. V8 set the old
  // generation's next limit only 1-2 MB above what survived each full collection, and a first
  // backup of 60,000 files ran 57 of them (about 2.5 CPU s with their concurrent marking). Here
  // the limit is twice what survived, within V8's own range (it grows large heaps up to 4 ×):
  // 26 collections. Read at each collection, so setting it at run time works.
  v8.setFlagsFromString('--heap-growing-percent=100');
  const registers = await Promise.all(entries.map((c) => c.load()));
  for (const register of registers) register(program);
  program.commands.forEach(function exitOverride(c: Command) {
    c.exitOverride();
    c.commands.forEach(exitOverride);
  });
  program.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await (await buildProgram(argv.slice(2))).parseAsync(argv);
    await releaseLocks();
    await closeStorages();
    return ExitCode.ok;
  } catch (err) {
    await releaseLocks().catch(() => undefined);
    await closeStorages();
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
