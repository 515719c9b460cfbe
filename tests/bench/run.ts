// `npm run bench`: Haul against restic and borg on one generated data set, plus the chunk index's
// memory per chunk. Progress goes to stderr; the Markdown tables go to stdout; everything is also
// written as JSON to dist/bench-results.json.
//
// Environment:
//   BENCH_SCALE        data set size factor (default 1.0, about 1.1 GiB; 0.05 for a quick run)
//   BENCH_DIR          where the data set and the scratch repositories go (default $TMPDIR/haul-bench)
//   BENCH_SEED         data set seed (default "haul-bench")
//   BENCH_TOOLS        comma-separated subset of haul,restic,borg (default: all that are installed)
//   BENCH_INDEX_SIZES  comma-separated entry counts for the index test (default 1e6,5e6,1e7; "none" skips)
//   BENCH_CHUNKS_PER_PACK  entries per pack name in the index test (default 16)
//   BENCH_KEEP         keep the repositories and restored trees (for inspection)
//   BENCH_SSH=1        run the pull-backup-over-SSH benchmark instead (tests/bench/run-ssh.ts)
//
// All runs read the data set from a warm page cache (it was just generated or hashed), so the
// figures compare the tools' CPU and write paths rather than the disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backgroundActivity, benchDir as here, engineState, envNumber, log, MiB, mib, rootDir, table } from './common.js';
import { buildManifest, datasetVersion, ensureDataset, type DatasetInfo } from './dataset.js';
import type { IndexBenchResult } from './index-bench.js';
import { measure, which } from './proc.js';
import { benchTool, borgDriver, haulDriver, resticDriver, type ToolContext, type ToolResult } from './tools.js';

/** Published in-memory index costs, for comparison (not measured here). */
const indexReferences = [
  { tool: 'restic', bytesPerChunk: 56, note: 'published figure for restic\'s in-memory index' },
  { tool: 'borg', bytesPerChunk: 84, note: 'published figure (approximate) for borg\'s chunks hash table' },
];

async function runIndexBenches(sizes: number[], chunksPerPack: number): Promise<{ results: IndexBenchResult[]; errors: string[] }> {
  const script = path.join(here, 'index-bench.js');
  const results: IndexBenchResult[] = [];
  const errors: string[] = [];
  for (const n of sizes) {
    log(`[index] ${n.toLocaleString('en')} entries`);
    const r = await measure(process.execPath, ['--expose-gc', script, String(n), String(chunksPerPack)]);
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    if (r.code !== 0 || !line.startsWith('{')) {
      errors.push(`index bench with ${n} entries failed (exit ${r.code ?? r.signal}): ${r.stderr.slice(-2000)}`);
      log(`[index] FAILED: ${errors.at(-1)}`);
      continue;
    }
    const res = JSON.parse(line) as IndexBenchResult;
    results.push(res);
    log(`[index]   ${res.bytesPerChunk.toFixed(1)} B/chunk (arrays), ${res.heapBytesPerChunk.toFixed(1)} B/chunk (heap growth), ${(res.hitLookupsPerSec / 1e6).toFixed(2)} M hits/s`);
  }
  return { results, errors };
}

// ---- formatting ----

const num = (v: number | undefined, d: number) => (v === undefined ? 'n/a' : v.toFixed(d));
const rate = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M/s` : `${(v / 1e3).toFixed(0)} k/s`);

function toolTable(results: ToolResult[], data: DatasetInfo): string {
  const rows = results.map((r) => [
    r.tool,
    num(r.firstBackup?.mibPerSec, 1),
    num(r.rerun?.seconds, 2),
    num(r.restore?.mibPerSec, 1),
    r.repository ? `${mib(r.repository.allocatedBytes)} (${((100 * r.repository.allocatedBytes) / data.bytes).toFixed(1)} %)` : 'n/a',
    mib(r.firstBackup?.peakRssBytes),
    mib(r.rerun?.peakRssBytes),
    mib(r.restore?.peakRssBytes),
    r.error ? 'FAILED' : r.verify?.ok ? 'identical' : `${r.verify?.problemCount ?? '?'} differences`,
  ]);
  return table(
    ['tool', 'first backup MiB/s', 'no-change re-run s', 'restore MiB/s', 'repository size (du)', 'peak RSS backup', 'peak RSS re-run', 'peak RSS restore', 'restore check'],
    rows,
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
  );
}

function indexTable(results: IndexBenchResult[]): string {
  const rows = results.map((r) => [
    `haul (${r.entries >= 1e6 ? `${r.entries / 1e6} M` : `${r.entries / 1e3} k`} entries)`,
    r.bytesPerChunk.toFixed(1),
    r.heapBytesPerChunk.toFixed(1),
    r.rssBytesPerChunk.toFixed(1),
    rate(r.insertsPerSec),
    rate(r.hitLookupsPerSec),
    rate(r.missLookupsPerSec),
    rate(r.getHitsPerSec),
  ]);
  for (const ref of indexReferences) rows.push([`${ref.tool} (reference, published)`, String(ref.bytesPerChunk), '', '', '', '', '', '']);
  return table(
    ['index', 'bytes/chunk (byteSize/count)', 'heap+external growth B/chunk', 'RSS growth B/chunk', 'inserts', 'lookups (hit)', 'lookups (miss)', 'get (hit)'],
    rows,
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

async function main(): Promise<number> {
  const scale = envNumber('BENCH_SCALE', 1);
  const baseDir = path.resolve(process.env['BENCH_DIR'] || path.join(os.tmpdir(), 'haul-bench'));
  const seed = process.env['BENCH_SEED'] || 'haul-bench';
  const chunksPerPack = Math.round(envNumber('BENCH_CHUNKS_PER_PACK', 16));
  const sizesEnv = process.env['BENCH_INDEX_SIZES'] ?? '1000000,5000000,10000000';
  const indexSizes = sizesEnv === 'none' || sizesEnv === '' ? [] : sizesEnv.split(',').map((s) => Math.round(Number(s)));
  if (indexSizes.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`BENCH_INDEX_SIZES must list positive numbers, not ${sizesEnv}`);
  const wanted = (process.env['BENCH_TOOLS'] || 'haul,restic,borg').split(',').map((s) => s.trim());

  if (!fs.existsSync(path.join(rootDir, 'dist', 'daemon', 'cli', 'main.js'))) throw new Error('the compiled CLI is missing; run `npm run build` (npm run bench does)');
  fs.mkdirSync(baseDir, { recursive: true });

  const engineBefore = engineState();
  const dataset = ensureDataset(baseDir, { version: datasetVersion, seed, scale }, log);
  log('hashing the source tree (reference for verification; also warms the page cache)');
  let t = performance.now();
  const source = buildManifest(dataset.dataDir);
  log(`  ${source.files.size} files, ${source.dirs.size} directories, ${(source.bytes / MiB).toFixed(1)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  if (source.bytes !== dataset.bytes || source.files.size !== dataset.files) {
    throw new Error(`the data set in ${dataset.dataDir} no longer matches its marker (${source.files.size} files / ${source.bytes} bytes, expected ${dataset.files} / ${dataset.bytes}); delete ${path.dirname(dataset.dataDir)} to regenerate it`);
  }

  const loadBefore = os.loadavg();
  const background = await backgroundActivity(3000);
  if (background && background.busy > 0.1) {
    log(`warning: the CPUs were ${(background.busy * 100).toFixed(0)} % busy while the benchmark idled; other processes on this ${os.cpus().length}-core machine distort the timings`);
  }
  const workDir = fs.mkdtempSync(path.join(baseDir, 'run-'));
  const ctx: ToolContext = { workDir, dataset, source, rootDir, log };
  const tools: ToolResult[] = [];
  const skipped: string[] = [];
  try {
    const drivers = [
      { name: 'haul', make: haulDriver, available: true },
      { name: 'restic', make: resticDriver, available: which('restic') !== null },
      { name: 'borg', make: borgDriver, available: which('borg') !== null },
    ];
    for (const d of drivers) {
      if (!wanted.includes(d.name)) continue;
      if (!d.available) {
        skipped.push(`${d.name} (not on PATH)`);
        log(`[${d.name}] not on PATH; skipped`);
        continue;
      }
      tools.push(await benchTool(ctx, d.make));
    }
  } finally {
    if (!process.env['BENCH_KEEP']) fs.rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }

  const loadAfterTools = os.loadavg();
  const engineAfter = engineState();
  const engineMoved = JSON.stringify(engineBefore) !== JSON.stringify(engineAfter);
  if (engineMoved) log(`warning: the engine changed during the runs (${JSON.stringify(engineBefore)} -> ${JSON.stringify(engineAfter)}); the figures may mix versions`);
  t = performance.now();
  const index = await runIndexBenches(indexSizes, chunksPerPack);
  log(`index benchmarks took ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const cpu = os.cpus();
  const machine = {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    peakRssMethod: tools.find((r) => r.rssMethod)?.rssMethod ?? 'n/a',
    loadAverageBefore: loadBefore,
    /** CPU activity of everything else over 3 s just before the tool runs. */
    backgroundBefore: background,
    loadAverageAfterTools: loadAfterTools,
  };
  const results = {
    generatedAt: new Date().toISOString(),
    /** The engine measured (commit, uncommitted changes, build time), before and after the runs. */
    engine: { before: engineBefore, after: engineAfter, changedDuringRun: engineMoved },
    machine,
    dataset: { ...dataset, sourceFiles: source.files.size, sourceDirs: source.dirs.size },
    tools,
    skippedTools: skipped,
    index: { chunksPerPack, results: index.results, errors: index.errors, references: indexReferences },
  };
  const jsonPath = path.join(rootDir, 'dist', 'bench-results.json');
  fs.mkdirSync(path.dirname(jsonPath), { recursive: true });
  fs.writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n');

  const out: string[] = [];
  out.push('## Haul benchmark');
  out.push('');
  out.push(`Data set: ${dataset.files.toLocaleString('en')} files in ${dataset.dirs.toLocaleString('en')} directories, ${(dataset.bytes / MiB).toFixed(1)} MiB (scale ${scale}, seed "${seed}"), ${dataset.dataDir}`);
  out.push(`Machine: ${machine.cpus} × ${machine.cpuModel}, ${(machine.memoryBytes / 1024 ** 3).toFixed(0)} GiB, Linux ${machine.kernel}, Node ${machine.node}. Peak RSS via ${machine.peakRssMethod === 'gnu-time' ? '/usr/bin/time (wait4 ru_maxrss)' : machine.peakRssMethod}.`);
  const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
  out.push(`Background before the runs (3 s idle sample): ${background ? `${pct(background.busy)} CPU busy, ${pct(background.iowait)} I/O wait, ${pct(background.steal)} steal` : 'n/a'}; load average after the tool runs ${loadAfterTools.map((l) => l.toFixed(2)).join(' / ')}. Engine: commit ${engineBefore.commit ?? '?'}${engineBefore.changes.length > 0 ? ` with uncommitted changes (${engineBefore.changes.join(', ')})` : ''}, built ${engineBefore.distMtime ?? '?'}${engineMoved ? ' (WARNING: it changed during the runs, see the JSON)' : ''}.`);
  out.push('');
  out.push(toolTable(tools, dataset));
  out.push('');
  for (const r of tools) {
    out.push(`- ${r.tool}: ${r.version}; ${r.settings}` + (r.check ? `; \`haul check\` ${r.check.seconds.toFixed(2)} s` : '') + (r.error ? `; ERROR: ${r.error.split('\n')[0]}` : ''));
  }
  for (const s of skipped) out.push(`- skipped: ${s}`);
  out.push('');
  if (index.results.length > 0 || index.errors.length > 0) {
    out.push(`### Chunk index (random 32-byte IDs, ${chunksPerPack} chunks per pack name; ${index.results[0]?.lookups.toLocaleString('en') ?? '?'}+ lookups each)`);
    out.push('');
    out.push(indexTable(index.results));
    out.push('');
    for (const e of index.errors) out.push(`- ERROR: ${e.split('\n')[0]}`);
    out.push(`bytes/chunk = \`ChunkIndex.byteSize / count\` (record segments + slot table). Heap+external growth also counts pack-name strings and the pack map, measured after a full GC in a fresh process per size. Lookup rates include cutting each ID out of a shared buffer (\`subarray\`, about ${index.results[0]?.idViewNs.toFixed(0) ?? '?'} ns per lookup). restic and borg figures are published values, not measured here.`);
  }
  out.push('');
  out.push(`JSON: ${jsonPath}`);
  process.stdout.write(out.join('\n') + '\n');

  let status = 0;
  for (const r of tools) {
    if (r.error || !r.verify?.ok) {
      process.stderr.write(`\nBENCH FAILURE: ${r.tool}: ${r.error ?? `restore differs from the source (${r.verify?.problemCount} problems): ${r.verify?.problems.slice(0, 5).join('; ')}`}\n`);
      status = 1;
    }
  }
  if (index.errors.length > 0) status = 1;
  return status;
}

try {
  // BENCH_SSH=1 runs the pull-over-SSH benchmark (tests/bench/run-ssh.ts) instead.
  process.exitCode = process.env['BENCH_SSH'] === '1' ? await (await import('./run-ssh.js')).runSshBench() : await main();
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
