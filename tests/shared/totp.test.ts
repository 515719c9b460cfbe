// Haul's TOTP wrapper over otpauth against RFC 6238 appendix B test vectors (8 digits; SHA-1, SHA-256 and SHA-512 with the RFC's seeds),
// RFC 4226 appendix D for HOTP, and the window and format rules of matchTotp.
import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, generateTotpSecret, hotp, matchTotp, totpCode, totpUri } from '../../shared/totp.js';

const seeds = {
  sha1: Buffer.from('12345678901234567890'),
  sha256: Buffer.from('12345678901234567890123456789012'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};

const rfc6238: [number, string, string, string][] = [
  // time, SHA-1, SHA-256, SHA-512
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

describe('TOTP', () => {
  it.each(rfc6238)('matches RFC 6238 at T=%i', (time, sha1, sha256, sha512) => {
    expect(totpCode(seeds.sha1, time, { digits: 8 })).toBe(sha1);
    expect(totpCode(seeds.sha256, time, { digits: 8, algorithm: 'sha256' })).toBe(sha256);
    expect(totpCode(seeds.sha512, time, { digits: 8, algorithm: 'sha512' })).toBe(sha512);
  });

  it('matches RFC 4226 HOTP values for counters 0 to 9', () => {
    const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
    expect(expected.map((_, counter) => hotp(seeds.sha1, counter))).toEqual(expected);
  });

  it('round-trips base32 as authenticator apps write it', () => {
    expect(base32Encode(seeds.sha1)).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect(base32Decode('gezd gnbv gy3t qojq gezd gnbv gy3t qojq====').equals(seeds.sha1)).toBe(true);
    const secret = generateTotpSecret();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(base32Decode(secret)).toHaveLength(20);
    expect(() => base32Decode('ABC1')).toThrow('Invalid character found: 1');
  });

  it('accepts the code of the current step and one step either side, and nothing else', () => {
    const secret = base32Encode(seeds.sha1);
    const now = 1111111111;
    const step = Math.floor(now / 30);
    expect(matchTotp(secret, totpCode(seeds.sha1, now), now)).toBe(step);
    expect(matchTotp(secret, totpCode(seeds.sha1, now - 30), now)).toBe(step - 1);
    expect(matchTotp(secret, totpCode(seeds.sha1, now + 30), now)).toBe(step + 1);
    expect(matchTotp(secret, totpCode(seeds.sha1, now - 60), now)).toBeUndefined();
    expect(matchTotp(secret, totpCode(seeds.sha1, now + 60), now)).toBeUndefined();
    expect(matchTotp(secret, '12345', now)).toBeUndefined();
    expect(matchTotp(secret, '12345a', now)).toBeUndefined();
  });

  it('writes the otpauth URI apps import, escaping the account name', () => {
    expect(totpUri('JBSWY3DPEHPK3PXP', 'ops <alice>')).toBe('otpauth://totp/Haul:ops%20%3Calice%3E?issuer=Haul&secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30');
  });
});
