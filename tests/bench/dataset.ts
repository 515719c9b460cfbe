// The benchmark's data set: deterministic (seeded AES-CTR stream), generated once and reused.
//
// Layout at scale 1.0 (about 1.1 GiB, 40 000+ files):
//   small/dNN/eNN/fNNNNN.*  40 000 files of 64 B..32 KiB (log-uniform): 60 % text-like
//                           (compressible), 30 % random (incompressible), 8 % exact duplicates of
//                           an earlier small file, 2 % tiny or empty; plus a few empty directories
//   medium/mNNN.*           160 files of 256 KiB..8 MiB: random, log-like text, and "edited
//                           copies" of an earlier medium file (a few bytes inserted, removed or
//                           overwritten: what content-defined chunking should deduplicate)
//   large/diskN.img         4 files of 144 MiB each, built like disk images: fresh random
//                           segments, segments repeated from earlier in the file or from a pool
//                           shared by all large files, zero runs, and text
// BENCH_SCALE multiplies the file counts and the large-file size.
//
// The "ssh" profile (`npm run bench` with BENCH_SSH=1, tests/bench/run-ssh.ts) is the same mix,
// larger: 60 000 small files, 160 medium files and four 384 MiB large files at scale 1.0, about
// 2.1 GiB. Without a profile the parameters (and so the data set's folder) are unchanged.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CtrStream } from './prng.js';

export const datasetVersion = 1;

export interface DatasetParams {
  version: number;
  seed: string;
  scale: number;
  /** Omitted for the local benchmark's data set; "ssh" for the larger pull-over-SSH one. */
  profile?: 'ssh';
}

export interface DatasetInfo extends DatasetParams {
  /** Directory that is backed up. */
  dataDir: string;
  files: number;
  dirs: number;
  bytes: number;
  /** Seconds spent generating, or null when an existing data set was reused. */
  generationSeconds: number | null;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Word-salad text: a skewed vocabulary, lines, indentation; compresses about 3:1 with zstd. */
class TextGen {
  private readonly words: Buffer[] = [];

  constructor(rng: CtrStream) {
    const letters = 'etaoinshrdlucmfwypvbgkjqxz';
    for (let w = 0; w < 4096; w++) {
      const len = rng.int(2, 11);
      let s = '';
      for (let k = 0; k < len; k++) {
        const f = rng.float();
        s += letters[Math.floor(f * f * letters.length)];
      }
      if (w % 97 === 0) s = s.toUpperCase();
      if (w % 41 === 0) s += '()';
      if (w % 53 === 0) s += ';';
      this.words.push(Buffer.from(s, 'latin1'));
    }
  }

  /** Fills `out`; `log` makes every line start with a timestamp and a level, like a log file. */
  fill(out: Buffer, rng: CtrStream, log: boolean): void {
    const words = this.words;
    let rand: Uint16Array = new Uint16Array(0);
    let ri = 0;
    let p = 0;
    let line = rng.u32() & 0xffff;
    let atLineStart = true;
    while (p < out.length) {
      if (ri + 2 > rand.length) {
        const r = rng.bytes(Math.max(4096, Math.min(out.length, 1 << 20)));
        rand = new Uint16Array(r.buffer, r.byteOffset, r.length >> 1);
        ri = 0;
      }
      const r0 = rand[ri++]!;
      const r1 = rand[ri++]!;
      if (atLineStart) {
        atLineStart = false;
        if (log) {
          line++;
          const sec = line % 60;
          const min = Math.floor(line / 60) % 60;
          const hour = Math.floor(line / 3600) % 24;
          const prefix = `2024-05-17 ${String(hour).padStart(2, '0')}:${String(min).padStart(2, '0')}:${String(sec).padStart(2, '0')}.${String(r1 % 1000).padStart(3, '0')} ${(r1 & 7) === 0 ? 'WARN ' : 'INFO '} worker-${r1 & 15}: `;
          p += out.write(prefix, p, 'latin1');
        } else {
          const indent = (r1 & 3) * 2;
          for (let k = 0; k < indent && p < out.length; k++) out[p++] = 0x20;
        }
        continue;
      }
      const word = words[(r0 * r0) >>> 20]!;
      for (let k = 0; k < word.length && p < out.length; k++) out[p++] = word[k]!;
      if (p < out.length) {
        if ((r1 & 15) === 0) {
          out[p++] = 0x0a;
          atLineStart = true;
        } else {
          out[p++] = (r1 & 0x1f0) === 0 ? 0x2c : 0x20;
        }
      }
    }
  }
}

function counts(scale: number, profile: DatasetParams['profile']): { small: number; medium: number; large: number; largeSize: number } {
  const ssh = profile === 'ssh';
  return {
    small: Math.max(50, Math.round((ssh ? 60_000 : 40_000) * scale)),
    medium: Math.max(4, Math.round(160 * scale)),
    large: 4,
    largeSize: Math.max(2 * MiB, Math.round((ssh ? 384 : 144) * MiB * scale)),
  };
}

function generate(dir: string, params: DatasetParams): void {
  const rng = new CtrStream(`${params.seed}/v${params.version}`);
  const text = new TextGen(rng);
  const c = counts(params.scale, params.profile);

  // ---- small files ----
  const recent: Buffer[] = [];
  for (let i = 0; i < c.small; i++) {
    const leaf = path.join(dir, 'small', `d${String(Math.floor(i / 2000)).padStart(2, '0')}`, `e${String(Math.floor(i / 100) % 20).padStart(2, '0')}`);
    if (i % 100 === 0) fs.mkdirSync(leaf, { recursive: true });
    const kind = rng.float();
    let data: Buffer;
    let ext: string;
    if (kind < 0.6) {
      data = Buffer.allocUnsafe(rng.logUniform(64, 32 * KiB));
      text.fill(data, rng, false);
      ext = 'txt';
    } else if (kind < 0.9) {
      data = rng.bytes(rng.logUniform(64, 32 * KiB));
      ext = 'bin';
    } else if (kind < 0.98 && recent.length > 0) {
      data = recent[rng.int(0, recent.length - 1)]!;
      ext = 'dup';
    } else {
      data = rng.bytes(rng.int(0, 16));
      ext = 'tiny';
    }
    fs.writeFileSync(path.join(leaf, `f${String(i).padStart(5, '0')}.${ext}`), data);
    if (ext !== 'dup') {
      recent.push(data);
      if (recent.length > 200) recent.shift();
    }
  }
  for (let k = 0; k < 5; k++) fs.mkdirSync(path.join(dir, 'small', `empty-${k}`, 'nested'), { recursive: true });

  // ---- medium files ----
  const mediumDir = path.join(dir, 'medium');
  fs.mkdirSync(mediumDir, { recursive: true });
  const originals: Buffer[] = [];
  for (let i = 0; i < c.medium; i++) {
    const kind = rng.float();
    let data: Buffer;
    let ext: string;
    if (kind < 0.25 && originals.length > 0) {
      // An edited copy: 1..4 small edits in an earlier file.
      data = Buffer.from(originals[rng.int(0, originals.length - 1)]!);
      const edits = rng.int(1, 4);
      for (let e = 0; e < edits; e++) {
        const at = rng.int(0, data.length);
        const len = rng.int(1, 200);
        const op = rng.int(0, 2);
        if (op === 0) data = Buffer.concat([data.subarray(0, at), rng.bytes(len), data.subarray(at)]);
        else if (op === 1) data = Buffer.concat([data.subarray(0, at), data.subarray(Math.min(data.length, at + len))]);
        else rng.fill(data.subarray(at, at + len));
      }
      ext = 'v2';
    } else if (kind < 0.6) {
      data = rng.bytes(rng.logUniform(256 * KiB, 8 * MiB));
      ext = 'bin';
    } else {
      data = Buffer.allocUnsafe(rng.logUniform(256 * KiB, 8 * MiB));
      text.fill(data, rng, true);
      ext = 'log';
    }
    fs.writeFileSync(path.join(mediumDir, `m${String(i).padStart(3, '0')}.${ext}`), data);
    if (ext !== 'v2') {
      originals.push(data);
      if (originals.length > 8) originals.shift();
    }
  }

  // ---- large files ----
  const largeDir = path.join(dir, 'large');
  fs.mkdirSync(largeDir, { recursive: true });
  const shared: Buffer[] = [];
  for (let k = 0; k < 4; k++) shared.push(rng.bytes(rng.int(2 * MiB, 6 * MiB)));
  const zeros = Buffer.alloc(16 * MiB);
  for (let i = 0; i < c.large; i++) {
    const fd = fs.openSync(path.join(largeDir, `disk${i}.img`), 'w');
    const own: Buffer[] = [];
    let written = 0;
    try {
      while (written < c.largeSize) {
        const kind = rng.float();
        let piece: Buffer;
        if (kind < 0.45) {
          piece = rng.bytes(rng.int(1 * MiB, 8 * MiB));
          own.push(piece);
          if (own.length > 8) own.shift();
        } else if (kind < 0.6 && own.length > 0) {
          piece = own[rng.int(0, own.length - 1)]!;
        } else if (kind < 0.7) {
          piece = shared[rng.int(0, shared.length - 1)]!;
        } else if (kind < 0.88) {
          piece = zeros.subarray(0, rng.int(512 * KiB, 16 * MiB));
        } else {
          piece = Buffer.allocUnsafe(rng.int(256 * KiB, 4 * MiB));
          text.fill(piece, rng, false);
        }
        piece = piece.subarray(0, Math.min(piece.length, c.largeSize - written));
        fs.writeSync(fd, piece);
        written += piece.length;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

function countTree(dir: string): { files: number; dirs: number; bytes: number } {
  let files = 0;
  let dirs = 0;
  let bytes = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) {
        dirs++;
        stack.push(full);
      } else if (e.isFile()) {
        files++;
        bytes += fs.statSync(full).size;
      }
    }
  }
  return { files, dirs, bytes };
}

/** Returns the data set for these parameters, generating it unless a complete one is there. */
export function ensureDataset(baseDir: string, params: DatasetParams, log: (m: string) => void): DatasetInfo {
  const tag = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 12);
  const root = path.join(baseDir, `dataset-${tag}`);
  const dataDir = path.join(root, 'data');
  const marker = path.join(root, 'dataset.json');
  try {
    const m = JSON.parse(fs.readFileSync(marker, 'utf8')) as DatasetInfo;
    if (m.version === params.version && m.seed === params.seed && m.scale === params.scale && m.profile === params.profile && fs.existsSync(dataDir)) {
      log(`reusing the data set in ${dataDir} (marker ${marker})`);
      return { ...m, dataDir, generationSeconds: null };
    }
  } catch {
    // No marker (or a damaged one): generate afresh.
  }
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const partial = path.join(root, 'data.partial');
  log(`generating the data set (scale ${params.scale}) in ${partial} ...`);
  const t0 = performance.now();
  generate(partial, params);
  fs.renameSync(partial, dataDir);
  const generationSeconds = (performance.now() - t0) / 1000;
  const info: DatasetInfo = { ...params, dataDir, ...countTree(dataDir), generationSeconds };
  fs.writeFileSync(marker, JSON.stringify(info, null, 2) + '\n');
  log(`generated ${info.files} files, ${(info.bytes / MiB).toFixed(1)} MiB in ${generationSeconds.toFixed(1)} s`);
  return info;
}

// ---- manifests: what byte-for-byte verification compares ----

export interface Manifest {
  files: Map<string, { size: number; sha256: string }>;
  dirs: Set<string>;
  other: Set<string>;
  bytes: number;
}

const hashBuf = Buffer.allocUnsafe(4 * MiB);

function hashFile(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    while (true) {
      const n = fs.readSync(fd, hashBuf, 0, hashBuf.length, null);
      if (n === 0) break;
      h.update(hashBuf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Every file's size and SHA-256, every directory and every other entry, relative to `dir`. */
export function buildManifest(dir: string): Manifest {
  const m: Manifest = { files: new Map(), dirs: new Set(), other: new Set(), bytes: 0 };
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const full = path.join(dir, r);
      if (e.isDirectory()) {
        m.dirs.add(r);
        stack.push(r);
      } else if (e.isFile()) {
        const size = fs.statSync(full).size;
        m.files.set(r, { size, sha256: hashFile(full) });
        m.bytes += size;
      } else {
        m.other.add(r);
      }
    }
  }
  return m;
}

/** Differences between the source and a restored copy; empty when they are identical. */
export function compareManifests(source: Manifest, restored: Manifest): string[] {
  const problems: string[] = [];
  for (const [f, s] of source.files) {
    const r = restored.files.get(f);
    if (!r) problems.push(`missing file ${f}`);
    else if (r.size !== s.size) problems.push(`size differs: ${f} (${s.size} vs ${r.size})`);
    else if (r.sha256 !== s.sha256) problems.push(`content differs: ${f}`);
  }
  for (const f of restored.files.keys()) if (!source.files.has(f)) problems.push(`extra file ${f}`);
  for (const d of source.dirs) if (!restored.dirs.has(d)) problems.push(`missing directory ${d}`);
  for (const d of restored.dirs) if (!source.dirs.has(d)) problems.push(`extra directory ${d}`);
  for (const o of source.other) if (!restored.other.has(o)) problems.push(`missing entry ${o}`);
  for (const o of restored.other) if (!source.other.has(o)) problems.push(`extra entry ${o}`);
  return problems;
}

/** Disk usage like `du -s` (allocated blocks) and the apparent size, of a directory tree. */
export function diskUsage(dir: string): { allocated: number; apparent: number } {
  let allocated = 0;
  let apparent = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const st = fs.lstatSync(d);
    allocated += st.blocks * 512;
    apparent += st.size;
    if (!st.isDirectory()) continue;
    for (const name of fs.readdirSync(d)) stack.push(path.join(d, name));
  }
  return { allocated, apparent };
}
