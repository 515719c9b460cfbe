// Turns what the AWS SDK throws (after its own bounded retries) into errors an operator can act
// on: a missing bucket, refused credentials, throttling and an unreachable endpoint each say
// what to check. Every message also says that nothing stored is lost, because that is true: an
// object is either fully written or absent.

import { HaulError } from '../../shared/errors.js';

export interface S3Target {
  endpoint: string;
  bucket: string;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $fault?: string;
}

const authCodes = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'InvalidClientTokenId', 'AuthorizationHeaderMalformed']);
const throttleCodes = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled', 'ServiceUnavailable']);
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'TimeoutError', 'RequestTimeout']);
const lostCodes = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** The S3 error code (`NoSuchKey`, `SlowDown`, ...) or network error code of an SDK failure. */
export function s3ErrorCode(err: unknown): string {
  const e = err as SdkError;
  if (e.code && networkCodes.has(e.code)) return e.code;
  return e.name ?? e.code ?? 'Error';
}

function attemptsOf(err: unknown): string {
  const n = (err as SdkError).$metadata?.attempts;
  return n && n > 1 ? ` after ${n} attempts` : '';
}

const nothingLost = 'Nothing already stored was lost; a backup run again reuses what arrived.';

export function describeS3Failure(what: string, err: unknown, target: S3Target): HaulError {
  const code = s3ErrorCode(err);
  const status = (err as SdkError).$metadata?.httpStatusCode;
  const detail = (err as SdkError).message ?? String(err);
  if (code === 'NoSuchBucket') {
    return new HaulError('StorageBucketMissing', `${what}: the bucket "${target.bucket}" does not exist at ${target.endpoint}. Create it (for example \`aws s3 mb s3://${target.bucket}\` or \`mc mb ALIAS/${target.bucket}\`), or correct the bucket in the repository location.`, { cause: err });
  }
  if (code === 'CredentialsProviderError') {
    return new HaulError('StorageAuthRefused', `${what}: no S3 credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a credentials file.`, { cause: err });
  }
  if (authCodes.has(code) || status === 403) {
    // A HEAD's error has no body, so no code: the status is all there is to show.
    const shown = authCodes.has(code) ? code : `HTTP ${status}`;
    return new HaulError('StorageAuthRefused', `${what}: the object store at ${target.endpoint} refused the credentials (${shown}). Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that this key may read, write and delete in the bucket "${target.bucket}".`, { cause: err });
  }
  if (throttleCodes.has(code) || status === 429 || status === 503) {
    return new HaulError('StorageThrottled', `${what}: the object store kept throttling requests (${code})${attemptsOf(err)}. Run fewer jobs at once (the daemon's maxConcurrentJobs) or try again later. ${nothingLost}`, { cause: err });
  }
  if (networkCodes.has(code) || /socket hang up|timed? ?out/i.test(detail)) {
    const lost = lostCodes.has(code) || /socket hang up/i.test(detail);
    const head = lost ? `the connection to the S3 endpoint ${target.endpoint} was lost` : `cannot reach the S3 endpoint ${target.endpoint}`;
    return new HaulError('StorageUnreachable', `${what}: ${head} (${code}: ${detail})${attemptsOf(err)}. Check the endpoint in the repository location, the network and the object store. ${nothingLost}`, { cause: err });
  }
  return new HaulError('StorageFailure', `${what}: the object store answered ${code}${status ? ` (HTTP ${status})` : ''}: ${detail}`, { cause: err });
}
