import type { Command } from 'commander';
import type { UserView } from '../../database/users.js';
import { AuditTrail } from '../../database/audit-trail.js';
import { SessionStore } from '../../database/sessions.js';
import { TenantStore } from '../../database/tenants.js';
import { UserStore } from '../../database/users.js';
import { HaulError } from '../../../shared/errors.js';
import { ROLES } from '../../../shared/roles.js';
import { globalOptions, output } from '../context.js';
import { cliActor, withDatabase } from '../database.js';
import { readSecretFile } from '../passphrase.js';

// The global --password-file is the repository passphrase; a user's password has its own option,
// so a habitual `--password-file` can never become someone's console password by accident.
function userPassword(cmd: Command, file: string | undefined): string | undefined {
  if (globalOptions(cmd).passwordFile !== undefined) {
    throw new HaulError('InvalidArgument', '--password-file names the repository passphrase, which `haul user` does not use. Give the console password with --user-password-file FILE.');
  }
  return file === undefined ? undefined : readSecretFile(file, 'user password');
}

function status(u: UserView): string {
  if (u.disabled) return 'disabled';
  if (u.lockedUntil) return `locked until ${u.lockedUntil.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  if (u.source === 'directory') return 'active (directory)';
  return u.mustChangePassword ? 'active (one-time password)' : 'active';
}

function userJson(u: UserView) {
  return { username: u.username, role: u.role, tenants: u.grants.map((g) => ({ tenant: g.tenant, role: g.role })), source: u.source, disabled: u.disabled, lockedUntil: u.lockedUntil, totp: u.totp, mustChangePassword: u.mustChangePassword, createdAt: u.createdAt };
}

/** "admin", or each tenant with the role on it: "operator of acme, auditor of beta". */
function describeRoles(u: UserView): string {
  if (u.role === 'admin') return 'admin';
  return u.grants.length === 0 ? 'no tenant' : u.grants.map((g) => `${g.role} of ${g.tenant}`).join(', ');
}

function oneTimePasswordText(username: string, password: string): string {
  return `One-time password for ${username} (shown only now; it must be changed at the first login):\n\n    ${password}\n`;
}

export function registerUser(program: Command): void {
  const user = program.command('user').description('console users: admin (everything, every tenant), operator (clients, jobs, restores) or auditor (read-only, audit trail) of the tenants granted');

  user
    .command('add <name>')
    .description('add a console user; prints a one-time password unless --user-password-file is given')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--tenant <name>', 'the tenant an operator or auditor gets the role on (default: the tenant "default"); more with `haul user grant`')
    .option('--user-password-file <file>', "read the user's password from this file (at least 12 characters) instead of generating one")
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { role: string; tenant?: string; userPasswordFile?: string; json?: boolean }, cmd: Command) => {
      const password = userPassword(cmd, opts.userPasswordFile);
      if (opts.tenant !== undefined && opts.role === 'admin') throw new HaulError('InvalidArgument', 'an admin reaches every tenant; --tenant is for an operator or auditor.');
      await withDatabase(cmd, async (db) => {
        const created = await new UserStore(db).create({ username: name, role: opts.role, ...(password === undefined ? {} : { password }), ...(opts.tenant === undefined ? {} : { tenant: opts.tenant }) });
        const grant = created.user.grants[0];
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.add', target: name, detail: { role: created.user.role, ...(grant ? { tenant: grant.tenant } : {}) }, tenantId: grant?.tenantId ?? null });
        output(opts.json, { user: userJson(created.user), ...(created.generated ? { oneTimePassword: created.password } : {}) }, () =>
          `added ${created.user.role} ${name}${grant ? ` of tenant ${grant.tenant}` : ''}\n` + (created.generated ? `\n${oneTimePasswordText(name, created.password)}` : `with the password from ${opts.userPasswordFile}\n`));
      });
    });

  user
    .command('list')
    .description('list console users with role and status')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        const users = await new UserStore(db).list();
        output(opts.json, users.map(userJson), () => users.length === 0
          ? 'no users yet; add the first admin with `haul user add NAME --role admin`\n'
          : users.map((u) => `${u.username.padEnd(20)} ${describeRoles(u).padEnd(30)} ${u.totp ? 'TOTP  ' : '      '}${status(u)}`).join('\n') + '\n');
      });
    });

  user
    .command('grant <name>')
    .description("give a user a role on a tenant (replacing the role it had there); admins reach every tenant already")
    .requiredOption('--tenant <name>', 'the tenant')
    .requiredOption('--role <role>', 'operator or auditor')
    .action(async (name: string, opts: { tenant: string; role: string }, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        const grant = await new TenantStore(db.prisma).grant(name, opts.tenant, opts.role);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.grant', target: name, detail: { tenant: grant.tenant, role: grant.role }, tenantId: grant.tenantId });
        process.stdout.write(`${name} is now ${grant.role} of tenant ${grant.tenant}\n`);
      });
    });

  user
    .command('revoke <name>')
    .description("take a user's role on a tenant away (its open sessions lose that tenant at their next request)")
    .requiredOption('--tenant <name>', 'the tenant')
    .action(async (name: string, opts: { tenant: string }, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        const tenants = new TenantStore(db.prisma);
        const { id } = await tenants.get(opts.tenant);
        const role = await tenants.revoke(name, opts.tenant);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.revoke', target: name, detail: { tenant: opts.tenant, role }, tenantId: id });
        process.stdout.write(`${name} is no longer ${role} of tenant ${opts.tenant}\n`);
      });
    });

  user
    .command('set-role <name> <role>')
    .description('make a user an admin (every tenant), or an operator or auditor of the tenants it has (the default tenant if none)')
    .action(async (name: string, role: string, _opts: unknown, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        const changed = await new UserStore(db).setRole(name, role);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.change', target: name, detail: { role: changed.role } });
        process.stdout.write(`${name} is now ${describeRoles(changed)}\n`);
      });
    });

  user
    .command('remove <name>')
    .description('remove a console user (ends their sessions and API tokens; the audit trail keeps their name)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withDatabase(cmd, async (db) => {
        await new UserStore(db).remove(name);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.remove', target: name });
        process.stdout.write(`removed user ${name}\n`);
      });
    });

  user
    .command('passwd <name>')
    .description("reset a user's password (a one-time one unless --user-password-file is given); also unlocks the account and ends its sessions")
    .option('--user-password-file <file>', 'read the new password from this file (at least 12 characters)')
    .option('--reset-totp', "also turn off the user's second factor (a lost phone)")
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { userPasswordFile?: string; resetTotp?: boolean; json?: boolean }, cmd: Command) => {
      const password = userPassword(cmd, opts.userPasswordFile);
      await withDatabase(cmd, async (db) => {
        const users = new UserStore(db);
        const reset = await users.resetPassword(name, password);
        if (opts.resetTotp) await users.disableTotp(name);
        const ended = await new SessionStore(db).revokeAllOf(reset.user.id);
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.password-reset', target: name, detail: { sessionsEnded: ended, totpReset: Boolean(opts.resetTotp) } });
        output(opts.json, { user: userJson(await users.get(name)), ...(reset.generated ? { oneTimePassword: reset.password } : {}), sessionsEnded: ended }, () =>
          `reset the password of ${name}${opts.resetTotp ? ' and turned off its second factor' : ''}; ${ended} session(s) ended\n` +
          (reset.generated ? `\n${oneTimePasswordText(name, reset.password)}` : ''));
      });
    });
}
