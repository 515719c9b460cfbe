// The repository config names every algorithm the repository uses, so a reader never guesses and
// the format can gain new ones without touching old repositories.
import { randomBytes } from 'node:crypto';
import { HaulError } from '../../shared/errors.js';
import { defaultPackTargetSize } from './pack.js';

export interface ChunkerParams {
  algorithm: 'gear32-v1';
  minSize: number;
  avgSize: number;
  maxSize: number;
  /**
   * How far the masks sit from log2(avgSize): stricter by this many bits before avgSize, looser
   * after it (docs/repository-format.md §12.3). Absent means 2, what repositories made before it
   * existed were cut with.
   */
  normalization?: number;
}

/** The normalisation a repository's chunker uses: its config's, else 2 (configs written before the field). */
export function chunkerNormalization(params: ChunkerParams): number {
  return params.normalization ?? 2;
}

export interface RepositoryConfig {
  format: 'haul-repository-v1';
  id: string;
  created: string;
  blobId: 'hmac-sha256(sha256)';
  cipher: 'aes-256-gcm+hkdf-sha256';
  objectName: 'hmac-sha256';
  compression: 'zstd';
  chunker: ChunkerParams;
  packTargetSize: number;
  /** Largest plaintext tree blob accepted; bounds memory when reading a damaged or hostile tree. */
  maxTreeSize: number;
}

/** Highest chunker normalisation level (§12.3); FastCDC's paper tries 1 to 3. */
export const maxNormalization = 3;

/** A normalisation level this version can cut with: an integer from 0 to maxNormalization. */
export function isNormalization(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) >= 0 && (n as number) <= maxNormalization;
}

// Chunks of about 0.8 MiB on average: what an edit re-sends is the chunks around it. On the SSH
// benchmark's 1 % change (npm run bench:chunker, docs/performance.md) the new chunk data came to
// 31 MiB (mean of eight keys), against 45 MiB (four keys) with the earlier 256 KiB / 1 MiB /
// 4 MiB at level 2. Level 1 rather than FastCDC's usual 2: 31.1 against 33.9 MiB at these sizes,
// with 10 % fewer chunks (after an edit moves a chunk's start, level 2's stricter mask rejects
// more old cut points).
export const defaultChunker: ChunkerParams = {
  algorithm: 'gear32-v1',
  minSize: 256 * 1024,
  avgSize: 512 * 1024,
  maxSize: 4 * 1024 * 1024,
  normalization: 1,
};

export function newConfig(chunker: ChunkerParams = defaultChunker): RepositoryConfig {
  return {
    format: 'haul-repository-v1',
    id: randomBytes(16).toString('hex'),
    created: new Date().toISOString(),
    blobId: 'hmac-sha256(sha256)',
    cipher: 'aes-256-gcm+hkdf-sha256',
    objectName: 'hmac-sha256',
    compression: 'zstd',
    chunker,
    packTargetSize: defaultPackTargetSize,
    maxTreeSize: 256 * 1024 * 1024,
  };
}

export function parseConfig(plain: Buffer): RepositoryConfig {
  const cfg = JSON.parse(plain.toString('utf8')) as RepositoryConfig;
  if (cfg.format !== 'haul-repository-v1') {
    throw new HaulError('UnsupportedFormat', `the repository has format ${JSON.stringify(cfg.format)}, which this version of Haul cannot read. Upgrade Haul.`);
  }
  if (cfg.chunker?.algorithm !== 'gear32-v1' || cfg.blobId !== 'hmac-sha256(sha256)' || cfg.cipher !== 'aes-256-gcm+hkdf-sha256' || cfg.compression !== 'zstd') {
    throw new HaulError('UnsupportedFormat', 'the repository uses an algorithm this version of Haul does not know. Upgrade Haul.');
  }
  const n = cfg.chunker.normalization;
  if (n !== undefined && !isNormalization(n)) {
    throw new HaulError('UnsupportedFormat', `the repository's chunker normalisation ${JSON.stringify(n)} is not one this version of Haul knows (0 to ${maxNormalization}). Upgrade Haul.`);
  }
  return cfg;
}
