import type { Command } from 'commander';
import type { UserView } from '../../database/users.js';
import { AuditTrail } from '../../database/audit-trail.js';
import { SessionStore } from '../../database/sessions.js';
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
  return { username: u.username, role: u.role, source: u.source, disabled: u.disabled, lockedUntil: u.lockedUntil, totp: u.totp, mustChangePassword: u.mustChangePassword, createdAt: u.createdAt };
}

function oneTimePasswordText(username: string, password: string): string {
  return `One-time password for ${username} (shown only now; it must be changed at the first login):\n\n    ${password}\n`;
}

export function registerUser(program: Command): void {
  const user = program.command('user').description('console users: admin (everything), operator (clients, jobs, restores), auditor (read-only, audit trail)');

  user
    .command('add <name>')
    .description('add a console user; prints a one-time password unless --user-password-file is given')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--user-password-file <file>', "read the user's password from this file (at least 12 characters) instead of generating one")
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { role: string; userPasswordFile?: string; json?: boolean }, cmd: Command) => {
      const password = userPassword(cmd, opts.userPasswordFile);
      await withDatabase(cmd, async (db) => {
        const created = await new UserStore(db).create({ username: name, role: opts.role, ...(password === undefined ? {} : { password }) });
        await new AuditTrail(db).append({ actor: cliActor(), action: 'user.add', target: name, detail: { role: created.user.role } });
        output(opts.json, { user: userJson(created.user), ...(created.generated ? { oneTimePassword: created.password } : {}) }, () =>
          `added ${created.user.role} ${name}\n` + (created.generated ? `\n${oneTimePasswordText(name, created.password)}` : `with the password from ${opts.userPasswordFile}\n`));
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
          : users.map((u) => `${u.username.padEnd(20)} ${u.role.padEnd(9)} ${u.totp ? 'TOTP  ' : '      '}${status(u)}`).join('\n') + '\n');
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
