// Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), the second factor of a console
// login. No maintained TOTP library is installed and the algorithm is a dozen lines over
// node:crypto; tests/shared/totp.test.ts checks it against the RFC's own test vectors.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface TotpOptions {
  /** Authenticator apps use SHA-1, 6 digits and 30 seconds unless told otherwise. */
  algorithm?: TotpAlgorithm;
  digits?: number;
  periodSeconds?: number;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes base32 as authenticator apps show it: any case, spaces and padding ignored. */
export function base32Decode(text: string): Buffer {
  const clean = text.toUpperCase().replace(/[\s=]/g, '');
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new Error(`${JSON.stringify(ch)} is not a base32 character`);
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** A new secret: 160 bits, the size RFC 4226 recommends for HMAC-SHA-1. */
export function generateTotpSecret(): string {
  return base32Encode(randomBytes(20));
}

export function hotp(key: Uint8Array, counter: number, options: TotpOptions = {}): string {
  const digits = options.digits ?? 6;
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(options.algorithm ?? 'sha1', key).update(message).digest();
  // RFC 4226 §5.3, dynamic truncation.
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

export function totpStep(unixSeconds: number, options: TotpOptions = {}): number {
  return Math.floor(unixSeconds / (options.periodSeconds ?? 30));
}

export function totpCode(key: Uint8Array, unixSeconds: number, options: TotpOptions = {}): string {
  return hotp(key, totpStep(unixSeconds, options), options);
}

/**
 * The time step a code belongs to, or undefined. One step either side is accepted, because a
 * phone's clock drifts and a person types slowly; the caller refuses a step used before.
 */
export function matchTotp(secret: string, code: string, unixSeconds: number, options: TotpOptions = {}): number | undefined {
  const digits = options.digits ?? 6;
  if (!new RegExp(`^\\d{${digits}}$`).test(code)) return undefined;
  const key = base32Decode(secret);
  const now = totpStep(unixSeconds, options);
  for (const step of [now, now - 1, now + 1]) {
    if (timingSafeEqual(Buffer.from(hotp(key, step, options)), Buffer.from(code))) return step;
  }
  return undefined;
}

/** The otpauth:// URI authenticator apps import (as a QR code or pasted). */
export function totpUri(secret: string, account: string, issuer = 'Haul'): string {
  return `otpauth://totp/${encodeURIComponent(issuer)}:${encodeURIComponent(account)}?secret=${secret}&issuer=${encodeURIComponent(issuer)}&algorithm=SHA1&digits=6&period=30`;
}
