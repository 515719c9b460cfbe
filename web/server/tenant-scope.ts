// The one place that decides which tenants a caller reaches, and with which role on each: an
// admin (and an admin's token) reaches every tenant; a member reaches only the tenants it holds
// a grant on, with that grant's role; a member's API token only the tenants where the user holds
// the token's role. Every query of the API and socket layer asks this (scoped-objects.ts), so a
// row outside the scope is never read, counted or sent (docs/security.md, Tenants).
import type { UserView } from '../../daemon/database/users.js';
import type { Role } from '../../shared/roles.js';

export class TenantScope {
  private constructor(
    /** The role held on every tenant; undefined for a member. */
    private readonly global: Role | undefined,
    private readonly grants: ReadonlyMap<number, Role>,
  ) {}

  static of(user: UserView, tokenRole?: Role): TenantScope {
    if (user.role === 'admin') return new TenantScope(tokenRole ?? 'admin', new Map());
    const grants = user.grants.filter((g) => tokenRole === undefined || g.role === tokenRole);
    return new TenantScope(undefined, new Map(grants.map((g) => [g.tenantId, g.role])));
  }

  /** Reaches every tenant, and what belongs to none (a removed client's jobs, global audit entries). */
  get everywhere(): boolean {
    return this.global !== undefined;
  }

  /**
   * The roles held on at least one tenant: what the route table's access lists are checked
   * against before any object is looked at. A member without any grant counts as an auditor of
   * nothing, so it can still reach its own account.
   */
  roles(): Role[] {
    if (this.global) return [this.global];
    const held = [...new Set(this.grants.values())];
    return held.length > 0 ? held : ['auditor'];
  }

  /** The role held on one tenant, if any. */
  roleIn(tenantId: number | null): Role | undefined {
    return this.global ?? (tenantId === null ? undefined : this.grants.get(tenantId));
  }

  sees(tenantId: number | null): boolean {
    return this.roleIn(tenantId) !== undefined;
  }

  /** The tenants whose rows may be read (where one of `roles` is held, when given); undefined means all. */
  tenantIds(roles?: readonly Role[]): number[] | undefined {
    if (this.global) return undefined;
    return [...this.grants].filter(([, role]) => !roles || roles.includes(role)).map(([id]) => id);
  }
}
