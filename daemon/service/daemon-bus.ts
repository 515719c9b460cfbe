// The daemon's bus: a BusServer on ipc:// sockets in <stateDir>/run (and TCP with CURVE when
// configured), answering the commands of shared/bus/messages.ts from the running daemon
// (bus-handlers.ts) and publishing what happens: job states, progress (at most 4 a second per
// job) and every job log line. docs/bus.md has the protocol.
import { BUS_PROTOCOL_VERSION, toCounter, type JobProgressEvent } from '../../shared/bus/messages.js';
import { displayText } from '../../shared/display.js';
import { isTerminalJobState } from '../../shared/jobs.js';
import { HAUL_VERSION } from '../../shared/version.js';
import { BusServer } from '../bus/bus-server.js';
import { jobToWire } from '../bus/wire-job.js';
import type { JobProgress } from '../jobs/job-context.js';
import { jobLogEvent, type JobLogLine } from '../jobs/job-log.js';
import type { JobChange, JobRecord } from '../jobs/job-store.js';
import { registerDaemonHandlers } from './bus-handlers.js';
import type { Daemon, DaemonConfig } from './daemon.js';
import { registerSnapshotHandlers } from './snapshot-browser.js';

export interface DaemonBus {
  readonly server: BusServer;
  stop(): Promise<void>;
}

/** Bytes per second over the last few seconds of one job's progress. */
class RateMeter {
  private readonly samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 5_000) {}

  add(bytes: number, at = Date.now()): number | null {
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (at - first.at) / 1000;
    return seconds >= 0.5 ? Math.max(0, (bytes - first.bytes) / seconds) : null;
  }
}

function progressEvent(job: JobRecord, p: JobProgress, bytesPerSecond: number | null): JobProgressEvent {
  const left = p.totalBytes !== undefined ? Math.max(0, p.totalBytes - p.bytesScanned) : undefined;
  return {
    v: BUS_PROTOCOL_VERSION,
    type: 'job-progress',
    at: new Date().toISOString(),
    jobId: job.id,
    filesTotal: toCounter(Number(job.filesTotal)),
    filesDone: toCounter(p.filesDone),
    bytesScanned: toCounter(p.bytesScanned),
    bytesNew: toCounter(p.bytesNew),
    bytesOnWire: toCounter(p.bytesOnWire),
    errors: job.errors,
    bytesPerSecond,
    etaSeconds: left !== undefined && bytesPerSecond ? Math.round(left / bytesPerSecond) : null,
    currentPath: p.currentPath !== undefined ? displayText(p.currentPath).slice(0, 4096) : null,
  };
}

export async function startDaemonBus(daemon: Daemon, config: NonNullable<DaemonConfig['bus']>): Promise<DaemonBus> {
  const effective = daemon.effectiveConfig;
  const server = new BusServer({
    stateDir: effective.stateDir,
    logger: daemon.log,
    version: HAUL_VERSION,
    daemonId: effective.daemonId,
    groupAccess: config.groupAccess,
    ...(config.tcp ? { tcp: config.tcp } : {}),
    jobs: async () => {
      const status = daemon.status();
      return { running: status.running.map(jobToWire), queued: status.queued.slice(0, 100).map(jobToWire), queuedTotal: status.queued.length };
    },
  });
  registerDaemonHandlers(server, daemon);
  registerSnapshotHandlers(server, daemon.repository);

  const rates = new Map<number, RateMeter>();
  const onState = (change: JobChange) => {
    if (isTerminalJobState(change.state)) rates.delete(change.job.id);
    server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at: change.at.toISOString(), previousState: change.previousState, job: jobToWire(change.job) });
  };
  const onProgress = ({ job, progress }: { job: JobRecord; progress: JobProgress }) => {
    let meter = rates.get(job.id);
    if (!meter) rates.set(job.id, (meter = new RateMeter()));
    server.publish(progressEvent(job, progress, meter.add(progress.bytesScanned)));
  };
  const onLogLine = (line: JobLogLine) => server.publish(jobLogEvent(line));
  daemon.events.on('job-state', onState);
  daemon.events.on('job-progress', onProgress);
  daemon.events.on('job-log-line', onLogLine);
  try {
    await server.start();
  } catch (err) {
    daemon.events.off('job-state', onState);
    daemon.events.off('job-progress', onProgress);
    daemon.events.off('job-log-line', onLogLine);
    throw err;
  }
  return {
    server,
    async stop() {
      daemon.events.off('job-state', onState);
      daemon.events.off('job-progress', onProgress);
      daemon.events.off('job-log-line', onLogLine);
      await server.stop();
    },
  };
}
