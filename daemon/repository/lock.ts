// Repository locks, so that prune never deletes what a running backup is about to reference.
// Every reader and writer holds a shared lock; prune and index repair hold the exclusive one.
// A lock is a sealed object in locks/ under a random name. Taking one is "write mine, then list":
// of two processes racing, at least one sees the other's lock and backs off, so an exclusive lock
// is never held beside any other. Locks are refreshed while held; one not refreshed for
// `staleAfterMs` (its process died with the machine), or whose process is gone on this host, is
// ignored and removed. On an object store, which may list a new object late, the listing is
// repeated after the storage's listing delay before the lock is trusted, and an exclusive lock
// waits that delay once more, so that what the last writer stored is listed.
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { processAlive } from '../../shared/process-alive.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import { openObject, sealObject } from './crypto.js';
import type { Repository } from './repository.js';

export type LockKind = 'shared' | 'exclusive';

interface LockRecord {
  format: 'haul-lock-v1';
  kind: LockKind;
  purpose: string;
  hostname: string;
  pid: number;
  created: string;
  refreshed: string;
}

export interface LockOptions {
  /** What holds the lock, shown to whoever has to wait for it (e.g. "backup of web1"). */
  purpose: string;
  /** How long to keep trying while a conflicting lock is held; 0 fails at once. */
  waitMs?: number;
  /** Test hooks: the timing of refreshes and staleness. */
  refreshMs?: number;
  staleAfterMs?: number;
}

const defaultRefreshMs = 5 * 60_000;
const defaultStaleAfterMs = 30 * 60_000;

export class RepositoryLock {
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    private readonly repo: Repository,
    readonly name: string,
    private readonly record: LockRecord,
    refreshMs: number,
  ) {
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), refreshMs);
    this.timer.unref();
  }

  get kind(): LockKind {
    return this.record.kind;
  }

  get created(): string {
    return this.record.created;
  }

  private async refresh(): Promise<void> {
    if (this.released) return;
    this.record.refreshed = new Date().toISOString();
    await this.repo.storage.write('locks', this.name, sealObject(this.repo.keys, Buffer.from(JSON.stringify(this.record))));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.repo.storage.delete('locks', this.name).catch(() => undefined);
  }
}

interface HeldLock {
  name: string;
  record: LockRecord;
}

async function otherLocks(repo: Repository, own: string, staleAfterMs: number): Promise<HeldLock[]> {
  const out: HeldLock[] = [];
  for await (const o of repo.storage.list('locks')) {
    if (o.name === own) continue;
    let record: LockRecord;
    try {
      record = JSON.parse(openObject(repo.keys, await repo.storage.read('locks', o.name), `lock ${o.name}`).toString('utf8')) as LockRecord;
    } catch (err) {
      // Gone meanwhile (released), or not ours to read: a lock nobody can read protects nothing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || isHaulError(err)) continue;
      throw err;
    }
    const age = Date.now() - Date.parse(record.refreshed);
    const deadHere = record.hostname === os.hostname() && !processAlive(record.pid);
    if (age > staleAfterMs || deadHere) {
      await repo.storage.delete('locks', o.name).catch(() => undefined);
      continue;
    }
    out.push({ name: o.name, record });
  }
  return out;
}

async function conflictingLocks(repo: Repository, kind: LockKind, own: string, staleAfterMs: number): Promise<HeldLock[]> {
  const others = await otherLocks(repo, own, staleAfterMs);
  return kind === 'exclusive' ? others : others.filter((l) => l.record.kind === 'exclusive');
}

function describe(l: HeldLock): string {
  return `${l.record.purpose} (${l.record.kind} lock by pid ${l.record.pid} on ${l.record.hostname} since ${l.record.created})`;
}

export async function lockRepository(repo: Repository, kind: LockKind, options: LockOptions): Promise<RepositoryLock> {
  const staleAfterMs = options.staleAfterMs ?? defaultStaleAfterMs;
  const deadline = Date.now() + (options.waitMs ?? 0);
  const now = new Date().toISOString();
  const record: LockRecord = { format: 'haul-lock-v1', kind, purpose: options.purpose, hostname: os.hostname(), pid: process.pid, created: now, refreshed: now };
  let delay = 100;
  while (true) {
    const name = randomBytes(16).toString('hex');
    record.refreshed = new Date().toISOString();
    await repo.storage.write('locks', name, sealObject(repo.keys, Buffer.from(JSON.stringify(record))));
    let conflicts = await conflictingLocks(repo, kind, name, staleAfterMs);
    // An object store may list a lock written a moment ago late: mine is trusted only once a
    // second listing, after that delay, still shows no conflict.
    const settle = repo.storage.listingDelayMs ?? 0;
    if (conflicts.length === 0 && settle > 0) {
      await new Promise((r) => setTimeout(r, settle));
      conflicts = await conflictingLocks(repo, kind, name, staleAfterMs);
    }
    if (conflicts.length === 0) {
      // A writer that released its lock just before my second listing may have written its last
      // index file and snapshot only a moment earlier. Waiting once more means whatever it wrote
      // is listed when prune (or repair) lists the repository.
      if (kind === 'exclusive' && settle > 0) await new Promise((r) => setTimeout(r, settle));
      return new RepositoryLock(repo, name, record, options.refreshMs ?? defaultRefreshMs);
    }
    await repo.storage.delete('locks', name);
    if (Date.now() >= deadline) {
      const what = kind === 'exclusive' ? 'exclusively (for prune or index repair)' : 'for reading or writing';
      throw new HaulError('RepositoryLocked', `the repository at ${repo.storage.location} cannot be locked ${what}: it is in use by ${conflicts.map(describe).join('; ')}. Wait for that to finish and try again; a lock whose process died is ignored after ${Math.round(staleAfterMs / 60_000)} minutes.`);
    }
    // Back off with jitter so two waiting exclusive lockers do not keep colliding.
    await new Promise((r) => setTimeout(r, Math.min(delay * (0.5 + Math.random()), Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 5_000);
  }
}
