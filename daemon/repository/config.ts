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

export const defaultChunker: ChunkerParams = {
  algorithm: 'gear32-v1',
  minSize: 256 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 4 * 1024 * 1024,
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
  return cfg;
}
