// The words of a job's life, shared by the daemon, the bus and the console: its states, why it
// failed, and what started it. The database stores them as plain strings (prisma/schema.prisma);
// these lists are the only values the daemon writes. docs/daemon.md explains each one.

/** In order: a job moves only forward through these, and ends in one of the last three. */
export const jobStates = ['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof jobStates)[number];

export const terminalJobStates: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];
/** States of a job that has left the queue and not ended. */
export const activeJobStates: readonly JobState[] = ['connecting', 'pushing-probe', 'transferring', 'finalizing'];

export function isTerminalJobState(state: string): boolean {
  return (terminalJobStates as readonly string[]).includes(state);
}

/** The phases of a running job, as the pull backup reports them. */
export type JobPhase = 'connecting' | 'pushing-probe' | 'transferring' | 'finalizing';

/** Why a job failed or was cancelled: what an operator acts on. */
export const failureCauses = [
  'unreachable',
  'auth-refused',
  'host-key-changed',
  'connection-lost',
  'probe-error',
  'protocol-violation',
  'storage-error',
  'quota',
  'client-config',
  'timeout',
  'cancelled',
  'daemon-restart',
  'internal',
] as const;
export type FailureCause = (typeof failureCauses)[number];

export const jobTriggers = ['schedule', 'manual', 'catch-up', 'retry'] as const;
export type JobTrigger = (typeof jobTriggers)[number];

export const jobKinds = ['backup', 'restore', 'check', 'prune'] as const;
export type JobKind = (typeof jobKinds)[number];

/** How a line of a job's log reads: plain progress, something left out, or why the job failed. */
export type JobLogLevel = 'INFO' | 'WARN' | 'ERROR';
