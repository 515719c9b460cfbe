// The console's roles. They are not a ladder: an operator changes things but may not read the
// audit trail, an auditor reads everything (the audit trail included) and changes nothing, an
// admin does both and manages users. An admin holds its role on every tenant; operators and
// auditors hold theirs per tenant (daemon/database/tenants.ts, web/server/tenant-scope.ts).
export const ROLES = ['admin', 'operator', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
