// Chunk-index memory and speed, for one size. run.ts starts this in a fresh Node process per size
// (`node --expose-gc index-bench.js COUNT CHUNKS_PER_PACK`) so each measurement starts from a
// clean heap; the result is one JSON line on stdout.
//
// IDs are 32 pseudo-random bytes each, cut from one buffer filled once by the AES-CTR stream
// (deterministic and several GB/s; no crypto call per entry). Pack names are fresh 64-hex-digit
// strings, one per CHUNKS_PER_PACK entries (16 MiB packs / 1 MiB average chunks = 16 for big
// files), created during the build so their cost shows in the growth figures like it would in a
// real repository; `byteSize` counts only the index's own arrays.
import { ChunkIndex } from '../../daemon/repository/chunk-index.js';
import { CtrStream } from './prng.js';

export interface IndexBenchResult {
  entries: number;
  chunksPerPack: number;
  packs: number;
  byteSize: number;
  bytesPerChunk: number;
  /** Growth of V8 heap + external (ArrayBuffer) memory across the build, after a full GC. */
  heapGrowthBytes: number;
  heapBytesPerChunk: number;
  rssGrowthBytes: number;
  rssBytesPerChunk: number;
  peakRssBytes: number;
  insertSeconds: number;
  insertsPerSec: number;
  lookups: number;
  hitLookupsPerSec: number;
  missLookupsPerSec: number;
  getHitsPerSec: number;
  /** Cost of cutting one 32-byte ID view out of the buffer (included in every lookup rate). */
  idViewNs: number;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('index-bench needs node --expose-gc');
  g();
  g();
}

function heapTotal(m: NodeJS.MemoryUsage): number {
  return m.heapUsed + m.external;
}

export function runIndexBench(entries: number, chunksPerPack: number): IndexBenchResult {
  const rng = new CtrStream(`index/${entries}`);
  const lookups = Math.min(entries, 2_000_000);
  const ids = rng.bytes(entries * 32);
  const missIds = rng.bytes(lookups * 32);
  const orderBytes = rng.bytes(lookups * 4);
  const order = new Uint32Array(orderBytes.buffer, orderBytes.byteOffset, lookups);
  for (let i = 0; i < lookups; i++) order[i] = order[i]! % entries;
  gc();
  const before = process.memoryUsage();

  const index = new ChunkIndex();
  let pack = '';
  const t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    const inPack = i % chunksPerPack;
    if (inPack === 0) pack = rng.bytes(32).toString('hex');
    index.add(pack, { id: ids.subarray(i * 32, i * 32 + 32), type: 0, compression: 1, offset: 8 + inPack * 1_048_600, length: 1_048_576, rawLength: 1_048_576 });
  }
  const insertSeconds = (performance.now() - t0) / 1000;
  if (index.size !== entries) throw new Error(`index holds ${index.size} of ${entries} entries`);
  gc();
  const after = process.memoryUsage();

  let hits = 0;
  let t = performance.now();
  for (let i = 0; i < lookups; i++) {
    const j = order[i]! * 32;
    if (index.has(ids.subarray(j, j + 32))) hits++;
  }
  const hitSeconds = (performance.now() - t) / 1000;
  if (hits !== lookups) throw new Error(`only ${hits} of ${lookups} present IDs were found`);

  let misses = 0;
  t = performance.now();
  for (let i = 0; i < lookups; i++) {
    if (!index.has(missIds.subarray(i * 32, i * 32 + 32))) misses++;
  }
  const missSeconds = (performance.now() - t) / 1000;
  if (misses !== lookups) throw new Error(`${lookups - misses} absent IDs were reported present`);

  let found = 0;
  t = performance.now();
  for (let i = 0; i < lookups; i++) {
    const j = order[i]! * 32;
    if (index.get(ids.subarray(j, j + 32))?.length === 1_048_576) found++;
  }
  const getSeconds = (performance.now() - t) / 1000;
  if (found !== lookups) throw new Error(`get() found ${found} of ${lookups}`);

  let sink = 0;
  t = performance.now();
  for (let i = 0; i < lookups; i++) {
    const j = order[i]! * 32;
    sink += ids.subarray(j, j + 32)[31]!;
  }
  const idViewNs = ((performance.now() - t) * 1e6) / lookups + (sink < 0 ? 1 : 0);

  const heapGrowthBytes = heapTotal(after) - heapTotal(before);
  const rssGrowthBytes = after.rss - before.rss;
  return {
    entries,
    chunksPerPack,
    packs: index.packCount,
    byteSize: index.byteSize,
    bytesPerChunk: index.byteSize / entries,
    heapGrowthBytes,
    heapBytesPerChunk: heapGrowthBytes / entries,
    rssGrowthBytes,
    rssBytesPerChunk: rssGrowthBytes / entries,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    insertSeconds,
    insertsPerSec: entries / insertSeconds,
    lookups,
    hitLookupsPerSec: lookups / hitSeconds,
    missLookupsPerSec: lookups / missSeconds,
    getHitsPerSec: lookups / getSeconds,
    idViewNs,
  };
}

const entriesArg = process.argv[2];
if (entriesArg !== undefined) {
  const result = runIndexBench(Number(entriesArg), Number(process.argv[3] ?? 16));
  process.stdout.write(JSON.stringify(result) + '\n');
}
