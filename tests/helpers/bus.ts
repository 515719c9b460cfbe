// A real bus server for tests: real ZeroMQ sockets in a temporary state directory, real pino
// logging into memory, and real command handlers over an in-memory job table. The daemon backs
// the same commands with its database and queue (daemon/service/bus-handlers.ts); the bus cannot
// tell the difference.
import { pino } from 'pino';
import { BusServer, type BusServerOptions } from '../../daemon/bus/bus-server.js';
import { BUS_PROTOCOL_VERSION, isTerminalJobState, type Job, type JobState } from '../../shared/bus/messages.js';
import { HaulError } from '../../shared/errors.js';
import { tempDir } from './cli.js';

export interface LogEntry {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

export function memoryLogger() {
  const entries: LogEntry[] = [];
  const logger = pino({ level: 'debug', base: undefined, timestamp: false }, { write: (line: string) => void entries.push(JSON.parse(line) as LogEntry) });
  return {
    logger,
    entries,
    at: (level: number) => entries.filter((e) => e.level === level).map((e) => e.msg),
  };
}

const epoch = Date.parse('2026-11-23T10:00:00.000Z');

export function wireJob(id: number, overrides: Partial<Job> = {}): Job {
  const at = new Date(epoch + id * 1000).toISOString();
  return {
    id, clientId: 1, clientName: 'web1', kind: 'backup', state: 'queued', trigger: 'manual', attempt: 1, retryOfId: null,
    requestedBy: null, queuedAt: at, startedAt: null, finishedAt: null, updatedAt: at, failureCause: null, failureMessage: null,
    filesTotal: '0', filesDone: '0', bytesScanned: '0', bytesNew: '0', bytesOnWire: '0', errors: 0, snapshotId: null,
    logPath: null, logSha256: null, daemonId: 'test-daemon', ...overrides,
  };
}

/** Jobs in memory with the handlers the daemon registers: run-now, cancel, list-jobs, and status's job lists. */
export class JobBoard {
  readonly jobs = new Map<number, Job>();
  private nextId = 1;
  server!: BusServer;
  clients = new Set(['web1', 'db1']);

  add(job: Job): Job {
    this.jobs.set(job.id, job);
    this.nextId = Math.max(this.nextId, job.id + 1);
    return job;
  }

  /** Moves a job to a new state and publishes it, as the job runner will. */
  transition(id: number, state: JobState, changes: Partial<Job> = {}): Job {
    const before = this.jobs.get(id)!;
    const job = { ...before, ...changes, state, updatedAt: new Date().toISOString(), ...(isTerminalJobState(state) ? { finishedAt: new Date().toISOString() } : {}) };
    this.jobs.set(id, job);
    this.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at: new Date().toISOString(), previousState: before.state, job });
    return job;
  }

  async lists(): Promise<{ running: Job[]; queued: Job[] }> {
    const all = [...this.jobs.values()];
    return { running: all.filter((j) => j.state !== 'queued' && !isTerminalJobState(j.state)), queued: all.filter((j) => j.state === 'queued') };
  }

  install(server: BusServer): void {
    this.server = server;
    server.handle('run-now', async ({ client }) => {
      if (!this.clients.has(client)) throw new HaulError('InvalidArgument', `there is no client named ${client}; \`haul client list\` shows them.`);
      const job = this.add(wireJob(this.nextId, { clientName: client, trigger: 'manual', queuedAt: new Date().toISOString(), updatedAt: new Date().toISOString() }));
      this.server.publish({ v: BUS_PROTOCOL_VERSION, type: 'job-state', at: new Date().toISOString(), previousState: null, job });
      return { job };
    });
    server.handle('cancel', async ({ jobId }) => {
      const job = this.jobs.get(jobId);
      if (!job) throw new HaulError('InvalidArgument', `there is no job ${jobId}.`);
      if (isTerminalJobState(job.state)) throw new HaulError('InvalidArgument', `job ${jobId} has ${job.state} already; there is nothing to cancel.`);
      return { job: this.transition(jobId, 'cancelled', { failureCause: 'cancelled', failureMessage: 'cancelled by an operator' }) };
    });
    server.handle('list-jobs', async ({ ids, states, client, limit, beforeId }) => {
      const jobs = [...this.jobs.values()]
        .filter((j) => (!ids || ids.includes(j.id)) && (!states || states.includes(j.state)) && (!client || j.clientName === client) && (!beforeId || j.id < beforeId))
        .sort((a, b) => b.id - a.id)
        .slice(0, limit);
      return { jobs };
    });
  }
}

export interface TestBus {
  server: BusServer;
  board: JobBoard;
  stateDir: string;
  log: ReturnType<typeof memoryLogger>;
  stop(): Promise<void>;
}

/** A started bus server over a fresh state directory (short, so the socket paths fit). */
export async function startTestBus(options: Partial<BusServerOptions> = {}, stateDir?: string): Promise<TestBus> {
  const tmp = stateDir ? undefined : tempDir('bus');
  const dir = stateDir ?? tmp!.dir;
  const log = memoryLogger();
  const board = new JobBoard();
  const server = new BusServer({ stateDir: dir, logger: log.logger, version: '0.1.0', daemonId: 'test-daemon', jobs: () => board.lists(), heartbeatMs: 0, ...options });
  board.install(server);
  await server.start();
  return {
    server, board, stateDir: dir, log,
    async stop() {
      await server.stop();
      tmp?.cleanup();
    },
  };
}

/** Waits until a condition holds (polled every 10 ms), for things that happen on another socket. */
export async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
