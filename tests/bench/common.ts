// Helpers shared by the benchmark entries (run.ts: local paths; run-ssh.ts: pull over SSH).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunkerNormalization, type ChunkerParams } from '../../daemon/repository/config.js';

export const MiB = 1024 * 1024;

/** "256 KiB / 512 KiB / 4 MiB, normalisation 1": a chunker's settings as the bench reports them. */
export function chunkerLabel(p: ChunkerParams): string {
  const size = (n: number) => (n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : `${n / 1024} KiB`);
  return `${size(p.minSize)} / ${size(p.avgSize)} / ${size(p.maxSize)}, normalisation ${chunkerNormalization(p)}`;
}
export const benchDir = path.dirname(fileURLToPath(import.meta.url));
// dist/tests/bench/*.js -> the project root
export const rootDir = path.resolve(benchDir, '..', '..', '..');

let clockTicks: number | undefined;

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** utime + stime, in clock ticks, of a process's or thread's /proc/.../stat line. */
export function statCpuTicks(stat: string): number {
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11] ?? 0) + Number(f[12] ?? 0);
}

export function log(m: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
}

export function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not ${JSON.stringify(v)}`);
  return n;
}

/**
 * What the machine does while the benchmark sleeps: CPU busy, I/O-wait and hypervisor-steal
 * fractions over `ms` from /proc/stat. The load average cannot tell, as it still remembers the
 * data set generation a moment ago; this sees other processes that would share the 2 cores.
 */
export async function backgroundActivity(ms: number): Promise<{ busy: number; iowait: number; steal: number } | null> {
  const sample = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      return f;
    } catch {
      return null;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  if (!a || !b) return null;
  const d = b.map((v, i) => v - (a[i] ?? 0));
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = d;
  const total = user + nice + system + idle + iowait + irq + softirq + steal || 1;
  return { busy: (user + nice + system + irq + softirq) / total, iowait: iowait / total, steal: steal / total };
}

export interface EngineState {
  commit: string | null;
  changes: string[];
  distMtime: string | null;
}

/**
 * The engine being measured: the commit, uncommitted changes under daemon/, shared/, probe/src
 * and bin/, and the compiled CLI's modification time. Taken before and after the runs: every
 * `haul` command loads dist/ afresh, so a rebuild in between would mix two versions in one table.
 */
export function engineState(): EngineState {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: rootDir, encoding: 'utf8' }).stdout?.trim() ?? '';
  let distMtime: string | null = null;
  try {
    distMtime = fs.statSync(path.join(rootDir, 'dist', 'daemon', 'cli', 'main.js')).mtime.toISOString();
  } catch {
    // reported as null
  }
  return {
    commit: git('rev-parse', '--short', 'HEAD') || null,
    changes: git('status', '--porcelain', '--', 'daemon', 'shared', 'bin', 'probe/src').split('\n').map((l) => l.trim()).filter(Boolean),
    distMtime,
  };
}

/** A Markdown table with aligned columns. */
export function table(head: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => '| ' + cells.map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (align[i] === 'r' ? '-'.repeat(w + 1) + ':' : ':' + '-'.repeat(w + 1))).join('|') + '|';
  return [fmt(head), rule, ...rows.map(fmt)].join('\n');
}

export const mib = (b: number | null | undefined): string => (b === null || b === undefined ? 'n/a' : `${(b / MiB).toFixed(1)} MiB`);
