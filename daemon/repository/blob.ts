import type { Compression } from './compression.js';

export const BlobType = { data: 0, tree: 1 } as const;
export type BlobType = (typeof BlobType)[keyof typeof BlobType];

export const blobIdLength = 32;

/** Where one blob lives: the pack that holds it and its encrypted bytes there. */
export interface BlobLocation {
  pack: string;
  type: BlobType;
  compression: Compression;
  offset: number;
  length: number;
}

/** A pack header entry as stored (and in index files): a location plus the plaintext size. */
export interface PackEntry {
  id: Buffer;
  type: BlobType;
  compression: Compression;
  offset: number;
  length: number;
  rawLength: number;
}
