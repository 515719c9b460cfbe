// The live channel: socket.io carries the daemon's status and job events as they happen.
import { io, type Socket } from 'socket.io-client';
import { api } from './api';
import type { BusJob, DaemonEvent, DaemonStatus, JobProgress } from './types';

/**
 * What the dashboard shows live: the running jobs (from the daemon's status, updated by each
 * state change) and the newest progress of each.
 */
export const live = $state<{ daemon: DaemonStatus | null; socketConnected: boolean; running: Record<number, BusJob>; finished: BusJob[]; progress: Record<number, JobProgress> }>({
  daemon: null, socketConnected: false, running: {}, finished: [], progress: {},
});

/** How many jobs that ended while the page was open stay on the dashboard, so a watcher sees how they ended. */
const FINISHED_KEPT = 5;

const jobListeners = new Set<(e: DaemonEvent) => void>();

function setStatus(status: DaemonStatus): void {
  live.daemon = status;
  if (status.running) live.running = Object.fromEntries(status.running.map((j) => [j.id, j]));
}

function onEvent(event: DaemonEvent): void {
  if (event.type === 'job-progress') live.progress[event.jobId] = event;
  else if (event.type === 'job-state') {
    const ended = ['succeeded', 'failed', 'cancelled'].includes(event.job.state);
    if (ended || event.job.state === 'queued') delete live.running[event.job.id];
    else live.running[event.job.id] = event.job;
    if (ended) live.finished = [event.job, ...live.finished.filter((j) => j.id !== event.job.id)].slice(0, FINISHED_KEPT);
  }
  for (const l of jobListeners) l(event);
}

/** Follows one job's events (state, progress, log lines) until the returned function is called. */
export function watchJob(jobId: number, listener: (e: DaemonEvent) => void): () => void {
  const mine = (e: DaemonEvent) => {
    const id = e.type === 'job-state' ? e.job.id : e.jobId;
    if (id === jobId) listener(e);
  };
  jobListeners.add(mine);
  const join = () => socket?.emit('job:watch', { jobId });
  join();
  socket?.on('connect', join);
  return () => {
    jobListeners.delete(mine);
    socket?.off('connect', join);
    socket?.emit('job:unwatch', { jobId });
  };
}

let socket: Socket | null = null;

export function connectLive(csrfToken: string | null): void {
  disconnectLive();
  api.get<{ daemon: DaemonStatus }>('/api/status').then((s) => setStatus(s.daemon)).catch(() => undefined);
  socket = io({ auth: { csrfToken }, transports: ['websocket'] });
  socket.on('connect', () => {
    live.socketConnected = true;
    socket?.emit('dashboard:subscribe', {}, (reply: { ok?: true; result?: { daemon: DaemonStatus } }) => {
      if (reply.ok && reply.result) setStatus(reply.result.daemon);
    });
  });
  socket.on('disconnect', () => {
    live.socketConnected = false;
  });
  socket.on('daemon:status', setStatus);
  socket.on('daemon:event', onEvent);
}

export function disconnectLive(): void {
  socket?.disconnect();
  socket = null;
  live.socketConnected = false;
}

/** Sends an action over the socket and resolves with the server's reply. */
export function emitAction<T>(event: string, payload: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    if (!socket) return reject(new Error('the live connection is not open; reload the page.'));
    socket.timeout(10_000).emit(event, payload, (err: Error | null, reply: { ok?: true; result?: T; error?: { message: string } }) => {
      if (err) reject(new Error('the server did not answer in time; try again.'));
      else if (reply.error) reject(new Error(reply.error.message));
      else resolve(reply.result as T);
    });
  });
}
