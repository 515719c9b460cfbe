// Every message of the daemon's bus, defined once: the daemon (daemon/bus/) and its clients (the
// CLI, the web server) validate what they receive against these schemas, so a malformed or
// hostile message is refused at the edge instead of reaching a handler. docs/bus.md describes
// the same messages for people.
//
// Wire form: each message is one ZeroMQ frame of UTF-8 JSON (a stream chunk adds one binary
// frame). Every message carries `v`, the protocol version; a daemon refuses other versions with
// an `UnsupportedProtocol` error. Requests are strict (unknown fields are an error, so a typo
// is caught); replies and events are read leniently (unknown fields are dropped), so an older
// client keeps working with a newer daemon that added fields.
import { z } from 'zod';
import { failureCauses } from '../jobs.js';

export const BUS_PROTOCOL_VERSION = 1;

export const BusLimits = {
  /** A request, credit or cancel message larger than this is logged and dropped unread. */
  maxRequestBytes: 64 * 1024,
  /** ZeroMQ drops the connection of a peer sending a message larger than this (ZMQ_MAXMSGSIZE). */
  maxWireMessageBytes: 1024 * 1024,
  /** A streamed reply's chunks are at most this large. */
  maxStreamChunkBytes: 256 * 1024,
  /** The most chunks a client may allow the daemon to send ahead of its reading. */
  maxStreamCredit: 64,
  defaultStreamCredit: 8,
  /** How many jobs `list-jobs` returns at most. */
  maxListJobs: 1000,
  /** `list-directory` pages stop at this much name text, so a reply stays under the wire limit. */
  maxDirectoryPageBytes: 256 * 1024,
  /** `diff-snapshots` lists at most this many differences in all (and at most maxDirectoryPageBytes of paths). */
  maxDiffEntries: 2000,
} as const;

// ---- Building blocks --------------------------------------------------------------------------

/**
 * Byte and file counters are BigInt in the database. They travel as decimal strings: JSON
 * numbers lose precision above 2^53 and JSON.stringify refuses BigInt.
 */
export const Counter = z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal counter such as "1234"');
export type Counter = z.infer<typeof Counter>;

export function toCounter(n: bigint | number): Counter {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new RangeError(`counter ${n} is not a safe integer`);
  if (n < 0) throw new RangeError(`counter ${n} is negative`);
  return n.toString();
}

export function fromCounter(c: Counter): bigint {
  return BigInt(c);
}

/** Timestamps: ISO 8601 in UTC with milliseconds, e.g. 2026-11-23T10:15:42.123Z. */
export const Timestamp = z.iso.datetime({ precision: 3 });
export const JobId = z.int().min(1).max(2 ** 31 - 1);
export const RequestId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1 to 64 letters, digits, "-" or "_"');
/** Client names as daemon/clients/client-config.ts allows them. */
export const ClientName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected a client name (lower-case letters, digits, ".", "_", "-"; at most 63)');
const Text = (max: number) => z.string().max(max);
/**
 * Who a bus client acts for (the console's logged-in user), recorded with the connection on the
 * job: `olga via bus ipc:…`. A claim of that client, which the bus trusts for everything anyway.
 */
const OnBehalfOf = z.string().regex(/^\P{Cc}{1,128}$/u, 'expected a user name of 1 to 128 printable characters').optional();

export const JobKind = z.enum(['backup', 'restore', 'check', 'prune']);
export const JobState = z.enum(['queued', 'connecting', 'pushing-probe', 'transferring', 'finalizing', 'succeeded', 'failed', 'cancelled']);
export const JobTrigger = z.enum(['schedule', 'manual', 'catch-up', 'retry']);
// The same lists the daemon writes (shared/jobs.ts), so a cause it stores always crosses the bus.
export const FailureCause = z.enum(failureCauses);
export type JobKind = z.infer<typeof JobKind>;
export type JobState = z.infer<typeof JobState>;
export type JobTrigger = z.infer<typeof JobTrigger>;
export type FailureCause = z.infer<typeof FailureCause>;

export const terminalJobStates: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];
export function isTerminalJobState(state: JobState): boolean {
  return terminalJobStates.includes(state);
}

/** What a job has done so far: in its row, and in each progress event. */
const jobCounters = {
  filesTotal: Counter,
  filesDone: Counter,
  bytesScanned: Counter,
  bytesNew: Counter,
  bytesOnWire: Counter,
  errors: z.int().min(0),
};

/** A job as prisma/schema.prisma's Job model holds it, with counters as decimal strings. */
export const Job = z.object({
  id: JobId,
  clientId: z.int().nullable(),
  clientName: Text(256).nullable(),
  kind: JobKind,
  state: JobState,
  trigger: JobTrigger,
  attempt: z.int().min(1),
  retryOfId: JobId.nullable(),
  requestedBy: Text(256).nullable(),
  queuedAt: Timestamp,
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  updatedAt: Timestamp,
  failureCause: FailureCause.nullable(),
  failureMessage: Text(16 * 1024).nullable(),
  ...jobCounters,
  snapshotId: z.string().regex(/^[0-9a-f]{1,64}$/).nullable(),
  logPath: Text(4096).nullable(),
  logSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  daemonId: Text(256).nullable(),
});
export type Job = z.infer<typeof Job>;

/** What `status` answers and the `daemon-status` event carries. */
export const DaemonStatus = z.object({
  version: Text(64),
  protocol: z.int(),
  pid: z.int(),
  daemonId: Text(256).nullable(),
  startedAt: Timestamp,
  uptimeSeconds: z.number().min(0),
  /** Where the daemon publishes events, as it bound them (see eventsEndpointFor). */
  events: z.object({ ipc: Text(4096).nullable(), tcp: Text(4096).nullable() }),
  running: z.array(Job),
  /** The oldest queued jobs, at most 100; queuedTotal counts them all. */
  queued: z.array(Job),
  queuedTotal: z.int().min(0),
});
export type DaemonStatus = z.infer<typeof DaemonStatus>;

// ---- Events (daemon → subscribers, PUB/SUB) ---------------------------------------------------

const eventBase = { v: z.literal(BUS_PROTOCOL_VERSION), at: Timestamp };

export const JobStateEvent = z.object({
  ...eventBase,
  type: z.literal('job-state'),
  previousState: JobState.nullable(),
  job: Job,
});

export const JobProgressEvent = z.object({
  ...eventBase,
  type: z.literal('job-progress'),
  jobId: JobId,
  ...jobCounters,
  /** Bytes scanned per second over the last few seconds, when known. */
  bytesPerSecond: z.number().min(0).nullable(),
  /** Seconds left, when the total is known. */
  etaSeconds: z.number().min(0).nullable(),
  /** The path being read, already escaped for display. */
  currentPath: Text(4096).nullable(),
});

export const JobLogLevel = z.enum(['INFO', 'WARN', 'ERROR']);
export type JobLogLevel = z.infer<typeof JobLogLevel>;

export const JobLogEvent = z.object({
  ...eventBase,
  type: z.literal('job-log'),
  jobId: JobId,
  level: JobLogLevel,
  /** The line exactly as written to the job's log file (escaped, without the newline). */
  line: Text(16 * 1024),
});

export const DaemonStatusEvent = z.object({
  ...eventBase,
  type: z.literal('daemon-status'),
  status: DaemonStatus,
});

export const BusEvent = z.discriminatedUnion('type', [JobStateEvent, JobProgressEvent, JobLogEvent, DaemonStatusEvent]);
export type JobStateEvent = z.infer<typeof JobStateEvent>;
export type JobProgressEvent = z.infer<typeof JobProgressEvent>;
export type JobLogEvent = z.infer<typeof JobLogEvent>;
export type DaemonStatusEvent = z.infer<typeof DaemonStatusEvent>;
export type BusEvent = z.infer<typeof BusEvent>;

/**
 * The topic frame an event is published under. ZeroMQ filters subscriptions by prefix, so a
 * subscriber picks `job/12/` (one job: the trailing slash keeps job 1 from matching job 12),
 * `job/` (all jobs), `daemon/` or everything ('').
 */
export function eventTopic(event: BusEvent): string {
  switch (event.type) {
    case 'job-state':
      return `job/${event.job.id}/state`;
    case 'job-progress':
      return `job/${event.jobId}/progress`;
    case 'job-log':
      return `job/${event.jobId}/log`;
    case 'daemon-status':
      return daemonStatusTopic;
  }
}

/** The prefix of every job's events: subscribing to it gets all of them. */
export const jobTopicPrefix = 'job/';

export function jobTopic(jobId: number): string {
  return `${jobTopicPrefix}${jobId}/`;
}

/**
 * How long a `cancel` request may take: the daemon answers once the job has ended (the probe
 * stopped, the connection closed, up to its 5 s grace when the client does not answer, the end
 * recorded), longer than an ordinary query.
 */
export const cancelTimeoutMs = 20_000;
export const daemonTopic = 'daemon/';
export const daemonStatusTopic = 'daemon/status';

// ---- Commands (client → daemon, DEALER/ROUTER) ------------------------------------------------

const SnapshotRef = z.string().regex(/^(latest|[0-9a-f]{1,64})$/, 'expected a snapshot ID (prefix) or "latest"');
const SnapshotPath = z.string().min(1).max(4096).startsWith('/', 'expected an absolute path in the snapshot');

const SnapshotId = z.string().regex(/^[0-9a-f]{1,64}$/);
const NodeType = z.enum(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket']);

/** One entry of a snapshot directory, for browsing. Names are data: shown as text, never as markup. */
export const DirectoryEntry = z.object({
  /** The name as UTF-8; a name whose bytes are not UTF-8 shows U+FFFD where they break. */
  name: Text(4096),
  /** base64 of the raw name bytes, only when they are not valid UTF-8. */
  nameRaw: Text(8192).nullable(),
  type: NodeType,
  size: Counter,
  /** Permission bits (mode & 0o7777). */
  mode: z.int().min(0).max(0o7777),
  /** Null when the stored time cannot be written as an ISO time (before year 0 or after 9999). */
  mtime: Timestamp.nullable(),
  /** Symlink target, as text. */
  target: Text(65536).nullable(),
});
export type DirectoryEntry = z.infer<typeof DirectoryEntry>;

/** One path that differs between two snapshots (a directory added or removed stands for all it holds). */
export const DiffEntry = z.object({ path: Text(65536), type: NodeType, size: Counter });
export type DiffEntry = z.infer<typeof DiffEntry>;

/** Commands answered by one reply. */
export const commands = {
  status: {
    params: z.strictObject({}),
    result: DaemonStatus,
  },
  'list-jobs': {
    params: z.strictObject({
      ids: z.array(JobId).max(BusLimits.maxListJobs).optional(),
      states: z.array(JobState).max(8).optional(),
      client: ClientName.optional(),
      kind: JobKind.optional(),
      /** Only jobs with a smaller ID: the next page of a listing that is newest first. */
      beforeId: JobId.optional(),
      limit: z.int().min(1).max(BusLimits.maxListJobs).default(50),
    }),
    result: z.object({ jobs: z.array(Job) }),
  },
  'run-now': {
    params: z.strictObject({ client: ClientName, requestedBy: OnBehalfOf }),
    result: z.object({ job: Job }),
  },
  cancel: {
    params: z.strictObject({ jobId: JobId, requestedBy: OnBehalfOf }),
    result: z.object({ job: Job }),
  },
  'repin-host-key': {
    params: z.strictObject({
      client: ClientName,
      /** The fingerprint the operator read on the client; without it, the key the client shows now. */
      fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected an OpenSSH fingerprint such as SHA256:…').optional(),
    }),
    result: z.object({ client: ClientName, previous: Text(256).nullable(), fingerprint: Text(256) }),
  },
  'add-client': {
    params: z.strictObject({
      name: ClientName,
      /** `user@host` or `user@host:port`; the daemon parses and checks it. */
      address: z.string().min(3).max(300),
      paths: z.array(z.string().min(1).max(4096)).min(1).max(64),
      excludes: z.array(z.string().min(1).max(4096)).max(256).default([]),
      /** A cron expression, or null to back it up only when asked. */
      schedule: z.string().max(200).nullable().default(null),
      /** The tenant it joins; the default tenant when absent. */
      tenant: z.string().min(1).max(63).optional(),
    }),
    /** The line the operator appends to the client's authorized_keys, with the daemon's public key. */
    result: z.object({ client: ClientName, address: Text(300), authorizedKeysLine: Text(2048) }),
  },
  'reload-config': {
    params: z.strictObject({}),
    result: z.object({ clients: z.int().min(0), message: Text(4096) }),
  },
  restore: {
    params: z.strictObject({
      snapshot: SnapshotRef,
      path: SnapshotPath,
      /** The client whose snapshot it is, to resolve `latest` and ID prefixes. */
      client: ClientName.optional(),
      toClient: ClientName,
      /** An absolute directory on the target client. */
      target: z.string().min(1).max(4096).startsWith('/', 'expected an absolute target directory'),
      overwrite: z.boolean().default(false),
      requestedBy: OnBehalfOf,
    }),
    result: z.object({ job: Job }),
  },
  'list-directory': {
    params: z.strictObject({
      snapshot: SnapshotRef,
      /** The client whose snapshot it is, to resolve `latest` and ID prefixes. */
      client: ClientName.optional(),
      path: SnapshotPath.default('/'),
      /** Entries to skip: the `nextOffset` of the previous page. */
      offset: z.int().min(0).default(0),
    }),
    result: z.object({
      snapshot: SnapshotId,
      client: ClientName,
      path: Text(4096),
      /** Sorted by the raw bytes of the names, as stored. */
      entries: z.array(DirectoryEntry),
      /** Entries in the whole directory. */
      total: z.int().min(0),
      /** Where the next page starts; null on the last page (pages stay well under the 1 MiB message limit). */
      nextOffset: z.int().min(0).nullable(),
    }),
  },
  'diff-snapshots': {
    params: z.strictObject({
      client: ClientName.optional(),
      /** The older snapshot. */
      from: SnapshotRef,
      /** The newer snapshot. */
      to: SnapshotRef,
      path: SnapshotPath.default('/'),
    }),
    result: z.object({
      from: SnapshotId,
      to: SnapshotId,
      client: ClientName,
      added: z.array(DiffEntry),
      changed: z.array(DiffEntry),
      removed: z.array(DiffEntry),
      /** More differences than BusLimits.maxDiffEntries: the lists stop there. */
      truncated: z.boolean(),
    }),
  },
} as const;

/** Commands answered by a stream of binary chunks (with credit-based flow control). */
export const streamCommands = {
  'download-snapshot': {
    params: z.strictObject({
      snapshot: SnapshotRef,
      path: SnapshotPath.default('/'),
      client: ClientName.optional(),
    }),
    /** Sent once before the chunks, which form a tar stream. */
    meta: z.object({ name: Text(256), contentType: z.literal('application/x-tar') }),
  },
} as const;

export type CommandName = keyof typeof commands;
export type StreamCommandName = keyof typeof streamCommands;
export type CommandParams<C extends CommandName> = z.input<(typeof commands)[C]['params']>;
export type CommandRequest<C extends CommandName> = z.output<(typeof commands)[C]['params']>;
export type CommandResult<C extends CommandName> = z.output<(typeof commands)[C]['result']>;
export type StreamParams<C extends StreamCommandName> = z.input<(typeof streamCommands)[C]['params']>;
export type StreamRequest<C extends StreamCommandName> = z.output<(typeof streamCommands)[C]['params']>;
export type StreamMeta<C extends StreamCommandName> = z.output<(typeof streamCommands)[C]['meta']>;

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(commands, name);
}
export function isStreamCommandName(name: string): name is StreamCommandName {
  return Object.hasOwn(streamCommands, name);
}

// ---- Envelopes ---------------------------------------------------------------------------------

const envelopeBase = { v: z.literal(BUS_PROTOCOL_VERSION), id: RequestId };

/** Client → daemon. */
export const RequestMessage = z.strictObject({
  ...envelopeBase,
  type: z.literal('request'),
  command: z.string().min(1).max(64),
  params: z.unknown(),
  /** Stream commands only: how many chunks the daemon may send before the next credit. */
  credit: z.int().min(1).max(BusLimits.maxStreamCredit).optional(),
});
export const CreditMessage = z.strictObject({
  ...envelopeBase,
  type: z.literal('credit'),
  credit: z.int().min(1).max(BusLimits.maxStreamCredit),
});
export const CancelStreamMessage = z.strictObject({ ...envelopeBase, type: z.literal('cancel-stream') });
export const ClientMessage = z.discriminatedUnion('type', [RequestMessage, CreditMessage, CancelStreamMessage]);
export type RequestMessage = z.infer<typeof RequestMessage>;
export type ClientMessage = z.infer<typeof ClientMessage>;

/** An error as it crosses the bus: a HaulError's code and message. */
export const WireError = z.object({ code: z.string().regex(/^[A-Za-z]{1,64}$/), message: Text(16 * 1024) });
export type WireError = z.infer<typeof WireError>;

/** Daemon → client. */
export const ReplyMessage = z.object({ ...envelopeBase, type: z.literal('reply'), result: z.unknown() });
export const ErrorMessage = z.object({ ...envelopeBase, type: z.literal('error'), error: WireError });
export const StreamStartMessage = z.object({ ...envelopeBase, type: z.literal('stream-start'), meta: z.unknown() });
/** Followed by one binary frame, the chunk. */
export const StreamChunkMessage = z.object({ ...envelopeBase, type: z.literal('stream-chunk'), seq: z.int().min(0) });
export const StreamEndMessage = z.object({ ...envelopeBase, type: z.literal('stream-end'), chunks: z.int().min(0), bytes: z.int().min(0) });
export const DaemonMessage = z.discriminatedUnion('type', [ReplyMessage, ErrorMessage, StreamStartMessage, StreamChunkMessage, StreamEndMessage]);
export type DaemonMessage = z.infer<typeof DaemonMessage>;

/** One line naming every problem zod found, e.g. `params.client: expected string, received number`. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const at = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
      return `${at || '(message)'}: ${issue.message}`;
    })
    .join('; ') + (error.issues.length > 5 ? `; and ${error.issues.length - 5} more` : '');
}
