// Prometheus metrics of the daemon (prom-client), served at /metrics: jobs by state now, jobs
// ended by state and cause, job durations, bytes moved, queue length, plus Node's process
// metrics. Each daemon has its own registry, so two daemons in one process never mix counts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { activeJobStates, isTerminalJobState } from '../../shared/jobs.js';
import type { JobChange, JobRecord } from '../jobs/job-store.js';

export class DaemonMetrics {
  readonly registry = new Registry();
  /** Jobs this daemon runs now, by state (from the store's change events). */
  private readonly activeStates = new Map<number, string>();
  private readonly finished: Counter<'state' | 'cause'>;
  private readonly durations: Histogram<'state'>;
  private readonly bytes: Counter<'kind'>;

  constructor(queueLength: () => number) {
    collectDefaultMetrics({ register: this.registry });
    const active = this.activeStates;
    new Gauge({
      name: 'haul_jobs',
      help: 'Jobs of this daemon by state: queued, or one of the running states',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        this.reset();
        this.set({ state: 'queued' }, queueLength());
        for (const s of activeJobStates) this.set({ state: s }, 0);
        for (const s of active.values()) this.inc({ state: s });
      },
    });
    new Gauge({
      name: 'haul_queue_length',
      help: 'Jobs waiting to start (for a free slot, their client, a blackout window or a retry backoff)',
      registers: [this.registry],
      collect() {
        this.set(queueLength());
      },
    });
    this.finished = new Counter({ name: 'haul_jobs_finished_total', help: 'Jobs ended, by final state and failure cause', labelNames: ['state', 'cause'], registers: [this.registry] });
    this.durations = new Histogram({
      name: 'haul_job_duration_seconds',
      help: 'From leaving the queue to the end, by final state',
      labelNames: ['state'],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600],
      registers: [this.registry],
    });
    this.bytes = new Counter({ name: 'haul_backup_bytes_total', help: 'Bytes of ended backup jobs: scanned (read on clients), new (stored for the first time), wire (received over SSH)', labelNames: ['kind'], registers: [this.registry] });
  }

  observe(change: JobChange): void {
    const { job } = change;
    if (!isTerminalJobState(change.state)) {
      if (change.state !== 'queued') this.activeStates.set(job.id, change.state);
      return;
    }
    this.activeStates.delete(job.id);
    this.finished.inc({ state: change.state, cause: job.failureCause ?? '' });
    if (job.startedAt && job.finishedAt) this.durations.observe({ state: change.state }, (job.finishedAt.getTime() - job.startedAt.getTime()) / 1000);
    this.addBytes(job);
  }

  private addBytes(job: JobRecord): void {
    this.bytes.inc({ kind: 'scanned' }, Number(job.bytesScanned));
    this.bytes.inc({ kind: 'new' }, Number(job.bytesNew));
    this.bytes.inc({ kind: 'wire' }, Number(job.bytesOnWire));
  }
}
