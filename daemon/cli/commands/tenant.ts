import type { Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { parseQuota, parseRetention } from '../../clients/client-config.js';
import { AuditTrail } from '../../database/audit-trail.js';
import { TenantStore, type TenantSettings, type TenantView } from '../../database/tenants.js';
import { output } from '../context.js';
import { cliActor, withDatabase } from '../database.js';
import { formatBytes } from '../progress.js';

const collect = (v: string, acc: string[] | undefined) => [...(acc ?? []), v];

interface SettingsOptions {
  quota?: string;
  retention?: string;
  /** false: --no-notify. */
  notify?: string[] | false;
  json?: boolean;
}

function settingsFrom(opts: SettingsOptions): TenantSettings {
  return {
    ...(opts.quota === undefined ? {} : { quotaBytes: opts.quota === 'none' ? null : parseQuota(opts.quota) }),
    ...(opts.retention === undefined ? {} : { retention: parseRetention(opts.retention) }),
    ...(opts.notify === undefined ? {} : { notifyEmails: opts.notify === false ? [] : opts.notify }),
  };
}

function describeTenant(t: TenantView): string {
  return [
    `${t.clients.length} client${t.clients.length === 1 ? '' : 's'}${t.clients.length ? ` (${t.clients.join(', ')})` : ''}`,
    t.quotaBytes === null ? 'no quota' : `quota ${formatBytes(t.quotaBytes)}`,
    t.retention === null ? 'no retention default' : `retention default ${JSON.stringify(t.retention)}`,
    t.notifyEmails.length ? `notifies ${t.notifyEmails.join(', ')}` : 'no extra recipients',
  ].join(', ');
}

function settingOptions(command: Command): Command {
  return command
    .option('--quota <size>', 'stored bytes all its clients together may use, e.g. 2T (powers of 1024); "none" removes the limit')
    .option('--retention <json>', 'the retention policy of its clients that have none, e.g. \'{"keepDaily":7}\'; null: keep everything')
    .option('--notify <email>', 'also send the alerts about its clients to this address (repeatable; replaces the list)', collect)
    .option('--json', 'print the tenant as JSON');
}

export function registerTenant(program: Command): void {
  const tenant = program.command('tenant').description('tenants: teams or customers whose clients, jobs and audit entries the others never see (docs/security.md, Tenants)');

  tenant
    .command('list')
    .description('list tenants with their clients, quota, retention default and recipients')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const tenants = await withDatabase(cmd, (db) => new TenantStore(db.prisma).list());
      output(opts.json, tenants, () => tenants.map((t) => `${t.name.padEnd(20)} ${describeTenant(t)}`).join('\n') + '\n');
    });

  settingOptions(tenant.command('add <name>').description('add a tenant; then `haul client move` its clients and `haul user grant` its users'))
    .action(async (name: string, opts: SettingsOptions, cmd: Command) => {
      const settings = settingsFrom(opts);
      const added = await withDatabase(cmd, async (db) => {
        const t = await new TenantStore(db.prisma).add(name, settings);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'tenant.add', target: name, detail: { ...settings }, tenantId: t.id });
        return t;
      });
      output(opts.json, added, () => `added tenant ${name}: ${describeTenant(added)}\n`);
    });

  settingOptions(tenant.command('edit <name>').description("change a tenant's quota, retention default or recipients; options not given stay as they are"))
    .option('--no-notify', 'send no extra alerts for its clients')
    .action(async (name: string, opts: SettingsOptions, cmd: Command) => {
      const settings = settingsFrom(opts);
      if (Object.keys(settings).length === 0) throw new HaulError('InvalidArgument', `nothing to change for tenant ${name}: give at least one of --quota, --retention, --notify, --no-notify.`);
      const edited = await withDatabase(cmd, async (db) => {
        const t = await new TenantStore(db.prisma).edit(name, settings);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'tenant.edit', target: name, detail: { ...settings }, tenantId: t.id });
        return t;
      });
      output(opts.json, edited, () => `updated tenant ${name}: ${describeTenant(edited)}\n`);
    });

  tenant
    .command('remove <name>')
    .description('remove a tenant without clients (its users lose their role on it)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        await new TenantStore(db.prisma).remove(name);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'tenant.remove', target: name });
      });
      process.stdout.write(`removed tenant ${name}\n`);
    });
}
