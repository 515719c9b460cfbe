// The answers of the running daemon to the bus's commands (shared/bus/messages.ts): each handler
// gets validated parameters, calls the daemon, and returns what the protocol says. Errors are
// HaulErrors with a message for the operator; the bus sends them as typed errors.
import type { CommandRequest } from '../../shared/bus/messages.js';
import { HaulError } from '../../shared/errors.js';
import type { BusServer, RequestContext } from '../bus/bus-server.js';
import { jobToWire } from '../bus/wire-job.js';
import { ClientStore } from '../database/client-store.js';
import { formatAddress, parseAddress } from '../clients/client-config.js';
import { repinHostKey } from '../jobs/client-connection.js';
import { authorizedKeysLine } from '../session/server-identity.js';
import { isRestoreTarget, resolveRestoreSelection } from '../restorer/client-restore.js';
import type { Daemon } from './daemon.js';
import { openSnapshotDownload } from './snapshot-download.js';

/** Who asked, as job rows and the daemon log record it: the bus connection, and whom it acts for. */
function requester(context: RequestContext, onBehalfOf?: string): string {
  return onBehalfOf === undefined ? `bus ${context.peer}` : `${onBehalfOf} via bus ${context.peer}`;
}

async function queueRestore(daemon: Daemon, params: CommandRequest<'restore'>, context: RequestContext) {
  if (!isRestoreTarget(params.target)) {
    throw new HaulError('InvalidArgument', `the restore target ${JSON.stringify(params.target)} is not an absolute, normalised directory on the client (like /srv/restore).`);
  }
  // Resolved now, so a wrong snapshot or path fails the request instead of a queued job.
  const repo = daemon.repository.reopen();
  try {
    const snapshot = await repo.findSnapshot(params.snapshot, params.client);
    await resolveRestoreSelection(repo, snapshot, params.path);
    const job = await daemon.restore(params.toClient, { snapshotId: snapshot.id, path: params.path, target: params.target, overwrite: params.overwrite }, requester(context, params.requestedBy));
    return { job: jobToWire(job) };
  } finally {
    await repo.close();
  }
}

export function registerDaemonHandlers(bus: BusServer, daemon: Daemon): void {
  const clients = new ClientStore(daemon.database.prisma);
  bus.handle('list-jobs', async (params) => {
    const jobs = await daemon.listJobs({
      ...(params.ids ? { ids: params.ids } : {}),
      ...(params.states ? { states: params.states } : {}),
      ...(params.client !== undefined ? { clientName: params.client } : {}),
      ...(params.kind !== undefined ? { kind: params.kind } : {}),
      ...(params.beforeId !== undefined ? { beforeId: params.beforeId } : {}),
      limit: params.limit,
    });
    return { jobs: jobs.map(jobToWire) };
  });
  bus.handle('run-now', async ({ client, requestedBy }, context) => ({ job: jobToWire(await daemon.runNow(client, requester(context, requestedBy))) }));
  bus.handle('cancel', async ({ jobId, requestedBy }, context) => ({ job: jobToWire(await daemon.cancel(jobId, requester(context, requestedBy))) }));
  bus.handle('reload-config', async () => {
    const result = await daemon.reload();
    const count = await daemon.database.prisma.client.count();
    return { clients: count, message: `reloaded ${count} client(s): ${result.scheduled.length} scheduled; time zone ${result.timeZone}, at most ${result.maxConcurrentJobs} job(s) at once${result.blackout.length ? `, blackout ${result.blackout.join(', ')}` : ''}` };
  });
  bus.handle('add-client', async ({ name, address, paths, excludes, schedule, tenant }) => {
    const added = await clients.add({ name, ...parseAddress(address), paths, excludes, oneFileSystem: false, schedule, retention: null, enabled: true }, tenant === undefined ? {} : { tenant });
    // A schedule takes effect only once the scheduler reads the client table again.
    if (schedule !== null) await daemon.reload();
    return { client: added.name, address: formatAddress(added), authorizedKeysLine: authorizedKeysLine(daemon.identity) };
  });
  bus.handle('repin-host-key', async ({ client, fingerprint }) => {
    const pinned = await repinHostKey(await clients.get(client), clients, daemon.identity, fingerprint, { connectMs: daemon.effectiveConfig.timeouts.connectMs });
    return { client, previous: pinned.previous, fingerprint: pinned.fingerprint };
  });
  bus.handle('restore', (params, context) => queueRestore(daemon, params, context));
  bus.handleStream('download-snapshot', (params) => openSnapshotDownload(daemon.repository, params));
}
