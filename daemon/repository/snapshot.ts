// A snapshot is a sealed object naming its client, time, paths and root tree. Its storage name
// (a keyed hash of the sealed bytes) is its ID; IDs are shown shortened to 8 hex digits.
import { HaulError } from '../../shared/errors.js';

export interface SnapshotStats {
  files: number;
  dirs: number;
  /** Bytes of file content in the snapshot. */
  bytes: number;
  /** Bytes read from disk (files whose metadata changed, or all of them on a first run). */
  bytesRead: number;
  /** Plaintext bytes of blobs this run added to the repository. */
  bytesNew: number;
  /** Bytes written to storage (after compression and encryption). */
  bytesStored: number;
  blobsNew: number;
  errors: number;
  durationMs: number;
}

export interface Snapshot {
  format: 'haul-snapshot-v1';
  client: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
  tree: string;
  parent?: string;
  source: 'local' | 'ssh';
  stats: SnapshotStats;
}

export interface StoredSnapshot extends Snapshot {
  id: string;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function parseSnapshot(plain: Buffer, what: string): Snapshot {
  let s: Snapshot;
  try {
    s = JSON.parse(plain.toString('utf8')) as Snapshot;
  } catch {
    throw new HaulError('ObjectCorrupt', `${what} is not valid JSON.`);
  }
  if (s.format !== 'haul-snapshot-v1') throw new HaulError('UnsupportedFormat', `${what} has format ${JSON.stringify(s.format)}; upgrade Haul.`);
  if (typeof s.client !== 'string' || typeof s.tree !== 'string' || !/^[0-9a-f]{64}$/.test(s.tree)) throw new HaulError('ObjectCorrupt', `${what} is malformed.`);
  return s;
}
