// Failed logins counted per client address and per user name in a sliding window. It sits in
// front of the account lockout (which only knows existing accounts): it slows down guessing
// across many names from one address, and guessing one name from many attempts, and it answers
// before any argon2 work is spent. In memory: a restart forgets it, the lockout does not.
import { HaulError } from '../../shared/errors.js';

export interface LoginRateLimits {
  windowMs: number;
  /** Failed attempts per client address within the window. */
  perAddress: number;
  /** Failed attempts per user name (existing or not) within the window. */
  perUsername: number;
}

export const defaultLoginRateLimits: LoginRateLimits = { windowMs: 15 * 60_000, perAddress: 20, perUsername: 10 };

// A flood of distinct names or addresses must not grow memory without bound.
const MAX_KEYS = 100_000;

export class LoginRateLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(readonly limits: LoginRateLimits = defaultLoginRateLimits, private readonly now: () => number = Date.now) {}

  /** Throws RateLimited (with the seconds to wait) when either limit is reached. */
  check(address: string, username: string): void {
    const t = this.now();
    const byAddress = this.recent(`a:${address}`, t);
    if (byAddress.length >= this.limits.perAddress) throw this.limited(`too many failed logins from your address; try again in ${this.wait(byAddress, t)} seconds.`, byAddress, t);
    const byName = this.recent(`u:${username.toLowerCase()}`, t);
    if (byName.length >= this.limits.perUsername) throw this.limited(`too many failed logins for this user name; try again in ${this.wait(byName, t)} seconds.`, byName, t);
  }

  recordFailure(address: string, username: string): void {
    const t = this.now();
    for (const key of [`a:${address}`, `u:${username.toLowerCase()}`]) {
      const list = this.recent(key, t);
      list.push(t);
      this.failures.delete(key);
      this.failures.set(key, list);
    }
    while (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(key: string, t: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((x) => t - x < this.limits.windowMs);
    if (list.length === 0) this.failures.delete(key);
    return list;
  }

  private wait(list: number[], t: number): number {
    return Math.max(1, Math.ceil((list[0]! + this.limits.windowMs - t) / 1000));
  }

  private limited(message: string, list: number[], t: number): RateLimitedError {
    return new RateLimitedError(message, this.wait(list, t));
  }
}

export class RateLimitedError extends HaulError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super('RateLimited', message);
  }
}
