// Runs the real `haul` binary (the compiled CLI) in a child process, as a user would.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const haulBin = path.join(projectRoot, 'bin', 'haul');
/** The Node that runs the CLI under test: HAUL_TEST_NODE lets CI run the same tests on Node 24. */
export const testNode = process.env['HAUL_TEST_NODE'] || process.execPath;

export interface HaulResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a `haul` run on `repo`: the test passphrase, and a state directory (with the
 * SQLite database that backups list their snapshots in) beside the repository, never the real
 * /var/lib/haul. DATABASE_URL is dropped too unless `extra` sets it.
 */
export function haulEnv(repo: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HAUL_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, HAUL_REPOSITORY: repo, HAUL_PASSWORD: 'correct horse battery staple', HAUL_HOME: `${repo}-home`, ...extra };
}

export function haulSync(args: string[], env: Record<string, string>, input?: string): HaulResult {
  const r = spawnSync(testNode, [haulBin, ...args], { env, encoding: 'utf8', input: input ?? '', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function haul(args: string[], env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<HaulResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(testNode, [haulBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // A hung command must fail its test with its output, not hang the whole run.
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('close', () => clearTimeout(timer));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

export function tempDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `haul-${label}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
