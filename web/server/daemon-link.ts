// Everything the console knows about backups it learns through this one interface: the web
// process holds no repository key and never opens the repository. BusDaemonLink
// (bus-daemon-link.ts) implements it over the daemon's bus and the database, FleetDaemonLink
// (fleet-daemon-link.ts) over several daemons' buses; without a daemon,
// DisconnectedDaemonLink answers every question with "daemon not connected", which the pages
// show as such.
import { HaulError } from '../../shared/errors.js';

import type { Readable } from 'node:stream';
import type { CommandResult, Job } from '../../shared/bus/messages.js';

export interface DaemonStatus {
  connected: boolean;
  /** For people: why not, or what the daemon reports about itself. */
  message: string;
  /** While connected: the jobs running and waiting, as the daemon last reported them. */
  running?: Job[];
  queuedTotal?: number;
  /** With several daemons (haul web --fleet): each one's own state; `connected` above means at least one. */
  daemons?: FleetDaemonStatus[];
}

export interface FleetDaemonStatus {
  /** The daemon's ID (FleetDaemon.id). */
  id: string;
  endpoint: string;
  connected: boolean;
  message: string;
  running?: Job[];
  queuedTotal?: number;
}

export interface ClientSummary {
  name: string;
  tenant: string;
  address: string;
  enabled: boolean;
  hostKeyPinned: boolean;
  hostKey: string | null;
  schedule: string | null;
  paths: string[];
  excludes: string[];
  /** The retention policy as JSON text, or null to keep everything. */
  retention: string | null;
  lastJob: { id: number; state: string; finishedAt: string | null; failureMessage: string | null } | null;
  lastSnapshot: { id: string; time: string } | null;
}

export interface JobSummary {
  id: number;
  client: string | null;
  kind: string;
  state: string;
  trigger: string;
  requestedBy: string | null;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  filesTotal: number;
  filesDone: number;
  bytesScanned: number;
  bytesNew: number;
  bytesOnWire: number;
  errors: number;
  failureCause: string | null;
  failureMessage: string | null;
  snapshotId: string | null;
}

export interface JobDetail extends JobSummary {
  logPath: string | null;
  timeline: { state: string; at: string; detail: string | null }[];
}

/** Rows only of these tenants' clients (a member's scope); absent: every row. */
export interface InTenants {
  tenantIds?: number[];
}

export interface JobQuery extends InTenants {
  client?: string;
  state?: string;
  kind?: string;
  /** Paging, newest first: only jobs with a smaller ID. */
  beforeId?: number;
  limit: number;
}

export interface SnapshotSummary {
  id: string;
  client: string;
  time: string;
  paths: string[];
  files: number;
  bytes: number;
}

export interface StatisticsPoint {
  client: string;
  time: string;
  bytes: number;
  bytesNew: number;
  bytesStored: number;
  /** Bytes the job that made the snapshot pulled over SSH; null when no job row names it. */
  bytesOnWire: number | null;
  durationMs: number;
}

export type DirectoryListing = CommandResult<'list-directory'>;
export type AddedClient = CommandResult<'add-client'>;
export type PinnedHostKey = CommandResult<'repin-host-key'>;

export interface NewClient {
  name: string;
  address: string;
  paths: string[];
  excludes: string[];
  schedule: string | null;
  /** The tenant it joins (the default tenant when absent). */
  tenant?: string;
}
export type SnapshotDiff = CommandResult<'diff-snapshots'>;

export interface RestoreRequest {
  snapshot: string;
  client: string;
  path: string;
  toClient: string;
  target: string;
  overwrite: boolean;
  requestedBy: string;
}

/** A live event from the daemon (job progress, state changes, log lines), forwarded to browsers as is. */
export interface DaemonEvent {
  type: string;
  [key: string]: unknown;
}

export interface DaemonLink {
  status(): DaemonStatus;
  listClients(query?: InTenants): Promise<ClientSummary[]>;
  /** Registers a client with the daemon; answers with the authorized_keys line to install on it. */
  addClient(client: NewClient): Promise<AddedClient>;
  /** Connects to the client now (a connection test) and pins the host key it shows, or confirms the given fingerprint. */
  pinHostKey(request: { client: string; fingerprint?: string }): Promise<PinnedHostKey>;
  listJobs(query: JobQuery): Promise<JobSummary[]>;
  getJob(id: number): Promise<JobDetail>;
  listSnapshots(query: { client?: string } & InTenants): Promise<SnapshotSummary[]>;
  statistics(query: { client?: string } & InTenants): Promise<StatisticsPoint[]>;
  /** Queues a backup of a client now; resolves with the new job's ID. */
  runJob(request: { client: string; requestedBy: string }): Promise<{ jobId: number }>;
  cancelJob(request: { jobId: number; requestedBy: string }): Promise<void>;
  listDirectory(request: { snapshot: string; client: string; path: string; offset: number }): Promise<DirectoryListing>;
  diffSnapshots(request: { client: string; from: string; to: string; path: string }): Promise<SnapshotDiff>;
  /** A file or folder of a snapshot as a tar stream, read from the daemon as the reader takes it. */
  download(request: { snapshot: string; client: string; path: string }): Promise<{ name: string; body: Readable }>;
  restore(request: RestoreRequest): Promise<{ jobId: number }>;
  /** Makes the daemon read the clients' settings again after the console changed them. */
  reloadConfig(): Promise<{ message: string }>;
  /** Subscribes to live events and status changes; returns the unsubscribe function. */
  subscribe(listener: { event(e: DaemonEvent): void; status(s: DaemonStatus): void }): () => void;
  close(): Promise<void>;
}

export const NOT_CONNECTED = 'the console is not connected to the Haul daemon, so it cannot show or change backups yet. Start the daemon on this server and check that both use the same state directory.';

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

  addClient(): Promise<AddedClient> {
    return Promise.resolve().then(() => this.refuse());
  }

  pinHostKey(): Promise<PinnedHostKey> {
    return Promise.resolve().then(() => this.refuse());
  }

  listJobs(): Promise<JobSummary[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  getJob(): Promise<JobDetail> {
    return Promise.resolve().then(() => this.refuse());
  }

  listSnapshots(): Promise<SnapshotSummary[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  statistics(): Promise<StatisticsPoint[]> {
    return Promise.resolve().then(() => this.refuse());
  }

  listDirectory(): Promise<DirectoryListing> {
    return Promise.resolve().then(() => this.refuse());
  }

  diffSnapshots(): Promise<SnapshotDiff> {
    return Promise.resolve().then(() => this.refuse());
  }

  download(): Promise<{ name: string; body: Readable }> {
    return Promise.resolve().then(() => this.refuse());
  }

  restore(): Promise<{ jobId: number }> {
    return Promise.resolve().then(() => this.refuse());
  }

  reloadConfig(): Promise<{ message: string }> {
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
