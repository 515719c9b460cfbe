// Dates and labels for people. Times are shown in the browser's time zone.
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export const roleLabels = { admin: 'Admin', operator: 'Operator', auditor: 'Auditor' } as const;

/** An audit entry's details as "key: value" pairs; values are data, shown as text. */
export function detailPairs(detail: Record<string, unknown>): [string, string][] {
  return Object.entries(detail).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
}
