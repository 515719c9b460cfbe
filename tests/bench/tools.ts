// The tools under comparison, each driven through its own command line the way a user would:
// init a fresh local repository, first backup, no-change re-run, restore, measure, verify.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultChunker } from '../../daemon/repository/config.js';
import { chunkerLabel } from './common.js';
import { buildManifest, compareManifests, diskUsage, type DatasetInfo, type Manifest } from './dataset.js';
import { measureOk, type RunResult } from './proc.js';

const MiB = 1024 * 1024;

export interface Step {
  seconds: number;
  peakRssBytes: number | null;
}

export interface ToolResult {
  tool: string;
  version: string;
  /** Settings that matter when reading the figures (compression, chunk size). */
  settings: string;
  ok: boolean;
  error?: string;
  init?: Step;
  firstBackup?: Step & { mibPerSec: number };
  rerun?: Step;
  check?: Step;
  restore?: Step & { mibPerSec: number };
  repository?: { allocatedBytes: number; apparentBytes: number };
  verify?: { ok: boolean; problemCount: number; problems: string[] };
  /** What the tool says about itself (haul's --json output), for cross-checking. */
  reported?: Record<string, unknown>;
  rssMethod?: string;
}

interface ToolDriver {
  name: string;
  version: string;
  settings: string;
  init(): Promise<RunResult>;
  backup(run: 1 | 2): Promise<RunResult>;
  check?(): Promise<RunResult>;
  restore(target: string): Promise<RunResult>;
  /** Directories besides the repository and the restore target to remove afterwards. */
  scratch: string[];
}

export interface ToolContext {
  workDir: string;
  dataset: DatasetInfo;
  source: Manifest;
  rootDir: string;
  log: (m: string) => void;
}

const password = 'bench-secret-passphrase';

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr || '').split('\n')[0]?.trim() || 'unknown';
}

export function haulDriver(ctx: ToolContext, repo: string): ToolDriver {
  const bin = path.join(ctx.rootDir, 'bin', 'haul');
  // Its own state directory: backup-local lists each snapshot in the SQLite database there.
  const env: NodeJS.ProcessEnv = { ...process.env, HAUL_REPOSITORY: repo, HAUL_PASSWORD: password, HAUL_HOME: path.join(ctx.workDir, 'haul-home') };
  delete env['HAUL_PASSWORD_FILE'];
  delete env['DATABASE_URL'];
  const haul = (what: string, ...args: string[]) => measureOk(`haul ${what}`, process.execPath, [bin, ...args], { env, cwd: ctx.rootDir });
  return {
    name: 'haul',
    version: firstLine(process.execPath, [bin, '--version']) + ` (node ${process.version})`,
    settings: `zstd level 3, gear CDC ${chunkerLabel(defaultChunker)}, 16 MiB packs`,
    init: () => haul('init', 'init', '--json'),
    backup: (run) => haul(`backup-local (run ${run})`, 'backup-local', '--client', 'bench', '--json', ctx.dataset.dataDir),
    check: () => haul('check', 'check', '--json'),
    restore: (target) => haul('restore', 'restore', 'latest', '--target', target, '--json'),
    scratch: [],
  };
}

export function resticDriver(ctx: ToolContext, repo: string): ToolDriver {
  const cache = path.join(ctx.workDir, 'restic-cache');
  const env: NodeJS.ProcessEnv = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: cache };
  delete env['RESTIC_PASSWORD_FILE'];
  delete env['RESTIC_PASSWORD_COMMAND'];
  const restic = (what: string, ...args: string[]) => measureOk(`restic ${what}`, 'restic', args, { env, maxStdout: 256 * 1024 });
  return {
    name: 'restic',
    version: firstLine('restic', ['version']),
    settings: 'defaults: repository v2, compression auto (zstd), CDC 512 KiB / 1 MiB / 8 MiB, local cache',
    init: () => restic('init', 'init'),
    backup: (run) => restic(`backup (run ${run})`, 'backup', '--host', 'haul-bench', ctx.dataset.dataDir),
    restore: (target) => restic('restore', 'restore', 'latest', '--host', 'haul-bench', '--target', target),
    scratch: [cache],
  };
}

export function borgDriver(ctx: ToolContext, repo: string): ToolDriver {
  const base = path.join(ctx.workDir, 'borg-base');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BORG_PASSPHRASE: password,
    BORG_BASE_DIR: base,
    BORG_DISPLAY_PASSPHRASE: 'no',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
  delete env['BORG_REPO'];
  delete env['BORG_PASSCOMMAND'];
  const borg = (what: string, args: string[], cwd?: string) => measureOk(`borg ${what}`, 'borg', args, { env, maxStdout: 256 * 1024, ...(cwd ? { cwd } : {}) });
  return {
    name: 'borg',
    version: firstLine('borg', ['--version']),
    settings: 'defaults: repokey (AES-CTR + HMAC-SHA256), lz4, buzhash CDC 512 KiB / ~2 MiB / 8 MiB',
    init: () => borg('init', ['init', '-e', 'repokey', repo]),
    backup: (run) => borg(`create (run ${run})`, ['create', `${repo}::run${run}`, ctx.dataset.dataDir]),
    restore: (target) => {
      fs.mkdirSync(target, { recursive: true });
      return borg('extract', ['extract', `${repo}::run2`], target);
    },
    scratch: [base],
  };
}

/**
 * Flushes dirty pages (data set generation, the previous tool's writes) before a measured step,
 * so no step pays for another's writeback: every tool fsyncs its repository, and an fsync that
 * has to wait behind a gigabyte of someone else's dirty data would be charged to the wrong tool.
 */
export function settle(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

function step(r: RunResult): Step {
  return { seconds: r.seconds, peakRssBytes: r.peakRssBytes };
}

function parseJson(r: RunResult): Record<string, unknown> | undefined {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Runs the whole sequence for one tool; failures are recorded in the result, not thrown. */
export async function benchTool(ctx: ToolContext, make: (ctx: ToolContext, repo: string) => ToolDriver): Promise<ToolResult> {
  const repo = path.join(ctx.workDir, 'repo');
  const target = path.join(ctx.workDir, 'restore');
  fs.rmSync(repo, { recursive: true, force: true });
  fs.rmSync(target, { recursive: true, force: true });
  const driver = make(ctx, repo);
  const result: ToolResult = { tool: driver.name, version: driver.version, settings: driver.settings, ok: false };
  const bytes = ctx.dataset.bytes;
  try {
    ctx.log(`[${driver.name}] ${driver.version}: init`);
    settle();
    result.init = step(await driver.init());

    ctx.log(`[${driver.name}] first backup of ${(bytes / MiB).toFixed(1)} MiB`);
    settle();
    const b1 = await driver.backup(1);
    result.rssMethod = b1.rssMethod;
    result.firstBackup = { ...step(b1), mibPerSec: bytes / MiB / b1.seconds };
    ctx.log(`[${driver.name}]   ${b1.seconds.toFixed(2)} s, ${result.firstBackup.mibPerSec.toFixed(1)} MiB/s, peak RSS ${fmtMiB(b1.peakRssBytes)}`);
    const j1 = driver.name === 'haul' ? parseJson(b1) : undefined;

    ctx.log(`[${driver.name}] no-change re-run`);
    settle();
    const b2 = await driver.backup(2);
    result.rerun = step(b2);
    ctx.log(`[${driver.name}]   ${b2.seconds.toFixed(2)} s, peak RSS ${fmtMiB(b2.peakRssBytes)}`);
    const j2 = driver.name === 'haul' ? parseJson(b2) : undefined;

    if (driver.check) {
      ctx.log(`[${driver.name}] check`);
      settle();
      const c = await driver.check();
      result.check = step(c);
      ctx.log(`[${driver.name}]   ${c.seconds.toFixed(2)} s`);
    }

    const du = diskUsage(repo);
    result.repository = { allocatedBytes: du.allocated, apparentBytes: du.apparent };

    ctx.log(`[${driver.name}] restore`);
    settle();
    const r = await driver.restore(target);
    result.restore = { ...step(r), mibPerSec: bytes / MiB / r.seconds };
    ctx.log(`[${driver.name}]   ${r.seconds.toFixed(2)} s, ${result.restore.mibPerSec.toFixed(1)} MiB/s, peak RSS ${fmtMiB(r.peakRssBytes)}`);

    if (j1 || j2) {
      result.reported = {
        firstBackup: { stats: (j1?.['snapshot'] as Record<string, unknown> | undefined)?.['stats'], peakRssBytes: j1?.['peakRssBytes'] },
        rerun: { stats: (j2?.['snapshot'] as Record<string, unknown> | undefined)?.['stats'], peakRssBytes: j2?.['peakRssBytes'] },
        restore: parseJson(r),
      };
    }

    ctx.log(`[${driver.name}] verifying the restored tree against the source`);
    const restoredRoot = path.join(target, ctx.dataset.dataDir);
    const problems = fs.existsSync(restoredRoot) ? compareManifests(ctx.source, buildManifest(restoredRoot)) : [`nothing restored at ${restoredRoot}`];
    result.verify = { ok: problems.length === 0, problemCount: problems.length, problems: problems.slice(0, 50) };
    if (problems.length > 0) {
      ctx.log(`[${driver.name}] RESTORE DIFFERS FROM THE SOURCE: ${problems.length} problem(s):\n  ${problems.slice(0, 20).join('\n  ')}`);
    } else {
      ctx.log(`[${driver.name}]   identical: ${ctx.source.files.size} files, ${ctx.source.dirs.size} directories`);
    }
    result.ok = problems.length === 0;
  } catch (err) {
    result.error = (err as Error).message;
    ctx.log(`[${driver.name}] FAILED: ${result.error}`);
  } finally {
    if (!process.env['BENCH_KEEP']) {
      for (const d of [repo, target, ...driver.scratch]) fs.rmSync(d, { recursive: true, force: true });
    }
  }
  return result;
}

export function fmtMiB(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? 'n/a' : `${(bytes / MiB).toFixed(1)} MiB`;
}
