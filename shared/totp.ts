// Time-based one-time passwords (RFC 6238), the second factor of a local console login, through
// the `otpauth` library. tests/shared/totp.test.ts checks it against the RFC's own test vectors.
import { HOTP, Secret, TOTP } from 'otpauth';

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface TotpOptions {
  /** Authenticator apps use SHA-1, 6 digits and 30 seconds unless told otherwise. */
  algorithm?: TotpAlgorithm;
  digits?: number;
  periodSeconds?: number;
}

function settings(options: TotpOptions) {
  return { algorithm: (options.algorithm ?? 'sha1').toUpperCase(), digits: options.digits ?? 6, period: options.periodSeconds ?? 30 };
}

export function base32Encode(bytes: Uint8Array): string {
  return new Secret({ buffer: Uint8Array.from(bytes).buffer }).base32;
}

/** Decodes base32 as authenticator apps show it: any case, spaces and padding ignored. */
export function base32Decode(text: string): Buffer {
  return Buffer.from(Secret.fromBase32(text.toUpperCase().replace(/[\s=]/g, '')).bytes);
}

/** A new secret: 160 bits, the size RFC 4226 recommends for HMAC-SHA-1. */
export function generateTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

export function hotp(key: Uint8Array, counter: number, options: TotpOptions = {}): string {
  const { algorithm, digits } = settings(options);
  return HOTP.generate({ secret: new Secret({ buffer: Uint8Array.from(key).buffer }), counter, algorithm, digits });
}

export function totpStep(unixSeconds: number, options: TotpOptions = {}): number {
  return Math.floor(unixSeconds / settings(options).period);
}

export function totpCode(key: Uint8Array, unixSeconds: number, options: TotpOptions = {}): string {
  return TOTP.generate({ secret: new Secret({ buffer: Uint8Array.from(key).buffer }), ...settings(options), timestamp: unixSeconds * 1000 });
}

/**
 * The time step a code belongs to, or undefined. One step either side is accepted, because a
 * phone's clock drifts and a person types slowly; the caller refuses a step used before.
 */
export function matchTotp(secret: string, code: string, unixSeconds: number, options: TotpOptions = {}): number | undefined {
  const s = settings(options);
  if (!new RegExp(`^\\d{${s.digits}}$`).test(code)) return undefined;
  const delta = TOTP.validate({ token: code, secret: Secret.fromBase32(secret), ...s, timestamp: unixSeconds * 1000, window: 1 });
  return delta === null ? undefined : totpStep(unixSeconds, options) + delta;
}

/** The otpauth:// URI authenticator apps import (as a QR code or pasted). */
export function totpUri(secret: string, account: string, issuer = 'Haul'): string {
  return new TOTP({ issuer, label: account, secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).toString();
}
