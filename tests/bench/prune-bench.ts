// `npm run bench:prune`: prune on a repository of about a million chunks, Haul beside restic.
// Both tools back up the same tree of tiny unique files (each file is one chunk, so the chunk
// count is the file count), then half of the files go, a second backup runs, the first snapshot
// is forgotten and prune frees the half. Reported: prune seconds and peak RSS, packs and bytes.
//
// Environment:
//   BENCH_PRUNE_FILES  files (= chunks) in the tree (default 1000000)
//   BENCH_DIR          scratch directory (default $TMPDIR/haul-bench)
//   BENCH_TOOLS        comma-separated subset of haul,restic (default: both when installed)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { envNumber, log, mib, rootDir, table } from './common.js';
import { measureOk, which, type RunResult } from './proc.js';

const password = 'bench prune passphrase';
const files = Math.round(envNumber('BENCH_PRUNE_FILES', 1_000_000));
const perDir = 1000;
const work = path.join(process.env['BENCH_DIR'] ?? path.join(os.tmpdir(), 'haul-bench'), 'prune');
const data = path.join(work, 'data');

function generate(): void {
  const marker = path.join(work, `data-${files}.done`);
  if (fs.existsSync(marker)) return;
  fs.rmSync(work, { recursive: true, force: true });
  log(`generating ${files.toLocaleString('en')} files of 64 bytes in ${data}`);
  for (let d = 0; d * perDir < files; d++) {
    const dir = path.join(data, `d${String(d).padStart(4, '0')}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < files; f++) {
      fs.writeFileSync(path.join(dir, `f${f}`), createHash('sha512').update(`prune-bench ${d} ${f}`).digest());
    }
  }
  fs.writeFileSync(marker, '');
}

interface ToolRun {
  tool: string;
  backup1: RunResult;
  prune: RunResult;
  repoBefore: number;
  repoAfter: number;
}

function du(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return total;
}

async function runTool(tool: 'haul' | 'restic'): Promise<ToolRun> {
  const repo = path.join(work, `repo-${tool}`);
  fs.rmSync(repo, { recursive: true, force: true });
  // Restore the full tree (a previous tool removed half of it).
  generate();
  const half = fs.readdirSync(data).sort().slice(0, Math.ceil(fs.readdirSync(data).length / 2));
  const run = tool === 'haul'
    ? (what: string, ...args: string[]) => measureOk(`haul ${what}`, process.execPath, [path.join(rootDir, 'bin', 'haul'), ...args], { env: { ...process.env, HAUL_REPOSITORY: repo, HAUL_PASSWORD: password } })
    : (what: string, ...args: string[]) => measureOk(`restic ${what}`, 'restic', args, { env: { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: path.join(work, 'restic-cache') } });
  log(`[${tool}] init and first backup of ${files.toLocaleString('en')} files`);
  await run('init', 'init');
  const backup1 = tool === 'haul' ? await run('backup 1', 'backup-local', '--client', 'bench', '--tag', 'one', '--quiet', data) : await run('backup 1', 'backup', '--host', 'bench', '--tag', 'one', data);
  for (const d of half) fs.renameSync(path.join(data, d), path.join(work, `aside-${d}`));
  log(`[${tool}] second backup without half of the files`);
  if (tool === 'haul') await run('backup 2', 'backup-local', '--client', 'bench', '--tag', 'two', '--quiet', data);
  else await run('backup 2', 'backup', '--host', 'bench', '--tag', 'two', data);
  for (const d of half) fs.renameSync(path.join(work, `aside-${d}`), path.join(data, d));
  if (tool === 'haul') await run('forget', 'forget', '--keep-tag', 'two');
  else await run('forget', 'forget', '--keep-tag', 'two');
  const repoBefore = du(repo);
  log(`[${tool}] prune`);
  const prune = tool === 'haul' ? await run('prune', 'prune', '--json') : await run('prune', 'prune');
  const repoAfter = du(repo);
  log(`[${tool}] prune took ${prune.seconds.toFixed(1)} s, peak RSS ${mib(prune.peakRssBytes)}; repository ${mib(repoBefore)} -> ${mib(repoAfter)}`);
  return { tool, backup1, prune, repoBefore, repoAfter };
}

async function main(): Promise<void> {
  const wanted = (process.env['BENCH_TOOLS'] ?? 'haul,restic').split(',');
  const tools = (['haul', 'restic'] as const).filter((t) => wanted.includes(t) && (t === 'haul' || which(t)));
  generate();
  const results: ToolRun[] = [];
  for (const t of tools) results.push(await runTool(t));
  process.stdout.write(`\n### Prune of ${files.toLocaleString('en')} chunks (half unused), ${os.cpus().length} cores\n\n`);
  process.stdout.write(table(
    ['tool', 'first backup s', 'prune s', 'prune peak RSS', 'repository before', 'after'],
    results.map((r) => [r.tool, r.backup1.seconds.toFixed(1), r.prune.seconds.toFixed(1), mib(r.prune.peakRssBytes), mib(r.repoBefore), mib(r.repoAfter)]),
    ['l', 'r', 'r', 'r', 'r', 'r'],
  ) + '\n');
  fs.writeFileSync(path.join(rootDir, 'dist', 'bench-prune-results.json'), JSON.stringify({ files, results: results.map((r) => ({ tool: r.tool, backupSeconds: r.backup1.seconds, pruneSeconds: r.prune.seconds, prunePeakRss: r.prune.peakRssBytes, repoBefore: r.repoBefore, repoAfter: r.repoAfter })) }, null, 2));
}

await main();
