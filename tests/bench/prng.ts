// A deterministic, fast byte stream for the benchmark: AES-256 in counter mode over zeros, keyed
// by SHA-256 of a label. AES-NI makes this several GB/s, far faster than any per-byte JS PRNG,
// and the same label always yields the same bytes on every machine.
import { createCipheriv, createHash, type Cipher } from 'node:crypto';

const zeroBlock = Buffer.alloc(1 << 20);

export class CtrStream {
  private readonly cipher: Cipher;
  private pool = Buffer.alloc(0);
  private poolPos = 0;

  constructor(label: string) {
    const key = createHash('sha256').update('haul-bench-v1\0').update(label).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  /** n fresh pseudo-random bytes (a new buffer). */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    this.fill(out);
    return out;
  }

  /** Fills `buf` with pseudo-random bytes, 1 MiB of keystream at a time. */
  fill(buf: Uint8Array): void {
    let off = 0;
    while (off < buf.length) {
      const n = Math.min(zeroBlock.length, buf.length - off);
      const ks = this.cipher.update(zeroBlock.subarray(0, n));
      buf.set(ks, off);
      off += n;
    }
  }

  /** A uniform 32-bit integer, drawn from a small refilled pool. */
  u32(): number {
    if (this.poolPos + 4 > this.pool.length) {
      this.pool = this.cipher.update(zeroBlock.subarray(0, 64 * 1024));
      this.poolPos = 0;
    }
    const v = this.pool.readUInt32LE(this.poolPos);
    this.poolPos += 4;
    return v;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Log-uniform integer in [lo, hi]: many small values, a long tail of large ones. */
  logUniform(lo: number, hi: number): number {
    return Math.floor(Math.exp(Math.log(lo) + this.float() * (Math.log(hi) - Math.log(lo))));
  }
}
