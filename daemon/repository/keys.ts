// Key files wrap the master keys with a passphrase through Argon2id. Several key files may wrap
// the same master keys, so passphrases can be added, changed and revoked without re-encrypting data.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import argon2 from 'argon2';
import { HaulError } from '../../shared/errors.js';
import { keyLength, type MasterKeys } from './crypto.js';

export interface KdfParams {
  algorithm: 'argon2id';
  memoryKiB: number;
  iterations: number;
  parallelism: number;
  salt: string;
}

export interface KeyFile {
  format: 'haul-key-v1';
  created: string;
  hostname: string;
  username: string;
  kdf: KdfParams;
  /** base64 of nonce(12) | AES-256-GCM ciphertext | tag(16) of the master keys as JSON. */
  wrapped: string;
}

/** About 200 ms on the reference machine; stored per key file so they can be raised later. */
export const defaultKdf = { memoryKiB: 64 * 1024, iterations: 3, parallelism: 1 };
const wrapAad = Buffer.from('haul-key-v1');

async function deriveKek(passphrase: string, kdf: KdfParams): Promise<Buffer> {
  return argon2.hash(passphrase, {
    type: argon2.argon2id,
    memoryCost: kdf.memoryKiB,
    timeCost: kdf.iterations,
    parallelism: kdf.parallelism,
    salt: Buffer.from(kdf.salt, 'base64'),
    hashLength: keyLength,
    raw: true,
  });
}

export async function wrapMasterKeys(master: MasterKeys, passphrase: string, kdfCost = defaultKdf): Promise<KeyFile> {
  if (passphrase.length === 0) {
    throw new HaulError('PassphraseMissing', 'the passphrase is empty. Use a long random passphrase (for example `openssl rand -base64 32`).');
  }
  const kdf: KdfParams = { algorithm: 'argon2id', ...kdfCost, salt: randomBytes(16).toString('base64') };
  const kek = await deriveKek(passphrase, kdf);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(wrapAad);
  const plain = Buffer.from(JSON.stringify({
    encryption: master.encryption.toString('base64'),
    id: master.id.toString('base64'),
    mac: master.mac.toString('base64'),
  }));
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (containers): the name is informational only.
  }
  return {
    format: 'haul-key-v1',
    created: new Date().toISOString(),
    hostname: hostname(),
    username: user,
    kdf,
    wrapped: Buffer.concat([nonce, ct, cipher.getAuthTag()]).toString('base64'),
  };
}

export function parseKeyFile(bytes: Buffer, name: string): KeyFile {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as KeyFile;
  } catch {
    throw new HaulError('ObjectCorrupt', `key file keys/${name} is not valid JSON; it was damaged. Open the repository with another key and remove this one (\`haul key remove ${name}\`).`);
  }
  if (parsed.format !== 'haul-key-v1') {
    throw new HaulError('UnsupportedFormat', `key file keys/${name} has format ${JSON.stringify(parsed.format)}, which this version of Haul does not know. Upgrade Haul.`);
  }
  const k = parsed.kdf;
  // A planted key file must not make every open take minutes or all memory.
  if (k && (!(k.memoryKiB >= 8 && k.memoryKiB <= 4 * 1024 * 1024) || !(k.iterations >= 1 && k.iterations <= 64) || !(k.parallelism >= 1 && k.parallelism <= 16))) {
    throw new HaulError('UnsupportedFormat', `key file keys/${name} asks for Argon2 costs outside the accepted range (memory 8 KiB..4 GiB, 1..64 iterations, 1..16 lanes); it is damaged or was planted. Remove it with \`haul key remove ${name.slice(0, 8)}\` after opening with another key.`);
  }
  if (parsed.kdf?.algorithm !== 'argon2id') {
    throw new HaulError('UnsupportedFormat', `key file keys/${name} uses KDF ${JSON.stringify(parsed.kdf?.algorithm)}; only argon2id is supported.`);
  }
  return parsed;
}

/** Returns the master keys, or undefined when this passphrase does not open this key file. */
export async function unwrapMasterKeys(key: KeyFile, passphrase: string): Promise<MasterKeys | undefined> {
  const kek = await deriveKek(passphrase, key.kdf);
  const blob = Buffer.from(key.wrapped, 'base64');
  if (blob.length < 12 + 16) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', kek, blob.subarray(0, 12));
  decipher.setAAD(wrapAad);
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
  const obj = JSON.parse(plain.toString('utf8')) as Record<string, string>;
  const take = (k: string): Buffer => {
    const b = Buffer.from(obj[k] ?? '', 'base64');
    if (b.length !== keyLength) throw new HaulError('ObjectCorrupt', `key file holds a malformed ${k} key.`);
    return b;
  };
  return { encryption: take('encryption'), id: take('id'), mac: take('mac') };
}
