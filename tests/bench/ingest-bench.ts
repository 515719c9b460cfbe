// The server's side of a pull backup alone. The probe's stream of a first backup is recorded once
// (the real probe, run locally over the SSH benchmark's data set, its stdout copied to a file),
// then fed to runPullBackup from that file in 32 KiB reads, as SSH delivers it, into a fresh
// repository per round: no probe process, no sshd, no network. What is left is the daemon's own
// work on received data (frame parsing, bounded decompression, re-hashing, encrypting, packing,
// writing, trees, snapshot, digest), which the SSH benchmark mixes with the probe's and sshd's on
// the same cores. Use it to measure a change to that path; quote the SSH benchmark for the product.
//
//   npm run bench:ingest      (BENCH_SCALE, BENCH_DIR, BENCH_SEED as in run-ssh.ts; BENCH_ROUNDS, default 3)
//
// BENCH_KEEP keeps the recorded stream (in BENCH_DIR/ingest) and replays it on the next run without
// recording again: for comparing two builds on the same bytes (alternate them; this machine's
// speed drifts between runs).
//
// Reported per round: wall seconds, MiB/s of file data, CPU seconds of the whole process and of
// its main thread (from /proc: the event loop's share, the part worker threads cannot take), and
// the process's peak RSS.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { Repository } from '../../daemon/repository/repository.js';
import { runPullBackup, type ProbeTransport } from '../../daemon/session/probe-session.js';
import { LocalStorage } from '../../daemon/storage/local.js';
import { envNumber, log, MiB, rootDir, statCpuTicks, table, ticksPerSecond } from './common.js';
import { datasetVersion, ensureDataset } from './dataset.js';

const passphrase = 'bench-secret-passphrase';
// A benchmark's repositories need no strong key derivation: unlocking is not what is measured.
const kdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

/** CPU seconds (user + system) of one thread of this process, from /proc (Linux). */
function threadCpuSeconds(tid: number): number {
  return statCpuTicks(fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')) / ticksPerSecond();
}

function freshRepository(dir: string): Promise<Repository> {
  fs.rmSync(dir, { recursive: true, force: true });
  return Repository.init(new LocalStorage(dir), passphrase, { kdf });
}

const sink = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() });

/** Runs the local probe for a first backup of `dataDir` into `repo`, copying its stdout to `file`. */
async function record(repo: Repository, dataDir: string, file: string): Promise<{ seconds: number; bytes: number }> {
  const probe = path.join(rootDir, 'probe', 'dist', `haul-probe-${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}`);
  const child = spawn(probe, ['--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const fd = fs.openSync(file, 'w');
  // Each piece is written to the file as it passes, in the order the session reads it.
  const tee = new Transform({
    transform(piece: Buffer, _enc, done) {
      fs.writeSync(fd, piece);
      done(null, piece);
    },
  });
  const transport: ProbeTransport = { input: child.stdin, output: child.stdout.pipe(tee), diagnostics: child.stderr, stop: () => child.kill() };
  try {
    const t0 = performance.now();
    await runPullBackup(repo, transport, { client: 'bench', hostname: 'bench', paths: [dataDir] });
    return { seconds: (performance.now() - t0) / 1000, bytes: fs.fstatSync(fd).size };
  } finally {
    child.stdin.end();
    fs.closeSync(fd);
  }
}

interface Round {
  seconds: number;
  processCpu: number;
  mainThreadCpu: number;
  fileBytes: number;
}

async function replay(repo: Repository, file: string, dataDir: string): Promise<Round> {
  const output: Readable = fs.createReadStream(file, { highWaterMark: 32 * 1024 });
  const transport: ProbeTransport = { input: sink(), output, stop: () => output.destroy() };
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuSeconds(process.pid);
  const t0 = performance.now();
  const result = await runPullBackup(repo, transport, { client: 'bench', hostname: 'bench', paths: [dataDir] });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, processCpu: (cpu.user + cpu.system) / 1e6, mainThreadCpu: threadCpuSeconds(process.pid) - main0, fileBytes: result.snapshot.stats.bytes };
}

async function main(): Promise<number> {
  if (process.platform !== 'linux') throw new Error('the ingest benchmark reads thread CPU times from /proc: Linux only');
  const scale = envNumber('BENCH_SCALE', 1);
  const rounds = Math.max(1, Math.round(envNumber('BENCH_ROUNDS', 3)));
  const baseDir = path.resolve(process.env['BENCH_DIR'] || path.join(os.tmpdir(), 'haul-bench'));
  const dataset = ensureDataset(baseDir, { version: datasetVersion, seed: process.env['BENCH_SEED'] || 'haul-bench', scale, profile: 'ssh' }, log);
  const work = path.join(baseDir, 'ingest');
  fs.mkdirSync(work, { recursive: true });
  const stream = path.join(work, 'probe-stream.bin');
  const keep = Boolean(process.env['BENCH_KEEP']);
  try {
    let recorded: { seconds: number | null; bytes: number };
    if (keep && fs.existsSync(stream)) {
      recorded = { seconds: null, bytes: fs.statSync(stream).size };
      log(`reusing the recorded stream ${stream} (BENCH_KEEP; delete it to record afresh)`);
    } else {
      log(`recording the probe's stream of a first backup of ${dataset.files.toLocaleString('en-US')} files (${(dataset.bytes / MiB).toFixed(1)} MiB)`);
      const first = await freshRepository(path.join(work, 'repo'));
      recorded = await record(first, dataset.dataDir, stream);
      await first.close();
      log(`  ${(recorded.bytes / MiB).toFixed(1)} MiB of stream; probe and server in one process, no SSH: ${recorded.seconds!.toFixed(2)} s`);
    }
    const results: Round[] = [];
    for (let i = 0; i < rounds; i++) {
      const repo = await freshRepository(path.join(work, 'repo'));
      const r = await replay(repo, stream, dataset.dataDir);
      await repo.close();
      results.push(r);
    log(`  round ${i + 1}: ${r.seconds.toFixed(2)} s, ${(r.fileBytes / MiB / r.seconds).toFixed(1)} MiB/s; CPU ${r.processCpu.toFixed(2)} s, main thread ${r.mainThreadCpu.toFixed(2)} s`);
    }
    const sorted = [...results].sort((a, b) => a.seconds - b.seconds);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log('\n## Server ingest (the probe\'s recorded stream fed to runPullBackup, no SSH)\n');
    console.log(table(
      ['round', 'seconds', 'MiB/s', 'process CPU s', 'main thread CPU s'],
      results.map((r, i) => [String(i + 1), r.seconds.toFixed(2), (r.fileBytes / MiB / r.seconds).toFixed(1), r.processCpu.toFixed(2), r.mainThreadCpu.toFixed(2)]),
      ['r', 'r', 'r', 'r', 'r'],
    ));
    console.log(`\nmedian ${median.seconds.toFixed(2)} s (${(median.fileBytes / MiB / median.seconds).toFixed(1)} MiB/s); stream ${(recorded.bytes / MiB).toFixed(1)} MiB for ${(dataset.bytes / MiB).toFixed(1)} MiB of files; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
    return 0;
  } finally {
    if (keep) fs.rmSync(path.join(work, 'repo'), { recursive: true, force: true });
    else fs.rmSync(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
