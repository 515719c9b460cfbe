// A repository in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), with the same object
// layout as a local directory, so a repository copies between the two byte for byte.
//
// Object stores have no rename and no append, and a listing may miss an object written a moment
// ago. That suits the repository: every object is written once, whole, under its final name
// (a PUT or a completed multipart upload becomes visible all at once, never half-written), and
// nothing relies on rename. How locks and prune stay correct is in docs/repository-format.md.
//
// Loaded lazily by open-storage.ts: the AWS SDK costs CLI startup time a local repository
// should not pay.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { HaulError } from '../../shared/errors.js';
import { describeS3Failure, s3ErrorCode } from './s3-errors.js';
import { assertObjectName, isObjectName, type ByteRange, type ObjectKind, type Storage, type StoredObject } from './storage.js';

export interface S3Location {
  /** The endpoint URL: scheme, host and port, e.g. `https://s3.eu-west-1.amazonaws.com`. */
  endpoint: string;
  bucket: string;
  /** Key prefix inside the bucket, empty or ending in `/`. */
  prefix: string;
}

export interface S3Options {
  /** Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (MinIO, s3rver, most self-hosted stores). */
  forcePathStyle: boolean;
  region: string;
  /** Attempts per request, the first included; the SDK backs off exponentially with jitter between them. */
  maxAttempts: number;
  /** Objects at least this large go up as a multipart upload of `partSize` parts. */
  multipartThreshold: number;
  partSize: number;
  listingDelayMs: number;
}

const mib = 1024 * 1024;

/** Parses `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` (or `s3:http://...` for a local server). */
export function parseS3Location(location: string): S3Location {
  const usage = 'Write it as s3:https://HOST[:PORT]/BUCKET[/PREFIX], e.g. s3:https://s3.eu-west-1.amazonaws.com/backups/haul or s3:http://minio:9000/haul/repository.';
  let url: URL;
  try {
    url = new URL(location.slice('s3:'.length));
  } catch {
    throw new HaulError('InvalidArgument', `the repository location ${JSON.stringify(location)} is not a valid S3 location. ${usage}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HaulError('InvalidArgument', `the repository location ${JSON.stringify(location)} must use http or https. ${usage}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new HaulError('InvalidArgument', `the repository location ${JSON.stringify(location)} may hold neither credentials nor a query: credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE. ${usage}`);
  }
  const [bucket = '', ...rest] = url.pathname.split('/').filter((p) => p !== '');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new HaulError('InvalidArgument', `the repository location ${JSON.stringify(location)} names no valid bucket (${JSON.stringify(bucket)}: 3 to 63 lowercase letters, digits, dots and dashes). ${usage}`);
  }
  return { endpoint: url.origin, bucket, prefix: rest.length ? rest.join('/') + '/' : '' };
}

function positiveNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new HaulError('InvalidArgument', `${name} must be a non-negative number, not ${JSON.stringify(raw)}.`);
  return n;
}

/** The S3 settings from the environment; credentials are left to the SDK's standard chain. */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv): S3Options {
  return {
    forcePathStyle: ['1', 'true', 'yes'].includes((env['HAUL_S3_PATH_STYLE'] ?? '').toLowerCase()),
    region: env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || 'us-east-1',
    maxAttempts: Math.max(1, Math.floor(positiveNumber(env, 'HAUL_S3_MAX_ATTEMPTS', 5))),
    multipartThreshold: positiveNumber(env, 'HAUL_S3_MULTIPART_THRESHOLD_MIB', 8) * mib,
    // S3 refuses parts below 5 MiB (all but the last).
    partSize: Math.max(5 * mib, positiveNumber(env, 'HAUL_S3_PART_SIZE_MIB', 8) * mib),
    listingDelayMs: positiveNumber(env, 'HAUL_S3_LISTING_DELAY_MS', 1000),
  };
}

export class S3Storage implements Storage {
  readonly location: string;
  readonly listingDelayMs: number;
  private readonly client: S3Client;

  constructor(
    private readonly where: S3Location,
    private readonly options: S3Options,
  ) {
    this.location = `s3:${where.endpoint}/${where.bucket}${where.prefix ? '/' + where.prefix.slice(0, -1) : ''}`;
    this.listingDelayMs = options.listingDelayMs;
    this.client = new S3Client({
      endpoint: where.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      maxAttempts: options.maxAttempts,
      retryMode: 'standard',
      // Checksums only where S3 demands them: many S3-compatible stores reject the newer ones.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
    });
  }

  private key(kind: ObjectKind, name: string): string {
    if (kind === 'config') return `${this.where.prefix}config`;
    assertObjectName(name);
    if (kind === 'packs') return `${this.where.prefix}packs/${name.slice(0, 2)}/${name}`;
    return `${this.where.prefix}${kind}/${name}`;
  }

  private async send<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  private failure(what: string, err: unknown): HaulError {
    return describeS3Failure(what, err, { endpoint: this.where.endpoint, bucket: this.where.bucket });
  }

  async isInitialised(): Promise<boolean> {
    try {
      if (await this.stat('config', 'config')) return true;
    } catch (err) {
      // A HEAD answers a bare 403 without saying why; a listing names the cause.
      if (err instanceof HaulError && err.code === 'StorageAuthRefused') await this.firstKey();
      throw err;
    }
    // A HEAD on a missing bucket answers a bare 404 too; the listing fails clearly then.
    await this.firstKey();
    return false;
  }

  private async firstKey(): Promise<string | undefined> {
    const page = await this.send(`cannot list ${this.location}`, () =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.where.bucket, Prefix: this.where.prefix, MaxKeys: 1 })),
    );
    return page.Contents?.[0]?.Key;
  }

  async create(): Promise<void> {
    const existing = await this.firstKey();
    if (existing !== undefined) {
      throw new HaulError('RepositoryExists', `${this.location} is not empty (it holds ${existing}). Choose a new bucket or prefix for the repository.`);
    }
  }

  async *list(kind: ObjectKind): AsyncIterable<StoredObject> {
    if (kind === 'config') {
      const s = await this.stat('config', 'config');
      if (s) yield s;
      return;
    }
    const prefix = `${this.where.prefix}${kind}/`;
    let token: string | undefined;
    do {
      const page = await this.send(`cannot list ${kind} in ${this.location}`, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.where.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) {
        const rest = o.Key!.slice(prefix.length);
        const name = kind === 'packs' ? rest.slice(3) : rest;
        // Anything else under the prefix (a stray upload, a console's folder marker) is not ours.
        if (kind === 'packs' && rest !== `${name.slice(0, 2)}/${name}`) continue;
        if (!isObjectName(name)) continue;
        yield { name, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async read(kind: ObjectKind, name: string, range?: ByteRange): Promise<Buffer> {
    const key = this.key(kind, name);
    if (range && range.length === 0) return Buffer.alloc(0);
    let body: Buffer;
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.where.bucket, Key: key, ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}) }),
      );
      const bytes = await res.Body!.transformToByteArray();
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      const code = s3ErrorCode(err);
      if (code === 'NoSuchKey') {
        throw new HaulError('BlobMissing', `${kind}/${name} is missing from the repository at ${this.location}. Run \`haul check\` to see what is affected.`, { cause: err });
      }
      if (code === 'InvalidRange') body = Buffer.alloc(0);
      else throw this.failure(`cannot read ${kind}/${name} from ${this.location}`, err);
    }
    if (range && body.length !== range.length) {
      throw new HaulError('ObjectCorrupt', `${kind}/${name} is shorter than expected (wanted bytes ${range.offset}..${range.offset + range.length}, got ${body.length}). The object was truncated: run \`haul check --read-data\` to see what is affected.`);
    }
    return body;
  }

  async write(kind: ObjectKind, name: string, data: Buffer | readonly Buffer[]): Promise<void> {
    const key = this.key(kind, name);
    const body = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    if (body.length >= this.options.multipartThreshold && body.length > this.options.partSize) {
      await this.writeMultipart(kind, name, key, body);
      return;
    }
    await this.send(`cannot store ${kind}/${name} in ${this.location}`, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.where.bucket, Key: key, Body: body, ContentLength: body.length })),
    );
  }

  /**
   * A large pack goes up in parts, each retried on its own, so a dropped connection costs one
   * part, not the pack. The object appears only when the upload completes; a failed upload is
   * aborted so its parts do not linger (and cost) in the bucket.
   */
  private async writeMultipart(kind: ObjectKind, name: string, key: string, body: Buffer): Promise<void> {
    const what = `cannot store ${kind}/${name} in ${this.location}`;
    const { UploadId } = await this.send(what, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.where.bucket, Key: key })));
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let offset = 0, n = 1; offset < body.length; offset += this.options.partSize, n++) {
        const part = body.subarray(offset, offset + this.options.partSize);
        const res = await this.send(what, () =>
          this.client.send(new UploadPartCommand({ Bucket: this.where.bucket, Key: key, UploadId, PartNumber: n, Body: part, ContentLength: part.length })),
        );
        parts.push({ ETag: res.ETag!, PartNumber: n });
      }
      await this.send(what, () => this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.where.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key: key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    const key = this.key(kind, name);
    await this.send(`cannot delete ${kind}/${name} from ${this.location}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.where.bucket, Key: key })));
  }

  async stat(kind: ObjectKind, name: string): Promise<StoredObject | undefined> {
    const key = this.key(kind, name);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.where.bucket, Key: key }));
      return { name, size: head.ContentLength ?? 0 };
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw this.failure(`cannot stat ${kind}/${name} in ${this.location}`, err);
    }
  }
}
