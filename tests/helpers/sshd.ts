// A real OpenSSH server for tests, on a free port of 127.0.0.1 with its own host key, config,
// authorized_keys files and log under a temporary directory. Client accounts are real Unix
// users (created when missing). Needs root and /usr/sbin/sshd; `sshdSkipReason()` says why a
// suite cannot run otherwise.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const SSHD = '/usr/sbin/sshd';

export interface TestSshd {
  readonly host: string;
  readonly port: number;
  /** The host key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`). */
  readonly hostKeyFingerprint: string;
  /** The temporary directory holding config, keys, authorized_keys and log. */
  readonly dir: string;
  /** Appends one line to `user`'s authorized_keys file (the one this sshd reads). */
  authorize(user: string, authorizedKeysLine: string): void;
  /** Empties `user`'s authorized_keys file. */
  deauthorize(user: string): void;
  /** sshd's log so far (LogLevel VERBOSE). */
  log(): string;
  /** Stops sshd and every process it started (connections, user commands); removes the directory. */
  stop(): Promise<void>;
}

/** Why sshd-based tests cannot run here, or undefined when they can. */
export function sshdSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'sshd tests run on Linux only';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return 'sshd tests need root (to create the client Unix users and run sshd); run the suite as root';
  }
  if (!fs.existsSync(SSHD)) return `${SSHD} is missing: apt-get install -y openssh-server`;
  if (spawnSync('sh', ['-c', 'command -v ssh-keygen && command -v useradd']).status !== 0) {
    return 'ssh-keygen or useradd is missing: apt-get install -y openssh-server passwd';
  }
  return undefined;
}

let tmpfsAnswer: string | undefined | null = null;
/** Why tmpfs mounts (for noexec and disk-full tests) are impossible here, or undefined. */
export function tmpfsSkipReason(): string | undefined {
  if (tmpfsAnswer !== null) return tmpfsAnswer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-mount-check-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  if (r.status === 0) {
    spawnSync('umount', [dir]);
    tmpfsAnswer = undefined;
  } else {
    tmpfsAnswer = `cannot mount a tmpfs here (${r.stderr.toString().trim() || `mount exit ${r.status}`}); a container without CAP_SYS_ADMIN?`;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return tmpfsAnswer;
}

export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The user's entry, creating it (with a home, key logins allowed, no password) when missing. */
export function ensureUser(name: string): UnixUser {
  if (!/^haul-t-[a-z0-9-]{1,20}$/.test(name)) throw new Error(`test user names look like haul-t-NAME, got ${name}`);
  for (let attempt = 0; ; attempt++) {
    const found = lookupUser(name);
    if (found) {
      // '*' (not '!'): a locked account is refused by sshd even for key logins.
      execFileSync('usermod', ['-p', '*', name], { stdio: 'pipe' });
      fs.mkdirSync(found.home, { recursive: true });
      fs.chownSync(found.home, found.uid, found.gid);
      return found;
    }
    const r = spawnSync('useradd', ['-m', '-s', '/bin/sh', name]);
    // 9: the name is taken (another test file created it meanwhile); 1 and 10: /etc/passwd or /etc/group locked.
    if (r.status !== 0 && ![1, 9, 10].includes(r.status ?? -1)) {
      throw new Error(`useradd ${name} failed (exit ${r.status}): ${r.stderr.toString().trim()}`);
    }
    if (r.status !== 0 && attempt > 50) throw new Error(`useradd ${name} kept failing: ${r.stderr.toString().trim()}`);
    if (r.status !== 0) sleepSync(100);
  }
}

function lookupUser(name: string): UnixUser | undefined {
  const r = spawnSync('getent', ['passwd', name]);
  if (r.status !== 0) return undefined;
  const fields = r.stdout.toString().trim().split(':');
  return { name, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? `/home/${name}` };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Every process below `root` (by parent pid), read from /proc before anything is killed. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    for (const child of children.get(todo.pop()!) ?? []) {
      out.push(child);
      todo.push(child);
    }
  }
  return out;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills the wrapper's process group and every descendant, synchronously (usable in an exit hook). */
function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  const pids = descendants(child.pid);
  killQuietly(-child.pid, signal); // the group: wrapper shell, sshd listener, watchdog
  for (const pid of pids) killQuietly(pid, signal); // connections and user commands live in other sessions
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) killTree(child, 'SIGKILL');
  });
}

/**
 * Starts sshd for `users` (created when missing). The returned server accepts only those users,
 * only public keys, and reads authorized_keys from its own directory (`authorize`).
 */
export async function startSshd(options: { users: string[]; /** Lines appended to sshd_config (Match blocks go here). */ extraConfig?: string[] }): Promise<TestSshd> {
  const skip = sshdSkipReason();
  if (skip) throw new Error(skip);
  for (const user of options.users) ensureUser(user);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-sshd-'));
  // sshd reads authorized_keys with the user's privileges: the path must be traversable.
  fs.chmodSync(dir, 0o755);
  const keysDir = path.join(dir, 'authorized_keys');
  fs.mkdirSync(keysDir, { mode: 0o755 });
  fs.chmodSync(keysDir, 0o755);
  for (const user of options.users) {
    fs.writeFileSync(path.join(keysDir, user), '', { mode: 0o644 });
  }
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'haul-test-sshd', '-f', hostKey], { stdio: 'pipe' });
  const fingerprint = execFileSync('ssh-keygen', ['-lf', `${hostKey}.pub`]).toString().trim().split(/\s+/)[1] ?? '';
  if (!fingerprint.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -lf output: ${fingerprint}`);
  const logPath = path.join(dir, 'sshd.log');
  const configPath = path.join(dir, 'sshd_config');

  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    fs.writeFileSync(
      configPath,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${keysDir}/%u`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin no',
        'UsePAM no',
        'StrictModes no',
        'LogLevel VERBOSE',
        `AllowUsers ${options.users.join(' ')}`,
        'Subsystem sftp internal-sftp',
        ...(options.extraConfig ?? []),
        '',
      ].join('\n'),
    );
    const check = spawnSync(SSHD, ['-t', '-f', configPath]);
    if (check.status !== 0) throw new Error(`sshd -t refused the test config: ${check.stderr.toString()}`);
    fs.writeFileSync(logPath, '');

    // A watchdog shell: when this Node process dies, even by SIGKILL, its end of the stdin pipe
    // closes, `cat` returns and sshd is killed. The wrapper leads its own process group.
    // (A background list reads /dev/null unless told otherwise, hence the copy of stdin on fd 3.)
    const script = `exec 3<&0; "$0" -f "$1" -E "$2" -D </dev/null 3<&- & pid=$!; { cat <&3 >/dev/null; kill $pid 2>/dev/null; } & exec 3<&-; wait $pid`;
    const child = spawn('/bin/sh', ['-c', script, SSHD, configPath, logPath], { detached: true, stdio: ['pipe', 'ignore', 'pipe'] });
    running.add(child);
    installExitHook();
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
    });
    child.stderr?.resume();
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

    const deadline = Date.now() + 10_000;
    let up = false;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const log = (): string => {
      try {
        return fs.readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    };
    if (!up) {
      killTree(child, 'SIGKILL');
      lastError = log();
      if (/Address already in use/.test(lastError)) continue; // lost the free port to someone else
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start on 127.0.0.1:${port}: ${lastError || '(empty log)'}`);
    }

    let stopped: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      hostKeyFingerprint: fingerprint,
      dir,
      authorize(user, line) {
        if (!options.users.includes(user)) throw new Error(`${user} is not a user of this sshd`);
        fs.appendFileSync(path.join(keysDir, user), line.endsWith('\n') ? line : `${line}\n`);
      },
      deauthorize(user) {
        fs.writeFileSync(path.join(keysDir, user), '');
      },
      log,
      stop() {
        stopped ??= (async () => {
          killTree(child, 'SIGTERM');
          const until = Date.now() + 3_000;
          while (!exited && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
          killTree(child, 'SIGKILL');
          child.stdin?.destroy();
          fs.rmSync(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`sshd could not bind a free port: ${lastError}`);
}

/** Mounts a tmpfs on `dir` (created if missing), owned by `owner`. */
export function mountTmpfs(dir: string, options: { size: string; noexec?: boolean; owner?: UnixUser }): void {
  fs.mkdirSync(dir, { recursive: true });
  const opts = [`size=${options.size}`, 'mode=0755', ...(options.noexec ? ['noexec'] : [])];
  if (options.owner) opts.push(`uid=${options.owner.uid}`, `gid=${options.owner.gid}`);
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts.join(','), 'tmpfs', dir], { stdio: 'pipe' });
}

/** Unmounts `dir` if something is mounted there (lazily when busy). */
export function unmount(dir: string): void {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8');
  const target = path.resolve(dir);
  if (!mounts.split('\n').some((line) => line.split(' ')[1] === target)) return;
  if (spawnSync('umount', [target]).status !== 0) spawnSync('umount', ['-l', target]);
}

/** Writes `files` (name -> content) into a fresh folder `dir`, owned by `user`; returns `dir`. */
export function writeOwnedFolder(dir: string, files: Record<string, Buffer>, user: UnixUser): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
  return dir;
}
