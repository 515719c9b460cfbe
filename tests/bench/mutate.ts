// A deterministic "about 1 %" change to a copy of the benchmark's data set, the kind of change a
// day of use makes: some small files edited, appended to or rewritten, a few deleted and a few
// added, two medium files grown, scattered in-place overwrites in the disk images and one insert
// that shifts the rest of an image. Every tool backs up the same mutated tree.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CtrStream } from './prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface MutationSummary {
  filesChanged: number;
  filesAdded: number;
  filesDeleted: number;
  /** New content written (overwritten, appended, inserted or added bytes). */
  bytesWritten: number;
  /** Every file created, for the caller to chown. */
  created: string[];
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) out.push(full);
    }
  }
  return out.sort();
}

function overwrite(file: string, at: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Applies the change to `dataDir` (a copy: the files are modified in place). */
export function mutateDataset(dataDir: string, seed: string): MutationSummary {
  const rng = new CtrStream(`${seed}/mutation-1pct`);
  const s: MutationSummary = { filesChanged: 0, filesAdded: 0, filesDeleted: 0, bytesWritten: 0, created: [] };

  // Small files: 1 % edited in place, appended to or rewritten; 0.1 % deleted.
  const small = listFiles(path.join(dataDir, 'small'));
  for (const file of small) {
    const f = rng.float();
    if (f < 0.001) {
      fs.rmSync(file);
      s.filesDeleted++;
      continue;
    }
    if (f >= 0.011) continue;
    const size = fs.statSync(file).size;
    const kind = rng.float();
    if (kind < 0.5 && size > 0) {
      const len = Math.min(size, rng.int(1, 256));
      overwrite(file, rng.int(0, size - len), rng.bytes(len));
      s.bytesWritten += len;
    } else if (kind < 0.8) {
      const add = rng.int(1 * KiB, 4 * KiB);
      fs.appendFileSync(file, rng.bytes(add));
      s.bytesWritten += add;
    } else {
      const len = Math.max(1, size);
      fs.writeFileSync(file, rng.bytes(len));
      s.bytesWritten += len;
    }
    s.filesChanged++;
  }
  // 0.2 % new small files in a new directory.
  const added = Math.max(1, Math.round(small.length * 0.002));
  const newDir = path.join(dataDir, 'small', 'new-today');
  fs.mkdirSync(newDir, { recursive: true });
  s.created.push(newDir);
  for (let i = 0; i < added; i++) {
    const file = path.join(newDir, `n${String(i).padStart(4, '0')}.bin`);
    const data = rng.bytes(rng.logUniform(64, 32 * KiB));
    fs.writeFileSync(file, data);
    s.created.push(file);
    s.bytesWritten += data.length;
    s.filesAdded++;
  }

  // Medium files: two grow by 64 KiB (log files being appended to).
  const medium = listFiles(path.join(dataDir, 'medium'));
  for (let k = 0; k < Math.min(2, medium.length); k++) {
    const file = medium[rng.int(0, medium.length - 1)]!;
    fs.appendFileSync(file, rng.bytes(64 * KiB));
    s.bytesWritten += 64 * KiB;
    s.filesChanged++;
  }

  // Large files: 1 % of each image overwritten in place, in 1 MiB pieces (at least one)...
  const large = listFiles(path.join(dataDir, 'large'));
  for (const file of large) {
    const size = fs.statSync(file).size;
    const pieces = Math.max(1, Math.round((size * 0.01) / MiB));
    for (let p = 0; p < pieces; p++) {
      const len = Math.min(size, MiB);
      overwrite(file, rng.int(0, size - len), rng.bytes(len));
      s.bytesWritten += len;
    }
    s.filesChanged++;
  }
  // ... and 4 KiB inserted in the middle of the first one, shifting everything after it.
  if (large.length > 0) {
    const file = large[0]!;
    const content = fs.readFileSync(file);
    const at = Math.floor(content.length / 2);
    const insert = rng.bytes(4 * KiB);
    fs.writeFileSync(file, Buffer.concat([content.subarray(0, at), insert, content.subarray(at)]));
    s.bytesWritten += insert.length;
  }
  return s;
}
