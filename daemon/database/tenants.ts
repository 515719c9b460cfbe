// Tenants: the teams or customers that share one Haul server. Every client belongs to exactly one
// tenant; a member user holds a role (operator or auditor) per tenant through a grant, an admin
// holds every role everywhere. `haul tenant …`, `haul user grant|revoke` and the console's
// Tenants and Users pages all work through this store. Who may see what is decided elsewhere,
// once (web/server/tenant-scope.ts); this file only keeps the records straight.
import { HaulError } from '../../shared/errors.js';
import { checkRetention, type RetentionPolicy } from '../clients/client-config.js';

// The console reads quotas and policies through this module (web/ may import only daemon/database).
export { parseQuota, type RetentionPolicy } from '../clients/client-config.js';
import type { PrismaClient } from './open-database.js';
import { isUniqueViolation } from './prisma-errors.js';

export const TENANT_ROLES = ['operator', 'auditor'] as const;
export type TenantRole = (typeof TENANT_ROLES)[number];

/** The tenant migration 0004 created and moved every earlier client into. */
export const DEFAULT_TENANT_ID = 1;
export const DEFAULT_TENANT = 'default';

export interface TenantView {
  id: number;
  name: string;
  /** Stored bytes all its clients together may use; null: no limit. */
  quotaBytes: number | null;
  /** For its clients without a policy of their own; null: keep everything. */
  retention: RetentionPolicy | null;
  /** Alerts about its clients go to these addresses as well as the daemon's own. */
  notifyEmails: string[];
  clients: string[];
  createdAt: Date;
}

export interface TenantGrantView {
  tenantId: number;
  tenant: string;
  role: TenantRole;
}

export interface TenantSettings {
  quotaBytes?: number | null;
  retention?: RetentionPolicy | null;
  notifyEmails?: string[];
}

const namePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;
// Deliberately loose: the SMTP server is the judge; this only catches a pasted list or a typo'd separator.
const emailPattern = /^[^\s@,;<>]+@[^\s@,;<>]+\.[^\s@,;<>]+$/;
const MAX_RECIPIENTS = 50;

export function checkTenantName(name: string): string {
  if (!namePattern.test(name)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(name)} is not a valid tenant name: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.`);
  }
  return name;
}

export function checkTenantRole(role: string): TenantRole {
  if (!(TENANT_ROLES as readonly string[]).includes(role)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(role)} is not a tenant role; use operator or auditor (admins are global: \`haul user set-role NAME admin\`).`);
  }
  return role as TenantRole;
}

export function checkRecipients(emails: string[]): string[] {
  if (emails.length > MAX_RECIPIENTS) throw new HaulError('InvalidArgument', `a tenant has at most ${MAX_RECIPIENTS} notification recipients, not ${emails.length}.`);
  for (const e of emails) {
    if (!emailPattern.test(e) || e.length > 254) throw new HaulError('InvalidArgument', `${JSON.stringify(e)} is not an e-mail address; give one address per recipient, such as ops@example.com.`);
  }
  return [...new Set(emails)];
}

export function tenantNotFound(name: string): HaulError {
  return new HaulError('TenantNotFound', `there is no tenant named ${JSON.stringify(name)}; \`haul tenant list\` shows the tenants.`);
}

type TenantRow = Awaited<ReturnType<PrismaClient['tenant']['findFirstOrThrow']>> & { clients: { name: string }[] };

function readJson(text: string | null, what: string, tenant: string): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new HaulError('UnsupportedFormat', `the ${what} of tenant ${JSON.stringify(tenant)} in the database is not JSON; the row was changed by hand. Set it again with \`haul tenant edit ${tenant}\`.`);
  }
}

export function tenantFromRow(row: TenantRow): TenantView {
  const retention = readJson(row.retention, 'retention policy', row.name);
  const emails = readJson(row.notifyEmails, 'recipient list', row.name);
  return {
    id: row.id,
    name: row.name,
    quotaBytes: row.quotaBytes === null ? null : Number(row.quotaBytes),
    retention: retention === null ? null : checkRetention(retention),
    notifyEmails: Array.isArray(emails) ? emails.map(String) : [],
    clients: row.clients.map((c) => c.name),
    createdAt: row.createdAt,
  };
}

const withClients = { clients: { select: { name: true }, orderBy: { name: 'asc' as const } } };

function settingsColumns(s: TenantSettings) {
  return {
    ...(s.quotaBytes === undefined ? {} : { quotaBytes: s.quotaBytes === null ? null : BigInt(s.quotaBytes) }),
    ...(s.retention === undefined ? {} : { retention: s.retention === null ? null : JSON.stringify(checkRetention(s.retention)) }),
    ...(s.notifyEmails === undefined ? {} : { notifyEmails: JSON.stringify(checkRecipients(s.notifyEmails)) }),
  };
}

/** The tenant a client belongs to (for its retention default, quota and recipients); undefined for an unknown client. */
export async function tenantOfClient(prisma: PrismaClient, clientId: number): Promise<TenantView | undefined> {
  const row = await prisma.client.findUnique({ where: { id: clientId }, select: { tenant: { include: withClients } } });
  return row ? tenantFromRow(row.tenant) : undefined;
}

export class TenantStore {
  constructor(private readonly prisma: PrismaClient) {}

  async list(): Promise<TenantView[]> {
    return (await this.prisma.tenant.findMany({ orderBy: { name: 'asc' }, include: withClients })).map(tenantFromRow);
  }

  async find(name: string): Promise<TenantView | undefined> {
    const row = await this.prisma.tenant.findUnique({ where: { name }, include: withClients });
    return row ? tenantFromRow(row) : undefined;
  }

  async get(name: string): Promise<TenantView> {
    const found = await this.find(name);
    if (!found) throw tenantNotFound(name);
    return found;
  }

  async add(name: string, settings: TenantSettings = {}): Promise<TenantView> {
    checkTenantName(name);
    try {
      return tenantFromRow(await this.prisma.tenant.create({ data: { name, ...settingsColumns(settings) }, include: withClients }));
    } catch (err) {
      if (isUniqueViolation(err)) throw new HaulError('TenantExists', `a tenant named ${name} exists already; choose another name, or change it with \`haul tenant edit ${name}\`.`);
      throw err;
    }
  }

  async edit(name: string, settings: TenantSettings): Promise<TenantView> {
    const tenant = await this.get(name);
    return tenantFromRow(await this.prisma.tenant.update({ where: { id: tenant.id }, data: settingsColumns(settings), include: withClients }));
  }

  /** Refused while clients belong to it: they would be left without a tenant. Its grants go with it. */
  async remove(name: string): Promise<void> {
    const tenant = await this.get(name);
    if (tenant.clients.length > 0) {
      const listed = tenant.clients.slice(0, 5).join(', ') + (tenant.clients.length > 5 ? ', …' : '');
      throw new HaulError('TenantInUse', `tenant ${name} still has ${tenant.clients.length} client${tenant.clients.length === 1 ? '' : 's'} (${listed}); move them to another tenant first (\`haul client move NAME --tenant OTHER\`) or remove them. Nothing was changed.`);
    }
    if (tenant.id === DEFAULT_TENANT_ID) throw new HaulError('TenantInUse', `the tenant ${DEFAULT_TENANT} cannot be removed: new clients and users without a tenant go there.`);
    await this.prisma.tenant.delete({ where: { id: tenant.id } });
  }

  /** Moves a client to another tenant; answers the tenant it came from. */
  async moveClient(clientName: string, tenantName: string): Promise<{ from: string; to: TenantView }> {
    const client = await this.prisma.client.findUnique({ where: { name: clientName }, select: { id: true, tenant: { select: { name: true } } } });
    if (!client) throw new HaulError('ClientNotFound', `there is no client named ${JSON.stringify(clientName)}. \`haul client list\` shows the clients.`);
    const to = await this.get(tenantName);
    await this.prisma.client.update({ where: { id: client.id }, data: { tenantId: to.id } });
    return { from: client.tenant.name, to: await this.get(tenantName) };
  }

  /** Gives a member user a role on a tenant (replacing the role it had there). */
  async grant(username: string, tenantName: string, role: string): Promise<TenantGrantView> {
    const wanted = checkTenantRole(role);
    const user = await this.memberUser(username);
    const tenant = await this.get(tenantName);
    await this.prisma.tenantGrant.upsert({
      where: { userId_tenantId: { userId: user.id, tenantId: tenant.id } },
      create: { userId: user.id, tenantId: tenant.id, role: wanted },
      update: { role: wanted },
    });
    return { tenantId: tenant.id, tenant: tenant.name, role: wanted };
  }

  /** Takes a user's role on a tenant away; answers the role it had. */
  async revoke(username: string, tenantName: string): Promise<TenantRole> {
    const user = await this.memberUser(username);
    const tenant = await this.get(tenantName);
    const grant = await this.prisma.tenantGrant.findUnique({ where: { userId_tenantId: { userId: user.id, tenantId: tenant.id } } });
    if (!grant) throw new HaulError('InvalidArgument', `${username} has no role on tenant ${tenantName}; \`haul user list\` shows each user's tenants. Nothing was changed.`);
    await this.prisma.tenantGrant.delete({ where: { userId_tenantId: { userId: user.id, tenantId: tenant.id } } });
    return grant.role as TenantRole;
  }

  private async memberUser(username: string): Promise<{ id: number }> {
    const user = await this.prisma.user.findUnique({ where: { username }, select: { id: true, role: true } });
    if (!user) throw new HaulError('UserNotFound', `there is no user named ${JSON.stringify(username)}; \`haul user list\` shows the users.`);
    if (user.role === 'admin') throw new HaulError('InvalidArgument', `${username} is an admin and sees every tenant already; make it a member first (\`haul user set-role ${username} operator\`) to limit it to some tenants.`);
    return user;
  }
}
