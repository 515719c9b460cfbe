// `npm run bench:prune`: prune on a repository of a million chunks, Haul beside restic.
// Both tools back up the same tree of tiny unique files (each file is one chunk, so the chunk
// count is the file count). Then 40% of the directories go entirely (packs with nothing in use,
// deleted whole) and every fifth file of the others (packs 20% unused, above both tools' repack
// thresholds, so they are repacked), a second backup runs, the first snapshot is forgotten, and
// prune runs through each tool's own command line. Reported per tool: chunks, packs before and
// after, bytes freed, prune wall and CPU seconds (user + system: on a shared machine the wall time
// favours whichever tool runs more threads) and peak RSS; then each tool's check confirms it.
//
// The repositories as they stood before prune are kept (BENCH_DIR/prune/*-before), so
// `--prune-only` times prune again on them without the backups: the way to compare two builds.
//
// Options:
//   --chunks N        files (= chunks) in the tree (default 1000000; BENCH_PRUNE_FILES also works)
//   --prune-only      reuse the repositories of an earlier run with the same --chunks
//   --tools a,b       a subset of haul,restic (default: both, restic when installed)
// Environment: BENCH_DIR scratch directory (default $TMPDIR/haul-bench).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { envNumber, log, mib, rootDir, table } from './common.js';
import { measureOk, which, type RunResult } from './proc.js';
import { settle } from './tools.js';

type Tool = 'haul' | 'restic';

const password = 'bench prune passphrase';
const perDir = 1000;
const { values: args } = parseArgs({
  options: {
    chunks: { type: 'string' },
    'prune-only': { type: 'boolean', default: false },
    tools: { type: 'string', default: 'haul,restic' },
  },
});
const chunks = args.chunks !== undefined ? Number(args.chunks) : Math.round(envNumber('BENCH_PRUNE_FILES', 1_000_000));
if (!Number.isInteger(chunks) || chunks < perDir) throw new Error(`--chunks takes a whole number of at least ${perDir}, not ${JSON.stringify(args.chunks)}`);
const work = path.join(process.env['BENCH_DIR'] ?? path.join(os.tmpdir(), 'haul-bench'), 'prune');
const data = path.join(work, 'data');
const dirCount = Math.ceil(chunks / perDir);
/** The directories that go entirely, and the files that go from the rest. */
const goneDirs = Math.floor(dirCount * 0.4);
const goneFile = (f: number) => f % 5 === 0;
const dirName = (d: number) => `d${String(d).padStart(4, '0')}`;

function generate(): void {
  const marker = path.join(work, `data-${chunks}.done`);
  if (fs.existsSync(marker)) return;
  fs.rmSync(work, { recursive: true, force: true });
  log(`generating ${chunks.toLocaleString('en')} files of 64 bytes in ${data}`);
  for (let d = 0; d < dirCount; d++) {
    const dir = path.join(data, dirName(d));
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < chunks; f++) {
      fs.writeFileSync(path.join(dir, `f${f}`), createHash('sha512').update(`prune-bench ${d} ${f}`).digest());
    }
  }
  fs.writeFileSync(marker, '');
}

/** Moves the files the second backup must not see aside, and back. */
function thin(direction: 'aside' | 'back'): void {
  const aside = path.join(work, 'aside');
  for (let d = 0; d < dirCount; d++) {
    const [from, to] = direction === 'aside' ? [data, aside] : [aside, data];
    if (d < goneDirs) {
      fs.mkdirSync(to, { recursive: true });
      fs.renameSync(path.join(from, dirName(d)), path.join(to, dirName(d)));
      continue;
    }
    fs.mkdirSync(path.join(to, dirName(d)), { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < chunks; f++) {
      if (goneFile(f)) fs.renameSync(path.join(from, dirName(d), `f${f}`), path.join(to, dirName(d), `f${f}`));
    }
  }
}

interface ToolRun {
  tool: Tool;
  packsBefore: number;
  packsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  prune: RunResult;
  checkSeconds: number;
}

function filesUnder(dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || e.name.startsWith('.')) continue;
    count++;
    bytes += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return { count, bytes };
}

function runner(tool: Tool, repo: string): (what: string, ...args: string[]) => Promise<RunResult> {
  return tool === 'haul'
    ? (what, ...a) => measureOk(`haul ${what}`, process.execPath, [path.join(rootDir, 'bin', 'haul'), ...a], { env: { ...process.env, HAUL_REPOSITORY: repo, HAUL_PASSWORD: password, HAUL_HOME: path.join(work, 'haul-home') } })
    : (what, ...a) => measureOk(`restic ${what}`, 'restic', a, { env: { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: path.join(work, 'restic-cache') } });
}

/** Builds the repository as it stands before prune: two backups, the first forgotten. */
async function prepare(tool: Tool, before: string): Promise<void> {
  const repo = `${before}.building`;
  fs.rmSync(repo, { recursive: true, force: true });
  const run = runner(tool, repo);
  log(`[${tool}] init and first backup of ${chunks.toLocaleString('en')} files`);
  await run('init', 'init');
  const b1 = tool === 'haul' ? await run('backup 1', 'backup-local', '--client', 'bench', '--tag', 'one', '--quiet', data) : await run('backup 1', 'backup', '--host', 'bench', '--tag', 'one', data);
  log(`[${tool}]   ${b1.seconds.toFixed(1)} s; second backup without ${goneDirs} directories and every fifth file of the rest`);
  thin('aside');
  try {
    if (tool === 'haul') await run('backup 2', 'backup-local', '--client', 'bench', '--tag', 'two', '--quiet', data);
    else await run('backup 2', 'backup', '--host', 'bench', '--tag', 'two', data);
  } finally {
    thin('back');
  }
  await run('forget', 'forget', '--keep-tag', 'two');
  fs.renameSync(repo, before);
}

async function pruneOnce(tool: Tool): Promise<ToolRun> {
  const before = path.join(work, `${tool}-${chunks}-before`);
  if (!fs.existsSync(before)) {
    if (args['prune-only']) throw new Error(`--prune-only: no repository at ${before}; run once without it first`);
    await prepare(tool, before);
  }
  const repo = path.join(work, `${tool}-${chunks}-pruned`);
  fs.rmSync(repo, { recursive: true, force: true });
  fs.cpSync(before, repo, { recursive: true });
  fs.rmSync(path.join(work, 'restic-cache'), { recursive: true, force: true });
  const packsDir = path.join(repo, tool === 'haul' ? 'packs' : 'data');
  const old = filesUnder(packsDir);
  const run = runner(tool, repo);
  settle();
  log(`[${tool}] prune (${old.count} packs, ${mib(old.bytes)})`);
  const prune = tool === 'haul' ? await run('prune', 'prune', '--json') : await run('prune', 'prune');
  const now = filesUnder(packsDir);
  log(`[${tool}]   ${prune.seconds.toFixed(1)} s (CPU ${prune.cpuSeconds?.toFixed(1) ?? 'n/a'} s), peak RSS ${mib(prune.peakRssBytes)}; packs ${old.count} -> ${now.count}, ${mib(old.bytes)} -> ${mib(now.bytes)}; checking every byte`);
  const check = tool === 'haul' ? await run('check', 'check', '--read-data', '--quiet') : await run('check', 'check', '--read-data');
  return { tool, packsBefore: old.count, packsAfter: now.count, bytesBefore: old.bytes, bytesAfter: now.bytes, prune, checkSeconds: check.seconds };
}

async function main(): Promise<void> {
  const wanted = args.tools.split(',');
  const tools = (['haul', 'restic'] as const).filter((t) => wanted.includes(t) && (t === 'haul' || which(t)));
  if (!args['prune-only']) generate();
  const results: ToolRun[] = [];
  for (const t of tools) results.push(await pruneOnce(t));
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stdout.write(`\n### Prune of ${chunks.toLocaleString('en')} chunks, ${os.cpus().length} cores, load average ${load}\n\n`);
  process.stdout.write(table(
    ['tool', 'chunks', 'packs before', 'packs after', 'bytes freed', 'prune s', 'prune CPU s', 'prune peak RSS', 'check --read-data s'],
    results.map((r) => [r.tool, chunks.toLocaleString('en'), String(r.packsBefore), String(r.packsAfter), mib(r.bytesBefore - r.bytesAfter), r.prune.seconds.toFixed(1), r.prune.cpuSeconds?.toFixed(1) ?? 'n/a', mib(r.prune.peakRssBytes), r.checkSeconds.toFixed(1)]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ) + '\n');
  fs.writeFileSync(path.join(rootDir, 'dist', 'bench-prune-results.json'), JSON.stringify({ chunks, load, results: results.map((r) => ({ tool: r.tool, packsBefore: r.packsBefore, packsAfter: r.packsAfter, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, pruneSeconds: r.prune.seconds, pruneCpuSeconds: r.prune.cpuSeconds, prunePeakRss: r.prune.peakRssBytes, checkSeconds: r.checkSeconds })) }, null, 2));
}

await main();
