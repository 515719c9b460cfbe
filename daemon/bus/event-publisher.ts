// The daemon's events: job state changes, progress, log lines and its own status, published on
// XPUB sockets (one per transport). XPUB rather than PUB because it tells the daemon when a
// subscriber arrives: each new subscription is answered with a daemon-status event, which tells
// the subscriber that its subscription is live (ZeroMQ drops what is published before).
import * as zmq from 'zeromq';
import { BusEvent, daemonStatusTopic, describeIssues, eventTopic, isTerminalJobState, type DaemonStatusEvent, type JobProgressEvent } from '../../shared/bus/messages.js';
import { encodeJsonFrame, SendQueue } from '../../shared/bus/wire.js';
import type { BusLogger } from './bus-logger.js';

export interface Timers {
  now(): number;
  schedule(fn: () => void, ms: number): { cancel(): void };
}

export const realTimers: Timers = {
  now: () => Date.now(),
  schedule(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Progress of each job goes out at most once per interval (250 ms: 4 a second). What arrives in
 * between replaces what waits, so subscribers always get the latest numbers, just not all of
 * them; `flush` sends what waits at once (before the job's state changes).
 */
export class ProgressThrottle {
  private readonly jobs = new Map<number, { lastSentAt: number; waiting?: JobProgressEvent; timer?: { cancel(): void } }>();

  constructor(private readonly intervalMs: number, private readonly send: (event: JobProgressEvent) => void, private readonly timers: Timers = realTimers) {}

  offer(event: JobProgressEvent): void {
    const now = this.timers.now();
    const job = this.jobs.get(event.jobId);
    if (!job) {
      this.jobs.set(event.jobId, { lastSentAt: now });
      this.send(event);
      return;
    }
    if (!job.timer && now - job.lastSentAt >= this.intervalMs) {
      job.lastSentAt = now;
      this.send(event);
      return;
    }
    job.waiting = event;
    job.timer ??= this.timers.schedule(() => this.flush(event.jobId), job.lastSentAt + this.intervalMs - now);
  }

  /** Sends the job's waiting progress now, if any. */
  flush(jobId: number): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    job.timer?.cancel();
    job.timer = undefined;
    if (job.waiting) {
      const event = job.waiting;
      job.waiting = undefined;
      job.lastSentAt = this.timers.now();
      this.send(event);
    }
  }

  /** The job has ended: send what waits and forget it. */
  finish(jobId: number): void {
    this.flush(jobId);
    this.jobs.delete(jobId);
  }

  close(): void {
    for (const job of this.jobs.values()) job.timer?.cancel();
    this.jobs.clear();
  }
}

interface Outlet {
  name: string;
  socket: zmq.XPublisher;
  sender: SendQueue;
}

export class EventPublisher {
  private readonly outlets: Outlet[] = [];
  private readonly throttle: ProgressThrottle;
  private welcome: { cancel(): void } | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly logger: BusLogger,
    private readonly statusEvent: () => Promise<DaemonStatusEvent>,
    options: { progressIntervalMs: number; timers?: Timers },
  ) {
    this.throttle = new ProgressThrottle(options.progressIntervalMs, (e) => this.send(e), options.timers);
  }

  /** A daemon-status event every `ms` (none when 0), so subscribers see the daemon is alive. */
  startHeartbeat(ms: number): void {
    if (ms <= 0 || this.closed) return;
    this.heartbeat = setInterval(() => void this.publishStatus(), ms);
    this.heartbeat.unref();
  }

  /** Adds a bound XPUB socket and starts reading its subscriptions. */
  attach(name: string, socket: zmq.XPublisher): void {
    const outlet = { name, socket, sender: new SendQueue(socket) };
    this.outlets.push(outlet);
    void this.readSubscriptions(outlet);
  }

  /** Validates and publishes an event; an invalid one is a daemon bug, logged and dropped. */
  publish(event: BusEvent): void {
    const checked = BusEvent.safeParse(event);
    if (!checked.success) {
      this.logger.error({ type: (event as { type?: unknown }).type, problem: describeIssues(checked.error) }, `did not publish a malformed ${String((event as { type?: unknown }).type)} event: ${describeIssues(checked.error)}`);
      return;
    }
    const valid = checked.data;
    if (valid.type === 'job-progress') return this.throttle.offer(valid);
    if (valid.type === 'job-state') {
      // Subscribers see the last progress of a state before the state changes.
      if (isTerminalJobState(valid.job.state)) this.throttle.finish(valid.job.id);
      else this.throttle.flush(valid.job.id);
    }
    this.send(valid);
  }

  async publishStatus(): Promise<void> {
    try {
      this.send(await this.statusEvent());
    } catch (err) {
      this.logger.error({ err }, `could not publish the daemon's status: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.closed = true;
    this.throttle.close();
    this.welcome?.cancel();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const outlet of this.outlets) outlet.socket.close();
  }

  private send(event: BusEvent): void {
    if (this.closed) return;
    const frames = [eventTopic(event), encodeJsonFrame(event)];
    for (const outlet of this.outlets) {
      outlet.sender.send(frames).catch((err: Error) => {
        if (!this.closed) this.logger.warn({ outlet: outlet.name, err }, `could not publish a ${event.type} event on ${outlet.name}: ${err.message}`);
      });
    }
  }

  private async readSubscriptions(outlet: Outlet): Promise<void> {
    try {
      for await (const frames of outlet.socket) {
        const frame = frames[0];
        // Subscribers only (un)subscribe: one frame, 1 or 0, then the topic prefix.
        if (frames.length !== 1 || !frame || (frame[0] !== 0 && frame[0] !== 1) || frame.byteLength > 257) {
          this.logger.warn({ outlet: outlet.name, frames: frames.length, bytes: frame?.byteLength ?? 0 }, `dropped a message sent to the events socket (${outlet.name}): subscribers may only subscribe`);
          continue;
        }
        const topic = frame.subarray(1).toString('utf8');
        // A subscription that receives daemon-status events ('', 'daemon/', …) gets one now.
        if (frame[0] === 1 && daemonStatusTopic.startsWith(topic)) this.scheduleWelcome();
      }
    } catch (err) {
      if (!this.closed) this.logger.error({ outlet: outlet.name, err }, `stopped reading subscriptions on ${outlet.name}: ${(err as Error).message}`);
    }
  }

  /** Several subscribers arriving together get one status event. */
  private scheduleWelcome(): void {
    if (this.welcome || this.closed) return;
    this.welcome = realTimers.schedule(() => {
      this.welcome = undefined;
      void this.publishStatus();
    }, 20);
  }
}
