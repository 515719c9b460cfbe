// HMAC-SHA-256 of a 32-byte message (a SHA-256) under a fixed key: a chunk's blob ID and its
// fingerprint, computed for every chunk a backup sees. Node's createHmac spends about 6 µs per
// call setting up OpenSSL for two SHA-256 compressions of work; here the key's two padded
// blocks are compressed once, and each MAC costs the two remaining compressions in plain
// JavaScript, about 2 µs and no allocation but the result. Checked against createHmac in
// tests/daemon/repository/hmac32.test.ts.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const initialState = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** The message schedule; its first 16 words are the block being compressed. One thread, one call at a time. */
const w = new Int32Array(64);

/** One SHA-256 compression of the block in w[0..15] from `state` into `out` (may be the same array). */
function compress(state: Int32Array, out: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const w15 = w[i - 15]!;
    const w2 = w[i - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!, e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  out[0] = (state[0]! + a) | 0;
  out[1] = (state[1]! + b) | 0;
  out[2] = (state[2]! + c) | 0;
  out[3] = (state[3]! + d) | 0;
  out[4] = (state[4]! + e) | 0;
  out[5] = (state[5]! + f) | 0;
  out[6] = (state[6]! + g) | 0;
  out[7] = (state[7]! + h) | 0;
}

/** The state after the key block XOR `pad` (RFC 2104): the first compression of every MAC, done once. */
function padState(key: Uint8Array, pad: number): Int32Array {
  const block = new Uint8Array(64);
  block.set(key);
  for (let i = 0; i < 16; i++) {
    w[i] = ((block[4 * i]! ^ pad) << 24) | ((block[4 * i + 1]! ^ pad) << 16) | ((block[4 * i + 2]! ^ pad) << 8) | (block[4 * i + 3]! ^ pad);
  }
  const state = new Int32Array(8);
  compress(initialState, state);
  return state;
}

/** The second block of both hashes: 32 bytes of message, then SHA-256 padding for 96 bytes in all. */
function padAfter32Bytes(): void {
  w[8] = 0x80000000 | 0;
  w.fill(0, 9, 15);
  w[15] = (64 + 32) * 8;
}

export class Hmac32 {
  private readonly inner: Int32Array;
  private readonly outer: Int32Array;
  private readonly digest = new Int32Array(8);

  /** `key`: at most 64 bytes (the repository's keys are 32). */
  constructor(key: Uint8Array) {
    if (key.length > 64) throw new Error('Hmac32: keys longer than one SHA-256 block are not supported');
    this.inner = padState(key, 0x36);
    this.outer = padState(key, 0x5c);
  }

  /** HMAC-SHA-256(key, message) for a message of exactly 32 bytes. */
  mac(message: Uint8Array): Buffer {
    if (message.length !== 32) throw new Error(`Hmac32: the message must be 32 bytes, not ${message.length}`);
    for (let i = 0; i < 8; i++) w[i] = (message[4 * i]! << 24) | (message[4 * i + 1]! << 16) | (message[4 * i + 2]! << 8) | message[4 * i + 3]!;
    padAfter32Bytes();
    compress(this.inner, this.digest);
    w.set(this.digest, 0);
    padAfter32Bytes();
    compress(this.outer, this.digest);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) out.writeInt32BE(this.digest[i]!, 4 * i);
    return out;
  }
}
