// Generated test data: deterministic pseudo-random bytes and a tree with every file type.
import { createCipheriv, createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Deterministic bytes from a seed (AES-CTR keystream): fast and reproducible. */
export function pseudoRandom(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(length));
}

/** Bytes that compress well but do not repeat exactly (words drawn from a seed). */
export function textLike(seed: string, length: number): Buffer {
  const words = ['backup', 'haul', 'chunk', 'pack', 'index', 'snapshot', 'tree', 'client', 'daemon', 'probe', 'restore', 'verify'];
  const rnd = pseudoRandom(seed, Math.ceil(length / 4) + 16);
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const w = words[rnd[i % rnd.length]! % words.length]! + (rnd[(i * 7) % rnd.length]! % 5 === 0 ? '\n' : ' ');
    parts.push(w);
    size += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

export const oddNames = {
  newline: 'line\nbreak',
  utf8: 'Grüße-日本語-😀',
  quote: `quote"'and\\back`,
  invalidUtf8: Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]),
  script: '<img src=x onerror=alert(1)>',
};

/**
 * A tree with regular, empty, big sparse-ish, symlink, hard-linked and fifo entries and names
 * with a newline, UTF-8, quotes and invalid UTF-8 bytes. Returns the root.
 */
export function makeEveryKindTree(root: string): string {
  fs.mkdirSync(path.join(root, 'docs', 'deep', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(root, 'docs', 'readme.txt'), textLike('readme', 200_000));
  fs.writeFileSync(path.join(root, 'docs', 'deep', 'deeper', 'random.bin'), pseudoRandom('random', 3_000_000));
  fs.writeFileSync(path.join(root, 'empty'), Buffer.alloc(0));
  // Sparse-ish: a 9 MiB file that is mostly a hole, with data at both ends and in the middle.
  const sparse = fs.openSync(path.join(root, 'sparse.img'), 'w');
  fs.writeSync(sparse, pseudoRandom('sparse-head', 100_000), 0, 100_000, 0);
  fs.writeSync(sparse, pseudoRandom('sparse-mid', 50_000), 0, 50_000, 4_500_000);
  fs.writeSync(sparse, Buffer.from('tail'), 0, 4, 9 * 1024 * 1024 - 4);
  fs.closeSync(sparse);
  fs.symlinkSync('docs/readme.txt', path.join(root, 'link-to-readme'));
  fs.symlinkSync('/nonexistent/target', path.join(root, 'dangling'));
  fs.writeFileSync(path.join(root, 'hard-a'), textLike('hard', 50_000));
  fs.linkSync(path.join(root, 'hard-a'), path.join(root, 'docs', 'hard-b'));
  execFileSync('mkfifo', [path.join(root, 'a-fifo')]);
  // Command-line tools take text; Python's os.mkfifo takes the raw bytes of a non-UTF-8 name.
  execFileSync('python3', ['-c', 'import os, sys; os.mkfifo(bytes.fromhex(sys.argv[1]))', Buffer.concat([Buffer.from(root + '/fifo-'), oddNames.invalidUtf8]).toString('hex')]);
  fs.writeFileSync(path.join(root, oddNames.newline), 'newline name\n');
  fs.writeFileSync(path.join(root, oddNames.utf8), 'utf8 name\n');
  fs.writeFileSync(path.join(root, oddNames.quote), 'quote name\n');
  fs.writeFileSync(path.join(root, oddNames.script), 'script name\n');
  fs.writeFileSync(Buffer.concat([Buffer.from(root + '/'), oddNames.invalidUtf8]), 'invalid utf8 name\n');
  fs.chmodSync(path.join(root, 'docs', 'readme.txt'), 0o640);
  fs.chmodSync(path.join(root, 'docs', 'deep'), 0o750);
  fs.writeFileSync(path.join(root, 'setuid-ish'), 'mode bits\n');
  fs.chmodSync(path.join(root, 'setuid-ish'), 0o4755);
  const past = new Date('2001-02-03T04:05:06.789Z');
  fs.utimesSync(path.join(root, 'docs', 'readme.txt'), past, past);
  fs.lutimesSync(path.join(root, 'link-to-readme'), past, past);
  return root;
}

export interface EntryFacts {
  type: string;
  mode: number;
  size: number;
  mtimeNs: bigint;
  sha256?: string;
  target?: string;
  ino: bigint;
}

/** Everything a restore must reproduce, keyed by relative raw path (latin1 to keep bytes). */
export function describeTree(root: string): Map<string, EntryFacts> {
  const out = new Map<string, EntryFacts>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = rel + '/' + name.toString('latin1');
      const st = fs.lstatSync(full, { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'other';
      const facts: EntryFacts = { type, mode: Number(st.mode & 0o7777n), size: type === 'file' ? Number(st.size) : 0, mtimeNs: st.mtimeNs, ino: st.ino };
      if (type === 'file') facts.sha256 = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
      if (type === 'symlink') facts.target = fs.readlinkSync(full, { encoding: 'buffer' }).toString('latin1');
      out.set(key, facts);
      if (type === 'dir') walk(full, key);
    }
  };
  walk(Buffer.from(root), '');
  return out;
}
