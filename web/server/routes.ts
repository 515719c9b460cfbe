// Every API route and who may call it, in one table: tests iterate it (every route x every
// role), the OpenAPI document is generated from it, and route-definition.ts enforces it.
import type { Role } from '../../shared/roles.js';
import * as account from './api/account.js';
import * as audit from './api/audit.js';
import * as backups from './api/backups.js';
import * as clients from './api/clients.js';
import * as daemon from './api/daemon.js';
import * as tenants from './api/tenants.js';
import * as tokens from './api/tokens.js';
import * as users from './api/users.js';
import type { RouteDefinition } from './route-definition.js';

const EVERYONE: readonly Role[] = ['admin', 'operator', 'auditor'];
const ADMIN: readonly Role[] = ['admin'];
const OPERATORS: readonly Role[] = ['admin', 'operator'];
const AUDIT_READERS: readonly Role[] = ['admin', 'auditor'];

export const routes: readonly RouteDefinition[] = [
  // The caller's own session and account
  { method: 'post', path: '/api/login', summary: 'log in', access: 'public', effect: 'own-account', audit: 'login', action: account.login },
  { method: 'post', path: '/api/logout', summary: 'log out', access: EVERYONE, effect: 'own-account', audit: 'logout', beforePasswordChange: true, beforeSecondFactor: true, sessionOnly: true, action: account.logout },
  { method: 'get', path: '/api/me', summary: 'see who is logged in', access: EVERYONE, effect: 'none', beforePasswordChange: true, beforeSecondFactor: true, action: account.me },
  { method: 'post', path: '/api/me/password', summary: 'change your own password', access: EVERYONE, effect: 'own-account', audit: 'user.password-changed', beforePasswordChange: true, beforeSecondFactor: true, sessionOnly: true, action: account.changePassword },
  { method: 'post', path: '/api/me/totp/setup', summary: 'start setting up a second factor', access: EVERYONE, effect: 'own-account', audit: 'user.totp-setup-started', beforeSecondFactor: true, sessionOnly: true, action: account.startTotpSetup },
  { method: 'post', path: '/api/me/totp', summary: 'turn on your second factor', access: EVERYONE, effect: 'own-account', audit: 'user.totp-enabled', beforeSecondFactor: true, sessionOnly: true, action: account.enableTotp },
  { method: 'delete', path: '/api/me/totp', summary: 'turn off your second factor', access: EVERYONE, effect: 'own-account', audit: 'user.totp-disabled', sessionOnly: true, action: account.disableTotp },
  { method: 'get', path: '/api/tokens', summary: 'list API tokens', access: EVERYONE, effect: 'none', action: tokens.listTokens },
  { method: 'post', path: '/api/tokens', summary: 'create an API token', access: EVERYONE, effect: 'own-account', audit: 'token.create', sessionOnly: true, action: tokens.createToken },
  { method: 'delete', path: '/api/tokens/:id', summary: 'revoke an API token', access: EVERYONE, effect: 'own-account', audit: 'token.revoke', action: tokens.revokeToken },

  // Users
  { method: 'get', path: '/api/users', summary: 'list users', access: ADMIN, effect: 'none', action: users.listUsers },
  { method: 'post', path: '/api/users', summary: 'add a user', access: ADMIN, effect: 'system', audit: 'user.add', action: users.addUser },
  { method: 'patch', path: '/api/users/:username', summary: 'change a user', access: ADMIN, effect: 'system', audit: 'user.change', action: users.changeUser },
  { method: 'post', path: '/api/users/:username/password', summary: "reset a user's password", access: ADMIN, effect: 'system', audit: 'user.password-reset', action: users.resetUserPassword },
  { method: 'delete', path: '/api/users/:username', summary: 'remove a user', access: ADMIN, effect: 'system', audit: 'user.remove', action: users.removeUser },
  { method: 'post', path: '/api/users/:username/grants', summary: 'give a user a role on a tenant', access: ADMIN, effect: 'system', audit: 'user.grant', action: tenants.grantRole },
  { method: 'delete', path: '/api/users/:username/grants/:tenant', summary: "take a user's role on a tenant away", access: ADMIN, effect: 'system', audit: 'user.revoke', action: tenants.revokeRole },

  // Tenants
  { method: 'get', path: '/api/tenants', summary: 'list tenants', access: ADMIN, effect: 'none', action: tenants.listTenants },
  { method: 'post', path: '/api/tenants', summary: 'add a tenant', access: ADMIN, effect: 'system', audit: 'tenant.add', action: tenants.addTenant },
  { method: 'patch', path: '/api/tenants/:name', summary: 'change a tenant', access: ADMIN, effect: 'system', audit: 'tenant.edit', action: tenants.editTenant },
  { method: 'delete', path: '/api/tenants/:name', summary: 'remove a tenant', access: ADMIN, effect: 'system', audit: 'tenant.remove', action: tenants.removeTenant },
  { method: 'get', path: '/api/settings/second-factor', summary: 'see which roles need a second factor', access: ADMIN, effect: 'none', action: users.secondFactorPolicy },
  { method: 'patch', path: '/api/settings/second-factor', summary: 'choose which roles need a second factor', access: ADMIN, effect: 'system', audit: 'settings.second-factor', action: users.setSecondFactorPolicy },

  // The audit trail
  { method: 'get', path: '/api/audit', summary: 'read the audit trail', access: AUDIT_READERS, effect: 'none', action: audit.listAudit },
  { method: 'post', path: '/api/audit/verify', summary: "verify the audit trail's hash chain", access: AUDIT_READERS, effect: 'none', audit: 'audit.verify', action: audit.verifyAudit },

  // Backups, through the daemon
  { method: 'get', path: '/api/status', summary: 'see the daemon status', access: EVERYONE, effect: 'none', action: daemon.status },
  { method: 'get', path: '/api/clients', summary: 'list clients', access: EVERYONE, effect: 'none', action: daemon.listClients },
  { method: 'patch', path: '/api/clients/:name', summary: 'change a client', access: OPERATORS, effect: 'system', audit: 'client.change', action: clients.changeClient },
  { method: 'post', path: '/api/clients/:name/host-key', summary: 'test the connection to a client and pin its host key', access: OPERATORS, effect: 'system', audit: 'client.pin-host-key', action: clients.pinHostKey },
  { method: 'post', path: '/api/clients', summary: 'add a client', access: OPERATORS, effect: 'system', audit: 'client.add', action: daemon.addClient },
  { method: 'get', path: '/api/jobs', summary: 'list jobs', access: EVERYONE, effect: 'none', action: backups.listJobs },
  { method: 'get', path: '/api/jobs/:id', summary: 'see a job and its state timeline', access: EVERYONE, effect: 'none', action: backups.getJob },
  { method: 'get', path: '/api/jobs/:id/log', summary: "read a job's log", access: EVERYONE, effect: 'none', action: backups.jobLog },
  { method: 'get', path: '/api/snapshots', summary: 'list snapshots', access: EVERYONE, effect: 'none', action: daemon.listSnapshots },
  { method: 'get', path: '/api/snapshots/diff', summary: 'compare two snapshots', access: EVERYONE, effect: 'none', action: backups.diffSnapshots },
  { method: 'get', path: '/api/snapshots/:id/ls', summary: 'browse a snapshot', access: EVERYONE, effect: 'none', action: backups.listDirectory },
  { method: 'get', path: '/api/snapshots/:id/download', summary: 'download from a snapshot', access: EVERYONE, effect: 'none', audit: 'snapshot.download', action: backups.downloadSnapshot },
  { method: 'post', path: '/api/restores', summary: 'restore from a snapshot', access: OPERATORS, effect: 'system', audit: 'restore', action: backups.restore },
  { method: 'get', path: '/api/statistics', summary: 'see statistics', access: EVERYONE, effect: 'none', action: backups.statistics },
  { method: 'post', path: '/api/jobs', summary: 'run a backup job', access: OPERATORS, effect: 'system', audit: 'job.run', action: daemon.runJobRoute },
  { method: 'post', path: '/api/jobs/:id/cancel', summary: 'cancel a job', access: OPERATORS, effect: 'system', audit: 'job.cancel', action: daemon.cancelJobRoute },
];
