// When a failed job is tried again: only for transient causes (the client was unreachable, the
// connection dropped), with exponential backoff, a bounded number of times. A hostile or
// permanent cause (a changed host key, a protocol violation, a refused login, a storage error)
// is never retried: trying again would only repeat it, or worse, hammer a suspicious client.
import type { FailureCause } from '../../shared/jobs.js';
import { transientCauses } from '../jobs/failure-cause.js';

export interface RetryPolicy {
  /** Tries in all, the first included; 1 turns retries off. */
  maxAttempts: number;
  /** Wait before the second try; doubled for each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 60_000, maxDelayMs: 30 * 60_000 };

/** How long to wait before trying again after attempt `attempt` failed with `cause`; undefined: do not. */
export function retryDelay(policy: RetryPolicy, cause: FailureCause | string, attempt: number): number | undefined {
  if (!(transientCauses as readonly string[]).includes(cause)) return undefined;
  if (attempt >= policy.maxAttempts) return undefined;
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
}
