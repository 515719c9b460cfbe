// Everything the console knows about backups it learns from the daemon, through this one
// interface: the web process holds no repository key and never opens the repository. The bus
// client (shared/bus) will implement it; until it is connected, DisconnectedDaemonLink answers
// every question with "daemon not connected", which the pages show as such.
import { HaulError } from '../../shared/errors.js';

export interface DaemonStatus {
  connected: boolean;
  /** For people: why not, or what the daemon reports about itself. */
  message: string;
}

export interface ClientSummary {
  name: string;
  address: string;
  enabled: boolean;
  hostKeyPinned: boolean;
  schedule: string | null;
  lastJob: { id: number; state: string; finishedAt: string | null } | null;
}

export interface JobSummary {
  id: number;
  client: string | null;
  kind: string;
  state: string;
  trigger: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  filesDone: number;
  bytesScanned: number;
  bytesNew: number;
  failureMessage: string | null;
}

export interface SnapshotSummary {
  id: string;
  client: string;
  time: string;
  paths: string[];
  files: number;
  bytes: number;
}

/** A live event from the daemon (job progress, state changes), forwarded to browsers as is. */
export interface DaemonEvent {
  type: string;
  [key: string]: unknown;
}

export interface DaemonLink {
  status(): DaemonStatus;
  listClients(): Promise<ClientSummary[]>;
  listJobs(query: { client?: string; limit: number }): Promise<JobSummary[]>;
  listSnapshots(query: { client?: string }): Promise<SnapshotSummary[]>;
  /** Queues a backup of a client now; resolves with the new job's ID. */
  runJob(request: { client: string; requestedBy: string }): Promise<{ jobId: number }>;
  cancelJob(request: { jobId: number; requestedBy: string }): Promise<void>;
  /** Subscribes to live events and status changes; returns the unsubscribe function. */
  subscribe(listener: { event(e: DaemonEvent): void; status(s: DaemonStatus): void }): () => void;
  close(): Promise<void>;
}

const NOT_CONNECTED = 'the console is not connected to the Haul daemon, so it cannot show or change backups yet. Start the daemon on this server and check that both use the same state directory.';

export class DisconnectedDaemonLink implements DaemonLink {
  status(): DaemonStatus {
    return { connected: false, message: NOT_CONNECTED };
  }

  private refuse(): never {
    throw new HaulError('DaemonNotConnected', NOT_CONNECTED);
  }

  listClients(): Promise<ClientSummary[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  listJobs(): Promise<JobSummary[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  listSnapshots(): Promise<SnapshotSummary[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  runJob(): Promise<{ jobId: number }> {
    return Promise.resolve().then(() => this.refuse());
  }

  cancelJob(): Promise<void> {
    return Promise.resolve().then(() => this.refuse());
  }

  subscribe(): () => void {
    return () => undefined;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
