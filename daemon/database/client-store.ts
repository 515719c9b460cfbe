// The clients this server backs up, in the database (table "Client"): what `haul client …`
// changes and what the daemon schedules. Every write is checked by the rules of
// daemon/clients/client-config.ts first, so a bad setting is refused with a message and never
// stored. Each operation is one statement: nothing here holds a transaction open.
import { HaulError } from '../../shared/errors.js';
import {
  checkClientPaths,
  checkClientSettings,
  checkExcludes,
  checkHostKey,
  checkRetention,
  checkSchedule,
  parseAddress,
  type ClientConfig,
  type ClientSettings,
  type RetentionPolicy,
} from '../clients/client-config.js';
import type { PrismaClient } from './open-database.js';
import { isMissingRow, isUniqueViolation } from './prisma-errors.js';
import { tenantNotFound } from './tenants.js';

type ClientRow = Awaited<ReturnType<PrismaClient['client']['findFirstOrThrow']>>;

/** What `update` may change; fields left out stay as they are. */
export interface ClientChange {
  address?: string;
  paths?: string[];
  excludes?: string[];
  oneFileSystem?: boolean;
  schedule?: string | null;
  retention?: RetentionPolicy | null;
  enabled?: boolean;
  /** null removes the limit. */
  quotaBytes?: number | null;
  overdueHours?: number | null;
}

function noSuchClient(name: string): HaulError {
  return new HaulError('InvalidArgument', `there is no client named ${JSON.stringify(name)}. \`haul client list\` shows the clients; \`haul client add\` adds one.`);
}

function jsonList(text: string, what: string, name: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new HaulError('UnsupportedFormat', `the ${what} of client ${JSON.stringify(name)} in the database are not a JSON list of strings (${JSON.stringify(text.slice(0, 80))}); the row was changed by hand. Set them again with \`haul client set ${name} --${what === 'paths' ? 'path' : 'exclude'} …\`.`);
  }
  return value as string[];
}

/** A database row as the rest of Haul sees a client (the daemon reads rows with Prisma itself). */
export function clientFromRow(row: ClientRow): ClientConfig {
  let retention: RetentionPolicy | null = null;
  if (row.retention !== null) {
    try {
      retention = checkRetention(JSON.parse(row.retention));
    } catch {
      throw new HaulError('UnsupportedFormat', `the retention policy of client ${JSON.stringify(row.name)} in the database is not valid (${JSON.stringify(row.retention.slice(0, 80))}); the row was changed by hand. Set it again with \`haul client set ${row.name} --retention '{"keepDaily":7}'\`.`);
    }
  }
  return {
    id: row.id,
    name: row.name,
    host: row.host,
    port: row.port,
    user: row.sshUser,
    ...(row.hostKey === null ? {} : { hostKey: row.hostKey }),
    paths: jsonList(row.paths, 'paths', row.name),
    excludes: jsonList(row.excludes, 'excludes', row.name),
    oneFileSystem: row.oneFileSystem,
    schedule: row.schedule,
    retention,
    enabled: row.enabled,
    ...(row.quotaBytes === null ? {} : { quotaBytes: Number(row.quotaBytes) }),
    ...(row.overdueHours === null ? {} : { overdueHours: row.overdueHours }),
    created: row.createdAt.toISOString(),
  };
}

/** The columns of a complete, already checked set of settings. */
function settingsColumns(s: ClientSettings) {
  return {
    name: s.name,
    host: s.host,
    port: s.port,
    sshUser: s.user,
    paths: JSON.stringify(s.paths),
    excludes: JSON.stringify(s.excludes),
    oneFileSystem: s.oneFileSystem,
    schedule: s.schedule,
    retention: s.retention === null ? null : JSON.stringify(s.retention),
    enabled: s.enabled,
  };
}

export class ClientStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** Every client, with the name of the tenant it belongs to. */
  async list(): Promise<(ClientConfig & { tenant: string })[]> {
    const rows = await this.prisma.client.findMany({ orderBy: { name: 'asc' }, include: { tenant: { select: { name: true } } } });
    return rows.map((row) => ({ ...clientFromRow(row), tenant: row.tenant.name }));
  }

  async find(name: string): Promise<ClientConfig | undefined> {
    const row = await this.prisma.client.findUnique({ where: { name } });
    return row === null ? undefined : clientFromRow(row);
  }

  async get(name: string): Promise<ClientConfig> {
    const found = await this.find(name);
    if (!found) throw noSuchClient(name);
    return found;
  }

  /** Adds a client to a tenant (the default one unless named); with `hostKey` (an import of an earlier pin) it starts out pinned. */
  async add(settings: ClientSettings, options: { hostKey?: string; created?: Date; tenant?: string } = {}): Promise<ClientConfig> {
    const checked = checkClientSettings(settings);
    if (options.hostKey !== undefined) checkHostKey(options.hostKey, settings.name);
    const tenant = options.tenant === undefined ? undefined : await this.prisma.tenant.findUnique({ where: { name: options.tenant }, select: { id: true } });
    if (tenant === null) throw tenantNotFound(options.tenant!);
    try {
      const row = await this.prisma.client.create({
        data: {
          ...settingsColumns(checked),
          ...(tenant === undefined ? {} : { tenantId: tenant.id }),
          ...(options.hostKey === undefined ? {} : { hostKey: options.hostKey }),
          ...(options.created === undefined ? {} : { createdAt: options.created }),
        },
      });
      return clientFromRow(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new HaulError('InvalidArgument', `a client named ${settings.name} exists already.`);
      throw err;
    }
  }

  async update(name: string, change: ClientChange): Promise<ClientConfig> {
    const data: Parameters<PrismaClient['client']['update']>[0]['data'] = {};
    if (change.address !== undefined) {
      // The pin stays: a machine that moved keeps its key, and any other machine is refused
      // until an operator re-pins (docs/security.md, invariant 4).
      const { user, host, port } = parseAddress(change.address);
      Object.assign(data, { sshUser: user, host, port });
    }
    if (change.paths !== undefined) data.paths = JSON.stringify(checkClientPaths(change.paths));
    if (change.excludes !== undefined) data.excludes = JSON.stringify(checkExcludes(change.excludes));
    if (change.oneFileSystem !== undefined) data.oneFileSystem = change.oneFileSystem;
    if (change.schedule !== undefined) data.schedule = change.schedule === null ? null : checkSchedule(change.schedule);
    if (change.retention !== undefined) data.retention = change.retention === null ? null : JSON.stringify(checkRetention(change.retention));
    if (change.enabled !== undefined) data.enabled = change.enabled;
    if (change.quotaBytes !== undefined) data.quotaBytes = change.quotaBytes === null ? null : BigInt(change.quotaBytes);
    if (change.overdueHours !== undefined) data.overdueHours = change.overdueHours;
    try {
      return clientFromRow(await this.prisma.client.update({ where: { name }, data }));
    } catch (err) {
      if (isMissingRow(err)) throw noSuchClient(name);
      throw err;
    }
  }

  /** Pins (or re-pins) the host key; returns the key it replaced, if any. */
  async pinHostKey(name: string, fingerprint: string): Promise<{ replaced?: string }> {
    checkHostKey(fingerprint, name);
    const before = await this.get(name);
    try {
      await this.prisma.client.update({ where: { name }, data: { hostKey: fingerprint } });
    } catch (err) {
      if (isMissingRow(err)) throw noSuchClient(name);
      throw err;
    }
    return before.hostKey === undefined ? {} : { replaced: before.hostKey };
  }

  /** Forgets a client; its snapshots stay in the repository, its jobs and listing rows lose the link. */
  async remove(name: string): Promise<void> {
    try {
      await this.prisma.client.delete({ where: { name } });
    } catch (err) {
      if (isMissingRow(err)) throw noSuchClient(name);
      throw err;
    }
  }
}
