// Which console rights a directory user's groups give: a pure function of the groups and the
// configured rules, so every case (tenants included) is tested without a directory.

export type TenantRole = 'operator' | 'auditor';

/** One rule of the config's "groups" list: a group (by name or DN) and what it gives. */
export interface GroupRule {
  group: string;
  admin?: true;
  role?: TenantRole;
  /** The tenant the role is for; omitted: every tenant. */
  tenant?: string;
}

/** A grant for every tenant. */
export const ALL_TENANTS = '*';

export interface DirectoryRoles {
  admin: boolean;
  grants: { tenant: string; role: TenantRole }[];
}

/** Where a user holds both roles on the same tenants, operator wins (it is the one that acts). */
const strength: Record<TenantRole, number> = { auditor: 1, operator: 2 };

/**
 * The rights `groups` (the user's groups, as names and/or DNs) give under `rules`. Names and DNs
 * match case-insensitively, as LDAP compares them. An admin needs no grants; a tenant grant that
 * an all-tenants grant of the same or a stronger role covers is left out.
 */
export function mapDirectoryGroups(groups: readonly string[], rules: readonly GroupRule[]): DirectoryRoles {
  const held = new Set(groups.map((g) => g.trim().toLowerCase()));
  const matching = rules.filter((r) => held.has(r.group.trim().toLowerCase()));
  if (matching.some((r) => r.admin)) return { admin: true, grants: [] };
  const byTenant = new Map<string, TenantRole>();
  for (const rule of matching) {
    if (!rule.role) continue;
    const tenant = rule.tenant ?? ALL_TENANTS;
    const before = byTenant.get(tenant);
    if (!before || strength[rule.role] > strength[before]) byTenant.set(tenant, rule.role);
  }
  const everywhere = byTenant.get(ALL_TENANTS);
  const grants = [...byTenant]
    .filter(([tenant, role]) => tenant === ALL_TENANTS || !everywhere || strength[role] > strength[everywhere])
    .map(([tenant, role]) => ({ tenant, role }))
    .sort((a, b) => (a.tenant === b.tenant ? 0 : a.tenant === ALL_TENANTS ? -1 : b.tenant === ALL_TENANTS ? 1 : a.tenant < b.tenant ? -1 : 1));
  return { admin: false, grants };
}
