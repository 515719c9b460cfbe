// Prisma's error codes for the two outcomes Haul turns into messages of its own. The code is
// checked rather than the class: each database's generated client has its own error classes.

/** A unique constraint refused the row (a name or ID that exists already). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'P2002';
}

/** The row to update or delete does not exist. */
export function isMissingRow(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'P2025';
}
