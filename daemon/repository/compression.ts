// Compression is chosen per blob: zstd when it saves at least 1/32 of the size, else none.
// Decompression is always bounded by a size the caller knows, so a crafted frame cannot make
// the server allocate more than that.
import zstd from 'zstd-napi/binding.js';

export const Compression = { none: 0, zstd: 1 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export const defaultZstdLevel = 3;

// One context, reused: zstd.decompress creates and frees one per call, a fifth of the time of a
// small chunk's decompression.
const decompressor = new zstd.DCtx();

export function compressBlob(data: Uint8Array, level = defaultZstdLevel): { data: Uint8Array; compression: Compression } {
  if (data.length < 64) return { data, compression: Compression.none };
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  const n = zstd.compress(out, data, level);
  if (n > data.length - (data.length >> 5)) return { data, compression: Compression.none };
  return { data: out.subarray(0, n), compression: Compression.zstd };
}

/**
 * Decompresses exactly one zstd frame that declares its size, at most `limit` bytes; returns
 * undefined for anything else (several frames, no declared size, too large, damaged). With
 * `scratch`, the result may be a view into it (for a caller that only hashes the plaintext).
 */
export function decompressBounded(frame: Uint8Array, limit: number, scratch?: Buffer): Buffer | undefined {
  try {
    if (zstd.findFrameCompressedSize(frame) !== frame.length) return undefined;
    const declared = zstd.getFrameContentSize(frame);
    if (declared === null || declared > limit) return undefined;
    // Into the caller's scratch buffer when it is large enough: a view, valid until its next use.
    const out = scratch && scratch.length >= declared ? scratch.subarray(0, declared) : Buffer.allocUnsafe(declared);
    const n = decompressor.decompress(out, frame);
    return n === declared ? out : undefined;
  } catch {
    return undefined;
  }
}
