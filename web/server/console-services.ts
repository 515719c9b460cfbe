// What the console's handlers work with: the account and audit stores in the database, the
// daemon link for everything about backups, the login rate limiter and, when configured, the
// directory (LDAP) that checks the passwords of directory accounts.
import type { ApiTokenStore } from '../../daemon/database/api-tokens.js';
import type { AuditTrail } from '../../daemon/database/audit-trail.js';
import type { ClientStore } from '../../daemon/database/client-store.js';
import type { SessionStore } from '../../daemon/database/sessions.js';
import type { TenantStore } from '../../daemon/database/tenants.js';
import type { UserStore } from '../../daemon/database/users.js';
import type { DaemonLink } from './daemon-link.js';
import type { DirectoryLogin } from './directory/directory-login.js';
import type { LoginRateLimiter } from './login-rate-limiter.js';
import type { ScopedObjects } from './scoped-objects.js';

export interface ConsoleServices {
  users: UserStore;
  sessions: SessionStore;
  tokens: ApiTokenStore;
  audit: AuditTrail;
  /** Client settings, which the console edits in the database (the daemon then reloads them). */
  clients: ClientStore;
  tenants: TenantStore;
  /** Every object a route names is looked up through this, inside the caller's tenant scope. */
  scoped: ScopedObjects;
  daemon: DaemonLink;
  loginLimiter: LoginRateLimiter;
  /** Undefined when no directory is configured: every account is local. */
  directory?: DirectoryLogin;
  /** Whether session cookies get the Secure flag regardless of how the request arrived. */
  secureCookies: boolean;
}
