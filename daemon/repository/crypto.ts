// Every encrypted object in a repository uses one construction: a fresh random 32-byte salt
// derives a subkey (HKDF-SHA-256 from the master encryption key), and AES-256-GCM runs under
// that subkey with counter nonces. A nonce repeats only if two salts collide (2^-128 by the
// birthday bound after 2^64 objects), so the usual 2^32-messages-per-key limit of random
// 96-bit nonces never applies, however large the repository grows.
import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { HaulError } from '../../shared/errors.js';
import { Hmac32 } from './hmac32.js';

export const keyLength = 32;
export const saltLength = 32;
export const tagLength = 16;

export interface MasterKeys {
  /** Derives every subkey that encrypts packs and sealed objects. */
  encryption: Buffer;
  /** Keys chunk IDs: ID = HMAC(id, SHA-256(plaintext)). */
  id: Buffer;
  /** Keys storage object names and the per-client chunker secrets. */
  mac: Buffer;
}

export function generateMasterKeys(): MasterKeys {
  return { encryption: randomBytes(keyLength), id: randomBytes(keyLength), mac: randomBytes(keyLength) };
}

export function sha256(data: Uint8Array): Buffer {
  // One-shot: no Hash object per small chunk.
  return hash('sha256', data, 'buffer');
}

/** Each ID key's precomputed HMAC (hmac32.ts): an ID is computed for every chunk a backup sees. */
const idMacs = new WeakMap<Buffer, Hmac32>();

/** The ID a blob is stored and deduplicated under; reading storage never reveals a plaintext hash. */
export function blobIdFromHash(keys: MasterKeys, plaintextSha256: Uint8Array): Buffer {
  if (plaintextSha256.length !== 32) return createHmac('sha256', keys.id).update(plaintextSha256).digest();
  let mac = idMacs.get(keys.id);
  if (!mac) idMacs.set(keys.id, (mac = new Hmac32(keys.id)));
  return mac.mac(plaintextSha256);
}

/** Storage names are keyed hashes of the stored bytes: whole-file integrity without a key leak. */
export function objectName(keys: MasterKeys, parts: readonly Uint8Array[]): string {
  const mac = createHmac('sha256', keys.mac);
  for (const p of parts) mac.update(p);
  return mac.digest('hex');
}

export function verifyObjectName(keys: MasterKeys, name: string, parts: readonly Uint8Array[]): boolean {
  const expected = Buffer.from(objectName(keys, parts), 'hex');
  const actual = Buffer.from(name, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The secret from which each client's chunker gear table is derived (see docs/repository-format.md). */
export function chunkerKeyFor(keys: MasterKeys, client: string): Buffer {
  const secret = Buffer.from(hkdfSync('sha256', keys.mac, Buffer.alloc(0), 'haul-chunker-v1', keyLength));
  return createHmac('sha256', secret).update('client:').update(client, 'utf8').digest();
}

export const NonceDomain = { blob: 0, packHeader: 1, sealedObject: 2 } as const;

/** One buffer for every nonce: createCipheriv copies the IV, and a million allocations cost GC time. */
const nonceScratch = Buffer.alloc(12);

function nonce(domain: number, counter: number): Buffer {
  nonceScratch.writeUInt32BE(domain, 0);
  nonceScratch.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 4);
  nonceScratch.writeUInt32BE(counter >>> 0, 8);
  return nonceScratch;
}

/** AES-256-GCM under one salt-derived subkey; each (domain, counter) pair is used once. */
export class SubkeyCipher {
  private readonly key: Buffer;

  constructor(keys: MasterKeys, readonly salt: Buffer, info: string) {
    this.key = Buffer.from(hkdfSync('sha256', keys.encryption, salt, info, keyLength));
  }

  /** The AES key itself, for a worker thread of this process that opens blobs (blob-worker-pool.ts). */
  get subkey(): Buffer {
    return this.key;
  }

  encrypt(domain: number, counter: number, plaintext: Uint8Array): Buffer {
    return Buffer.concat(this.encryptParts(domain, counter, plaintext));
  }

  /** The ciphertext and its tag as two buffers, for a writer that appends them anyway. */
  encryptParts(domain: number, counter: number, plaintext: Uint8Array): [Buffer, Buffer] {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(domain, counter));
    const body = cipher.update(plaintext);
    // GCM is a stream mode: final() only computes the tag and never returns bytes.
    cipher.final();
    return [body, cipher.getAuthTag()];
  }

  /** Returns undefined when authentication fails: the caller knows what the bytes were and says so. */
  decrypt(domain: number, counter: number, data: Uint8Array): Buffer | undefined {
    if (data.length < tagLength) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce(domain, counter));
    decipher.setAuthTag(data.subarray(data.length - tagLength));
    const body = decipher.update(data.subarray(0, data.length - tagLength));
    try {
      decipher.final();
      return body;
    } catch {
      return undefined;
    }
  }
}

const objectMagic = Buffer.from('HAULOBJ1', 'latin1');
const objectInfo = 'haul-object-v1';

/** A sealed object: magic | salt | AES-GCM(subkey(salt), nonce(sealedObject, 0), plaintext). */
export function sealObject(keys: MasterKeys, plaintext: Uint8Array): Buffer {
  const salt = randomBytes(saltLength);
  const cipher = new SubkeyCipher(keys, salt, objectInfo);
  return Buffer.concat([objectMagic, salt, cipher.encrypt(NonceDomain.sealedObject, 0, plaintext)]);
}

export function openObject(keys: MasterKeys, data: Buffer, what: string): Buffer {
  if (data.length < objectMagic.length + saltLength + tagLength || !data.subarray(0, objectMagic.length).equals(objectMagic)) {
    throw new HaulError('ObjectCorrupt', `${what} is not a Haul object (bad header). It was damaged or replaced; run \`haul check\` for the full picture.`);
  }
  const salt = data.subarray(objectMagic.length, objectMagic.length + saltLength);
  const cipher = new SubkeyCipher(keys, Buffer.from(salt), objectInfo);
  const plain = cipher.decrypt(NonceDomain.sealedObject, 0, data.subarray(objectMagic.length + saltLength));
  if (!plain) {
    throw new HaulError('ObjectCorrupt', `${what} failed authentication: its bytes were changed after it was written. Run \`haul check\` for the full picture.`);
  }
  return plain;
}
