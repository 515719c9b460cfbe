// The console's link to the daemon over its ZeroMQ bus (shared/bus/bus-client.ts): actions
// (run, cancel, restore) and everything that reads the repository (browsing, comparing,
// downloading) go to the daemon, which holds the keys; listings and history come from the
// database (backup-records.ts). The link connects by itself, checks the daemon every few seconds,
// and after a failure says plainly "daemon not connected" until the daemon answers again.
import type { CurveClientKeys } from '../../shared/bus/curve-keys.js';
import { BusClient, type EventSubscription } from '../../shared/bus/bus-client.js';
import { cancelTimeoutMs, type BusEvent, type DaemonStatus as BusDaemonStatus } from '../../shared/bus/messages.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import { DaemonLinkBase } from './daemon-link-base.js';
import type { Database } from '../../daemon/database/open-database.js';
import type { DaemonEvent, DaemonLink, DaemonStatus, NewClient, RestoreRequest } from './daemon-link.js';

export interface BusDaemonLinkOptions {
  /** The daemon's commands endpoint (ipc:// in its state directory, or tcp:// with `curve`). */
  endpoint: string;
  curve?: CurveClientKeys;
  database: Database;
  /** How often the link checks that the daemon answers, and retries after losing it (default 5 s). */
  checkEveryMs?: number;
  /** How long one request waits (default 5 s). */
  timeoutMs?: number;
  log?: (message: string) => void;
}

export class BusDaemonLink extends DaemonLinkBase implements DaemonLink {
  private client: BusClient | undefined;
  private subscription: EventSubscription | undefined;
  private current: DaemonStatus;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: BusDaemonLinkOptions) {
    super(options.database);
    this.current = { connected: false, message: `the console is connecting to the Haul daemon at ${options.endpoint}…` };
  }

  /** Connects now and keeps checking; resolves after the first attempt, whatever its outcome. */
  async start(): Promise<void> {
    this.timer = setInterval(() => void this.check(), this.options.checkEveryMs ?? 5000);
    this.timer.unref();
    await this.check();
  }

  status(): DaemonStatus {
    return this.current;
  }

  /** One check at a time: connect when disconnected, otherwise ask for the status. */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.client) await this.connect();
      else this.setStatus(await this.client.status(this.timeout()));
    } catch (err) {
      this.drop(err);
    }
  }

  private timeout(): { timeoutMs: number } {
    return { timeoutMs: this.options.timeoutMs ?? 5000 };
  }

  private async connect(): Promise<void> {
    const client = await BusClient.connect({ endpoint: this.options.endpoint, ...(this.options.curve ? { curve: this.options.curve } : {}), ...this.timeout() });
    this.client = client;
    // 'daemon/' too: the heartbeat keeps the running-jobs list on the dashboard fresh.
    const subscription = await client.subscribe({ topics: ['job/', 'daemon/'] });
    this.subscription = subscription;
    this.setStatus(await client.status(this.timeout()));
    void this.pump(subscription);
  }

  private async pump(subscription: EventSubscription): Promise<void> {
    try {
      for await (const event of subscription) this.forward(event);
    } catch (err) {
      if (subscription === this.subscription) this.drop(err);
    }
  }

  private forward(event: BusEvent): void {
    if (event.type === 'daemon-status') {
      this.setStatus(event.status);
      return;
    }
    for (const l of this.listeners) l.event(event as DaemonEvent);
  }

  private setStatus(status: BusDaemonStatus): void {
    const started = new Date(status.startedAt).toISOString().slice(0, 16).replace('T', ' ');
    const next: DaemonStatus = {
      connected: true,
      message: `connected to the Haul daemon ${status.version} (pid ${status.pid}, running since ${started} UTC)`,
      running: status.running,
      queuedTotal: status.queuedTotal,
    };
    this.current = next;
    for (const l of this.listeners) l.status(next);
  }

  private drop(err: unknown): void {
    const wasConnected = this.current.connected;
    this.subscription?.close();
    this.subscription = undefined;
    this.client?.close();
    this.client = undefined;
    if (this.closed) return;
    const why = isHaulError(err) ? err.message : (err as Error)?.message ?? String(err);
    this.current = {
      connected: false,
      message: `the console is not connected to the Haul daemon (${why.replace(/\.$/, '')}). It tries again every ${(this.options.checkEveryMs ?? 5000) / 1000} s; start the daemon on this server and check that both use the same state directory.`,
    };
    if (wasConnected) this.options.log?.(`lost the daemon: ${why}`);
    for (const l of this.listeners) l.status(this.current);
  }

  /** The bus client, or the "not connected" error the pages show as such. */
  private bus(): BusClient {
    if (!this.client || !this.current.connected) throw new HaulError('DaemonNotConnected', this.current.message);
    return this.client;
  }

  /** A request over the bus; losing the daemon midway turns into "not connected". */
  private async ask<T>(call: (bus: BusClient) => Promise<T>): Promise<T> {
    try {
      return await call(this.bus());
    } catch (err) {
      if (isHaulError(err) && (err.code === 'DaemonNotRunning' || err.code === 'BusTimeout')) {
        this.drop(err);
        throw new HaulError('DaemonNotConnected', this.current.message, { cause: err });
      }
      throw err;
    }
  }

  addClient(client: NewClient) {
    return this.ask((bus) => bus.request('add-client', { ...client }));
  }

  pinHostKey(request: { client: string; fingerprint?: string }) {
    // Connecting over SSH can take longer than a quick question: the daemon's own connect timeout decides.
    return this.ask((bus) => bus.request('repin-host-key', request, { timeoutMs: 60_000 }));
  }

  async runJob(request: { client: string; requestedBy: string }): Promise<{ jobId: number }> {
    const { job } = await this.ask((bus) => bus.request('run-now', { client: request.client, requestedBy: request.requestedBy }));
    return { jobId: job.id };
  }

  async cancelJob(request: { jobId: number; requestedBy: string }): Promise<void> {
    await this.ask((bus) => bus.request('cancel', { jobId: request.jobId, requestedBy: request.requestedBy }, { timeoutMs: cancelTimeoutMs }));
  }

  listDirectory(request: { snapshot: string; client: string; path: string; offset: number }) {
    return this.ask((bus) => bus.request('list-directory', request));
  }

  diffSnapshots(request: { client: string; from: string; to: string; path: string }) {
    return this.ask((bus) => bus.request('diff-snapshots', request));
  }

  async download(request: { snapshot: string; client: string; path: string }) {
    const stream = await this.ask((bus) => bus.stream('download-snapshot', request));
    // The daemon sends only as much as this reader has taken (credit), so a slow browser slows the daemon instead of filling memory.
    return { name: stream.meta.name, body: stream.toReadable() };
  }

  async restore(request: RestoreRequest): Promise<{ jobId: number }> {
    const { job } = await this.ask((bus) => bus.request('restore', { ...request }));
    return { jobId: job.id };
  }

  async reloadConfig(): Promise<{ message: string }> {
    const { message } = await this.ask((bus) => bus.request('reload-config', {}));
    return { message };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.checking;
    this.subscription?.close();
    this.client?.close();
    this.client = undefined;
  }
}
