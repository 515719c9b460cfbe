import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { HaulError } from '../../../shared/errors.js';
import { checkOverdueHours, formatAddress, parseAddress, parseQuota, parseRetention, type ClientConfig } from '../../clients/client-config.js';
import { AuditTrail } from '../../database/audit-trail.js';
import { ClientStore, type ClientChange } from '../../database/client-store.js';
import { TenantStore } from '../../database/tenants.js';
import { authorizedKeysLine, loadOrCreateServerIdentity } from '../../session/server-identity.js';
import { repinHostKey } from '../../jobs/client-connection.js';
import { isFingerprint } from '../../session/ssh-connection.js';
import { globalOptions, output, stateDirectory, withDatabase } from '../context.js';
import { cliActor } from '../database.js';
import { formatBytes } from '../progress.js';

const collect = (v: string, acc: string[] | undefined) => [...(acc ?? []), v];

function describeSchedule(c: ClientConfig): string {
  return c.schedule === null ? 'manual only' : `schedule "${c.schedule}"`;
}

/** Everything an operator set, on one line. */
function describeClient(c: ClientConfig): string {
  return [
    `paths ${c.paths.join(' ')}`,
    c.excludes.length ? `excludes ${c.excludes.join(' ')}` : 'no excludes',
    c.oneFileSystem ? 'one file system' : 'crosses file systems',
    describeSchedule(c),
    c.retention === null ? 'keeps every snapshot' : `retention ${JSON.stringify(c.retention)}`,
    c.quotaBytes === undefined ? 'no quota' : `quota ${formatBytes(c.quotaBytes)}`,
    c.overdueHours === undefined ? 'no overdue alert' : `overdue after ${c.overdueHours} h`,
    c.enabled ? 'enabled' : 'disabled',
  ].join(', ');
}

interface SetOptions {
  address?: string;
  path?: string[];
  exclude?: string[];
  excludes?: boolean;
  schedule?: string | boolean;
  retention?: string;
  enable?: boolean;
  disable?: boolean;
  oneFileSystem?: boolean;
  crossFileSystems?: boolean;
  quota?: string;
  overdueHours?: string;
  json?: boolean;
}

function changeFrom(opts: SetOptions): ClientChange {
  const change: ClientChange = {};
  if (opts.address !== undefined) change.address = opts.address;
  if (opts.path !== undefined) change.paths = opts.path;
  if (opts.exclude !== undefined) change.excludes = opts.exclude;
  if (opts.excludes === false) change.excludes = [];
  if (typeof opts.schedule === 'string') change.schedule = opts.schedule;
  if (opts.schedule === false) change.schedule = null;
  if (opts.retention !== undefined) change.retention = parseRetention(opts.retention);
  if (opts.enable) change.enabled = true;
  if (opts.disable) change.enabled = false;
  if (opts.oneFileSystem) change.oneFileSystem = true;
  if (opts.crossFileSystems) change.oneFileSystem = false;
  if (opts.quota !== undefined) change.quotaBytes = opts.quota === 'none' ? null : parseQuota(opts.quota);
  if (opts.overdueHours !== undefined) change.overdueHours = opts.overdueHours === 'none' ? null : checkOverdueHours(opts.overdueHours);
  return change;
}

export function registerClient(program: Command): void {
  const client = program.command('client').description('manage the machines this server backs up over SSH (kept in the database)');

  client
    .command('add <name> <address>')
    .description('register a client (address: user@host[:port]) and print the line to paste into its authorized_keys')
    .option('--path <path>', 'absolute path to back up (repeatable)', collect)
    .option('--exclude <pattern>', 'leave out matching entries: /absolute/glob or name glob (repeatable)', collect)
    .option('-x, --one-file-system', 'do not cross file-system boundaries on the client')
    .option('--schedule <cron>', 'back it up on this cron schedule when the daemon runs (5 fields, or 6 with seconds first)')
    .option('--retention <json>', 'how many snapshots prune keeps, e.g. \'{"keepDaily":7,"keepWeekly":4}\'')
    .option('--tenant <name>', 'the tenant it belongs to (default: the tenant "default")')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, address: string, opts: { path?: string[]; exclude?: string[]; oneFileSystem?: boolean; schedule?: string; retention?: string; tenant?: string; json?: boolean }, cmd: Command) => {
      const home = stateDirectory(globalOptions(cmd));
      const { user, host, port } = parseAddress(address);
      const retention = opts.retention === undefined ? null : parseRetention(opts.retention);
      const added = await withDatabase(cmd, (db) => new ClientStore(db.prisma).add({
        name, user, host, port,
        paths: opts.path ?? [],
        excludes: opts.exclude ?? [],
        oneFileSystem: Boolean(opts.oneFileSystem),
        schedule: opts.schedule ?? null,
        retention,
        enabled: true,
      }, opts.tenant === undefined ? {} : { tenant: opts.tenant }));
      const identity = loadOrCreateServerIdentity(path.join(home, 'identity'));
      const line = authorizedKeysLine(identity);
      output(opts.json, { client: added, authorizedKeysLine: line }, () =>
        `added client ${name} (${formatAddress(added)}), backing up ${added.paths.join(' ')}; ${describeSchedule(added)}\n\n` +
        `On ${host}, as ${user}, append this line to ~/.ssh/authorized_keys (nothing else is installed):\n\n${line}\n\n` +
        `Then run \`haul client pin ${name}\` to check the connection and pin the client's host key.\n`);
    });

  client
    .command('list')
    .description('list clients: address, pinned host key, paths, schedule, enabled, tenant')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const clients = await withDatabase(cmd, (db) => new ClientStore(db.prisma).list());
      output(opts.json, clients, () => clients.length === 0 ? 'no clients\n' :
        clients.map((c) => `${c.name.padEnd(20)} ${formatAddress(c)}  ${c.hostKey ?? '(host key not pinned yet)'}  ${c.paths.join(' ')}  ${describeSchedule(c)}  ${c.enabled ? 'enabled' : 'disabled'}  tenant ${c.tenant}`).join('\n') + '\n');
    });

  client
    .command('set <name>')
    .description("change a client's settings; options not given stay as they are")
    .option('--address <user@host[:port]>', 'a new address (the pinned host key stays: a different machine is refused until re-pinned)')
    .option('--path <path>', 'back up these absolute paths instead (repeatable)', collect)
    .addOption(new Option('--exclude <pattern>', 'use these exclude patterns instead (repeatable)').argParser(collect).conflicts('excludes'))
    .option('--no-excludes', 'remove every exclude pattern')
    .option('--schedule <cron>', 'back it up on this cron schedule when the daemon runs (5 fields, or 6 with seconds first)')
    .option('--no-schedule', 'no schedule: back it up only when asked')
    .option('--retention <json>', 'how many snapshots prune keeps, e.g. \'{"keepDaily":7,"keepWeekly":4}\'; null keeps every snapshot')
    .addOption(new Option('--enable', 'let the daemon schedule it and `haul backup` run it').conflicts('disable'))
    .addOption(new Option('--disable', 'stop scheduling it and refuse backups of it (its snapshots stay)'))
    .addOption(new Option('-x, --one-file-system', 'do not cross file-system boundaries on the client').conflicts('crossFileSystems'))
    .addOption(new Option('--cross-file-systems', 'enter other file systems mounted below the paths'))
    .option('--quota <size>', 'stored bytes it may use, e.g. 50G (powers of 1024); "none" removes the limit')
    .option('--overdue-hours <hours>', 'notify when its newest successful backup is older than this; "none" turns it off')
    .option('--json', 'print the client as JSON')
    .action(async (name: string, opts: SetOptions, cmd: Command) => {
      const change = changeFrom(opts);
      if (Object.keys(change).length === 0) {
        throw new HaulError('InvalidArgument', `nothing to change for ${name}: give at least one of --address, --path, --exclude, --no-excludes, --schedule, --no-schedule, --retention, --enable, --disable, --one-file-system, --cross-file-systems, --quota, --overdue-hours.`);
      }
      const updated = await withDatabase(cmd, (db) => new ClientStore(db.prisma).update(name, change));
      output(opts.json, updated, () => `updated client ${name} (${formatAddress(updated)}): ${describeClient(updated)}\n`);
    });

  client
    .command('pin <name>')
    .description("connect to a client and pin its host key (after a deliberate key change: re-pin)")
    .option('--fingerprint <SHA256:...>', 'pin only if the client presents this key (as `ssh-keygen -lf` prints it on the client)')
    .action(async (name: string, opts: { fingerprint?: string }, cmd: Command) => {
      const home = stateDirectory(globalOptions(cmd));
      if (opts.fingerprint !== undefined && !isFingerprint(opts.fingerprint)) {
        throw new HaulError('InvalidArgument', `${JSON.stringify(opts.fingerprint)} is not a SHA256 fingerprint; on the client, \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` prints it.`);
      }
      await withDatabase(cmd, async (db) => {
        const store = new ClientStore(db.prisma);
        const c = await store.get(name);
        const identity = loadOrCreateServerIdentity(path.join(home, 'identity'));
        const { fingerprint, keyType, previous } = await repinHostKey(c, store, identity, opts.fingerprint);
        process.stdout.write(previous === fingerprint
          ? `${name}: host key ${fingerprint} was already pinned; the connection works\n`
          : `${name}: pinned ${keyType} host key ${fingerprint}${previous ? ` (replacing ${previous})` : ''}\n`);
      });
    });

  client
    .command('move <name>')
    .description('move a client to another tenant: from now on only that tenant\'s users see it, its jobs and its snapshots')
    .requiredOption('--tenant <name>', 'the tenant it moves to (`haul tenant list` shows them)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { tenant: string; json?: boolean }, cmd: Command) => {
      const moved = await withDatabase(cmd, async (db) => {
        const { from, to } = await new TenantStore(db.prisma).moveClient(name, opts.tenant);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'client.move', target: name, detail: { from, to: to.name }, tenantId: to.id });
        return { client: name, from, to: to.name };
      });
      output(opts.json, moved, () => moved.from === moved.to ? `${name} is in tenant ${moved.to} already\n` : `moved client ${name} from tenant ${moved.from} to ${moved.to}\n`);
    });

  client
    .command('remove <name>')
    .description('forget a client (its snapshots stay in the repository)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withDatabase(cmd, (db) => new ClientStore(db.prisma).remove(name));
      process.stdout.write(`removed client ${name}; its snapshots stay in the repository\n`);
    });
}
