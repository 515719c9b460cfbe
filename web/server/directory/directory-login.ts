// A console login checked by the directory: the account's lockout first (a locked account does not
// even reach the directory), then the directory's answer, then the rights its groups give, saved
// on the user's local row (created at the first login, refreshed at each one).
import type { LoginResult, UserStore, UserView } from '../../../daemon/database/users.js';
import type { DirectoryConfig } from './directory-config.js';
import { DirectoryClient } from './directory-client.js';
import { consoleRoleOf, mapDirectoryGroups, type DirectoryRoles } from './group-mapping.js';

export type DirectoryLoginResult =
  | LoginResult
  | { ok: false; reason: 'directory-unavailable'; user?: UserView }
  /** Disabled in the directory: there may be no local row yet. */
  | { ok: false; reason: 'disabled'; user?: UserView }
  | { ok: false; reason: 'no-role'; user?: UserView };

/**
 * Saves what the directory's groups give. For now that is one console role: admin, else the
 * strongest granted role (operator before auditor).
 * TODO(tenants): with 0004_tenants merged, write `roles.grants` to `TenantGrant` (userId,
 * tenantId, role) in one transaction with the user row: admin -> User.role 'admin' and no grants;
 * otherwise User.role 'member' and the grants replaced, each tenant name resolved to its id (a name
 * the console does not know is skipped and logged; ALL_TENANTS means a grant on every tenant, or
 * is refused if the tenant model has no such notion). Until then a grant for one tenant acts on
 * every tenant, as docs/security.md (Known gaps) says.
 */
export async function applyDirectoryRoles(users: UserStore, username: string, roles: DirectoryRoles): Promise<UserView | undefined> {
  const role = consoleRoleOf(roles);
  return role === undefined ? undefined : users.saveDirectoryUser(username, role);
}

export class DirectoryLogin {
  private readonly client: DirectoryClient;

  constructor(private readonly config: DirectoryConfig, private readonly users: UserStore, private readonly log: (message: string) => void) {
    this.client = new DirectoryClient(config);
  }

  /** The directory's URL, for messages (never the bind DN's password). */
  get url(): string {
    return this.config.url;
  }

  async login(username: string, password: string): Promise<DirectoryLoginResult> {
    const known = await this.users.find(username);
    if (known?.lockedUntil) return { ok: false, reason: 'locked', user: known, lockedUntil: known.lockedUntil };
    const outcome = await this.client.authenticate(username, password);
    switch (outcome.kind) {
      case 'unavailable':
        this.log(`directory login of ${JSON.stringify(username)} failed: ${outcome.reason}`);
        return { ok: false, reason: 'directory-unavailable', ...(known ? { user: known } : {}) };
      case 'wrong-password':
        return known ? { ok: false, reason: 'wrong-password', user: known, ...(await this.users.recordFailedLogin(known.id)) } : { ok: false, reason: 'wrong-password' };
      case 'disabled':
        return { ok: false, reason: 'disabled', ...(known ? { user: known } : {}) };
      case 'ok': {
        if (known?.disabled) return { ok: false, reason: 'disabled', user: known };
        const roles = mapDirectoryGroups(outcome.groups, this.config.groups);
        const user = await applyDirectoryRoles(this.users, username, roles);
        if (!user) {
          this.log(`directory login of ${JSON.stringify(username)} refused: none of its groups (${outcome.groups.filter((g) => !g.includes('=')).join(', ') || 'none'}) is in the console's group mapping.`);
          return { ok: false, reason: 'no-role', ...(known ? { user: known } : {}) };
        }
        return { ok: true, user };
      }
    }
  }
}
