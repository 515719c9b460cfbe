// The queue of jobs waiting to run, and the rules for starting them: at most `maxConcurrent` at
// once, never two for one client, none while a blackout window is on, none before its
// not-before time (a retry's backoff). Jobs start in the order they were queued; a job whose
// client is busy lets the jobs behind it go first without losing its place.
import { HaulError } from '../../shared/errors.js';
import type { JobRecord } from '../jobs/job-store.js';
import type { BlackoutCalendar } from './blackout-windows.js';

interface Waiting {
  job: JobRecord;
  notBefore: number;
}

interface Running {
  job: JobRecord;
  controller: AbortController;
  done: Promise<void>;
}

export interface JobQueueOptions {
  maxConcurrent: number;
  blackout: BlackoutCalendar;
  /** Runs one job to its end; must not reject (a rejection is reported through onSettled). */
  run: (job: JobRecord, signal: AbortSignal) => Promise<unknown>;
  onStart?: (job: JobRecord) => void;
  onSettled?: (job: JobRecord, err?: unknown) => void;
  /** Jobs are due but a blackout window holds them until `until`. Called once per hold. */
  onHold?: (until: Date, window: string, waiting: number) => void;
}

// setTimeout cannot wait longer than 2^31 - 1 ms; waking early only means asking again.
const maxSleepMs = 24 * 3600_000;

function clientKey(job: JobRecord): string {
  return job.clientId !== null ? `id:${job.clientId}` : `name:${job.clientName ?? ''}`;
}

export class JobQueue {
  private readonly waiting: Waiting[] = [];
  private readonly active = new Map<number, Running>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private holdingUntil: number | undefined;

  constructor(private options: JobQueueOptions) {}

  get queued(): readonly JobRecord[] {
    return this.waiting.map((w) => w.job);
  }

  get running(): readonly JobRecord[] {
    return [...this.active.values()].map((r) => r.job);
  }

  /** Limits and blackout windows changed (a reload): applies to the next start. */
  reconfigure(changes: Partial<Pick<JobQueueOptions, 'maxConcurrent' | 'blackout'>>): void {
    this.options = { ...this.options, ...changes };
    this.holdingUntil = undefined;
    this.pump();
  }

  add(job: JobRecord, notBefore?: Date): void {
    if (this.stopped) throw new HaulError('DaemonStopping', 'the daemon is shutting down and starts no more jobs; run it again after the restart.');
    this.waiting.push({ job, notBefore: notBefore?.getTime() ?? 0 });
    this.pump();
  }

  /** What the client has in the queue: a waiting job, a running one, or nothing. */
  clientState(job: Pick<JobRecord, 'clientId' | 'clientName'>): { queued?: JobRecord; running?: JobRecord } {
    const key = clientKey(job as JobRecord);
    return {
      queued: this.waiting.find((w) => clientKey(w.job) === key)?.job,
      running: [...this.active.values()].find((r) => clientKey(r.job) === key)?.job,
    };
  }

  /** Takes a waiting job out of the queue; undefined when it is not waiting. */
  remove(jobId: number): JobRecord | undefined {
    const i = this.waiting.findIndex((w) => w.job.id === jobId);
    if (i < 0) return undefined;
    const [w] = this.waiting.splice(i, 1);
    this.pump();
    return w!.job;
  }

  /** Stops a running job with `reason`; resolves when it has ended. Undefined when it is not running. */
  abort(jobId: number, reason: HaulError): Promise<void> | undefined {
    const r = this.active.get(jobId);
    if (!r) return undefined;
    r.controller.abort(reason);
    return r.done;
  }

  /** Starts what may start now, and sets a timer for when more may. */
  pump(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    const blackoutEnd = this.options.blackout.endOf(new Date(now));
    let wakeAt = Infinity;
    if (blackoutEnd) {
      wakeAt = blackoutEnd.getTime();
      const due = this.waiting.filter((w) => w.notBefore <= now).length;
      if (due > 0 && this.holdingUntil !== wakeAt) {
        this.holdingUntil = wakeAt;
        this.options.onHold?.(blackoutEnd, this.options.blackout.windowAt(new Date(now))?.text ?? '', due);
      }
    } else {
      this.holdingUntil = undefined;
      const busy = new Set([...this.active.values()].map((r) => clientKey(r.job)));
      for (let i = 0; i < this.waiting.length && this.active.size < this.options.maxConcurrent; ) {
        const w = this.waiting[i]!;
        const key = clientKey(w.job);
        if (busy.has(key)) {
          i++;
        } else if (w.notBefore > now) {
          wakeAt = Math.min(wakeAt, w.notBefore);
          i++;
        } else {
          this.waiting.splice(i, 1);
          busy.add(key);
          this.start(w.job);
        }
      }
    }
    for (const w of this.waiting) if (w.notBefore > now) wakeAt = Math.min(wakeAt, w.notBefore);
    if (wakeAt !== Infinity && this.waiting.length > 0) {
      this.timer = setTimeout(() => this.pump(), Math.min(maxSleepMs, Math.max(0, wakeAt - now)));
      this.timer.unref();
    }
  }

  private start(job: JobRecord): void {
    const controller = new AbortController();
    this.options.onStart?.(job);
    const done = this.options
      .run(job, controller.signal)
      .then(
        () => this.options.onSettled?.(job),
        (err: unknown) => this.options.onSettled?.(job, err),
      )
      .finally(() => {
        this.active.delete(job.id);
        this.pump();
      });
    this.active.set(job.id, { job, controller, done });
  }

  /**
   * Stops starting jobs, gives the running ones `graceMs` to finish, then aborts the rest with
   * `reason` and waits for them to end. Returns the jobs that never started.
   */
  async drain(graceMs: number, reason: HaulError): Promise<JobRecord[]> {
    this.stopped = true;
    clearTimeout(this.timer);
    const neverStarted = this.waiting.splice(0).map((w) => w.job);
    const all = () => Promise.all([...this.active.values()].map((r) => r.done));
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    for (const r of this.active.values()) r.controller.abort(reason);
    await all();
    return neverStarted;
  }
}
