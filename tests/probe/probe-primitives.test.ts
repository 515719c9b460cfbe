// The probe's native building blocks: build, static linking, size, SHA-256 / HMAC
// known answers, and the gear chunker checked against a reference of its spec.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { GearChunker, cutAll } from '../../daemon/chunker/gear-chunker.js';
import { defaultChunker } from '../../daemon/repository/config.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const probe = path.join(root, 'probe', 'dist', `haul-probe-${arch}`);
const probeAarch64 = path.join(root, 'probe', 'dist', 'haul-probe-aarch64');

const KiB = 1024;
const MiB = 1024 * KiB;
// A new repository's chunker.
const DEFAULTS: Sizes = { min: defaultChunker.minSize, avg: defaultChunker.avgSize, max: defaultChunker.maxSize, normalization: defaultChunker.normalization };
const KEY_A = createHash('sha256').update('probe test key A').digest();
const KEY_B = createHash('sha256').update('probe test key B').digest();

interface Run { status: number | null; stdout: string; stderr: string }

function run(file: string, args: string[], input?: Buffer, env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(file, args, { input, maxBuffer: 64 * MiB, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Deterministic bytes: SHA-256(seed || uint32be(counter)) blocks. */
function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(size);
  const counter = Buffer.alloc(4);
  for (let off = 0, j = 0; off < size; off += 32, j++) {
    counter.writeUInt32BE(j);
    createHash('sha256').update(seed).update(counter).digest().copy(out, off);
  }
  return out;
}

interface Chunk { offset: number; length: number; hash: string }
/** Chunker sizes; normalization absent: the probe's and the config's default of 2. */
interface Sizes { min: number; avg: number; max: number; normalization?: number }

function probeChunks(data: Buffer, key: Buffer, p: Sizes = DEFAULTS, env: NodeJS.ProcessEnv = {}): Chunk[] {
  const level = p.normalization === undefined ? [] : [`${p.normalization}`];
  const r = run(probe, ['--chunk-boundaries', key.toString('hex'), `${p.min}`, `${p.avg}`, `${p.max}`, ...level], data, env);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [offset, length, hash] = line.split(' ');
    return { offset: Number(offset), length: Number(length), hash: hash ?? '' };
  });
}

/** The daemon's own chunker (daemon/chunker): probe and server must cut identically. */
function referenceLengths(data: Buffer, key: Buffer, p: Sizes = DEFAULTS): number[] {
  const level = p.normalization === undefined ? {} : { normalization: p.normalization };
  return cutAll(new GearChunker(key, { algorithm: 'gear32-v1', minSize: p.min, avgSize: p.avg, maxSize: p.max, ...level }), data);
}

const PT_DYNAMIC = 2;
const PT_INTERP = 3;

/** Machine and program header types, read straight from the ELF header. */
function elfInfo(file: Buffer): { machine: number; segmentTypes: number[] } {
  if (file.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  const is64 = file[4] === 2;
  const le = file[5] === 1;
  const u16 = (o: number): number => (le ? file.readUInt16LE(o) : file.readUInt16BE(o));
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const u64 = (o: number): number => Number(le ? file.readBigUInt64LE(o) : file.readBigUInt64BE(o));
  const phoff = is64 ? u64(32) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const segmentTypes = Array.from({ length: phnum }, (_, i) => u32(phoff + i * phentsize));
  return { machine: u16(18), segmentTypes };
}

const SHA_CHECKS = ['sha256 "abc"', 'sha256 448-bit message', "sha256 one million 'a'", 'sha256 empty string']
  .flatMap((name) => [`${name} (one-shot)`, `${name} (incremental)`]);
const HMAC_CHECKS = [1, 2, 3, 4, 6, 7].map((n) => `hmac-sha256 RFC 4231 case ${n}`);

describe('haul-probe primitives', () => {
  beforeAll(() => {
    const r = spawnSync('bash', [path.join(root, 'probe', 'build.sh')], { cwd: root, timeout: 120_000 });
    if (r.status !== 0) {
      throw new Error(`probe/build.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  }, 120_000);

  it('is a static binary well under 2 MiB', () => {
    for (const file of [probe, probeAarch64].filter(existsSync)) {
      expect(statSync(file).size).toBeLessThan(2 * MiB);
      const elf = elfInfo(readFileSync(file));
      expect(elf.segmentTypes).not.toContain(PT_INTERP);
      expect(elf.segmentTypes).not.toContain(PT_DYNAMIC);
      expect(elf.machine).toBe(file === probeAarch64 ? 183 : arch === 'x86_64' ? 62 : 183);
    }
  });

  it('reports its version, architecture and features', () => {
    const r = run(probe, ['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(
      new RegExp(`^haul-probe 0\\.1\\.0 \\(${arch}, (sha-ni|armv8-sha2|portable), (zstd|no-zstd)\\)$`));
    expect(run(probe, ['--version'], undefined, { HAUL_PROBE_SHA: 'portable' }).stdout).toContain(', portable, ');
  });

  it('refuses unknown arguments with usage and exit 2', () => {
    for (const args of [[], ['--no-such-mode'], ['--chunk-boundaries', 'zz', '1', '4', '8']]) {
      const r = run(probe, args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/usage: haul-probe/);
      expect(r.stdout).toBe('');
    }
  });

  it('passes its known-answer self-test on the accelerated and portable SHA-256 paths', () => {
    const r = run(probe, ['--selftest']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = new Set(r.stdout.split('\n'));
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.stdout).toMatch(/^all passed: 0 failures$/m);
    for (const check of [...SHA_CHECKS, ...HMAC_CHECKS]) expect(lines).toContain(`pass portable: ${check}`);
    const accel = arch === 'x86_64' ? 'sha-ni' : 'armv8-sha2';
    if (!lines.has(`${accel}: skipped: no SHA extensions`)) {
      for (const check of [...SHA_CHECKS, ...HMAC_CHECKS]) expect(lines).toContain(`pass ${accel}: ${check}`);
      expect(lines).toContain(`pass ${accel}+portable: sha256 paths agree on lengths 0..1024`);
    }
  });

  describe('gear chunker on 20 MiB of pseudo-random data', () => {
    const size = 20 * MiB;
    const data = pseudoRandom(size, 'haul probe test data');
    let chunks: Chunk[] = [];

    beforeAll(() => {
      chunks = probeChunks(data, KEY_A);
    });

    it('covers the input with chunks within [min, max], each hashed correctly', () => {
      expect(chunks.length).toBeGreaterThan(5);
      let offset = 0;
      chunks.forEach((c, i) => {
        expect(c.offset).toBe(offset);
        if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(DEFAULTS.min);
        expect(c.length).toBeGreaterThan(0);
        expect(c.length).toBeLessThanOrEqual(DEFAULTS.max);
        expect(c.hash).toBe(createHash('sha256').update(data.subarray(c.offset, c.offset + c.length)).digest('hex'));
        offset += c.length;
      });
      expect(offset).toBe(size);
    });

    it('cuts exactly where the daemon\'s TypeScript chunker cuts', () => {
      expect(chunks.map((c) => c.length)).toEqual(referenceLengths(data, KEY_A));
      // Small parameters give thousands of boundaries: a much finer comparison.
      const part = data.subarray(0, MiB);
      for (const normalization of [undefined, 0, 1, 2, 3]) {
        const small = { min: 64, avg: 256, max: 1024, normalization };
        const lengths = probeChunks(part, KEY_A, small).map((c) => c.length);
        expect(lengths.length).toBeGreaterThan(1000);
        expect(lengths).toEqual(referenceLengths(part, KEY_A, small));
      }
      // Each level cuts differently (no level is silently read as another), and no level
      // given means 2, as for a repository config without the field.
      const byLevel = [0, 1, 2, 3].map((n) => JSON.stringify(referenceLengths(part, KEY_A, { min: 64, avg: 256, max: 1024, normalization: n })));
      expect(new Set(byLevel).size).toBe(4);
      expect(JSON.stringify(referenceLengths(part, KEY_A, { min: 64, avg: 256, max: 1024 }))).toBe(byLevel[2]);
    });

    it('refuses a normalisation above 3 with a usage error', () => {
      const r = run(probe, ['--chunk-boundaries', KEY_A.toString('hex'), '64', '256', '1024', '4']);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`haul-probe: bad chunker parameters: need AVG a power of two in [4, 2^30], MIN <= AVG <= MAX <= ${1024 * MiB} and NORMALIZATION <= 3\n`);
    });

    it('gives the same chunks on the portable SHA-256 path', () => {
      expect(probeChunks(data, KEY_A, DEFAULTS, { HAUL_PROBE_SHA: 'portable' })).toEqual(chunks);
    });

    it('re-cuts at most 2 chunks around a 100-byte insertion at 10 MiB', () => {
      const at = 10 * MiB;
      const edited = Buffer.concat([data.subarray(0, at), pseudoRandom(100, 'inserted'), data.subarray(at)]);
      const after = probeChunks(edited, KEY_A);
      const before = new Set(chunks.map((c) => c.hash));
      const now = new Set(after.map((c) => c.hash));
      const lost = chunks.filter((c) => !now.has(c.hash));
      const added = after.filter((c) => !before.has(c.hash));
      expect(lost.length).toBeGreaterThanOrEqual(1);
      expect(lost.length).toBeLessThanOrEqual(2);
      expect(added.length).toBeLessThanOrEqual(2);
      const hit = chunks.findIndex((c) => c.offset <= at && at < c.offset + c.length);
      for (const c of lost) expect(Math.abs(chunks.indexOf(c) - hit)).toBeLessThanOrEqual(1);
    });

    it('cuts differently under a different key', () => {
      const other = probeChunks(data, KEY_B);
      expect(other.map((c) => c.length)).not.toEqual(chunks.map((c) => c.length));
      expect(other.map((c) => c.length)).toEqual(referenceLengths(data, KEY_B));
    });

    it('streams: 20 MiB through a 16 MiB address-space limit', () => {
      // The 8 MiB buffer (2 * max) fits the limit; buffering the whole input would not.
      const limited = (max: number, input?: Buffer): Run => run('bash', ['-c', 'ulimit -v 16384 && exec "$0" "$@"',
        probe, '--chunk-boundaries', KEY_A.toString('hex'), `${DEFAULTS.min}`, `${DEFAULTS.avg}`, `${max}`, `${DEFAULTS.normalization}`], input);
      const ok = limited(DEFAULTS.max, data);
      expect(ok.status).toBe(0);
      expect(ok.stdout.trim().split('\n').length).toBe(chunks.length);
      // Control: a 32 MiB buffer must not fit, so the limit is really in force (it fails
      // before reading stdin, so it gets none).
      const tooBig = limited(16 * MiB);
      expect(tooBig.status).toBe(1);
      expect(tooBig.stderr).toMatch(/cannot allocate/);
    });
  });

  it.runIf(arch === 'x86_64' && hasCommand('qemu-x86_64-static'))(
    'skips the SHA-NI checks on a CPU without SHA extensions (qemu64)', () => {
      const r = run('qemu-x86_64-static', ['-cpu', 'qemu64', probe, '--selftest']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^sha-ni: skipped: no SHA extensions$/m);
      expect(r.stdout).toMatch(/^all passed: 0 failures$/m);
    });

  it.runIf(arch === 'x86_64' && hasCommand('qemu-aarch64-static') && existsSync(probeAarch64))(
    'the aarch64 build passes its self-test and cuts the same chunks (qemu)', () => {
      const r = run('qemu-aarch64-static', [probeAarch64, '--selftest']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^all passed: 0 failures$/m);
      const data = pseudoRandom(2 * MiB, 'aarch64');
      const small = { min: 4 * KiB, avg: 16 * KiB, max: 64 * KiB, normalization: 1 };
      const args = ['--chunk-boundaries', KEY_A.toString('hex'), `${small.min}`, `${small.avg}`, `${small.max}`, `${small.normalization}`];
      const arm = run('qemu-aarch64-static', [probeAarch64, ...args], data);
      expect(arm.status).toBe(0);
      expect(arm.stdout).toBe(run(probe, args, data).stdout);
    });
});
