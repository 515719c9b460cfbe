// Runs the installed probe on a client over one exec channel (`--serve` for a backup, `--restore`
// for a restore) and ends it. A cached probe is not run before it is used, so a cache directory
// that became noexec since shows only here, as the shell's exit status 126: it becomes the same
// NoExec error the installer gives.
import type { HaulError } from '../../shared/errors.js';
import { copyProbeDiagnostics, type ProbeDiagnostics } from './probe-diagnostics.js';
import { noExecError, probeCommand, startCachedProbe, type InstalledProbe } from './probe-installer.js';
import type { ProbeTransport } from './probe-session.js';
import type { RemoteExit, RemoteProcess, SshConnection } from './ssh-connection.js';

/** How long a probe gets to exit after its stdin ends, before it is stopped. */
const exitGraceMs = 10_000;
/** How long to wait for the exit status of a probe whose session failed. */
const failedExitWaitMs = 5_000;

export interface RunningProbe {
  readonly proc: RemoteProcess;
  /** stdin, stdout and stop, for a session; stderr is copied to the log already. */
  readonly transport: ProbeTransport;
  readonly diagnostics: ProbeDiagnostics;
  /** After a session failed: the probe's exit, if it comes within a few seconds. */
  exitAfterFailure(): Promise<RemoteExit | undefined>;
  /** The NoExec error when the shell could not execute the probe (exit 126), else undefined. */
  execFailure(exit: RemoteExit | undefined): HaulError | undefined;
  /** After a session succeeded: EOF on stdin, then up to 10 s to exit before it is stopped. */
  finish(what: string): Promise<void>;
}

function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())]);
}

export async function startProbe(conn: SshConnection, probe: InstalledProbe, mode: '--serve' | '--restore', log: (line: string) => void): Promise<RunningProbe> {
  // `exec` in the remote shell: stopping the channel's process must stop the probe itself.
  return runningProbe(conn, probe, await conn.exec(probeCommand(probe, [mode])), log);
}

/** A probe process already started (startProbe, or probe-installer's startCachedProbe) as a RunningProbe. */
function runningProbe(conn: SshConnection, probe: InstalledProbe, proc: RemoteProcess, log: (line: string) => void): RunningProbe {
  const diagnostics = copyProbeDiagnostics(proc.stderr, log);
  return {
    proc,
    transport: { input: proc.stdin, output: proc.stdout, stop: () => proc.stop() },
    diagnostics,
    exitAfterFailure() {
      proc.stdout.resume(); // the channel closes only once its output has been read
      return within(proc.exit, failedExitWaitMs);
    },
    execFailure(exit) {
      if (exit?.code !== 126) return undefined;
      return noExecError({ label: conn.label, user: conn.user, finalPath: probe.path, copied: false }, diagnostics.lastLines().join('\n').slice(0, 500));
    },
    async finish(what) {
      proc.stdin.end();
      const exit = await within(proc.exit, exitGraceMs);
      if (!exit) {
        log(`warning: the probe did not exit within ${exitGraceMs / 1000} s after the ${what}; it was stopped`);
        proc.stop();
      } else if (exit.code !== 0) {
        log(`warning: the probe exited with ${exit.code ?? exit.signal} after the ${what}`);
      }
    },
  };
}

/**
 * Makes sure the client has the current probe, logs which, and starts it: one command when the
 * cached copy is intact (startCachedProbe checks and starts it), else the upload, then the start.
 */
export async function installAndStartProbe(conn: SshConnection, probeDir: string, mode: '--serve' | '--restore', log: (line: string) => void): Promise<RunningProbe> {
  const started = await startCachedProbe(conn, { probeDir }, [mode]);
  const probe = 'proc' in started ? started.probe : started;
  log(probe.uploaded ? `uploaded the probe (${probe.arch}, sha256 ${probe.sha256.slice(0, 16)}) to ${probe.path}` : `the client's cached probe is current (${probe.arch})`);
  return 'proc' in started ? runningProbe(conn, probe, started.proc, log) : startProbe(conn, probe, mode, log);
}
