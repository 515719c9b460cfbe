// How many bytes of new chunks the SSH benchmark's 1 % change produces under different chunker
// settings, without SSH or a repository: the data set and a mutated copy are both cut with the
// daemon's TypeScript chunker (the probe cuts identically, tests/probe), and the chunks of the copy
// that the original does not hold are counted, raw and compressed (deflate level 1 standing in
// for the probe's zstd level 1, which Node 20 lacks). Medium and large files only: the small
// files are one chunk each whatever the settings. Each setting is cut under several keys, since
// a repository's random chunker key decides which chunks an edit touches.
//
//   npm run bench:chunker      (BENCH_SCALE, BENCH_DIR, BENCH_SEED as in run-ssh.ts; BENCH_KEYS, default 4;
//                               BENCH_CHUNKERS: "min/avg/max/level,…" in KiB, default the table below)
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import { cutAll, GearChunker } from '../../daemon/chunker/gear-chunker.js';
import type { ChunkerParams } from '../../daemon/repository/config.js';
import { chunkerLabel, envNumber, log, MiB, table } from './common.js';
import { datasetVersion, ensureDataset } from './dataset.js';
import { mutateDataset } from './mutate.js';

const KiB = 1024;
const defaults = '256/1024/4096/2,256/1024/4096/1,512/1024/8192/0,256/512/4096/1,128/512/2048/1,64/256/1024/2';

function settings(spec: string): ChunkerParams[] {
  return spec.split(',').map((s) => {
    const [min, avg, max, level] = s.split('/').map(Number);
    return { algorithm: 'gear32-v1', minSize: min! * KiB, avgSize: avg! * KiB, maxSize: max! * KiB, normalization: level! };
  });
}

function files(root: string): string[] {
  return ['medium', 'large'].flatMap((sub) => fs.readdirSync(path.join(root, sub)).sort().map((f) => path.join(sub, f)));
}

/** Cuts every medium and large file below `root`, calling `onChunk` with each chunk and its SHA-256; returns the count. */
function cut(root: string, chunker: GearChunker, onChunk: (sha: string, chunk: Buffer) => void): number {
  let chunks = 0;
  for (const f of files(root)) {
    const data = fs.readFileSync(path.join(root, f));
    let off = 0;
    for (const len of cutAll(chunker, data)) {
      const chunk = data.subarray(off, off + len);
      off += len;
      chunks++;
      onChunk(createHash('sha256').update(chunk).digest('base64'), chunk);
    }
  }
  return chunks;
}

function main(): void {
  const scale = envNumber('BENCH_SCALE', 1);
  const baseDir = path.resolve(process.env['BENCH_DIR'] || path.join(os.tmpdir(), 'haul-bench'));
  const seed = process.env['BENCH_SEED'] || 'haul-bench';
  const dataset = ensureDataset(baseDir, { version: datasetVersion, seed, scale, profile: 'ssh' }, log);
  const mutated = path.join(baseDir, 'chunker-mutated');
  fs.rmSync(mutated, { recursive: true, force: true });
  log(`copying the data set to ${mutated} and applying the benchmark's 1 % change`);
  fs.cpSync(dataset.dataDir, mutated, { recursive: true });
  mutateDataset(mutated, seed);
  const keys = Array.from({ length: envNumber('BENCH_KEYS', 4) }, (_, i) => createHash('sha256').update(`chunker bench key ${i}`).digest());
  const rows: string[][] = [];
  try {
    for (const params of settings(process.env['BENCH_CHUNKERS'] || defaults)) {
      const name = chunkerLabel(params);
      const compressed: number[] = [];
      let raw = 0;
      let meanChunk = 0;
      for (const key of keys) {
        const chunker = new GearChunker(key, params);
        const seen = new Set<string>();
        let bytes = 0;
        const count = cut(dataset.dataDir, chunker, (sha, chunk) => {
          seen.add(sha);
          bytes += chunk.length;
        });
        let newRaw = 0;
        let newCompressed = 0;
        cut(mutated, chunker, (sha, chunk) => {
          if (seen.has(sha)) return;
          seen.add(sha);
          newRaw += chunk.length;
          newCompressed += Math.min(chunk.length, deflateSync(chunk, { level: 1 }).length);
        });
        compressed.push(newCompressed / MiB);
        raw += newRaw / MiB / keys.length;
        meanChunk += bytes / count / keys.length;
        log(`  ${name}: new chunks ${(newRaw / MiB).toFixed(1)} MiB raw, ${(newCompressed / MiB).toFixed(1)} MiB compressed`);
      }
      const mean = compressed.reduce((a, b) => a + b, 0) / compressed.length;
      rows.push([name, `${mean.toFixed(1)} MiB`, `${Math.min(...compressed).toFixed(1)}–${Math.max(...compressed).toFixed(1)} MiB`, `${raw.toFixed(1)} MiB`, `${(meanChunk / KiB).toFixed(0)} KiB`]);
    }
  } finally {
    fs.rmSync(mutated, { recursive: true, force: true });
  }
  process.stdout.write(`\n## New chunk data after the 1 % change (medium and large files, ${keys.length} keys each)\n\n`);
  process.stdout.write(`${table(['chunker', 'compressed, mean', 'compressed, range', 'raw, mean', 'mean chunk'], rows, ['l', 'r', 'r', 'r', 'r'])}\n`);
}

main();
