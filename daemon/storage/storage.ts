import { HaulError } from '../../shared/errors.js';

// The storage interface knows files, not chunks. It is deliberately small and honest for object
// stores: no rename, no append, and a listing that may miss an object written a moment ago.

export type ObjectKind = 'config' | 'keys' | 'packs' | 'index' | 'snapshots' | 'locks';

export const objectKinds: readonly ObjectKind[] = ['config', 'keys', 'packs', 'index', 'snapshots', 'locks'];

export interface StoredObject {
  name: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/** Object names are hex (content hashes, random lock and key names): anything else is refused. */
export function isObjectName(name: string): boolean {
  return /^[0-9a-z][0-9a-z-]*$/.test(name);
}

export function assertObjectName(name: string): void {
  if (!isObjectName(name)) {
    throw new HaulError('InvalidArgument', `refusing the object name ${JSON.stringify(name)}: repository object names are lowercase hex.`);
  }
}

export interface Storage {
  /** Human-readable location, for messages. */
  readonly location: string;
  /**
   * How long an object just written may still be missing from a listing. Locks re-list after
   * this long before they trust that no conflicting lock exists; 0 (or absent) for local disks.
   */
  readonly listingDelayMs?: number;
  /** True when the repository's config object exists. */
  isInitialised(): Promise<boolean>;
  /** Prepares an empty location (directories, bucket prefix). Fails if a repository is there. */
  create(): Promise<void>;
  list(kind: ObjectKind): AsyncIterable<StoredObject>;
  read(kind: ObjectKind, name: string, range?: ByteRange): Promise<Buffer>;
  /**
   * Stores an object atomically and durably: once the promise resolves the object survives a
   * crash, and no reader ever sees it half-written. Names are content-derived, so writing an
   * existing name with the same bytes is harmless.
   */
  write(kind: ObjectKind, name: string, data: Buffer | readonly Buffer[]): Promise<void>;
  /**
   * Shared memory (a view of a SharedArrayBuffer) of `length` bytes that `write` stores fastest
   * when an object is written from the buffer's start in one piece: a local disk writes it with
   * direct I/O, past the page cache. Absent where any memory does as well.
   */
  allocateWriteBuffer?(length: number): Buffer;
  delete(kind: ObjectKind, name: string): Promise<void>;
  stat(kind: ObjectKind, name: string): Promise<StoredObject | undefined>;
  /**
   * Releases what the backend keeps open between calls (cached file handles); the storage stays
   * usable, a later read opens again. Called by the Repository handle that opened it.
   */
  close?(): Promise<void>;
}
