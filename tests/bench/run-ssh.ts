// The pull-backup-over-SSH benchmark: Haul pulling from a client through a real OpenSSH server on
// 127.0.0.1, next to restic (sftp backend) and borg (ssh://, `borg serve`) pushing into
// repositories behind the same sshd, on one generated data set of about 2.1 GiB.
//
//   npm run build && node dist/tests/bench/run-ssh.js     (or: BENCH_SSH=1 npm run bench)
//
// Needs root (it creates the Unix user haul-t-bench and runs sshd), /usr/sbin/sshd, and for the
// byte counts iptables (apt-get install -y iptables; without it the ssh clients' own I/O and
// Haul's own count are reported instead).
//
// Roles. Haul pulls: the client (haul-t-bench, the data in its home) runs the probe, which walks,
// chunks, hashes and compresses; the server (root, the `haul` CLI) stores into a local repository.
// restic and borg push: they run where the data is (here as root, reading the same copy in
// haul-t-bench's home) and write into a repository owned by haul-t-bench behind the same sshd.
// So the "data side" is the probe for Haul and the restic / borg process for them, and the
// "repository side" is the haul process for Haul and sshd's internal-sftp / `borg serve` for them.
//
// Steps, each tool in turn per step (haul, restic, borg), `sync` before every measured step:
// init; first backup; no-change re-run; the same ~1 % change to the tree (mutate.ts); backup
// again; measure the repositories; full restore (Haul: `haul restore` on the server from its local
// repository; restic and borg: restore through SSH into a local folder), verified against the
// changed tree by SHA-256. After the re-run, Haul alone: `haul --version` and `haul snapshots`
// (fixed costs), three no-change re-runs as jobs of a `haul daemon` started for them, and the
// first backup once more as a daemon job, into a fresh repository (the usual way a server backs
// a client up: the daemon has the repository and the database open).
//
// Environment: BENCH_SCALE (default 1.0, ~2.1 GiB and 60,000 small files; 0.05 for a quick run),
// BENCH_DIR, BENCH_SEED, BENCH_TOOLS (haul,restic,borg), BENCH_KEEP (keep repositories and the
// data copy), BENCH_SSH_CIPHER (passed to OpenSSH's ssh as -c for restic and borg; default: ssh's
// own choice, chacha20-poly1305@openssh.com), BENCH_USER (the client's Unix user, haul-t-NAME),
// BENCH_HAUL_NODE_ARGS (node options for the haul commands, such as --cpu-prof), BENCH_FIRST_RUNS
// (default 3: Haul's and restic's first backups are run that many times in all, the extra runs
// at the end into fresh repositories, alternating the two tools, and the first-backup target is
// judged on the medians: this VM's speed drifts by a fifth within minutes).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { ensureUser, sshdSkipReason, startSshd, type TestSshd, type UnixUser } from '../helpers/sshd.js';
import { defaultChunker } from '../../daemon/repository/config.js';
import { backgroundActivity, chunkerLabel, engineState, envNumber, log, MiB, rootDir, table } from './common.js';
import { buildManifest, compareManifests, datasetVersion, diskUsage, ensureDataset, type Manifest } from './dataset.js';
import { mutateDataset, type MutationSummary } from './mutate.js';
import { measure, which, type RunResult } from './proc.js';
import { homeEntries, opensshCipher, ProcWatcher, ssh2Cipher, takeSshIo, WireCounter, wireDiff, writeSshWrapper, type ProcessGroupStats, type SshIo, type WireBytes } from './ssh-bench.js';
import { settle } from './tools.js';

// BENCH_USER lets two runs on one machine use separate client users (and homes).
const BENCH_USER = process.env['BENCH_USER'] || 'haul-t-bench';
const password = 'bench-secret-passphrase';
const STEP_TIMEOUT_MS = 30 * 60_000;

type StepName = 'init' | 'first' | 'rerun' | 'changed' | 'restore';

interface StepRecord {
  seconds: number;
  /** The command run on the server side: peak RSS and CPU (its waited-for children included). */
  peakRssBytes: number | null;
  cpuSeconds: number | null;
  /** Processes of haul-t-bench during the step (probe, sshd session, borg serve). */
  userProcesses: ProcessGroupStats[];
  /** Busy CPU seconds of the whole machine during the step (/proc/stat). */
  machineCpuSeconds: number;
  /** CPU time the hypervisor gave to others while this machine's vCPUs wanted to run. */
  stealSeconds: number;
  /** IP bytes through the sshd port (iptables), when available. */
  wire?: WireBytes;
  /** restic and borg: their ssh client's own I/O. */
  sshIo?: SshIo;
  /** Haul: its --json output (bytesOnWire, snapshot stats, log). */
  reported?: Record<string, unknown>;
}

interface ToolRun {
  tool: string;
  version: string;
  settings: string;
  steps: Partial<Record<StepName, StepRecord>>;
  repository?: { allocatedBytes: number; apparentBytes: number };
  verify?: { ok: boolean; problemCount: number; problems: string[] };
  error?: string;
  /** The extra first backups into fresh repositories (BENCH_FIRST_RUNS), of the tree as changed by then. */
  firstAgain?: { seconds: number; mibPerSecond: number }[];
}

interface Driver {
  name: string;
  version: string;
  settings: string;
  /** The ssh wrapper's log for this tool (restic, borg). */
  sshLog?: string;
  init(): Promise<RunResult>;
  backup(run: number): Promise<RunResult>;
  restore(target: string): Promise<RunResult>;
  /** Where the restored copy of the data directory ends up under `target`. */
  restoredRoot(target: string): string;
  repositoryDir: string;
  /** Haul: fixed costs of every command (Node start-up and module loading; opening the repository). */
  baseline?(): Promise<HaulBaseline>;
  /** The first backup once more, into a fresh repository removed afterwards: its seconds (Haul and restic). */
  firstAgain?(): Promise<number>;
}

interface Context {
  workDir: string;
  dataDir: string;
  user: UnixUser;
  sshd: TestSshd;
  keyFile: string;
  wrapper: string;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr || '').split('\n')[0]?.trim() || 'unknown';
}

async function ok(what: string, r: Promise<RunResult>): Promise<RunResult> {
  const res = await r;
  if (res.code !== 0) {
    throw new Error(`${what} failed (exit ${res.code ?? res.signal}):\n--- stderr ---\n${res.stderr.slice(-4000)}\n--- stdout ---\n${res.stdout.slice(-2000)}`);
  }
  return res;
}

const groupRss = (s: StepRecord, name: string): number | null => s.userProcesses.find((g) => g.name === name)?.peakRssBytes ?? null;

/**
 * The process on each side of a backup, and how its peak RSS is read: the data side is where the
 * files are read and chunked, the repository side is what writes the repository.
 */
const sides: Record<string, { data: string; repo: string; dataRss: (s: StepRecord) => number | null; repoRss: (s: StepRecord) => number | null }> = {
  haul: { data: 'haul-probe', repo: 'haul', dataRss: (s) => groupRss(s, 'haul-probe'), repoRss: (s) => s.peakRssBytes },
  restic: { data: 'restic', repo: 'sshd sftp', dataRss: (s) => s.peakRssBytes, repoRss: (s) => groupRss(s, 'sshd') },
  borg: { data: 'borg create', repo: 'borg serve', dataRss: (s) => s.peakRssBytes, repoRss: (s) => groupRss(s, 'borg') },
};

function sshOptions(ctx: Context, quiet = true): string[] {
  const cipher = process.env['BENCH_SSH_CIPHER'];
  return [
    '-F', '/dev/null',
    '-i', ctx.keyFile,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    ...(quiet ? ['-o', 'LogLevel=ERROR'] : []),
    ...(cipher ? ['-c', cipher] : []),
  ];
}

/** ssh2 decrypts with its compiled binding when `npm ci` could build it for this Node, else with Node's crypto per packet. */
function ssh2CryptoBinding(): string {
  const crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
  return crypto.bindingAvailable ? 'its compiled crypto binding' : 'without its compiled crypto binding';
}

interface HaulBaseline {
  versionSeconds?: number;
  snapshotsSeconds?: number;
  /** The no-change re-run with `haul daemon` running: `haul backup` hands it over and follows it (each of 3 runs). */
  daemonRerunSeconds?: number[];
  /** The first backup again as a daemon job, into a fresh repository. */
  daemonFirstSeconds?: number;
}

/** Runs `work` while a `haul daemon` started for it runs on `env`'s state directory; the daemon is stopped again. */
async function withDaemon<T>(bin: string, env: NodeJS.ProcessEnv, work: () => Promise<T>): Promise<T> {
  const socket = path.join(env['HAUL_HOME']!, 'run', 'commands.sock');
  const daemon = spawn(process.execPath, [bin, 'daemon', '--http-port', 'off', '--log-file', path.join(env['HAUL_HOME']!, 'bench-daemon.log')], { env, stdio: 'ignore' });
  const exited = new Promise((resolve) => daemon.once('exit', resolve));
  try {
    for (let i = 0; !fs.existsSync(socket); i++) {
      if (i > 600 || daemon.exitCode !== null) throw new Error('haul daemon did not start (see bench-daemon.log in the haul state directory)');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
    return await work();
  } finally {
    daemon.kill('SIGTERM');
    await exited;
  }
}

/** `haul init`, then the client `bench` (the data set in the bench user's home) added and its key authorized; init's result. */
async function initHaul(ctx: Context, haul: (...args: string[]) => Promise<RunResult>): Promise<RunResult> {
  const r = await ok('haul init', haul('init', '--json'));
  const add = await ok('haul client add', haul('client', 'add', 'bench', `${ctx.user.name}@${ctx.sshd.host}:${ctx.sshd.port}`, '--path', ctx.dataDir, '--json'));
  ctx.sshd.authorize(ctx.user.name, (JSON.parse(add.stdout) as { authorizedKeysLine: string }).authorizedKeysLine);
  return r;
}

/** `haul backup CLIENT` as a daemon job: its seconds; fails unless the daemon ran it. */
async function daemonBackup(haul: (...args: string[]) => Promise<RunResult>, client: string): Promise<number> {
  const r = await ok('haul backup (daemon job)', haul('backup', client, '--json'));
  if ((JSON.parse(r.stdout) as { via?: string }).via !== 'daemon') throw new Error('haul backup did not run as a daemon job');
  return r.seconds;
}

type HaulWith = (env: NodeJS.ProcessEnv, ...args: string[]) => Promise<RunResult>;

/**
 * `work` on a fresh repository and state directory of their own under `name` (`haul init` and
 * the client `bench` already done), both removed afterwards: a first backup again.
 */
async function withFreshHaul<T>(ctx: Context, name: string, baseEnv: NodeJS.ProcessEnv, haulWith: HaulWith, work: (env: NodeJS.ProcessEnv, haul: (...args: string[]) => Promise<RunResult>) => Promise<T>): Promise<T> {
  const dir = path.join(ctx.workDir, name);
  const env = { ...baseEnv, HAUL_REPOSITORY: path.join(dir, 'repo'), HAUL_HOME: path.join(dir, 'home') };
  const haul = (...args: string[]) => haulWith(env, ...args);
  try {
    await initHaul(ctx, haul);
    return await work(env, haul);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The first backup again, as a job of a running daemon (the product's usual way: the daemon has
 * the repository and database open), into a fresh repository and state directory.
 */
function daemonFirstBackup(ctx: Context, bin: string, baseEnv: NodeJS.ProcessEnv, haulWith: HaulWith): Promise<number> {
  return withFreshHaul(ctx, 'haul-daemon-first', baseEnv, haulWith, (env, haul) => withDaemon(bin, env, () => daemonBackup(haul, 'bench')));
}

function haulDriver(ctx: Context): Driver {
  const bin = path.join(rootDir, 'bin', 'haul');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HAUL_')) env[k] = v;
  Object.assign(env, { HAUL_REPOSITORY: path.join(ctx.workDir, 'haul-repo'), HAUL_PASSWORD: password, HAUL_HOME: path.join(ctx.workDir, 'haul-home') });
  // BENCH_HAUL_NODE_ARGS: extra node options for the measured haul commands (e.g. --cpu-prof).
  const nodeArgs = (process.env['BENCH_HAUL_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const haulWith = (e: NodeJS.ProcessEnv, ...args: string[]) => measure(process.execPath, [...nodeArgs, bin, ...args], { env: e, cwd: rootDir, timeoutMs: STEP_TIMEOUT_MS });
  const haul = (...args: string[]) => haulWith(env, ...args);
  return {
    name: 'haul',
    version: firstLine(process.execPath, [bin, '--version']) + ` (node ${process.version}), ${firstLine(path.join(rootDir, 'probe', 'dist', 'haul-probe-x86_64'), ['--version'])}`,
    settings: `pull: probe chunks (gear CDC ${chunkerLabel(defaultChunker)}), hashes and zstd-1-compresses on the client; ssh2 transport (${ssh2CryptoBinding()}); server encrypts into 16 MiB packs`,
    init: () => initHaul(ctx, haul),
    backup: () => haul('backup', 'bench', '--json'),
    restore: (target) => haul('restore', `latest:${ctx.dataDir}`, '--client', 'bench', '--target', target, '--json'),
    restoredRoot: (target) => target,
    repositoryDir: path.join(ctx.workDir, 'haul-repo'),
    async baseline() {
      // Best of three each: `haul --version` (start-up), `haul snapshots` (start-up, key derivation, listing).
      const best = async (args: string[]) => {
        let min = Infinity;
        for (let i = 0; i < 3; i++) min = Math.min(min, (await ok(`haul ${args[0]}`, haul(...args))).seconds);
        return min;
      };
      const versionSeconds = await best(['--version']);
      const snapshotsSeconds = await best(['snapshots', '--json']);
      const daemonRerunSeconds = await withDaemon(bin, env, async () => [await daemonBackup(haul, 'bench'), await daemonBackup(haul, 'bench'), await daemonBackup(haul, 'bench')]);
      log(`[haul] first backup again, as a daemon job into a fresh repository`);
      const daemonFirstSeconds = await daemonFirstBackup(ctx, bin, env, haulWith);
      log(`[haul]   ${daemonFirstSeconds.toFixed(2)} s`);
      return { versionSeconds, snapshotsSeconds, daemonRerunSeconds, daemonFirstSeconds };
    },
    firstAgain: () =>
      withFreshHaul(ctx, 'haul-first-again', env, haulWith, async (_env, haulFresh) => {
        settle();
        return (await ok('haul backup (first, again)', haulFresh('backup', 'bench', '--json'))).seconds;
      }),
  };
}

function resticDriver(ctx: Context): Driver {
  const repoDir = path.join(ctx.user.home, 'restic-repo');
  const sshLog = path.join(ctx.workDir, 'ssh-io-restic.log');
  const sftpCommand = [ctx.wrapper, sshLog, '-p', String(ctx.sshd.port), ...sshOptions(ctx), `${ctx.user.name}@${ctx.sshd.host}`, '-s', 'sftp'].join(' ');
  const env: NodeJS.ProcessEnv = { ...process.env, RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: path.join(ctx.workDir, 'restic-cache') };
  delete env['RESTIC_REPOSITORY'];
  delete env['RESTIC_PASSWORD_FILE'];
  delete env['RESTIC_PASSWORD_COMMAND'];
  const resticAt = (dir: string, ...args: string[]) =>
    measure('restic', ['-r', `sftp:${ctx.user.name}@${ctx.sshd.host}:${dir}`, '-o', `sftp.command=${sftpCommand}`, ...args], { env, maxStdout: 256 * 1024, timeoutMs: STEP_TIMEOUT_MS });
  const restic = (...args: string[]) => resticAt(repoDir, ...args);
  return {
    name: 'restic',
    version: firstLine('restic', ['version']),
    settings: 'push over the sftp backend (OpenSSH ssh + sshd internal-sftp); defaults: repository v2, compression auto (zstd), CDC 512 KiB / 1 MiB / 8 MiB, local cache',
    sshLog,
    init: () => ok('restic init', restic('init')),
    backup: () => restic('backup', '--host', 'haul-bench', ctx.dataDir),
    restore: (target) => restic('restore', 'latest', '--host', 'haul-bench', '--target', target),
    restoredRoot: (target) => path.join(target, ctx.dataDir),
    repositoryDir: repoDir,
    async firstAgain() {
      const dir = path.join(ctx.user.home, 'restic-repo-again');
      try {
        await ok('restic init (again)', resticAt(dir, 'init'));
        settle();
        return (await ok('restic backup (first, again)', resticAt(dir, 'backup', '--host', 'haul-bench', ctx.dataDir))).seconds;
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function borgDriver(ctx: Context): Driver {
  const repo = `ssh://${ctx.user.name}@${ctx.sshd.host}:${ctx.sshd.port}/~/borg-repo`;
  const sshLog = path.join(ctx.workDir, 'ssh-io-borg.log');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BORG_PASSPHRASE: password,
    BORG_BASE_DIR: path.join(ctx.workDir, 'borg-base'),
    BORG_DISPLAY_PASSPHRASE: 'no',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
    // borg adds -p PORT (from the URL), user@host and `borg serve ...`.
    BORG_RSH: [ctx.wrapper, sshLog, ...sshOptions(ctx)].join(' '),
  };
  delete env['BORG_REPO'];
  delete env['BORG_PASSCOMMAND'];
  const borg = (args: string[], cwd?: string) => measure('borg', args, { env, maxStdout: 256 * 1024, timeoutMs: STEP_TIMEOUT_MS, ...(cwd ? { cwd } : {}) });
  let last = 0;
  return {
    name: 'borg',
    version: firstLine('borg', ['--version']),
    settings: 'push over ssh to `borg serve` (OpenSSH ssh + sshd); defaults: repokey (AES-CTR + HMAC-SHA256), lz4, buzhash CDC 512 KiB / ~2 MiB / 8 MiB',
    sshLog,
    init: () => ok('borg init', borg(['init', '-e', 'repokey', repo])),
    backup: (run) => {
      last = run;
      return borg(['create', `${repo}::run${run}`, ctx.dataDir]);
    },
    restore: (target) => {
      fs.mkdirSync(target, { recursive: true });
      return borg(['extract', `${repo}::run${last}`], target);
    },
    restoredRoot: (target) => path.join(target, ctx.dataDir),
    repositoryDir: path.join(ctx.user.home, 'borg-repo'),
  };
}

/** Busy and hypervisor-steal ticks of the whole machine (/proc/stat, USER_HZ = 100 per second). */
function machineTicks(): { busy: number; steal: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq, steal };
}

async function runStep(driver: Driver, watcher: ProcWatcher, wire: WireCounter | null, run: () => Promise<RunResult>, what: string): Promise<StepRecord> {
  settle();
  if (driver.sshLog) fs.rmSync(driver.sshLog, { force: true });
  const w0 = wire?.read();
  const m0 = machineTicks();
  watcher.start();
  const r = await run();
  const userProcesses = watcher.stop();
  const m1 = machineTicks();
  const w1 = wire?.read();
  if (r.code !== 0) {
    throw new Error(`${driver.name} ${what} failed (exit ${r.code ?? r.signal}):\n--- stderr ---\n${r.stderr.slice(-4000)}\n--- stdout ---\n${r.stdout.slice(-2000)}`);
  }
  const rec: StepRecord = {
    seconds: r.seconds,
    peakRssBytes: r.peakRssBytes,
    cpuSeconds: r.cpuSeconds,
    userProcesses,
    machineCpuSeconds: (m1.busy - m0.busy) / 100,
    stealSeconds: (m1.steal - m0.steal) / 100,
  };
  if (w0 && w1) rec.wire = wireDiff(w0, w1);
  if (driver.sshLog) rec.sshIo = takeSshIo(driver.sshLog);
  if (driver.name === 'haul') {
    try {
      rec.reported = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      // not JSON: nothing reported
    }
  }
  return rec;
}

// ---- formatting ----

/** Sizes: KiB below 1 MiB, so that small transfers do not show as 0.0 MiB. */
const mib = (b: number | null | undefined): string => (b === null || b === undefined ? 'n/a' : b < MiB ? `${(b / 1024).toFixed(1)} KiB` : `${(b / MiB).toFixed(1)} MiB`);
const f1 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(1));
const f2 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(2));
const wireTotal = (w: WireBytes | undefined) => (w ? w.toSshd + w.fromSshd : undefined);
const maxOf = (vals: (number | null)[]): number | null => {
  const v = vals.filter((x): x is number => x !== null);
  return v.length > 0 ? Math.max(...v) : null;
};
const backupSteps = (t: ToolRun) => (['first', 'rerun', 'changed'] as const).map((k) => t.steps[k]).filter((s): s is StepRecord => s !== undefined);

function haulReported(s: StepRecord | undefined): { bytesOnWire?: number; durationMs?: number; bytesRead?: number; bytesNew?: number; files?: number; log?: string[] } {
  const r = s?.reported as { bytesOnWire?: number; snapshot?: { stats?: { durationMs?: number; bytesRead?: number; bytesNew?: number; files?: number } }; log?: string[] } | undefined;
  return { bytesOnWire: r?.bytesOnWire, durationMs: r?.snapshot?.stats?.durationMs, bytesRead: r?.snapshot?.stats?.bytesRead, bytesNew: r?.snapshot?.stats?.bytesNew, files: r?.snapshot?.stats?.files, log: r?.log };
}

export async function runSshBench(): Promise<number> {
  const skip = sshdSkipReason();
  if (skip) throw new Error(`the SSH benchmark cannot run here: ${skip}`);
  const scale = envNumber('BENCH_SCALE', 1);
  const baseDir = path.resolve(process.env['BENCH_DIR'] || path.join(os.tmpdir(), 'haul-bench'));
  const seed = process.env['BENCH_SEED'] || 'haul-bench';
  const wanted = (process.env['BENCH_TOOLS'] || 'haul,restic,borg').split(',').map((s) => s.trim());
  if (!fs.existsSync(path.join(rootDir, 'dist', 'daemon', 'cli', 'main.js'))) throw new Error('the compiled CLI is missing; run `npm run build` first');
  log('building the probe (probe/build.sh)');
  execFileSync('bash', [path.join(rootDir, 'probe', 'build.sh')], { stdio: 'pipe' });
  const probeFile = path.join(rootDir, 'probe', 'dist', `haul-probe-${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}`);
  const probeBytes = fs.statSync(probeFile).size;
  fs.mkdirSync(baseDir, { recursive: true });

  const engineBefore = engineState();
  const dataset = ensureDataset(baseDir, { version: datasetVersion, seed, scale, profile: 'ssh' }, log);

  const user = ensureUser(BENCH_USER);
  // Repositories an interrupted run left behind would make `restic init` / `borg init` refuse.
  for (const scratch of ['restic-repo', 'borg-repo']) fs.rmSync(path.join(user.home, scratch), { recursive: true, force: true });
  const homeBefore = homeEntries(user.home);
  const dataDir = path.join(user.home, 'data');
  const workDir = fs.mkdtempSync(path.join(baseDir, 'ssh-run-'));
  let sshd: TestSshd | undefined;
  let wire: WireCounter | null = null;
  const runs: ToolRun[] = [];
  let wireMethod: string;
  let mutation: MutationSummary | undefined;
  let source: Manifest;
  let background: Awaited<ReturnType<typeof backgroundActivity>>;
  let ciphers: { haul: string; openssh: string };
  const haulBaseline: HaulBaseline = {};
  try {
    log(`copying the data set into ${dataDir} (owned by ${user.name})`);
    fs.rmSync(dataDir, { recursive: true, force: true });
    execFileSync('cp', ['-a', dataset.dataDir, dataDir]);
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, dataDir]);
    log('hashing the copy (reference for verification; also warms the page cache)');
    source = buildManifest(dataDir);
    log(`  ${source.files.size.toLocaleString('en')} files, ${source.dirs.size.toLocaleString('en')} directories, ${(source.bytes / MiB).toFixed(1)} MiB`);

    sshd = await startSshd({ users: [BENCH_USER] });
    log(`sshd on ${sshd.host}:${sshd.port}`);
    const keyFile = path.join(workDir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'haul-bench-push-tools', '-f', keyFile], { stdio: 'pipe' });
    sshd.authorize(user.name, fs.readFileSync(`${keyFile}.pub`, 'utf8').trim());
    const wrapper = path.join(workDir, 'ssh-counted');
    writeSshWrapper(wrapper);
    const w = WireCounter.create(sshd.port);
    if (typeof w === 'string') {
      wireMethod = `not measured with iptables: ${w}`;
      log(`warning: ${wireMethod}`);
    } else {
      wire = w;
      wireMethod = `iptables counters on loopback INPUT for tcp port ${sshd.port}`;
    }
    const ctx: Context = { workDir, dataDir, user, sshd, keyFile, wrapper };
    ciphers = {
      haul: await ssh2Cipher(sshd.host, sshd.port, user.name, keyFile),
      openssh: opensshCipher(['-p', String(sshd.port), ...sshOptions(ctx, false), `${user.name}@${sshd.host}`]),
    };
    log(`negotiated ciphers (server to client): haul (ssh2) ${ciphers.haul}, OpenSSH ssh ${ciphers.openssh}`);
    const watcher = new ProcWatcher(user.uid);

    const drivers: Driver[] = [];
    for (const [name, make] of [['haul', haulDriver], ['restic', resticDriver], ['borg', borgDriver]] as const) {
      if (!wanted.includes(name)) continue;
      if (name !== 'haul' && which(name) === null) {
        log(`[${name}] not on PATH; skipped`);
        continue;
      }
      const d = make(ctx);
      drivers.push(d);
      runs.push({ tool: d.name, version: d.version, settings: d.settings, steps: {} });
    }

    background = await backgroundActivity(3000);
    if (background && background.busy > 0.1) log(`warning: the CPUs were ${(background.busy * 100).toFixed(0)} % busy while the benchmark idled; other processes distort the timings`);

    const phase = async (step: StepName, what: string, run: (d: Driver) => Promise<RunResult>) => {
      for (let i = 0; i < drivers.length; i++) {
        const d = drivers[i]!;
        const t = runs[i]!;
        if (t.error) continue;
        log(`[${d.name}] ${what}`);
        try {
          const rec = await runStep(d, watcher, wire, () => run(d), what);
          t.steps[step] = rec;
          const extra = step === 'first' || step === 'restore' ? `, ${(source.bytes / MiB / rec.seconds).toFixed(1)} MiB/s` : '';
          log(`[${d.name}]   ${rec.seconds.toFixed(2)} s${extra}; wire ${mib(wireTotal(rec.wire))}; ${rec.userProcesses.map((g) => `${g.name} ${g.cpuSeconds.toFixed(1)} s CPU / ${mib(g.peakRssBytes)}`).join(', ')}`);
        } catch (err) {
          t.error = `${what}: ${(err as Error).message}`;
          log(`[${d.name}] FAILED: ${t.error}`);
        }
      }
    };

    await phase('init', 'init', (d) => d.init());
    await phase('first', `first backup of ${(source.bytes / MiB).toFixed(1)} MiB`, (d) => d.backup(1));
    await phase('rerun', 'no-change re-run', (d) => d.backup(2));
    const haulDrv = drivers.find((d) => d.name === 'haul');
    if (haulDrv?.baseline) Object.assign(haulBaseline, await haulDrv.baseline());

    log('changing about 1 % of the tree');
    mutation = mutateDataset(dataDir, seed);
    // Only the new files: chown sets the ctime of every file it touches, and all three tools
    // would then read the whole tree again.
    for (const f of mutation.created) fs.chownSync(f, user.uid, user.gid);
    log(`  ${mutation.filesChanged} files changed, ${mutation.filesAdded} added, ${mutation.filesDeleted} deleted, ${(mutation.bytesWritten / MiB).toFixed(1)} MiB written`);
    source = buildManifest(dataDir);
    await phase('changed', 'backup after the change', (d) => d.backup(3));

    for (let i = 0; i < drivers.length; i++) {
      const d = drivers[i]!;
      const t = runs[i]!;
      if (t.error) continue;
      const du = diskUsage(d.repositoryDir);
      t.repository = { allocatedBytes: du.allocated, apparentBytes: du.apparent };
    }

    for (let i = 0; i < drivers.length; i++) {
      const d = drivers[i]!;
      const t = runs[i]!;
      if (t.error) continue;
      // A restore that starts within about 5 minutes of tens of thousands of files being deleted
      // on the same ext4 file system (a previous run's cleanup, when runs follow each other) is
      // slowed by the kernel, not by the tool: ext4 will not reuse an inode freed less than 305 s
      // ago while its inode table block is dirty, which creating files keeps it, and checks every
      // one it passes over. Such a restore spent 24-44 CPU s in `recently_deleted` instead of 5.
      const target = path.join(workDir, `restore-${d.name}`);
      log(`[${d.name}] full restore`);
      try {
        const rec = await runStep(d, watcher, wire, () => d.restore(target), 'restore');
        t.steps.restore = rec;
        log(`[${d.name}]   ${rec.seconds.toFixed(2)} s, ${(source.bytes / MiB / rec.seconds).toFixed(1)} MiB/s, peak RSS ${mib(rec.peakRssBytes)}`);
        const root = d.restoredRoot(target);
        const problems = fs.existsSync(root) ? compareManifests(source, buildManifest(root)) : [`nothing restored at ${root}`];
        t.verify = { ok: problems.length === 0, problemCount: problems.length, problems: problems.slice(0, 50) };
        log(`[${d.name}]   ${problems.length === 0 ? 'identical to the changed tree' : `RESTORE DIFFERS: ${problems.slice(0, 10).join('; ')}`}`);
      } catch (err) {
        t.error = `restore: ${(err as Error).message}`;
        log(`[${d.name}] FAILED: ${t.error}`);
      } finally {
        if (!process.env['BENCH_KEEP']) fs.rmSync(target, { recursive: true, force: true });
      }
    }

    // The first backups again, alternating the tools, each into a fresh repository.
    const firstRuns = Math.max(1, Math.floor(envNumber('BENCH_FIRST_RUNS', 3)));
    const again = drivers.map((d, i) => ({ d, t: runs[i]! })).filter(({ d, t }) => d.firstAgain && !t.error && t.steps.first);
    for (let round = 1; round < firstRuns && again.length > 0; round++) {
      for (const { d, t } of round % 2 === 1 ? [...again].reverse() : again) {
        log(`[${d.name}] first backup again (${round + 1} of ${firstRuns}), into a fresh repository`);
        try {
          const seconds = await d.firstAgain!();
          const mibPerSecond = source.bytes / MiB / seconds;
          (t.firstAgain ??= []).push({ seconds, mibPerSecond });
          log(`[${d.name}]   ${seconds.toFixed(2)} s, ${mibPerSecond.toFixed(1)} MiB/s`);
        } catch (err) {
          log(`[${d.name}] first backup again FAILED: ${(err as Error).message}`);
        }
      }
    }
  } finally {
    wire?.dispose();
    await sshd?.stop();
    if (!process.env['BENCH_KEEP']) {
      // Everything this run left in the bench user's home (data copy, repositories, probe cache).
      for (const e of homeEntries(user.home)) if (!homeBefore.has(e)) fs.rmSync(path.join(user.home, e), { recursive: true, force: true });
      fs.rmSync(workDir, { recursive: true, force: true });
    } else {
      log(`kept ${workDir} and ${user.home}`);
    }
  }

  const engineAfter = engineState();
  const engineMoved = JSON.stringify(engineBefore) !== JSON.stringify(engineAfter);
  const cpu = os.cpus();
  const machine = { cpus: cpu.length, cpuModel: cpu[0]?.model ?? 'unknown', memoryBytes: os.totalmem(), kernel: os.release(), node: process.version, openssh: firstLine('ssh', ['-V']) };
  const results = {
    generatedAt: new Date().toISOString(),
    engine: { before: engineBefore, after: engineAfter, changedDuringRun: engineMoved },
    machine,
    background,
    wireMethod,
    probe: { file: probeFile, bytes: probeBytes },
    dataset: { ...dataset, filesAfterChange: source.files.size, bytesAfterChange: source.bytes },
    mutation: mutation ? { ...mutation, created: mutation.created.length } : undefined,
    ciphers,
    haulBaseline,
    tools: runs,
  };
  const jsonPath = path.join(rootDir, 'dist', 'bench-ssh-results.json');
  fs.mkdirSync(path.dirname(jsonPath), { recursive: true });
  fs.writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(report(results, ciphers, haulBaseline, runs, dataset.bytes, source.bytes, dataset.files, scale, seed, mutation, probeBytes, wireMethod, engineBefore, engineMoved, background, jsonPath) + '\n');

  let status = 0;
  for (const t of runs) {
    if (t.error || !t.verify?.ok) {
      process.stderr.write(`\nBENCH FAILURE: ${t.tool}: ${t.error ?? `restore differs from the changed tree (${t.verify?.problemCount} problems): ${t.verify?.problems.slice(0, 5).join('; ')}`}\n`);
      status = 1;
    }
  }
  return status;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function report(
  results: { machine: { cpus: number; cpuModel: string; memoryBytes: number; kernel: string; node: string; openssh: string } },
  ciphers: { haul: string; openssh: string },
  haulBaseline: HaulBaseline,
  runs: ToolRun[],
  bytes: number,
  restoredBytes: number,
  files: number,
  scale: number,
  seed: string,
  mutation: MutationSummary | undefined,
  probeBytes: number,
  wireMethod: string,
  engine: ReturnType<typeof engineState>,
  engineMoved: boolean,
  background: Awaited<ReturnType<typeof backgroundActivity>>,
  jsonPath: string,
): string {
  const m = results.machine;
  const out: string[] = [];
  const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
  out.push('## Haul pull backup over SSH');
  out.push('');
  out.push(`Data set: ${files.toLocaleString('en')} files, ${(bytes / MiB).toFixed(1)} MiB (profile "ssh", scale ${scale}, seed "${seed}"), copied into the home of ${BENCH_USER}.`);
  if (mutation) out.push(`Change between the re-run and the next backup: ${mutation.filesChanged} files changed, ${mutation.filesAdded} added, ${mutation.filesDeleted} deleted, ${(mutation.bytesWritten / MiB).toFixed(1)} MiB of new content (${((100 * mutation.bytesWritten) / bytes).toFixed(2)} % of the bytes).`);
  out.push(`Machine: ${m.cpus} × ${m.cpuModel}, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.openssh}. Background before the runs (3 s idle sample): ${background ? `${pct(background.busy)} CPU busy, ${pct(background.iowait)} I/O wait` : 'n/a'}. Engine: commit ${engine.commit ?? '?'}${engine.changes.length > 0 ? ` with uncommitted changes (${engine.changes.join(', ')})` : ''}${engineMoved ? ' (WARNING: it changed during the runs)' : ''}.`);
  out.push(`Bytes on the wire: ${wireMethod}.`);
  out.push('');

  const rows = runs.map((t) => {
    const s = t.steps;
    const bs = backupSteps(t);
    const side = sides[t.tool]!;
    return [
      t.tool,
      s.first ? f1(bytes / MiB / s.first.seconds) : 'n/a',
      f2(s.rerun?.seconds),
      f2(s.changed?.seconds),
      mib(wireTotal(s.changed?.wire) ?? s.changed?.sshIo?.wireEstimate ?? haulReported(s.changed).bytesOnWire),
      s.restore ? f1(restoredBytes / MiB / s.restore.seconds) : 'n/a',
      t.repository ? `${mib(t.repository.allocatedBytes)} (${((100 * t.repository.allocatedBytes) / bytes).toFixed(1)} %)` : 'n/a',
      `${mib(maxOf(bs.map(side.dataRss)))} (${side.data})`,
      `${mib(maxOf(bs.map(side.repoRss)))} (${side.repo})`,
      t.error ? 'FAILED' : t.verify?.ok ? 'identical' : `${t.verify?.problemCount ?? '?'} differences`,
    ];
  });
  out.push(
    table(
      ['tool', 'first backup MiB/s', 'no-change re-run s', 'after 1 % change s', 'wire after change', 'restore MiB/s', 'repository (du)', 'data-side peak RSS', 'repository-side peak RSS', 'restore check'],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  );
  out.push('');

  out.push('Bytes on the wire per backup (both directions through the sshd port; cross-check: Haul\'s own count of the probe\'s stream before SSH, or the ssh client\'s (rchar + wchar) / 2 for restic and borg):');
  out.push('');
  const wireRows = runs.map((t) => {
    const cells = [t.tool];
    for (const k of ['first', 'rerun', 'changed'] as const) {
      const s = t.steps[k];
      const own = t.tool === 'haul' ? haulReported(s).bytesOnWire : s?.sshIo?.connections ? s.sshIo.wireEstimate : undefined;
      cells.push(`${mib(wireTotal(s?.wire))} (${mib(own)})`);
    }
    const r = t.steps.restore;
    cells.push(t.tool === 'haul' ? 'local repository' : `${mib(wireTotal(r?.wire))} (${mib(r?.sshIo?.connections ? r.sshIo.wireEstimate : undefined)})`);
    return cells;
  });
  out.push(table(['tool', 'first backup', 'no-change re-run', 'after 1 % change', 'restore'], wireRows, ['l', 'r', 'r', 'r', 'r']));
  out.push('');

  // Targets.
  const haul = runs.find((t) => t.tool === 'haul');
  const restic = runs.find((t) => t.tool === 'restic');
  if (haul) {
    const hs = haul.steps;
    const rs = restic?.steps;
    const verdict = (okay: boolean | undefined) => (okay === undefined ? 'n/a' : okay ? 'met' : '**missed**');
    const tput = (s: StepRecord | undefined) => (s ? bytes / MiB / s.seconds : undefined);
    const hFirst = tput(hs.first);
    const rFirst = tput(rs?.first);
    const hRest = hs.restore ? restoredBytes / MiB / hs.restore.seconds : undefined;
    const rRest = rs?.restore ? restoredBytes / MiB / rs.restore.seconds : undefined;
    const hWire = wireTotal(hs.changed?.wire) ?? haulReported(hs.changed).bytesOnWire;
    const rWire = wireTotal(rs?.changed?.wire) ?? rs?.changed?.sshIo?.wireEstimate;
    const probeRss = maxOf(backupSteps(haul).map((s) => groupRss(s, 'haul-probe')));
    const hFirstDaemon = haulBaseline.daemonFirstSeconds ? bytes / MiB / haulBaseline.daemonFirstSeconds : undefined;
    const daemonRuns = haulBaseline.daemonRerunSeconds;
    const daemonRerun = daemonRuns?.length ? [...daemonRuns].sort((a, b) => a - b)[Math.floor(daemonRuns.length / 2)] : undefined;
    // Every first backup of a tool in one process (the main one and BENCH_FIRST_RUNS' extra ones), MiB/s.
    const firstRates = (t: ToolRun | undefined, main: number | undefined) => [...(main !== undefined ? [main] : []), ...(t?.firstAgain ?? []).map((a) => a.mibPerSecond)];
    const hRates = firstRates(haul, hFirst);
    const rRates = firstRates(restic, rFirst);
    const hMedian = median(hRates);
    const rMedian = median(rRates);
    const medianRow = hRates.length > 1 && rRates.length > 1 && hMedian !== undefined && rMedian !== undefined
      ? [[`first backup ≥ 2 × restic's throughput, in one process, medians of ${hRates.length} and ${rRates.length} runs`, `${f1(hMedian)} MiB/s`, `restic ${f1(rMedian)} MiB/s`, `${(hMedian / rMedian).toFixed(2)} ×`, verdict(hMedian >= 2 * rMedian)]]
      : [];
    const trows: string[][] = [
      ['first backup ≥ 2 × restic\'s throughput, in one process', `${f1(hFirst)} MiB/s`, `restic ${f1(rFirst)} MiB/s`, hFirst && rFirst ? `${(hFirst / rFirst).toFixed(2)} ×` : 'n/a', verdict(hFirst && rFirst ? hFirst >= 2 * rFirst : undefined)],
      ...medianRow,
      ...(hFirstDaemon !== undefined ? [['first backup ≥ 2 × restic\'s throughput, as a job of the running daemon', `${f1(hFirstDaemon)} MiB/s`, `restic ${f1(rFirst)} MiB/s`, rFirst ? `${(hFirstDaemon / rFirst).toFixed(2)} ×` : 'n/a', verdict(rFirst ? hFirstDaemon >= 2 * rFirst : undefined)]] : []),
      [`no-change re-run ≤ 1 s (${files.toLocaleString('en')} files), in one process`, `${f2(hs.rerun?.seconds)} s`, `restic ${f2(rs?.rerun?.seconds)} s`, '', verdict(hs.rerun ? hs.rerun.seconds <= 1 : undefined)],
      ...(daemonRerun !== undefined ? [[`no-change re-run ≤ 1 s, as a job of the running daemon (median of 3)`, `${f2(daemonRerun)} s`, `restic ${f2(rs?.rerun?.seconds)} s`, '', verdict(daemonRerun <= 1)]] : []),
      ['bytes on the wire after the change ≤ restic\'s', mib(hWire), `restic ${mib(rWire)}`, hWire !== undefined && rWire ? `${(hWire / rWire).toFixed(2)} ×` : 'n/a', verdict(hWire !== undefined && rWire !== undefined ? hWire <= rWire : undefined)],
      ['restore ≥ 1.5 × restic\'s throughput', `${f1(hRest)} MiB/s`, `restic ${f1(rRest)} MiB/s`, hRest && rRest ? `${(hRest / rRest).toFixed(2)} ×` : 'n/a', verdict(hRest && rRest ? hRest >= 1.5 * rRest : undefined)],
      ['client (probe) peak RSS ≤ 32 MiB', mib(probeRss), '', '', verdict(probeRss !== null ? probeRss <= 32 * MiB : undefined)],
    ];
    out.push(table(['target (from the issue)', 'haul', 'reference', 'ratio', 'result'], trows, ['l', 'r', 'r', 'r', 'l']));
    out.push('');
    if (medianRow.length > 0) {
      out.push(`First backups in one process, MiB/s (the first of each in the table above, the others at the end of the run into fresh repositories, of the tree as changed by then, the tools alternating): haul ${hRates.map(f1).join(', ')}; restic ${rRates.map(f1).join(', ')}.`);
      out.push('');
    }
    out.push(`Probe binary: ${probeBytes.toLocaleString('en')} bytes (${(probeBytes / 1024).toFixed(0)} KiB, static, x86_64).`);
    out.push('');
  }

  out.push('Where the time goes: CPU seconds per process during each step (the server-side command includes the children it waited for, such as restic\'s and borg\'s ssh client; processes of ' + BENCH_USER + ' are polled from /proc; "machine" is all busy CPU time on the 2 cores, from /proc/stat, with the time the hypervisor stole when there was any):');
  out.push('');
  const cpuRows: string[][] = [];
  const label: Record<StepName, string> = { init: 'init', first: 'first backup', rerun: 'no-change re-run', changed: 'after 1 % change', restore: 'restore' };
  for (const t of runs) {
    for (const k of ['first', 'rerun', 'changed', 'restore'] as const) {
      const s = t.steps[k];
      if (!s) continue;
      const h = t.tool === 'haul' && k !== 'restore' ? haulReported(s) : undefined;
      cpuRows.push([
        t.tool,
        label[k],
        f2(s.seconds),
        f1(s.cpuSeconds),
        s.userProcesses.filter((g) => g.cpuSeconds >= 0.05 || g.name === 'haul-probe').map((g) => `${g.name} ${g.cpuSeconds.toFixed(1)}`).join(', ') || '-',
        `${f1(s.machineCpuSeconds)}${s.stealSeconds >= 0.05 ? ` (steal ${f1(s.stealSeconds)})` : ''}`,
        h?.durationMs !== undefined ? `session ${(h.durationMs / 1000).toFixed(2)} s, read ${mib(h.bytesRead)}, new ${mib(h.bytesNew)}` : '',
      ]);
    }
  }
  out.push(table(['tool', 'step', 'wall s', 'server-side command CPU s', `${BENCH_USER} processes CPU s`, 'machine CPU s', 'haul\'s own figures'], cpuRows, ['l', 'l', 'r', 'r', 'l', 'r', 'l']));
  out.push('');
  for (const t of runs) out.push(`- ${t.tool}: ${t.version}; ${t.settings}${t.error ? `; ERROR: ${t.error.split('\n')[0]}` : ''}`);
  out.push(`- SSH ciphers negotiated with this sshd: haul (ssh2) ${ciphers.haul}; restic and borg (OpenSSH ssh${process.env['BENCH_SSH_CIPHER'] ? ` -c ${process.env['BENCH_SSH_CIPHER']}` : ''}) ${ciphers.openssh}`);
  if (haulBaseline.versionSeconds !== undefined) {
    out.push(`- haul's fixed cost per command (best of 3): \`haul --version\` ${f2(haulBaseline.versionSeconds)} s (Node start-up, loading the CLI); \`haul snapshots\` ${f2(haulBaseline.snapshotsSeconds)} s (plus unlocking the repository key and listing snapshots)${haulBaseline.daemonRerunSeconds ? `; the no-change re-run as a daemon job (\`haul backup\` with \`haul daemon\` running, which has the repository and database open): ${haulBaseline.daemonRerunSeconds.map(f2).join(', ')} s` : ''}${haulBaseline.daemonFirstSeconds ? `; the first backup as a daemon job, into a fresh repository: ${f2(haulBaseline.daemonFirstSeconds)} s` : ''}`);
  }
  out.push('');
  out.push(`JSON: ${jsonPath}`);
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    process.exitCode = await runSshBench();
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
