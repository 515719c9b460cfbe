// Measuring instruments for the pull-over-SSH benchmark (run-ssh.ts):
//
// - ProcWatcher: peak RSS and CPU time of the processes a Unix user runs during one step (the
//   probe and the sshd session for Haul; sshd's internal-sftp for restic; `borg serve` for borg).
//   It polls /proc every 25 ms: new PIDs are attributed by the UIDs in /proc/PID/status, and each
//   tracked process's VmHWM (the kernel's own high-water mark of its resident set, so a poll
//   only has to come some time after the peak, not at it) and utime+stime are read. A process
//   is grouped by its current name, so a shell that `exec`s the probe counts as the probe from
//   then on (exec starts a fresh address space and VmHWM). What the last 25 ms before a process
//   exits add is missed: a few milliseconds of CPU, and RSS growth that late is not seen.
// - WireCounter: bytes through the sshd port, counted by two iptables rules on loopback's INPUT
//   path (every loopback packet crosses INPUT once): `--dport PORT` is what clients sent to sshd,
//   `--sport PORT` what sshd sent back. These are IP packet lengths: encrypted SSH payload, SSH
//   packet framing and MACs, TCP/IP headers and the pure ACKs, so the same yardstick for all tools.
// - The ssh wrapper (sshWrapper): restic and borg start OpenSSH's `ssh`; the wrapper runs it as
//   a child and then appends its own /proc/self/io rchar and wchar, which on Linux include the
//   reaped child's. ssh reads what the tool sends from a pipe and writes it to the socket, and
//   the reverse, so (rchar + wchar) / 2 approximates the bytes on the wire (the SSH overhead
//   makes the socket side a little larger). A cross-check for the iptables figures, and the
//   fallback where iptables is missing or refused.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'ssh2';
import { ALGORITHMS } from '../../daemon/session/ssh-connection.js';
import { statCpuTicks, ticksPerSecond } from './common.js';

// ---- processes of one user ----

interface Tracked {
  name: string;
  hwmBytes: number;
  /** utime + stime in clock ticks at the last poll. */
  ticks: number;
  /** Ticks when first seen (0 for a process that started during the step). */
  baseTicks: number;
}

export interface ProcessGroupStats {
  /** Process name (`haul-probe-*` names grouped as `haul-probe`). */
  name: string;
  processes: number;
  /** Largest VmHWM of one process of this name. */
  peakRssBytes: number;
  /** CPU seconds (user + system) the processes of this name used during the step. */
  cpuSeconds: number;
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function groupName(name: string): string {
  return name.startsWith('haul-probe-') ? 'haul-probe' : name;
}

export class ProcWatcher {
  private tracked = new Map<number, Tracked>();
  private foreign = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly uid: number,
    private readonly intervalMs = 25,
  ) {}

  start(): void {
    this.tracked.clear();
    this.foreign.clear();
    this.poll(true);
    this.timer = setInterval(() => this.poll(false), this.intervalMs);
  }

  /** Stops polling (after a last poll) and returns the step's figures per process name. */
  stop(): ProcessGroupStats[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.poll(false);
    const hz = ticksPerSecond();
    const groups = new Map<string, ProcessGroupStats>();
    for (const t of this.tracked.values()) {
      const name = groupName(t.name);
      const g = groups.get(name) ?? { name, processes: 0, peakRssBytes: 0, cpuSeconds: 0 };
      g.processes++;
      g.peakRssBytes = Math.max(g.peakRssBytes, t.hwmBytes);
      g.cpuSeconds += (t.ticks - t.baseTicks) / hz;
      groups.set(name, g);
    }
    return [...groups.values()].sort((a, b) => b.cpuSeconds - a.cpuSeconds);
  }

  private polls = 0;

  private poll(initial: boolean): void {
    // A process seen between fork and setuid (sshd's session child) looked foreign: look again.
    if (++this.polls % 20 === 0) this.foreign.clear();
    let entries: string[];
    try {
      entries = fs.readdirSync('/proc');
    } catch {
      return;
    }
    for (const entry of entries) {
      const c = entry.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(entry);
      if (this.foreign.has(pid)) continue;
      let known = this.tracked.get(pid);
      const status = readOrEmpty(`/proc/${pid}/status`);
      if (!status) continue;
      if (!known) {
        // The real or effective UID from status: /proc/PID itself belongs to root when the
        // process is not dumpable, as sshd's session processes are.
        const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
        if (!ids || (Number(ids[1]) !== this.uid && Number(ids[2]) !== this.uid)) {
          this.foreign.add(pid);
          continue;
        }
      }
      const stat = readOrEmpty(`/proc/${pid}/stat`);
      if (!stat) continue;
      const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? '?';
      const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      const ticks = statCpuTicks(stat);
      if (!known) {
        known = { name, hwmBytes: 0, ticks, baseTicks: initial ? ticks : 0 };
        this.tracked.set(pid, known);
      }
      known.name = name;
      known.hwmBytes = Math.max(known.hwmBytes, hwm);
      known.ticks = Math.max(known.ticks, ticks);
    }
  }
}

// ---- bytes through the sshd port ----

export interface WireBytes {
  /** Bytes (IP packets) from clients to sshd. */
  toSshd: number;
  /** Bytes (IP packets) from sshd to clients. */
  fromSshd: number;
  packets: number;
}

export class WireCounter {
  private constructor(
    private readonly chain: string,
    private readonly port: number,
  ) {}

  /** Installs the counting rules, or returns the reason it cannot. */
  static create(port: number): WireCounter | string {
    const chain = `HAULBENCH${port}`;
    const ipt = (...args: string[]) => spawnSync('iptables', ['-w', ...args], { encoding: 'utf8' });
    const probe = ipt('-L', 'INPUT', '-n');
    if (probe.error) return `iptables is not available (${probe.error.message}); apt-get install -y iptables`;
    if (probe.status !== 0) return `iptables refused to list rules: ${probe.stderr.trim()}`;
    ipt('-D', 'INPUT', '-i', 'lo', '-p', 'tcp', '-j', chain); // a leftover of an interrupted run
    ipt('-F', chain);
    ipt('-X', chain);
    for (const args of [
      ['-N', chain],
      ['-A', chain, '-p', 'tcp', '--dport', String(port)],
      ['-A', chain, '-p', 'tcp', '--sport', String(port)],
      ['-I', 'INPUT', '1', '-i', 'lo', '-p', 'tcp', '-j', chain],
    ]) {
      const r = ipt(...args);
      if (r.status !== 0) {
        const w = new WireCounter(chain, port);
        w.dispose();
        return `iptables ${args.join(' ')} failed: ${r.stderr.trim()}`;
      }
    }
    return new WireCounter(chain, port);
  }

  read(): WireBytes {
    const r = spawnSync('iptables', ['-w', '-L', this.chain, '-n', '-v', '-x'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`iptables -L ${this.chain} failed: ${r.stderr}`);
    const out: WireBytes = { toSshd: 0, fromSshd: 0, packets: 0 };
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*(\d+)\s+(\d+)\s.*\b(dpt|spt):(\d+)\b/.exec(line);
      if (!m || Number(m[4]) !== this.port) continue;
      out.packets += Number(m[1]);
      if (m[3] === 'dpt') out.toSshd += Number(m[2]);
      else out.fromSshd += Number(m[2]);
    }
    return out;
  }

  dispose(): void {
    const ipt = (...args: string[]) => spawnSync('iptables', ['-w', ...args], { stdio: 'ignore' });
    ipt('-D', 'INPUT', '-i', 'lo', '-p', 'tcp', '-j', this.chain);
    ipt('-F', this.chain);
    ipt('-X', this.chain);
  }
}

export function wireDiff(a: WireBytes, b: WireBytes): WireBytes {
  return { toSshd: b.toSshd - a.toSshd, fromSshd: b.fromSshd - a.fromSshd, packets: b.packets - a.packets };
}

// ---- the ssh client's own I/O ----

/** Writes the wrapper script: `WRAPPER LOGFILE ssh-arguments...`. */
export function writeSshWrapper(file: string): void {
  fs.writeFileSync(
    file,
    [
      '#!/bin/sh',
      '# Runs ssh, then logs its rchar/wchar: /proc/$$/io includes the reaped child.',
      'log=$1; shift',
      '/usr/bin/ssh "$@"',
      'rc=$?',
      'while read -r k v; do case $k in rchar:) r=$v ;; wchar:) w=$v ;; esac; done < /proc/$$/io',
      'echo "$r $w $rc" >> "$log"',
      'exit $rc',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
}

export interface SshIo {
  /** ssh processes that logged (one per connection). */
  connections: number;
  rchar: number;
  wchar: number;
  /** (rchar + wchar) / 2: the proxy for the bytes on the wire. */
  wireEstimate: number;
}

/** Reads and empties a wrapper's log. */
export function takeSshIo(logFile: string): SshIo {
  const text = readOrEmpty(logFile);
  fs.rmSync(logFile, { force: true });
  const io: SshIo = { connections: 0, rchar: 0, wchar: 0, wireEstimate: 0 };
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\d+)/.exec(line);
    if (!m) continue;
    io.connections++;
    io.rchar += Number(m[1]);
    io.wchar += Number(m[2]);
  }
  io.wireEstimate = Math.round((io.rchar + io.wchar) / 2);
  return io;
}

/** Files and directories `home` gained since `before` (top level, and inside .cache and .config). */
export function homeEntries(home: string): Set<string> {
  const out = new Set<string>();
  const list = (rel: string) => {
    try {
      return fs.readdirSync(path.join(home, rel));
    } catch {
      return [];
    }
  };
  for (const e of list('')) out.add(e);
  for (const sub of ['.cache', '.config']) for (const e of list(sub)) out.add(`${sub}/${e}`);
  return out;
}

// ---- the ciphers the two SSH implementations negotiate with this sshd ----

/** The server-to-client cipher ssh2 negotiates with Haul's algorithm settings. */
export function ssh2Cipher(host: string, port: number, user: string, keyFile: string): Promise<string> {
  return new Promise((resolve) => {
    const c = new Client();
    let cipher = 'unknown';
    const done = (v: string) => {
      c.end();
      resolve(v);
    };
    c.on('handshake', (n) => (cipher = n.sc.cipher));
    c.on('ready', () => done(cipher));
    c.on('error', (err) => done(`unknown (${err.message})`));
    c.connect({ host, port, username: user, privateKey: fs.readFileSync(keyFile), algorithms: ALGORITHMS, hostVerifier: () => true, readyTimeout: 10_000 });
  });
}

/** The server-to-client cipher OpenSSH's ssh negotiates with `args` (options and destination), from `ssh -v`. */
export function opensshCipher(args: string[]): string {
  const r = spawnSync('ssh', ['-v', ...args, 'true'], { encoding: 'utf8', timeout: 15_000 });
  return /kex: server->client cipher: (\S+)/.exec(r.stderr ?? '')?.[1] ?? 'unknown';
}
