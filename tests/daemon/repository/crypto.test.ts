import { describe, expect, it } from 'vitest';
import { blobIdFromHash, chunkerKeyFor, generateMasterKeys, openObject, sealObject, sha256 } from '../../../daemon/repository/crypto.js';
import { HaulError } from '../../../shared/errors.js';
import { PackWriter, decryptPackBlob, packCipher, parsePackHeader, packPreambleLength } from '../../../daemon/repository/pack.js';
import { compressBlob, decompressBounded } from '../../../daemon/repository/compression.js';

describe('repository cryptography', () => {
  const keys = generateMasterKeys();

  it('seals and opens objects; any changed byte is refused with a clear error', () => {
    const plain = Buffer.from('{"hello":"world"}');
    const sealed = sealObject(keys, plain);
    expect(openObject(keys, sealed, 'test object')).toEqual(plain);
    expect(sealObject(keys, plain).equals(sealed)).toBe(false);
    for (const at of [0, 9, 45, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] = bad[at]! ^ 1;
      expect(() => openObject(keys, bad, 'test object')).toThrow(HaulError);
    }
    const tampered = Buffer.from(sealed);
    tampered[50] = tampered[50]! ^ 1;
    expect(() => openObject(keys, tampered, 'test object')).toThrow('test object failed authentication: its bytes were changed after it was written.');
    expect(() => openObject(generateMasterKeys(), sealed, 'test object')).toThrow('failed authentication');
  });

  it('keys blob IDs and chunker secrets, so equal data in two repositories or clients looks unrelated', () => {
    const h = sha256(Buffer.from('same file'));
    expect(blobIdFromHash(keys, h).equals(blobIdFromHash(generateMasterKeys(), h))).toBe(false);
    expect(blobIdFromHash(keys, h).equals(h)).toBe(false);
    expect(chunkerKeyFor(keys, 'alpha').equals(chunkerKeyFor(keys, 'beta'))).toBe(false);
    expect(chunkerKeyFor(keys, 'alpha').equals(chunkerKeyFor(keys, 'alpha'))).toBe(true);
  });

  it('writes packs whose encrypted header lists every blob at its offset', () => {
    const w = new PackWriter(keys);
    const a = w.add(Buffer.alloc(32, 1), 0, 0, Buffer.from('first blob'), 10);
    const b = w.add(Buffer.alloc(32, 2), 1, 0, Buffer.from('second'), 6);
    const pack = w.finish();
    const bytes = Buffer.concat(pack.parts);
    expect(bytes.length).toBe(pack.size);
    expect(bytes.subarray(0, 8).toString()).toBe('HAULPAK1');
    expect(bytes.includes(Buffer.from('first blob'))).toBe(false);
    const entries = parsePackHeader(keys, pack.name, bytes.subarray(0, packPreambleLength), bytes, bytes.length);
    expect(entries).toEqual([a, b]);
    expect(a.offset).toBe(40);
    expect(b.offset).toBe(40 + a.length);
  });

  it('gathers blobs in a reused arena while they fit, then as before; each pack reads back exactly', () => {
    const arena = Buffer.alloc(200_000);
    const blobs = [Buffer.alloc(50_000, 7), Buffer.from('small'), Buffer.alloc(120_000, 9), Buffer.alloc(70_000, 3), Buffer.from('tail')];
    const readBack = (pack: ReturnType<PackWriter['finish']>) => {
      const bytes = Buffer.concat(pack.parts);
      expect(bytes.length).toBe(pack.size);
      const cipher = packCipher(keys, bytes.subarray(0, packPreambleLength));
      return parsePackHeader(keys, pack.name, bytes.subarray(0, packPreambleLength), bytes, bytes.length).map((e) => decryptPackBlob(cipher, e.offset, bytes.subarray(e.offset, e.offset + e.length)));
    };
    const first = new PackWriter(keys, arena);
    blobs.forEach((b, i) => first.add(Buffer.alloc(32, i), 0, 0, b, b.length));
    const firstPack = first.finish();
    // The first three fit the arena (one part); the 70,000-byte blob does not, nor what follows it.
    expect(firstPack.parts.filter((p) => p.buffer === arena.buffer)).toHaveLength(1);
    expect(readBack(firstPack)).toEqual(blobs);
    // The arena reused for the next pack (as the repository does once a pack is written).
    const second = new PackWriter(keys, arena);
    second.add(Buffer.alloc(32, 9), 0, 0, Buffer.from('next pack'), 9);
    expect(readBack(second.finish())).toEqual([Buffer.from('next pack')]);
  });

  it('compresses only when it pays and refuses frames larger than allowed', () => {
    const text = Buffer.from('abc'.repeat(10_000));
    const c = compressBlob(text);
    expect(c.compression).toBe(1);
    expect(decompressBounded(c.data, 30_000)).toEqual(text);
    expect(decompressBounded(c.data, 29_999)).toBeUndefined();
    expect(compressBlob(sha256(Buffer.from('x'))).compression).toBe(0);
  });
});
