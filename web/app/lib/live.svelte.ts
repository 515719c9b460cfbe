// The live channel: socket.io carries the daemon's status and job events as they happen.
import { io, type Socket } from 'socket.io-client';
import { api } from './api';
import type { DaemonStatus } from './types';

export const live = $state<{ daemon: DaemonStatus | null; socketConnected: boolean; events: unknown[] }>({ daemon: null, socketConnected: false, events: [] });

let socket: Socket | null = null;

export function connectLive(csrfToken: string | null): void {
  disconnectLive();
  api.get<{ daemon: DaemonStatus }>('/api/status').then((s) => {
    live.daemon = s.daemon;
  }).catch(() => undefined);
  socket = io({ auth: { csrfToken }, transports: ['websocket'] });
  socket.on('connect', () => {
    live.socketConnected = true;
    socket?.emit('dashboard:subscribe', {}, (reply: { ok?: true; result?: { daemon: DaemonStatus } }) => {
      if (reply.ok && reply.result) live.daemon = reply.result.daemon;
    });
  });
  socket.on('disconnect', () => {
    live.socketConnected = false;
  });
  socket.on('daemon:status', (status: DaemonStatus) => {
    live.daemon = status;
  });
  socket.on('daemon:event', (event: unknown) => {
    live.events = [event, ...live.events].slice(0, 200);
  });
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
