// hmac32.ts computes blob IDs and chunk fingerprints in JavaScript: it must agree with OpenSSL's
// HMAC-SHA-256 for every key and message it is given, or a repository's IDs would change.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blobIdFromHash, generateMasterKeys } from '../../../daemon/repository/crypto.js';
import { Hmac32 } from '../../../daemon/repository/hmac32.js';
import { pseudoRandom } from '../../helpers/fixtures.js';

describe('Hmac32', () => {
  it('equals createHmac for 2,000 pseudo-random keys and 32-byte messages, and for keys of 0, 1, 33 and 64 bytes', () => {
    const stream = pseudoRandom('hmac32 vectors', 2000 * 64);
    for (let i = 0; i < 2000; i++) {
      const key = stream.subarray(64 * i, 64 * i + 32);
      const message = stream.subarray(64 * i + 32, 64 * i + 64);
      expect(new Hmac32(key).mac(message).toString('hex')).toBe(createHmac('sha256', key).update(message).digest('hex'));
    }
    const message = Buffer.alloc(32, 0xab);
    for (const length of [0, 1, 33, 64]) {
      const key = Buffer.alloc(length, 0x0b);
      expect(new Hmac32(key).mac(message)).toEqual(createHmac('sha256', key).update(message).digest());
    }
  });

  it('gives the same MAC whatever was computed before it (no state leaks between keys)', () => {
    const a = new Hmac32(Buffer.alloc(32, 1));
    const b = new Hmac32(Buffer.alloc(32, 2));
    const m = Buffer.alloc(32, 3);
    const first = a.mac(m);
    b.mac(Buffer.alloc(32, 4));
    expect(a.mac(m)).toEqual(first);
  });

  it('refuses a message that is not 32 bytes and a key longer than a block, with the reason', () => {
    expect(() => new Hmac32(Buffer.alloc(32)).mac(Buffer.alloc(31))).toThrow('Hmac32: the message must be 32 bytes, not 31');
    expect(() => new Hmac32(Buffer.alloc(65))).toThrow('Hmac32: keys longer than one SHA-256 block are not supported');
  });

  it('blobIdFromHash is HMAC-SHA-256 under the ID key, as the repository format says', () => {
    const keys = generateMasterKeys();
    const sha = pseudoRandom('an id', 32);
    expect(blobIdFromHash(keys, sha)).toEqual(createHmac('sha256', keys.id).update(sha).digest());
    expect(blobIdFromHash(keys, Buffer.alloc(5, 1))).toEqual(createHmac('sha256', keys.id).update(Buffer.alloc(5, 1)).digest());
  });
});
