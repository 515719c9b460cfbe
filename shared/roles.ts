// The console's roles. They are not a ladder: an operator changes things but may not read the
// audit trail, an auditor reads everything (the audit trail included) and changes nothing, an
// admin does both and manages users.
export const ROLES = ['admin', 'operator', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Whether a holder of `holder` may hand out `wanted` (an API token's role): only a role whose
 * rights are a subset of the holder's. So an operator cannot mint an auditor token to read the
 * audit trail it may not read itself.
 */
export function roleCovers(holder: Role, wanted: Role): boolean {
  return holder === 'admin' || holder === wanted;
}
