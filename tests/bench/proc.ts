// Runs one command of a tool under measurement: wall time and peak resident memory.
//
// Peak RSS: Node cannot read a child's rusage (process.resourceUsage() is the calling process
// only), so the command is wrapped in GNU `/usr/bin/time -f %M -o FILE`, which reports the
// child's ru_maxrss from wait4() -- exact, whatever happens in the child's last milliseconds,
// and measured the same way for haul, restic and borg. Without /usr/bin/time we poll
// /proc/PID/status every 20 ms for VmHWM (the kernel's own high-water mark of the RSS, so the
// poll only has to happen at some point after the peak, not at the peak); the last poll
// can miss growth in the final 20 ms before exit, which such short-lived peaks rarely are.
//
// CPU time: with /usr/bin/time also the command's user and system CPU seconds (wait4's rusage,
// which includes the children it waited for, such as restic's and borg's ssh client).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
  /** Peak resident set of the command in bytes, or null when it could not be measured. */
  peakRssBytes: number | null;
  rssMethod: 'gnu-time' | 'proc-vmhwm' | 'none';
  /** User + system CPU seconds of the command and its waited-for children (GNU time only). */
  cpuSeconds: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep at most this many characters of stdout (the tail); default 4 MiB. */
  maxStdout?: number;
  /** Kill the command (its whole process group) after this long; the result then has signal SIGKILL. */
  timeoutMs?: number;
}

let timeAvailable: boolean | undefined;

function hasGnuTime(): boolean {
  if (timeAvailable === undefined) {
    const out = path.join(os.tmpdir(), `haul-bench-time-probe-${process.pid}`);
    const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', out, 'true'], { stdio: 'ignore' });
    timeAvailable = r.status === 0 && /^\d+ [\d.]+ [\d.]+\s*$/.test(safeRead(out));
    fs.rmSync(out, { force: true });
  }
  return timeAvailable;
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function readVmHwm(pid: number): number | null {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(safeRead(`/proc/${pid}/status`));
  return m ? Number(m[1]) * 1024 : null;
}

function keepTail(acc: string, chunk: string, max: number): string {
  const s = acc + chunk;
  return s.length > max ? s.slice(s.length - max) : s;
}

export async function measure(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const useTime = hasGnuTime();
  const timeFile = path.join(os.tmpdir(), `haul-bench-time-${process.pid}-${Date.now()}`);
  const [file, argv] = useTime ? ['/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const maxStdout = opts.maxStdout ?? 4 * 1024 * 1024;
  const t0 = performance.now();
  // With a timeout the command leads its own process group, so the kill reaches the command
  // behind /usr/bin/time and whatever it started.
  const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.timeoutMs !== undefined });
  const killer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }, opts.timeoutMs);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = keepTail(stdout, d, maxStdout)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = keepTail(stderr, d, 64 * 1024)));
  let polled: number | null = null;
  const timer = useTime
    ? undefined
    : setInterval(() => {
        const v = child.pid === undefined ? null : readVmHwm(child.pid);
        if (v !== null) polled = Math.max(polled ?? 0, v);
      }, 20);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  const seconds = (performance.now() - t0) / 1000;
  if (timer) clearInterval(timer);
  if (killer) clearTimeout(killer);
  let peakRssBytes: number | null = polled;
  let cpuSeconds: number | null = null;
  if (useTime) {
    const text = safeRead(timeFile).trim();
    fs.rmSync(timeFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the figures on failure.
    const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(text.split('\n').at(-1) ?? '');
    peakRssBytes = m ? Number(m[1]) * 1024 : null;
    cpuSeconds = m ? Number(m[2]) + Number(m[3]) : null;
  }
  return { code, signal, seconds, peakRssBytes, rssMethod: useTime ? 'gnu-time' : polled !== null ? 'proc-vmhwm' : 'none', cpuSeconds, stdout, stderr };
}

/** Like measure, but throws with the command's output when it fails. */
export async function measureOk(what: string, cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await measure(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${cmd} ${args.join(' ')}\n--- stderr ---\n${r.stderr.slice(-4000)}\n--- stdout ---\n${r.stdout.slice(-2000)}`);
  }
  return r;
}

export function which(name: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}
